#pragma once

// BlobStore: where blob bytes live (a filesystem directory, later an S3 bucket or an
// Azure container). It holds two kinds of objects:
//   - uploads: in-progress byte sequences named by an upload id (a UUID), appended
//     in order, then committed under a digest;
//   - blobs: committed, immutable, content-addressed objects named by an opaque
//     object key that the store chooses at commit time.
//
// The metadata database maps (store, digest) to the object key, so a store may
// commit an upload in place (S3 multipart complete, Azure block-list commit)
// without copying bytes. Callers never build keys or paths themselves. Small
// blobs never reach a store: the database keeps them (metadata::k_database_key),
// and the service never hands that key to a store.
//
// Crash-safety contract: commit_upload() returns only once the bytes under the
// returned key are durable. Metadata rows are written after it, so metadata never
// names bytes that are not durable; bytes without a row are garbage that gc and
// fsck find through list_blobs().
//
// Thread-safety: every method may be called from many threads at once. Calls
// for one upload id must not overlap (the service serialises them).

#include "common/oci/digest.hpp"
#include "common/result.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace registry::storage {

// Receives bytes; returns false to stop early.
using ByteSink = std::function<bool(const char* data, size_t size)>;

struct ObjectInfo {
  std::string key;       // blob key, or upload id for uploads
  uint64_t size = 0;
  int64_t modified = 0; // Unix seconds
};

// Appends bytes to one upload. Writes may be buffered until close().
class UploadWriter
{
public:
  virtual ~UploadWriter() = default;
  // io_error on failure; the upload is then in an unknown state and should be
  // re-checked with upload_size().
  virtual Result<void> write(const char* data, size_t size) = 0;
  // Flushes buffered bytes. Must be called before the writer is dropped for the
  // bytes to count; a writer dropped without close() discards nothing already
  // flushed.
  virtual Result<void> close() = 0;
};

// Reads one committed blob. Not thread-safe; open one reader per request.
class BlobReader
{
public:
  virtual ~BlobReader() = default;
  virtual uint64_t size() const = 0;
  // Reads up to `size` bytes at `offset` into `buffer`; returns the count (0 at
  // the end). io_error on failure.
  virtual Result<size_t> read_at(uint64_t offset, char* buffer, size_t size) = 0;
};

// A BlobReader over bytes in memory: a small blob the metadata database keeps
// (metadata::k_database_key).
class BytesBlobReader final : public BlobReader
{
public:
  explicit BytesBlobReader(std::string bytes) : m_bytes(std::move(bytes)) {}
  uint64_t
  size() const override
  {
    return m_bytes.size();
  }
  Result<size_t>
  read_at(uint64_t offset, char* buffer, size_t size) override
  {
    if (offset >= m_bytes.size()) {
      return size_t{0};
    }
    return m_bytes.copy(buffer, size, static_cast<size_t>(offset));
  }

private:
  std::string m_bytes;
};

class BlobStore
{
public:
  virtual ~BlobStore() = default;

  // "filesystem", "s3", "azure", ...
  virtual std::string kind() const = 0;

  // One round trip proving the store is usable (write, read back, delete a small
  // object). The error message names the step that failed: DNS, connect, TLS,
  // authentication, missing bucket or container, permission.
  virtual Result<void> check() = 0;

  // A URL a client may GET the committed blob from directly for `ttl` (an S3
  // presigned URL, an Azure SAS URL), or nullopt when the registry must serve the
  // bytes itself (the filesystem, or an object store configured to proxy).
  virtual Result<std::optional<std::string>>
  redirect_url(const std::string& key, std::chrono::seconds ttl)
  {
    (void)key;
    (void)ttl;
    return std::optional<std::string>();
  }

