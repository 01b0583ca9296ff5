#pragma once

// File helpers with explicit durability: write to a temp file in the same
// directory, fsync, rename, fsync the directory.

#include "common/result.hpp"

#include <filesystem>
#include <string>
#include <string_view>

namespace registry::util {

// Atomically replaces `path` with `content` (temp + fsync + rename + dir fsync).
// Creates missing parent directories. Returns io_error on failure; the old
// content, if any, is then untouched.
Result<void> write_file_atomic(const std::filesystem::path& path,
                               std::string_view content, int mode = 0644);

// Reads the whole of `path`. not_found if it does not exist, io_error otherwise.
Result<std::string> read_file(const std::filesystem::path& path);

// fsync of a directory, so that a rename or create inside it is durable.
Result<void> fsync_directory(const std::filesystem::path& dir);

// Writes all of `size` bytes to `fd`, retrying on EINTR and short writes.
Result<void> write_all(int fd, const char* data, size_t size);

// A file descriptor closed on scope exit.
class UniqueFd
{
public:
  explicit UniqueFd(int fd = -1) : m_fd(fd) {}
  ~UniqueFd() { reset(-1); }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int
  get() const
  {
    return m_fd;
  }
  // Gives up ownership without closing.
  int
  release()
  {
    int fd = m_fd;
    m_fd = -1;
    return fd;
  }
  // Closes the current descriptor (if any) and owns `fd`.
  void reset(int fd);

private:
  int m_fd;
};

} // namespace registry::util
