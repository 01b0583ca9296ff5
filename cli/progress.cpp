#include "cli/progress.hpp"

#include <cstdio>
#include <unistd.h>

namespace registry::cli {

namespace {

constexpr auto k_redraw_interval = std::chrono::milliseconds(100);

} // namespace

bool
Progress::stderr_is_terminal()
{
  return ::isatty(STDERR_FILENO) != 0;
}

Progress::Progress() : Progress(stderr_is_terminal()) {}

Progress::Progress(bool enabled) : m_enabled(enabled) {}

Progress::~Progress()
{
  finish();
}

void
Progress::start(const std::string& label, uint64_t total)
{
  m_label = label;
  m_total = total;
  m_done = 0;
  draw(true);
}

void
Progress::advance(uint64_t n)
{
  m_done += n;
  draw(false);
}

void
Progress::update(uint64_t done)
{
  m_done = done;
  draw(false);
}

void
Progress::finish()
{
  if (m_enabled && m_drawn) {
    // carriage return, then erase to the end of the line
    std::fputs("\r\033[K", stderr);
    std::fflush(stderr);
  }
  m_drawn = false;
}

std::function<void(const char*, uint64_t, uint64_t)>
Progress::callback()
{
  if (!m_enabled) {
    return {};
  }
  return [this](const char* phase, uint64_t done, uint64_t total) {
    if (m_label != phase || m_total != total) {
      start(phase, total);
    }
    update(done);
  };
}

void
Progress::draw(bool force)
{
  if (!m_enabled) {
    return;
  }
  auto now = std::chrono::steady_clock::now();
  bool complete = m_total > 0 && m_done >= m_total;
  if (!force && !complete && now - m_last_draw < k_redraw_interval) {
    return;
  }
  m_last_draw = now;
  if (m_total > 0) {
    std::fprintf(stderr, "\r\033[K%s: %llu/%llu", m_label.c_str(),
                 static_cast<unsigned long long>(m_done), static_cast<unsigned long long>(m_total));
  } else {
    std::fprintf(stderr, "\r\033[K%s: %llu", m_label.c_str(), static_cast<unsigned long long>(m_done));
  }
  std::fflush(stderr);
  m_drawn = true;
}

} // namespace registry::cli
