#include "common/storage/fs_blob_store.hpp"

#include "common/util/file.hpp"
#include "common/util/uuid.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace registry::storage {

namespace fs = std::filesystem;

namespace {

constexpr size_t k_write_buffer = 1 << 20;
constexpr size_t k_writeback_step = 8 << 20;

using Fd = util::UniqueFd;

int64_t
mtime_of(const struct stat& st)
{
  return static_cast<int64_t>(st.st_mtim.tv_sec);
}

class FsUploadWriter final : public UploadWriter
{
public:
  explicit FsUploadWriter(int fd) : m_fd(fd)
  {
    m_buffer.reserve(k_write_buffer);
  }
  ~FsUploadWriter() override
  {
    ::close(m_fd);
  }

  Result<void>
  write(const char* data, size_t size) override
  {
    if (m_buffer.size() + size > k_write_buffer) {
      REGISTRY_TRY(flush());
      if (size >= k_write_buffer) {
        REGISTRY_TRY(util::write_all(m_fd, data, size));
        m_unsynced += size;
        start_writeback();
        return ok();
      }
    }
    m_buffer.append(data, size);
    return ok();
  }

  Result<void>
  close() override
  {
    return flush();
  }

private:
  Result<void>
  flush()
  {
    if (m_buffer.empty()) {
      return ok();
    }
    auto result = util::write_all(m_fd, m_buffer.data(), m_buffer.size());
    m_unsynced += m_buffer.size();
    m_buffer.clear();
    start_writeback();
    return result;
  }

  // Starts the kernel's writeback of what has been written so far, without
  // waiting for it, so the fsync at commit finds little left to do and the disk
  // works while the network still delivers.
  void
  start_writeback()
  {
    if (m_unsynced >= k_writeback_step) {
      ::sync_file_range(m_fd, 0, 0, SYNC_FILE_RANGE_WRITE);
      m_unsynced = 0;
    }
  }

  int m_fd;
  std::string m_buffer;
  size_t m_unsynced = 0;
};

class FsBlobReader final : public BlobReader
{
public:
  FsBlobReader(int fd, uint64_t size) : m_fd(fd), m_size(size) {}
  ~FsBlobReader() override
  {
    ::close(m_fd);
  }
  uint64_t
  size() const override
  {
    return m_size;
  }
  Result<size_t>
  read_at(uint64_t offset, char* buffer, size_t size) override
  {
    for (;;) {
      ssize_t n = ::pread(m_fd, buffer, size, static_cast<off_t>(offset));
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n < 0) {
        return fail(ErrorCode::io_error, "blob read failed");
      }
      return static_cast<size_t>(n);
    }
  }

private:
  int m_fd;
  uint64_t m_size;
};

bool
is_hex(std::string_view s)
{
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return !s.empty();
}

} // namespace

Result<std::unique_ptr<FsBlobStore>>
FsBlobStore::open(const fs::path& root)
{
  std::error_code ec;
  fs::create_directories(root / "blobs", ec);
  if (!ec && !fs::exists(root / "blobs" / "sha256", ec) && !ec) {
    // A new store gets its 256 sha256 shard directories at once: otherwise
    // each of the first few hundred pushes into a fresh store pays for one
    // more directory and one more fsync (of its parent) than a push needs.
    // A shard missing later (an older store, a crash midway) is still made
    // by the push that needs it.
    // Failures are left to that push too, so nothing here is checked.
    fs::path algorithm = root / "blobs" / "sha256";
    ::mkdir(algorithm.c_str(), 0755);
    for (int i = 0; i < 256; ++i) {
      char shard[3];
      std::snprintf(shard, sizeof shard, "%02x", i);
      ::mkdir((algorithm / shard).c_str(), 0755);
    }
    (void)util::fsync_directory(algorithm);
    (void)util::fsync_directory(root / "blobs");
  }
  if (!ec) {
    fs::create_directories(root / "uploads", ec);
  }
  if (!ec) {
    fs::create_directories(root / "quarantine", ec);
  }
  if (ec) {
    return fail(ErrorCode::io_error, "cannot create store directory " + root.string() + ": "
                                       + ec.message());
  }
  return std::unique_ptr<FsBlobStore>(new FsBlobStore(root));
}

