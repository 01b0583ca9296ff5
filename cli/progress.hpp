#pragma once

// A one-line progress indicator for long CLI commands (gc, fsck, export, ...).
//
// It draws "\r<label>: <done>[/<total>]" on stderr, at most ten times a second,
// and only when stderr is a terminal: piped or redirected output gets nothing
// extra, so scripts and logs stay clean. finish() (or the destructor) erases the
// line so the command's own output starts on a clean line.
//
// Thread-safety: one thread at a time.

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

namespace registry::cli {

class Progress
{
public:
  // Draws only when `enabled`; by default, when stderr is a terminal.
  Progress();
  explicit Progress(bool enabled);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // Begins a phase called `label`; `total` 0 means unknown (a bare count).
  void start(const std::string& label, uint64_t total = 0);
  // Counts `n` more items of the current phase.
  void advance(uint64_t n = 1);
  // Sets the count of the current phase.
  void update(uint64_t done);
  // Erases the line. Safe to call more than once.
  void finish();

  // Whether stderr is a terminal.
  static bool stderr_is_terminal();

  bool
  enabled() const
  {
    return m_enabled;
  }

  // An adapter for service callbacks that report (phase, done, total): a new
  // phase name starts a new phase. Empty when the indicator is disabled, so the
  // service skips the calls altogether. `*this` must outlive the callback.
  std::function<void(const char*, uint64_t, uint64_t)> callback();

private:
  void draw(bool force);

  bool m_enabled = false;
  bool m_drawn = false;
  std::string m_label;
  uint64_t m_total = 0;
  uint64_t m_done = 0;
  std::chrono::steady_clock::time_point m_last_draw{};
};

} // namespace registry::cli
