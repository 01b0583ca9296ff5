#include "common/util/stream.hpp"

#include "common/util/file.hpp"
#include "common/util/uuid.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

namespace registry::util {

namespace {

constexpr size_t k_write_buffer = 1 << 20;

Result<size_t>
read_fd(int fd, char* buffer, size_t size)
{
  while (true) {
    ssize_t n = ::read(fd, buffer, size);
    if (n >= 0) {
      return static_cast<size_t>(n);
    }
    if (errno != EINTR) {
      return fail(ErrorCode::io_error, std::string("read failed: ") + std::strerror(errno));
    }
  }
}

} // namespace

Result<size_t>
read_full(InputStream& in, char* buffer, size_t size)
{
  size_t done = 0;
  while (done < size) {
    REGISTRY_TRY_ASSIGN(size_t n, in.read(buffer + done, size - done));
    if (n == 0) {
      break;
    }
    done += n;
  }
  return done;
}

Result<size_t>
FdInputStream::read(char* buffer, size_t size)
{
  return read_fd(m_fd, buffer, size);
}

Result<std::unique_ptr<FileInputStream>>
FileInputStream::open(const std::filesystem::path& path)
{
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) {
      return fail(ErrorCode::not_found, "no such file " + path.string());
    }
    return fail(ErrorCode::io_error,
                "cannot open " + path.string() + ": " + std::strerror(errno));
  }
  return std::unique_ptr<FileInputStream>(new FileInputStream(fd));
}

FileInputStream::~FileInputStream()
{
  ::close(m_fd);
}

Result<size_t>
FileInputStream::read(char* buffer, size_t size)
{
  return read_fd(m_fd, buffer, size);
}

Result<size_t>
PrefixedInputStream::read(char* buffer, size_t size)
{
  if (m_offset < m_prefix.size()) {
    size_t n = std::min(size, m_prefix.size() - m_offset);
    std::memcpy(buffer, m_prefix.data() + m_offset, n);
    m_offset += n;
    return n;
  }
  return m_rest.read(buffer, size);
}

Result<void>
FdOutputStream::flush()
{
  if (m_buffer.empty()) {
    return ok();
  }
  auto written = write_all(m_fd, m_buffer.data(), m_buffer.size());
  m_buffer.clear();
  return written;
}

Result<void>
FdOutputStream::write(const char* data, size_t size)
{
  if (m_buffer.size() + size > k_write_buffer) {
    REGISTRY_TRY(flush());
    if (size >= k_write_buffer) {
      return write_all(m_fd, data, size);
    }
  }
  m_buffer.append(data, size);
  return ok();
}

Result<void>
FdOutputStream::finish()
{
  return flush();
}

Result<std::unique_ptr<AtomicFileOutputStream>>
AtomicFileOutputStream::create(const std::filesystem::path& path, int mode)
{
  std::filesystem::path temp = path;
  temp += ".tmp-" + random_uuid();
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) {
    return fail(ErrorCode::io_error,
                "cannot create " + temp.string() + ": " + std::strerror(errno));
  }
  return std::unique_ptr<AtomicFileOutputStream>(new AtomicFileOutputStream(path, temp, fd));
}

AtomicFileOutputStream::~AtomicFileOutputStream()
{
  if (m_fd >= 0) {
    ::close(m_fd);
  }
  if (!m_done) {
    ::unlink(m_temp.c_str());
  }
}

Result<void>
AtomicFileOutputStream::write(const char* data, size_t size)
{
  return m_out.write(data, size);
}

Result<void>
AtomicFileOutputStream::finish()
{
  REGISTRY_TRY(m_out.finish());
  if (::fsync(m_fd) != 0) {
    return fail(ErrorCode::io_error, "fsync of " + m_temp.string() + " failed");
  }
  ::close(m_fd);
  m_fd = -1;
  if (::rename(m_temp.c_str(), m_path.c_str()) != 0) {
    return fail(ErrorCode::io_error,
                "cannot rename onto " + m_path.string() + ": " + std::strerror(errno));
  }
  m_done = true;
  auto dir = m_path.parent_path().empty() ? std::filesystem::path(".") : m_path.parent_path();
  return fsync_directory(dir);
}

} // namespace registry::util