Result<void>
FsBlobStore::check()
{
  // The same calls a push makes: create, append, fsync, read back, remove.
  const std::string id = util::random_uuid();
  const std::string probe = "registryctl store check";
  auto round_trip = [&]() -> Result<void> {
    REGISTRY_TRY(create_upload(id));
    REGISTRY_TRY_ASSIGN(auto writer, append_upload(id));
    REGISTRY_TRY(writer->write(probe.data(), probe.size()));
    REGISTRY_TRY(writer->close());
    REGISTRY_TRY(sync_upload(id));
    std::string back;
    REGISTRY_TRY(read_upload(id, [&](const char* data, size_t n) {
      back.append(data, n);
      return true;
    }));
    if (back != probe) {
      return fail(ErrorCode::io_error, "read back different bytes than were written");
    }
    return ok();
  };
  auto result = round_trip();
  auto removed = remove_upload(id);
  if (!result) {
    return fail(ErrorCode::io_error, "store directory " + m_root.string() + ": "
                                       + result.error().message);
  }
  return removed;
}

std::string
FsBlobStore::key_for(const oci::Digest& digest)
{
  std::string hex(digest.hex());
  return "blobs/" + std::string(digest.algorithm()) + "/" + hex.substr(0, 2) + "/" + hex;
}

Result<fs::path>
FsBlobStore::upload_path(const std::string& id) const
{
  if (!util::is_uuid(id)) {
    return fail(ErrorCode::invalid_argument, "invalid upload id");
  }
  return m_root / "uploads" / id;
}

Result<fs::path>
FsBlobStore::blob_path(const std::string& key) const
{
  // Only keys of the form key_for() produces are accepted, so a key read from
  // the database can never point outside the store.
  auto parts = std::string_view(key);
  if (!parts.starts_with("blobs/")) {
    return fail(ErrorCode::invalid_argument, "invalid blob key");
  }
  parts.remove_prefix(6);
  size_t slash = parts.find('/');
  if (slash == std::string_view::npos) {
    return fail(ErrorCode::invalid_argument, "invalid blob key");
  }
  std::string_view algo = parts.substr(0, slash);
  std::string_view rest = parts.substr(slash + 1);
  if ((algo != "sha256" && algo != "sha512") || rest.size() < 4 || rest[2] != '/'
      || !is_hex(rest.substr(0, 2)) || !is_hex(rest.substr(3))
      || rest.substr(0, 2) != rest.substr(3, 2)) {
    return fail(ErrorCode::invalid_argument, "invalid blob key");
  }
  return m_root / key;
}

Result<fs::path>
FsBlobStore::quarantine_path(const std::string& key) const
{
  REGISTRY_TRY(blob_path(key));
  // blobs/<algo>/<2 hex>/<hex> -> quarantine/<algo>-<hex>
  std::string_view rest = std::string_view(key).substr(6);
  std::string algo(rest.substr(0, rest.find('/')));
  std::string hex(rest.substr(rest.rfind('/') + 1));
  return m_root / "quarantine" / (algo + "-" + hex);
}

Result<void>
FsBlobStore::quarantine_blob(const std::string& key)
{
  REGISTRY_TRY_ASSIGN(auto from, blob_path(key));
  REGISTRY_TRY_ASSIGN(auto to, quarantine_path(key));
  if (::rename(from.c_str(), to.c_str()) != 0) {
    if (errno == ENOENT) {
      return ok();
    }
    return fail(ErrorCode::io_error, "cannot quarantine blob: " + std::string(std::strerror(errno)));
  }
  // No fsync: whichever of the rename and the row deletion a crash loses, the
  // outcome is safe (row + bytes in place, row + quarantine -> restored, no row
  // + bytes -> orphan for fsck, no row + quarantine -> purged), and a batch of
  // renames stays short while it holds the metadata write lock.
  return ok();
}

