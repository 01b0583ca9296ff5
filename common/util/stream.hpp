#pragma once

// Byte streams for data too large to hold in memory (archives): a pull-style
// InputStream and a push-style OutputStream, with file-descriptor and
// atomic-file implementations. No registry concepts.
//
// Thread-safety: a stream belongs to one thread at a time.

#include "common/result.hpp"

#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>

namespace registry::util {

class InputStream
{
public:
  virtual ~InputStream() = default;
  // Reads up to `size` (> 0) bytes into `buffer`. Returns the count, 0 only at
  // the end of the stream. io_error or corrupt on failure.
  virtual Result<size_t> read(char* buffer, size_t size) = 0;
};

class OutputStream
{
public:
  virtual ~OutputStream() = default;
  // Writes all of `size` bytes (may buffer). io_error on failure.
  virtual Result<void> write(const char* data, size_t size) = 0;
  // Flushes and ends the stream; nothing may be written after it.
  virtual Result<void> finish() = 0;
};

// Reads until `size` bytes are in `buffer` or the stream ends; returns the count.
Result<size_t> read_full(InputStream& in, char* buffer, size_t size);

// Reads from a file descriptor it does not own (e.g. standard input).
class FdInputStream : public InputStream
{
public:
  explicit FdInputStream(int fd) : m_fd(fd) {}
  Result<size_t> read(char* buffer, size_t size) override;

private:
  int m_fd;
};

// Opens `path` for reading; owns the descriptor. not_found / io_error.
class FileInputStream : public InputStream
{
public:
  static Result<std::unique_ptr<FileInputStream>> open(const std::filesystem::path& path);
  ~FileInputStream() override;
  Result<size_t> read(char* buffer, size_t size) override;

private:
  explicit FileInputStream(int fd) : m_fd(fd) {}
  int m_fd;
};

// Serves `prefix` (bytes already read, e.g. to sniff a magic number), then `rest`.
class PrefixedInputStream : public InputStream
{
public:
  PrefixedInputStream(std::string prefix, InputStream& rest)
    : m_prefix(std::move(prefix)),
      m_rest(rest)
  {
  }
  Result<size_t> read(char* buffer, size_t size) override;

private:
  std::string m_prefix;
  size_t m_offset = 0;
  InputStream& m_rest;
};

// Writes to a file descriptor it does not own (e.g. standard output), through
// a 1 MiB buffer. finish() flushes; it does not close or fsync.
class FdOutputStream : public OutputStream
{
public:
  explicit FdOutputStream(int fd) : m_fd(fd) {}
  Result<void> write(const char* data, size_t size) override;
  Result<void> finish() override;

private:
  Result<void> flush();
  int m_fd;
  std::string m_buffer;
};

// Writes a new version of `path` into a temporary file beside it. finish()
// fsyncs it, renames it onto `path` and fsyncs the directory; a stream dropped
// without finish() (or whose finish() failed) removes the temporary file and
// leaves `path` untouched.
class AtomicFileOutputStream : public OutputStream
{
public:
  // io_error when the temporary file cannot be created.
  static Result<std::unique_ptr<AtomicFileOutputStream>> create(const std::filesystem::path& path,
                                                                int mode = 0644);
  ~AtomicFileOutputStream() override;
  Result<void> write(const char* data, size_t size) override;
  Result<void> finish() override;

private:
  AtomicFileOutputStream(std::filesystem::path path, std::filesystem::path temp, int fd)
    : m_path(std::move(path)),
      m_temp(std::move(temp)),
      m_out(fd),
      m_fd(fd)
  {
  }
  std::filesystem::path m_path;
  std::filesystem::path m_temp;
  FdOutputStream m_out;
  int m_fd;
  bool m_done = false;
};

} // namespace registry::util
