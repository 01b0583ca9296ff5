#pragma once

// BlobFetch: one blob on its way from an upstream registry into a feed's store,
// and the requests that read it while it arrives.
//
// One thread (the fetcher) appends the upstream's bytes to a spool file and
// publishes how many it wrote; the same bytes go into a store upload through
// the normal upload path, which hashes them. Readers follow the spool at their
// own pace with positional reads, so memory stays bounded and a slow reader
// never slows the fetch. The spool file is unlinked as soon as it is created:
// its bytes vanish with the last reader and a crash leaves nothing behind.
// Readers never touch the store's upload (object stores cannot read one back).
//
// The last k_hold_back bytes are released only once the blob is verified and
// committed: a wrong digest never delivers a complete wrong blob, it ends every
// reader with an error instead.
//
// Thread-safety: every method may be called from any thread.

#include "common/error.hpp"
#include "common/result.hpp"
#include "common/util/file.hpp"

#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>

namespace registry::service {

class BlobFetch
{
public:
  // How much of the blob readers may not see before it is verified.
  static constexpr uint64_t k_hold_back = 64 * 1024;

  enum class State {
    running,   // bytes are arriving
    committed, // verified and stored: every byte may be read
    absent,    // no upstream has the blob
    failed,    // upstream failed or sent the wrong bytes; nothing was stored
  };

  // What a waiting request learns.
  struct Progress {
    State state = State::running;
    Error error;                   // when failed
    std::optional<uint64_t> size;  // the upstream's announced size, when running
  };

  // A fetch spooling into an unlinked file in `spool_dir` (created if missing).
  // io_error when the file cannot be created.
  static Result<std::shared_ptr<BlobFetch>> create(const std::filesystem::path& spool_dir);

  // --- the fetcher ---
  // Starts over for another upstream: forgets what an earlier attempt spooled.
  // false when a reader was already given bytes of an earlier attempt: those
  // cannot be taken back, so the fetch must end as failed.
  bool restart();
  // The size the upstream announced (Content-Length), nullopt when it did not.
  void announce(std::optional<uint64_t> size);
  // Spools bytes and wakes readers. io_error when the spool cannot be written.
  Result<void> append(const char* data, size_t size);
  // Ends the fetch; `error` matters only for State::failed.
  void finish(State state, Error error = {});

  // --- requests ---
  // Blocks until the fetch ended.
  Progress wait_finished();
  // Blocks until the fetch ended or readers may start: enough bytes arrived to
  // release some. A `running` answer commits the fetch to its current upstream
  // (see restart()); the caller then reads with read_at().
  Progress wait_streamable();
  // Reads up to `size` bytes at `offset` into `buffer`, blocking until some are
  // released. Returns the count, 0 after the last byte of a committed blob;
  // io_error (the fetch's own error) when the fetch failed.
  Result<size_t> read_at(uint64_t offset, char* buffer, size_t size);

private:
  explicit BlobFetch(int fd) : m_fd(fd) {}
  // REQUIRES: m_mutex held.
  uint64_t released() const;

  util::UniqueFd m_fd;
  std::mutex m_mutex;
  std::condition_variable m_changed;
  State m_state = State::running;
  Error m_error;
  std::optional<uint64_t> m_size;
  uint64_t m_written = 0;
  bool m_exposed = false; // a reader may have seen bytes of this attempt
};

} // namespace registry::service