Result<void>
FsBlobStore::restore_blob(const std::string& key)
{
  REGISTRY_TRY_ASSIGN(auto to, blob_path(key));
  REGISTRY_TRY_ASSIGN(auto from, quarantine_path(key));
  std::error_code ec;
  fs::create_directories(to.parent_path(), ec);
  // link() fails when the target exists: bytes put there meanwhile win.
  if (::link(from.c_str(), to.c_str()) != 0 && errno != EEXIST) {
    if (errno == ENOENT) {
      return ok();
    }
    return fail(ErrorCode::io_error, "cannot restore blob: " + std::string(std::strerror(errno)));
  }
  REGISTRY_TRY(util::fsync_directory(to.parent_path()));
  return purge_quarantined(key);
}

Result<void>
FsBlobStore::purge_quarantined(const std::string& key)
{
  REGISTRY_TRY_ASSIGN(auto path, quarantine_path(key));
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return fail(ErrorCode::io_error, "cannot remove quarantined blob");
  }
  return ok();
}

Result<std::vector<std::string>>
FsBlobStore::list_quarantined()
{
  std::vector<std::string> keys;
  std::error_code ec;
  for (fs::directory_iterator it(m_root / "quarantine", ec), end; !ec && it != end;
       it.increment(ec)) {
    std::string name = it->path().filename().string();
    size_t dash = name.find('-');
    if (dash == std::string::npos || dash + 3 > name.size()) {
      continue;
    }
    std::string hex = name.substr(dash + 1);
    std::string key = "blobs/" + name.substr(0, dash) + "/" + hex.substr(0, 2) + "/" + hex;
    if (blob_path(key)) {
      keys.push_back(key);
    }
  }
  if (ec) {
    return fail(ErrorCode::io_error, "cannot list quarantine");
  }
  return keys;
}

Result<void>
FsBlobStore::sync_upload(const std::string& id)
{
  REGISTRY_TRY_ASSIGN(auto path, upload_path(id));
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    return fail(errno == ENOENT ? ErrorCode::not_found : ErrorCode::io_error,
                "cannot open upload");
  }
  if (::fsync(fd.get()) != 0) {
    return fail(ErrorCode::io_error, "fsync of upload failed");
  }
  remember_synced(id);
  return ok();
}

bool
FsBlobStore::is_synced(const std::string& id)
{
  std::lock_guard lock(m_synced_mutex);
  return m_synced.count(id) != 0;
}

Result<void>
FsBlobStore::place_upload(const std::string& id, const oci::Digest& digest)
{
  if (!is_synced(id)) {
    return ok(); // commit_upload() fsyncs and places the bytes itself
  }
  REGISTRY_TRY_ASSIGN(auto source, upload_path(id));
  fs::path target = m_root / key_for(digest);
  REGISTRY_TRY(ensure_blob_directory(target.parent_path()));
  bool linked = ::link(source.c_str(), target.c_str()) == 0;
  if (!linked && errno != EEXIST) {
    return ok(); // no hard links here: commit_upload() renames instead
  }
  // Synced after EEXIST too: the name may be another push's link whose
  // directory fsync is still running, and this row must not outlast it.
  if (auto synced = util::fsync_directory(target.parent_path()); !synced) {
    if (linked) {
      ::unlink(target.c_str()); // a name that may not be durable is no blob
    }
    return synced;
  }
  return ok();
}

Result<void>
FsBlobStore::ensure_blob_directory(const fs::path& dir)
{
  if (::mkdir(dir.c_str(), 0755) == 0) {
    // A new shard directory is a new name in its parent, durable only once
    // the parent is synced.
    return util::fsync_directory(dir.parent_path());
  }
  if (errno == EEXIST) {
    return ok();
  }
  // The algorithm's directory is missing too (the first blob of its kind).
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    return fail(ErrorCode::io_error, "cannot create blob directory " + dir.string());
  }
  REGISTRY_TRY(util::fsync_directory(dir.parent_path()));
  return util::fsync_directory(dir.parent_path().parent_path());
}

