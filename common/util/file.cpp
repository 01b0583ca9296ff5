#include "common/util/file.hpp"

#include "common/util/uuid.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace registry::util {

namespace fs = std::filesystem;

Result<void>
write_all(int fd, const char* data, size_t size)
{
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return fail(ErrorCode::io_error, std::string("write failed: ") + std::strerror(errno));
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return ok();
}

Result<void>
fsync_directory(const fs::path& dir)
{
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    return fail(ErrorCode::io_error, "cannot open directory " + dir.string());
  }
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) {
    return fail(ErrorCode::io_error, "fsync failed on " + dir.string());
  }
  return ok();
}

Result<void>
write_file_atomic(const fs::path& path, std::string_view content, int mode)
{
  fs::path dir = path.parent_path().empty() ? fs::path(".") : path.parent_path();
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    return fail(ErrorCode::io_error, "cannot create directory " + dir.string());
  }
  fs::path temp = path;
  temp += ".tmp-" + random_uuid();
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) {
    return fail(ErrorCode::io_error, "cannot create " + temp.string());
  }
  auto written = write_all(fd, content.data(), content.size());
  bool synced = written && ::fsync(fd) == 0;
  ::close(fd);
  if (!synced || ::rename(temp.c_str(), path.c_str()) != 0) {
    ::unlink(temp.c_str());
    return fail(ErrorCode::io_error, "cannot write " + path.string());
  }
  return fsync_directory(dir);
}

Result<std::string>
read_file(const fs::path& path)
{
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) {
      return fail(ErrorCode::not_found, "no such file " + path.string());
    }
    return fail(ErrorCode::io_error, "cannot open " + path.string());
  }
  // Read straight into the string, sized from fstat (one byte more, so the
  // read that finds the end needs no growth). No stack buffer: Debian's
  // compiler probes every page of a large frame, which stays resident.
  struct stat st {};
  size_t expected = ::fstat(fd, &st) == 0 && st.st_size > 0 ? static_cast<size_t>(st.st_size) : 0;
  std::string out(expected + 1, '\0');
  size_t used = 0;
  for (;;) {
    if (used == out.size()) {
      out.resize(out.size() * 2);
    }
    ssize_t n = ::read(fd, out.data() + used, out.size() - used);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      ::close(fd);
      return fail(ErrorCode::io_error, "cannot read " + path.string());
    }
    if (n == 0) {
      break;
    }
    used += static_cast<size_t>(n);
  }
  ::close(fd);
  out.resize(used);
  return out;
}

void
UniqueFd::reset(int fd)
{
  if (m_fd >= 0) {
    ::close(m_fd);
  }
  m_fd = fd;
}

} // namespace registry::util
