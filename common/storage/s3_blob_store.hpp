#pragma once

// The S3 BlobStore (AWS S3 and compatible servers such as Ceph radosgw), signed
// with our own SigV4 (common/storage/sigv4.hpp). Object names under the bucket,
// with P = "<prefix>/" (or nothing without a prefix):
//
//   P blobs/<upload id>             a blob committed from an upload (key "blobs/<upload id>")
//   P blobs/<algorithm>/<hex>       a blob written by put_blob (key "blobs/<algorithm>/<hex>")
//   P _uploads/<upload id>/info     the upload's multipart upload id (small JSON)
//   P _uploads/<upload id>/state    the service's saved hash state (save_upload_state)
//   P _quarantine/<key>             empty marker: the blob <key> is being removed by gc
//   P _check/<uuid>                 short-lived objects written by check()
//
// Uploads are S3 multipart uploads on the final object "P blobs/<upload id>",
// created by create_upload(). Bytes appended are buffered in a spool file on
// local disk (spool_dir/<upload id>.<next part number>), never in memory; each
// time the spool holds a full part it is sent as UploadPart by a background task
// while the next part spools (one part in flight, so parts complete in order);
// the writer's close() waits for it. Parts are 16 MiB for parts 1-2000, then double every 2000 parts (up to
// 256 MiB), so 10,000 parts hold about 970 GiB. Part numbers and ETags are not
// kept by us: ListParts is the truth, so another S3BlobStore on the same bucket
// and spool directory (a restarted server) continues an upload. The spool tail
// (less than one part) lives only on the local disk of the server that received
// it; a server without that spool directory cannot continue the upload
// (upload_size() then reports only the bytes in parts).
//
// sync_upload() sends the spool tail as the last part. commit_upload() is
// CompleteMultipartUpload: the bytes are never copied; the key is the upload's
// own object. An upload with no bytes becomes an empty PutObject. commit_upload()
// does not look for an existing blob with the same digest (an object store cannot
// find one by key): the metadata decides; a duplicate object without a row is
// garbage that gc finds through list_blobs().
//
// Quarantine never copies: quarantine_blob() writes a marker object and the bytes
// stay in place; restore_blob() deletes the marker; purge_quarantined() deletes
// the blob, then the marker (nothing if there is no marker). open_blob() and
// stat_blob() HEAD the marker too and drop it if present (a crash left the blob
// quarantined while its row survived): one extra small request per call.
//
// Errors: 404 NoSuchKey/NoSuchUpload -> not_found; anything else -> io_error whose
// message carries the S3 code and message. Connection failures and 5xx answers
// (503 SlowDown included) are retried 3 times with backoff (0.1, 0.4, 1.6 s).
// Every call is treated as retryable: PUT, GET, HEAD, DELETE and UploadPart are
// idempotent; a retried CreateMultipartUpload can at worst leave an empty
// multipart upload behind (a bucket lifecycle rule aborting incomplete uploads
// cleans those); a retried CompleteMultipartUpload that already succeeded is
// recognised by a HEAD of the object.
//
// Thread-safe: HTTP clients come from a small pool, one per call in flight.

#include "common/storage/blob_store.hpp"

#include <filesystem>
#include <map>
#include <memory>

namespace registry::storage {

struct S3Options {
  enum class Addressing { path, virtual_host };

  std::string endpoint;                     // http://host[:port] or https://host[:port]
  std::string region = "us-east-1";
  std::string bucket;
  std::string prefix;                       // "" or "a/b" (no leading or trailing '/')
  Addressing addressing = Addressing::path; // path: /bucket/key; virtual: bucket.host/key
  std::string ca_file;                      // PEM bundle for https; system default if empty
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;                // temporary credentials only
  bool redirect = true;                     // redirect_url() gives presigned GET URLs
  std::filesystem::path spool_dir;          // local directory buffering upload tails

  // Tuning, not settings keys (tests set them).
  std::string connect_address; // connect here instead of resolving the host (like curl --resolve)
  uint64_t part_size = 16ULL << 20; // first part size; at least 5 MiB
  int list_page_size = 1000;        // max-keys of ListObjectsV2 and max-parts of ListParts

  // Reads the store's settings: endpoint, region, bucket, prefix, addressing
  // (path|virtual), ca_file, access_key_id, secret_access_key, session_token,
  // redirect (true|false) and spool_dir. invalid_argument naming every bad or
  // unknown key, one clause per problem.
  static Result<S3Options> from_settings(const std::map<std::string, std::string>& settings);
};

class S3Client;
class S3Ops;

class S3BlobStore final : public BlobStore
{
public:
  // Validates `options` and creates the spool directory. Does not contact the
  // server (see check()).
  static Result<std::unique_ptr<S3BlobStore>> open(const S3Options& options);
  ~S3BlobStore() override;

  std::string
  kind() const override
  {
    return "s3";
  }
  Result<void> check() override;
  Result<std::optional<std::string>> redirect_url(const std::string& key, std::chrono::seconds ttl) override;

  Result<void> create_upload(const std::string& id) override;
  Result<uint64_t> upload_size(const std::string& id) override;
  Result<std::unique_ptr<UploadWriter>> append_upload(const std::string& id) override;
  // unsupported: multipart parts cannot be read back.
  Result<void> read_upload(const std::string& id, const ByteSink& sink) override;
  bool
  can_read_uploads() const override
  {
    return false;
  }
  // Every upload commits to blobs/<upload id>.
  bool
  commit_keys_are_unique() const override
  {
    return true;
  }
  Result<void> save_upload_state(const std::string& id, std::string_view state) override;
  Result<std::optional<std::string>> load_upload_state(const std::string& id) override;
  Result<void> sync_upload(const std::string& id) override;
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

  const S3Options&
  options() const
  {
    return m_options;
  }

  // The size of part `part_number` (1-based) for a first part size of `base`.
  static uint64_t part_size_for(uint64_t base, int part_number);

private:
  S3BlobStore(S3Options options, std::unique_ptr<S3Client> client);

  S3Options m_options;
  std::unique_ptr<S3Client> m_client;
  std::unique_ptr<S3Ops> m_ops;
};

} // namespace registry::storage