void
FsBlobStore::remember_synced(const std::string& id)
{
  std::lock_guard lock(m_synced_mutex);
  m_synced.insert(id);
}

bool
FsBlobStore::take_synced(const std::string& id)
{
  std::lock_guard lock(m_synced_mutex);
  return m_synced.erase(id) != 0;
}

Result<void>
FsBlobStore::create_upload(const std::string& id)
{
  REGISTRY_TRY_ASSIGN(auto path, upload_path(id));
  Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (fd.get() < 0) {
    if (errno == EEXIST) {
      return fail(ErrorCode::already_exists, "upload exists");
    }
    return fail(ErrorCode::io_error, "cannot create upload file: " + std::string(std::strerror(errno)));
  }
  return ok();
}

Result<uint64_t>
FsBlobStore::upload_size(const std::string& id)
{
  REGISTRY_TRY_ASSIGN(auto path, upload_path(id));
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) {
      return fail(ErrorCode::not_found, "upload not found");
    }
    return fail(ErrorCode::io_error, "cannot stat upload");
  }
  return static_cast<uint64_t>(st.st_size);
}

Result<std::unique_ptr<UploadWriter>>
FsBlobStore::append_upload(const std::string& id)
{
  REGISTRY_TRY_ASSIGN(auto path, upload_path(id));
  (void)take_synced(id);
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) {
      return fail(ErrorCode::not_found, "upload not found");
    }
    return fail(ErrorCode::io_error, "cannot open upload");
  }
  return std::unique_ptr<UploadWriter>(std::make_unique<FsUploadWriter>(fd));
}

Result<void>
FsBlobStore::read_upload(const std::string& id, const ByteSink& sink)
{
  REGISTRY_TRY_ASSIGN(auto path, upload_path(id));
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    return fail(errno == ENOENT ? ErrorCode::not_found : ErrorCode::io_error,
                "cannot open upload");
  }
  std::string buffer(k_write_buffer, '\0');
  for (;;) {
    ssize_t n = ::read(fd.get(), buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return fail(ErrorCode::io_error, "cannot read upload");
    }
    if (n == 0 || !sink(buffer.data(), static_cast<size_t>(n))) {
      return ok();
    }
  }
}

Result<std::string>
FsBlobStore::commit_upload(const std::string& id, const oci::Digest& digest)
{
  REGISTRY_TRY_ASSIGN(auto source, upload_path(id));
  std::string key = key_for(digest);
  fs::path target = m_root / key;
  bool synced_before = take_synced(id);
  if (!synced_before) {
    Fd fd(::open(source.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) {
      return fail(errno == ENOENT ? ErrorCode::not_found : ErrorCode::io_error,
                  "cannot open upload");
    }
    if (::fsync(fd.get()) != 0) {
      return fail(ErrorCode::io_error, "fsync of upload failed");
    }
  }
  struct stat st {};
  if (::stat(target.c_str(), &st) == 0) {
    // Same digest, same bytes (an existing blob, or this upload's own link from
    // place_upload()): keep them, drop the upload's name. Without a
    // place_upload() first, the name may be another push's link whose
    // directory fsync is still running.
    if (!synced_before) {
      REGISTRY_TRY(util::fsync_directory(target.parent_path()));
    }
    ::unlink(source.c_str());
    return key;
  }
  REGISTRY_TRY(ensure_blob_directory(target.parent_path()));
  if (::rename(source.c_str(), target.c_str()) != 0) {
    return fail(ErrorCode::io_error, "cannot move upload into place: "
                                       + std::string(std::strerror(errno)));
  }
  REGISTRY_TRY(util::fsync_directory(target.parent_path()));
  return key;
}

Result<void>
FsBlobStore::remove_upload(const std::string& id)
{
  REGISTRY_TRY_ASSIGN(auto path, upload_path(id));
  (void)take_synced(id);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return fail(ErrorCode::io_error, "cannot remove upload");
  }
  return ok();
}