  // --- uploads ---
  // Creates an empty upload. already_exists if `id` is taken.
  virtual Result<void> create_upload(const std::string& id) = 0;
  // Bytes received so far. not_found if the upload does not exist.
  virtual Result<uint64_t> upload_size(const std::string& id) = 0;
  // Opens the upload for appending at its end. not_found if absent.
  virtual Result<std::unique_ptr<UploadWriter>> append_upload(const std::string& id) = 0;
  // Streams the upload's bytes from the start (used to rebuild a hash state after
  // a restart). not_found if absent.
  virtual Result<void> read_upload(const std::string& id, const ByteSink& sink) = 0;
  // Whether read_upload() can stream an unfinished upload back. Object stores
  // cannot (multipart parts and uncommitted blocks are write-only); for them the
  // service keeps its hash state with the upload through save_upload_state()
  // after every append, and resumes from it after a restart.
  virtual bool
  can_read_uploads() const
  {
    return true;
  }
  // Keeps `state` (small, opaque) with the upload, replacing the previous one;
  // removed with the upload. unsupported on stores that can read uploads back.
  virtual Result<void>
  save_upload_state(const std::string& id, std::string_view state)
  {
    (void)id;
    (void)state;
    return fail(ErrorCode::unsupported, "this store reads uploads back instead");
  }
  // The last state saved for the upload, nullopt if none.
  virtual Result<std::optional<std::string>>
  load_upload_state(const std::string& id)
  {
    (void)id;
    return std::optional<std::string>();
  }
  // Makes the upload's bytes durable where they are (fsync), so that the later
  // commit_upload() is quick: it runs while the metadata write lock is held.
  // not_found if absent.
  virtual Result<void> sync_upload(const std::string& id) = 0;
  // Whether commit_upload() returns a key of the upload's own, never a key shared
  // with an existing blob. Such a commit cannot race gc's removal of other bytes,
  // so the service runs it before the metadata transaction, not inside it: a
  // network round trip must not hold the database's write lock. The key is then
  // garbage until its row is written; fsck removes such bytes only after the gc
  // grace. A store with shared (content-addressed) keys commits inside the lock.
  virtual bool
  commit_keys_are_unique() const
  {
    return false;
  }
  // On a store with shared keys, may put the synced upload's bytes at the key of
  // `digest` ahead of the metadata transaction, durably, keeping the upload, so
  // that commit_upload() inside the transaction finds them there and the slow
  // part (a directory fsync) does not hold the write lock. Doing nothing is
  // correct: commit_upload() places the bytes itself then.
  virtual Result<void>
  place_upload(const std::string& id, const oci::Digest& digest)
  {
    (void)id;
    (void)digest;
    return ok();
  }
  // Makes the upload's bytes the durable blob for `digest` and returns its object
  // key. The caller has verified the digest. If the blob already exists the
  // upload is dropped and the existing key returned, unless the store's keys are
  // unique (above): then the caller removes the duplicate. not_found if absent.
  virtual Result<std::string> commit_upload(const std::string& id, const oci::Digest& digest) = 0;
  // Removes an upload and its data. Not an error if it does not exist.
  virtual Result<void> remove_upload(const std::string& id) = 0;
  // Every upload id present in the store, with its size and last modification.
  virtual Result<std::vector<ObjectInfo>> list_uploads() = 0;

  // --- blobs ---
  // Stores small `bytes` (already verified to hash to `digest`) durably and
  // returns the key. Idempotent.
  virtual Result<std::string> put_blob(const oci::Digest& digest, std::string_view bytes) = 0;
  // Opens a committed blob. not_found if absent, invalid_argument for a key this
  // store never produced.
  virtual Result<std::unique_ptr<BlobReader>> open_blob(const std::string& key) = 0;
  // Size and modification time. not_found if absent.
  virtual Result<ObjectInfo> stat_blob(const std::string& key) = 0;
  // Removes a blob. Not an error if it does not exist.
  virtual Result<void> remove_blob(const std::string& key) = 0;
  // --- removal in two steps (garbage collection) ---
  // Moves a blob out of the way, restorable until purged. Called inside the
  // metadata transaction that deletes the blob's row. A crash before that
  // transaction commits leaves the row and quarantined bytes: open_blob() and
  // stat_blob() still answer for them (a store that moved the bytes away puts
  // them back first), and gc's recovery restores every quarantined key that
  // has a row, so a row never loses its bytes. Not an error if the blob does
  // not exist.
  virtual Result<void> quarantine_blob(const std::string& key) = 0;
  // Puts a quarantined blob back under `key`, unless `key` holds bytes again
  // (then the quarantined copy is dropped). Not an error if nothing is quarantined.
  virtual Result<void> restore_blob(const std::string& key) = 0;
  // Deletes a quarantined blob for good. Not an error if absent.
  virtual Result<void> purge_quarantined(const std::string& key) = 0;
  // Keys of the blobs currently in quarantine (left there by a crash).
  virtual Result<std::vector<std::string>> list_quarantined() = 0;

  // Calls `visit` for every committed blob until it returns false.
  virtual Result<void> list_blobs(const std::function<bool(const ObjectInfo&)>& visit) = 0;
};

} // namespace registry::storage
