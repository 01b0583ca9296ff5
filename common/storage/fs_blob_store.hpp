#pragma once

// The filesystem BlobStore. Layout under the root directory:
//
//   <root>/
//   ├── blobs/<algorithm>/<first 2 hex>/<hex>     committed blobs (key = this relative path)
//   ├── uploads/<uuid>                            in-progress upload data
//   └── quarantine/<algorithm>-<hex>              blobs being removed by gc
//
// Commit = fsync the upload file, rename it into blobs/, fsync the directory.
// Temporary files for put_blob live in uploads/ under a fresh UUID, so an
// interrupted write is just an abandoned upload.

#include "common/storage/blob_store.hpp"

#include <filesystem>
#include <mutex>
#include <unordered_set>

namespace registry::storage {

class FsBlobStore final : public BlobStore
{
public:
  // Creates `root` and its subdirectories if missing. io_error if impossible.
  static Result<std::unique_ptr<FsBlobStore>> open(const std::filesystem::path& root);

  std::string
  kind() const override
  {
    return "filesystem";
  }
  Result<void> check() override;

  Result<void> create_upload(const std::string& id) override;
  Result<uint64_t> upload_size(const std::string& id) override;
  Result<std::unique_ptr<UploadWriter>> append_upload(const std::string& id) override;
  Result<void> read_upload(const std::string& id, const ByteSink& sink) override;
  Result<void> sync_upload(const std::string& id) override;
  // Hard-links a synced upload at its blob key and fsyncs the directory, outside
  // the metadata write lock; commit_upload() then only drops the upload's name.
  Result<void> place_upload(const std::string& id, const oci::Digest& digest) override;
  Result<std::string> commit_upload(const std::string& id, const oci::Digest& digest) override;
  Result<void> remove_upload(const std::string& id) override;
  Result<std::vector<ObjectInfo>> list_uploads() override;

  Result<std::string> put_blob(const oci::Digest& digest, std::string_view bytes) override;
  Result<std::unique_ptr<BlobReader>> open_blob(const std::string& key) override;
  Result<ObjectInfo> stat_blob(const std::string& key) override;
  Result<void> remove_blob(const std::string& key) override;
  Result<void> quarantine_blob(const std::string& key) override;
  Result<void> restore_blob(const std::string& key) override;
  Result<void> purge_quarantined(const std::string& key) override;
  Result<std::vector<std::string>> list_quarantined() override;
  Result<void> list_blobs(const std::function<bool(const ObjectInfo&)>& visit) override;

  const std::filesystem::path&
  root() const
  {
    return m_root;
  }

  // The key (relative path) of `digest`.
  static std::string key_for(const oci::Digest& digest);

private:
  explicit FsBlobStore(std::filesystem::path root) : m_root(std::move(root)) {}
  Result<std::filesystem::path> upload_path(const std::string& id) const;
  Result<std::filesystem::path> blob_path(const std::string& key) const;
  Result<std::filesystem::path> quarantine_path(const std::string& key) const;

  // Records that sync_upload() made `id` durable.
  void remember_synced(const std::string& id);
  // Whether `id` is durable as recorded, forgetting the record (an append, a
  // removal or the commit ends it).
  bool take_synced(const std::string& id);
  bool is_synced(const std::string& id);
  // Creates a blob shard directory if needed, durably (the parent is synced).
  Result<void> ensure_blob_directory(const std::filesystem::path& dir);

  std::filesystem::path m_root;
  // Uploads fsynced by sync_upload() and not appended to since: their commit
  // skips a second fsync, which costs about 80 us even on a clean file and
  // would run under the metadata write lock.
  std::mutex m_synced_mutex;
  std::unordered_set<std::string> m_synced;
};

} // namespace registry::storage