Result<std::vector<ObjectInfo>>
FsBlobStore::list_uploads()
{
  std::vector<ObjectInfo> out;
  std::error_code ec;
  for (fs::directory_iterator it(m_root / "uploads", ec), end; !ec && it != end;
       it.increment(ec)) {
    std::string name = it->path().filename().string();
    struct stat st {};
    if (!util::is_uuid(name) || ::stat(it->path().c_str(), &st) != 0) {
      continue;
    }
    out.push_back({name, static_cast<uint64_t>(st.st_size), mtime_of(st)});
  }
  if (ec) {
    return fail(ErrorCode::io_error, "cannot list uploads");
  }
  return out;
}

Result<std::string>
FsBlobStore::put_blob(const oci::Digest& digest, std::string_view bytes)
{
  std::string key = key_for(digest);
  fs::path target = m_root / key;
  struct stat st {};
  if (::stat(target.c_str(), &st) == 0) {
    return key;
  }
  std::string temp_id = util::random_uuid();
  REGISTRY_TRY(create_upload(temp_id));
  auto written = [&]() -> Result<void> {
    REGISTRY_TRY_ASSIGN(auto writer, append_upload(temp_id));
    REGISTRY_TRY(writer->write(bytes.data(), bytes.size()));
    return writer->close();
  }();
  if (!written) {
    (void)remove_upload(temp_id);
    return fail(written.take_error());
  }
  auto committed = commit_upload(temp_id, digest);
  if (!committed) {
    (void)remove_upload(temp_id);
  }
  return committed;
}

Result<std::unique_ptr<BlobReader>>
FsBlobStore::open_blob(const std::string& key)
{
  REGISTRY_TRY_ASSIGN(auto path, blob_path(key));
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0 && errno == ENOENT) {
    // A collector killed inside its transaction leaves the row and the bytes in
    // quarantine: bring them back (link(); a newer copy in place wins).
    REGISTRY_TRY(restore_blob(key));
    fd.reset(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  }
  if (fd.get() < 0) {
    return fail(errno == ENOENT ? ErrorCode::not_found : ErrorCode::io_error,
                "cannot open blob");
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    return fail(ErrorCode::io_error, "cannot stat blob");
  }
  ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
  return std::unique_ptr<BlobReader>(
    std::make_unique<FsBlobReader>(fd.release(), static_cast<uint64_t>(st.st_size)));
}

Result<ObjectInfo>
FsBlobStore::stat_blob(const std::string& key)
{
  REGISTRY_TRY_ASSIGN(auto path, blob_path(key));
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 && errno == ENOENT) {
    REGISTRY_TRY(restore_blob(key)); // see open_blob()
  }
  if (::stat(path.c_str(), &st) != 0) {
    return fail(errno == ENOENT ? ErrorCode::not_found : ErrorCode::io_error,
                "cannot stat blob");
  }
  return ObjectInfo{key, static_cast<uint64_t>(st.st_size), mtime_of(st)};
}

Result<void>
FsBlobStore::remove_blob(const std::string& key)
{
  REGISTRY_TRY_ASSIGN(auto path, blob_path(key));
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return fail(ErrorCode::io_error, "cannot remove blob");
  }
  return ok();
}

Result<void>
FsBlobStore::list_blobs(const std::function<bool(const ObjectInfo&)>& visit)
{
  std::error_code ec;
  fs::recursive_directory_iterator it(m_root / "blobs", ec);
  for (fs::recursive_directory_iterator end; !ec && it != end; it.increment(ec)) {
    if (!it->is_regular_file(ec)) {
      continue;
    }
    std::string key = fs::relative(it->path(), m_root, ec).string();
    if (!blob_path(key)) {
      continue; // stray file (e.g. a temp name); never ours to report as a blob
    }
    struct stat st {};
    if (::stat(it->path().c_str(), &st) != 0) {
      continue;
    }
    if (!visit(ObjectInfo{key, static_cast<uint64_t>(st.st_size), mtime_of(st)})) {
      return ok();
    }
  }
  if (ec) {
    return fail(ErrorCode::io_error, "cannot list blobs");
  }
  return ok();
}

} // namespace registry::storage
