#include "common/service/blob_fetch.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace registry::service {

namespace fs = std::filesystem;

Result<std::shared_ptr<BlobFetch>>
BlobFetch::create(const fs::path& spool_dir)
{
  std::error_code ec;
  fs::create_directories(spool_dir, ec);
  if (ec) {
    return fail(ErrorCode::io_error, "cannot create " + spool_dir.string() + ": " + ec.message());
  }
  // An anonymous file where the filesystem offers one; else a named one that
  // is unlinked at once.
  int fd = ::open(spool_dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) {
    std::string name = (spool_dir / "fetch-XXXXXX").string();
    fd = ::mkostemp(name.data(), O_CLOEXEC);
    if (fd >= 0) {
      ::unlink(name.c_str());
    }
  }
  if (fd < 0) {
    return fail(ErrorCode::io_error,
                "cannot create a spool file in " + spool_dir.string() + ": " + std::strerror(errno));
  }
  return std::shared_ptr<BlobFetch>(new BlobFetch(fd));
}

bool
BlobFetch::restart()
{
  std::lock_guard lock(m_mutex);
  if (m_exposed) {
    return false;
  }
  m_written = 0;
  m_size.reset();
  // The fetcher alone writes, so the file position is only ever its own.
  (void)::ftruncate(m_fd.get(), 0);
  (void)::lseek(m_fd.get(), 0, SEEK_SET);
  return true;
}

void
BlobFetch::announce(std::optional<uint64_t> size)
{
  std::lock_guard lock(m_mutex);
  m_size = size;
}

Result<void>
BlobFetch::append(const char* data, size_t size)
{
  // Written outside the lock: readers only read below m_written.
  REGISTRY_TRY(util::write_all(m_fd.get(), data, size));
  {
    std::lock_guard lock(m_mutex);
    m_written += size;
  }
  m_changed.notify_all();
  return ok();
}

void
BlobFetch::finish(State state, Error error)
{
  {
    std::lock_guard lock(m_mutex);
    m_state = state;
    m_error = std::move(error);
  }
  m_changed.notify_all();
}

uint64_t
BlobFetch::released() const
{
  if (m_state == State::committed) {
    return m_written;
  }
  return m_written > k_hold_back ? m_written - k_hold_back : 0;
}

BlobFetch::Progress
BlobFetch::wait_finished()
{
  std::unique_lock lock(m_mutex);
  m_changed.wait(lock, [&] { return m_state != State::running; });
  return Progress{m_state, m_error, std::nullopt};
}

BlobFetch::Progress
BlobFetch::wait_streamable()
{
  std::unique_lock lock(m_mutex);
  m_changed.wait(lock, [&] { return m_state != State::running || released() > 0; });
  if (m_state == State::running) {
    m_exposed = true;
    return Progress{m_state, {}, m_size};
  }
  return Progress{m_state, m_error, std::nullopt};
}

Result<size_t>
BlobFetch::read_at(uint64_t offset, char* buffer, size_t size)
{
  uint64_t available = 0;
  {
    std::unique_lock lock(m_mutex);
    m_changed.wait(lock, [&] { return m_state != State::running || released() > offset; });
    if (m_state == State::failed || m_state == State::absent) {
      return fail(ErrorCode::io_error, m_error.message.empty() ? "upstream fetch failed" : m_error.message,
                  m_error.detail);
    }
    available = released();
  }
  if (offset >= available) {
    return size_t{0};
  }
  size_t want = static_cast<size_t>(std::min<uint64_t>(size, available - offset));
  while (true) {
    ssize_t n = ::pread(m_fd.get(), buffer, want, static_cast<off_t>(offset));
    if (n >= 0) {
      return static_cast<size_t>(n);
    }
    if (errno != EINTR) {
      return fail(ErrorCode::io_error, std::string("cannot read the spool file: ") + std::strerror(errno));
    }
  }
}

} // namespace registry::service
