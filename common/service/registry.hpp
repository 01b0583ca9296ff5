#pragma once

// Registry: the domain operations shared by the HTTP server and the CLI. It owns
// the metadata database and the blob stores of one data directory and enforces
// the consistency rules of DESIGN.md §4:
//   - a blob is visible in a repository only through a link;
//   - blob bytes are durable before any row names them (a small blob's bytes
//     are written with its row, in one transaction: k_small_blob_limit);
//   - a manifest is accepted only when everything it references is linked in its
//     repository, and it is recorded with its references and tag in one
//     transaction.
//
// Names are validated here before they reach a query or a path. Errors use the
// OCI vocabulary of common/error.hpp.
//
// Thread-safety: every method may be called from many threads at once. Several
// processes (a server and CLI commands) may open the same data directory.

#include "common/metadata/metadata.hpp"
#include "common/service/accounts.hpp"
#include "common/service/blob_fetch.hpp"
#include "common/service/tokens.hpp"
#include "common/oci/digest.hpp"
#include "common/oci/manifest.hpp"
#include "common/oci/reference.hpp"
#include "common/result.hpp"
#include "common/storage/blob_store.hpp"
#include "common/storage/store_factory.hpp"
#include "common/util/clock.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace registry::upstream {
class UpstreamClient;
}

namespace registry::service {

// A request body: called once with a sink, pushes the bytes into it in order.
// Returns false when the body could not be read completely (client went away).
using ByteSource = std::function<bool(const storage::ByteSink& sink)>;

struct BlobInfo {
  oci::Digest digest;
  uint64_t size = 0;
};

struct OpenBlob {
  BlobInfo info; // info.size is 0 when size_known is false
  std::unique_ptr<storage::BlobReader> reader; // null when redirect_url or fetch is set
  std::string redirect_url;                    // the store serves the bytes itself
  // Set when the blob is still arriving from an upstream: read it in order
  // through BlobFetch::read_at(). Its last bytes come only once it is verified;
  // a read error means the upstream failed or sent the wrong bytes.
  std::shared_ptr<BlobFetch> fetch;
  bool size_known = true; // false when the upstream announced no size
};

// What open_blob() may answer with besides a reader of the stored bytes.
enum class OpenFor {
  reading, // a reader; a blob missing on a feed with connectors is fetched first
  serving, // also a redirect URL to the store, or a blob still being fetched
};

// How long a client may use a redirect to an object store (a presigned S3 URL,
// an Azure SAS): long enough for a slow pull of a large layer to start.
inline constexpr std::chrono::seconds k_blob_redirect_lifetime{20 * 60};

// Blobs up to this size are kept in the metadata database, not in the store:
// configs, tiny layers, signatures, whether they arrive whole in one request
// (a monolithic PUT, a POST with the digest) or in chunks that stay under it
// (docker's PATCH, which waits in the upload's row). At this size the file or
// object and its fsyncs cost more than the bytes (see
// Metadata::keep_small_blob()).
inline constexpr uint64_t k_small_blob_limit = 64 * 1024;

// Bytes read from a trusted local source (an archive being imported) and
// verified against their digest, not yet visible in any repository.
struct StagedBlob {
  oci::Digest digest;
  uint64_t size = 0;
  int64_t feed_id = 0;
  int64_t store_id = 0;
  // The store upload holding the bytes; empty when the store already had the
  // blob (its bytes were then only hashed) or once they are committed.
  std::string upload_id;
  // The bytes of a small blob, for the database (k_small_blob_limit).
  std::optional<std::string> kept;
  // Whether the store had the blob before (the import skipped it).
  bool existed = false;
};

struct UploadStatus {
  std::string id;
  std::string repository; // full name
  uint64_t offset = 0;    // bytes received so far
};

struct ManifestData {
  oci::Digest digest;
  std::string media_type;
  uint64_t size = 0;
  std::string bytes; // empty when not asked for
  std::string origin; // the connector URL of cached content; empty when pushed
};

struct PutManifestResult {
  oci::Digest digest;
  std::string subject; // the subject digest, when the manifest has one
};

struct DeleteManifestResult {
  oci::Digest digest;
  std::vector<std::string> removed_tags;
};

struct TagPage {
  std::string repository;
  std::vector<metadata::TagRow> tags;
  bool more = false; // another page follows
};

struct RepositoryPage {
  std::vector<std::string> names;
  bool more = false;
};

struct ImageDetails {
  std::string repository;
  ManifestData manifest;
  std::vector<std::string> tags;
  oci::Manifest parsed;
};

// How often a pull of one cached manifest is written down, in seconds: at
// most once an hour, and finer for short retentions (a 24th of it) so the
// stamp never lags the retention by more than a few percent. Pulls in
// between are reads only.
constexpr int64_t
pull_record_interval(int64_t cache_retention)
{
  constexpr int64_t k_hour = 3600;
  return cache_retention > 0 && cache_retention / 24 < k_hour ? cache_retention / 24 : k_hour;
}

class Registry
{
public:
  // Opens the data directory `data_dir` (created if missing): registry.db and the
  // default filesystem store under store/. `clock` defaults to the system clock.
  static Result<std::unique_ptr<Registry>> open(const std::filesystem::path& data_dir,
                                                std::shared_ptr<const util::Clock> clock = {});
  ~Registry();

  metadata::Metadata&
  metadata()
  {
    return *m_metadata;
  }
  Accounts&
  accounts()
  {
    return *m_accounts;
  }
  // The token service; its signing key (token-key.pem in the data directory,
  // mode 0600) is created on first use.
  Result<TokenService*> tokens();
  const std::filesystem::path&
  data_dir() const
  {
    return m_data_dir;
  }
  int64_t
  now() const
  {
    return m_clock->now();
  }

  // Appends to the audit trail. Never fails the caller: a failed write is
  // logged as a warning.
  void audit(const std::string& kind, const std::string& actor, const std::string& feed,
             const std::string& subject, const std::string& detail = {});

  // The store with `store_id`, opened on first use. internal when it does not
  // exist or cannot be opened.
  Result<storage::BlobStore*> store(int64_t store_id);
  // Reads a blob's bytes, from its store or, for a small blob, the database.
  // not_found when they are missing; the store's errors as they are.
  Result<std::unique_ptr<storage::BlobReader>> open_stored(const metadata::BlobRow& blob);
  // The largest blob kept in the database (k_small_blob_limit); 0 keeps every
  // blob in its store. Set before serving.
  void
  set_small_blob_limit(uint64_t bytes)
  {
    m_small_blob_limit = bytes;
  }
  // Every store id in the database.
  std::vector<int64_t> store_ids() const;

  // --- stores ---
  // Adds a named store of `type` with its non-secret `settings` (secrets come
  // from the environment or the config file, see storage/store_factory.hpp).
  // With `check`, a round trip must succeed first (io_error naming the step).
  Result<metadata::StoreRow> add_store(const std::string& name, const std::string& type,
                                       const storage::StoreSettings& settings, bool check);
  Result<std::vector<metadata::StoreRow>> list_stores();
  // name_unknown when absent.
  Result<metadata::StoreRow> get_store(const std::string& name);
  // A write/read/delete round trip against the store.
  Result<void> check_store(const std::string& name);
  // conflict while feeds use it or blobs remain in it.
  Result<void> delete_store(const std::string& name);

  // --- feeds ---
  // name_invalid for a bad or reserved name, already_exists when taken,
  // name_unknown for an unknown store.
  // `cache_retention`: seconds a cached manifest may go unpulled before gc
  // expires it; 0 keeps cached content forever. invalid_argument when negative.
  Result<metadata::FeedRow> create_feed(const std::string& name, const std::string& description,
                                        const std::string& anonymous_access,
                                        const std::string& store = "default",
                                        int64_t cache_retention = 0);
  Result<std::vector<metadata::FeedRow>> list_feeds();
  // name_unknown when absent.
  Result<metadata::FeedRow> get_feed(const std::string& name);
  Result<metadata::FeedRow> update_feed(const std::string& name,
                                        const std::optional<std::string>& description,
                                        const std::optional<std::string>& anonymous_access,
                                        std::optional<int64_t> cache_retention = std::nullopt);
  // Removes the feed and all its repositories; blob bytes are reclaimed by gc.
  Result<void> delete_feed(const std::string& name);

  // --- blobs ---
  // blob_unknown unless `digest` is linked to the repository. Refreshes the
  // blob's use time (gc grace).
  Result<BlobInfo> stat_blob(std::string_view repository, std::string_view digest);
  // For OpenFor::serving, a store that can serve the blob to the client directly
  // gives a URL instead of a reader, and a blob missing on a feed with
  // connectors is answered as soon as its first bytes arrive from upstream
  // (OpenBlob::fetch). blob_unknown when no upstream has it either, io_error
  // when fetching failed before any byte could be served.
  Result<OpenBlob> open_blob(std::string_view repository, std::string_view digest,
                             OpenFor purpose = OpenFor::reading);
  // Unlinks the blob from the repository. blob_unknown when not linked.
  Result<void> delete_blob(std::string_view repository, std::string_view digest);

  // --- uploads ---
  Result<UploadStatus> start_upload(std::string_view repository);
  // blob_upload_unknown when the id is unknown or belongs to another repository.
  Result<UploadStatus> upload_status(std::string_view repository, std::string_view id);
  // Appends `body`. When `expected_offset` is set and differs from the current
  // size: upload_range_invalid (nothing written).
  Result<UploadStatus> append_upload(std::string_view repository, std::string_view id,
                                     std::optional<uint64_t> expected_offset,
                                     const ByteSource& body);
  // Appends `body` (may be null) and completes the upload as `digest`.
  // digest_invalid when the content does not hash to `digest` (the upload is then
  // discarded).
  Result<BlobInfo> complete_upload(std::string_view repository, std::string_view id,
                                   std::string_view digest, const ByteSource* body);
  Result<void> cancel_upload(std::string_view repository, std::string_view id);
  // Monolithic push: start, append and complete in one call.
  Result<BlobInfo> push_blob(std::string_view repository, std::string_view digest,
                             const ByteSource& body);
  // Links `digest` from repository `from` into `repository`. nullopt when the
  // source does not have it (or it lives in another store): the caller then
  // falls back to a new upload session.
  Result<std::optional<BlobInfo>> mount_blob(std::string_view repository, std::string_view from,
                                             std::string_view digest);
  // Purges uploads last active at or before `older_than` (Unix seconds); only
  // those of `feed` when it is not empty.
  Result<size_t> purge_uploads(int64_t older_than, const std::string& feed = {});

  // --- connectors (pull-through caching of upstream registries) ---
  // invalid_argument for a malformed URL; already_exists when the feed has it.
  Result<metadata::ConnectorRow> add_connector(const std::string& feed, const std::string& url,
                                               const std::string& username, const std::string& password,
                                               int64_t ttl = 300);
  // Of `feed`, or of every feed when empty.
  Result<std::vector<metadata::ConnectorRow>> list_connectors(const std::string& feed);
  // not_found when the feed has no such connector.
  Result<void> remove_connector(const std::string& feed, const std::string& url);

  // What connectors did since the process started, per upstream URL.
  struct ConnectorActivity {
    uint64_t manifest_fetches = 0;  // manifests fetched and cached
    uint64_t blob_fetches = 0;      // blobs fetched, verified and cached
    uint64_t blob_bytes = 0;        // bytes of those blobs
    uint64_t revalidations = 0;     // HEAD requests for tags past their TTL
    uint64_t stale_served = 0;      // cached copies served because upstream failed
    uint64_t upstream_failures = 0; // failed upstream requests (5xx, 429, timeouts, bad digests)
  };
  std::map<std::string, ConnectorActivity> connector_activity() const;

  // --- staged blobs (archive import) ---
  // Streams `body` into a new upload in the store of `feed` while hashing it.
  // digest_invalid when the bytes do not hash to `digest` (nothing is kept);
  // io_error or the source's error when `body` fails (then `body_error` is
  // returned when set). When the store already holds the blob the bytes are
  // only hashed and upload_id stays empty ("skipped"). A staged upload has no
  // session row: clients and `upload list` never see it, and gc removes it once
  // it is older than the upload expiry (an import that never finished).
  Result<StagedBlob> stage_blob(const std::string& feed, const oci::Digest& digest,
                                const ByteSource& body, Error* body_error = nullptr);
  // Makes a staged blob visible in `repository` (of the same feed): commits its
  // bytes on first use (clearing upload_id) and links it. blob_unknown when a
  // blob that was present at staging time has since been collected.
  Result<BlobInfo> link_staged_blob(std::string_view repository, StagedBlob& staged);
  // Drops the bytes of a staged blob that will not be linked. Idempotent.
  void discard_staged_blob(StagedBlob& staged);

  // --- manifests and tags ---
  // With `actor` (who to name in the audit trail), the change and its audit
  // event ("manifest.push"; "manifest.delete" or "tag.delete" below) commit in
  // one transaction.
  Result<PutManifestResult> put_manifest(std::string_view repository, std::string_view reference,
                                         std::string_view content_type, std::string bytes,
                                         const std::string* actor = nullptr);
  // manifest_unknown when the tag or digest is unknown in the repository.
  Result<ManifestData> get_manifest(std::string_view repository, std::string_view reference,
                                    bool with_bytes);
  // Deletes by digest (every tag on it goes too) or, given a tag, removes only
  // that tag. conflict when an index in the repository still references it.
  Result<DeleteManifestResult> delete_manifest(std::string_view repository,
                                               std::string_view reference,
                                               const std::string* actor = nullptr);
  // Resolves a tag to its manifest and deletes the manifest with all its tags
  // (the CLI's `image delete FEED/REPO:TAG`).
  Result<DeleteManifestResult> delete_image(std::string_view repository,
                                            std::string_view reference,
                                            const std::string* actor = nullptr);
  Result<ImageDetails> describe_image(std::string_view repository, std::string_view reference);
  // Tags after `last`, at most `limit`. name_unknown when the repository does
  // not exist. Without `with_manifests` only the tags' names are filled in.
  Result<TagPage> list_tags(std::string_view repository, const std::string& last, int64_t limit,
                            bool with_manifests = true);
  Result<RepositoryPage> catalog(const std::string& feed, const std::string& last, int64_t limit);
  // The referrers index (OCI image index JSON) of `digest`.
  Result<std::string> referrers(std::string_view repository, std::string_view digest,
                                const std::string& artifact_type);

private:
  // Stamps a cached manifest as pulled, at most once per pull_record_interval().
  void record_pull(const metadata::FeedRow& feed, const metadata::ManifestRow& row);
  struct ResolvedRepository {
    oci::RepositoryName name;
    std::string full;
    metadata::FeedRow feed;
    std::optional<metadata::RepositoryRow> row;
  };
  struct UploadState;

  Registry() = default;
  // name_invalid / name_unknown (missing feed).
  Result<ResolvedRepository> resolve(std::string_view repository);
  // As resolve(), but name_unknown when the repository does not exist yet.
  Result<ResolvedRepository> resolve_existing(std::string_view repository);
  // Stores a parsed manifest; `origin` marks cached content (see NewManifest).
  Result<PutManifestResult> store_manifest(const ResolvedRepository& repo, const oci::ManifestReference& ref,
                                           std::string_view content_type, std::string bytes,
                                           const std::string& origin, const std::string* actor = nullptr);
  // A HEAD's answer for a stored blob (recording the use, at most once a minute).
  BlobInfo stat_found(const metadata::BlobRow& blob, const oci::Digest& parsed);
  // An audit event by `actor` on `repository` (FEED/REPO) at now(); nullopt
  // when there is no actor (nothing to record).
  std::optional<metadata::EventRow> audit_event(const std::string* actor, const std::string& kind,
                                                std::string_view repository, const std::string& subject,
                                                const std::string& detail) const;
  // The blob row linked to the repository, fetched from a connector when absent.
  Result<metadata::BlobRow> linked_blob(std::string_view repository, const oci::Digest& digest);
  // Pull-through (connectors.cpp): nullopt / false when no connector has it.
  Result<std::optional<metadata::ManifestRow>> pull_manifest(const ResolvedRepository& repo,
                                                             const oci::ManifestReference& ref, bool with_bytes);
  // A blob not yet in `repository` but on its way from upstream, as soon as
  // readers may start (OpenBlob::fetch); nullopt when it is stored (now, or by
  // the fetch). blob_unknown when the feed has no connectors or no upstream
  // has it, io_error when the fetch failed.
  Result<std::optional<OpenBlob>> arriving_blob(std::string_view repository, const oci::Digest& digest);
  // Waits for the blob's fetch (joined or started) to end.
  Result<bool> pull_blob(const ResolvedRepository& repo, const oci::Digest& digest);
  // The fetch of `digest` into `repo` under way, or a new one started on its
  // own thread through `connectors` (the feed's, as the caller listed them):
  // one per blob and repository, whoever asks. nullptr when there are none.
  Result<std::shared_ptr<BlobFetch>> join_fetch(const ResolvedRepository& repo, const oci::Digest& digest,
                                                std::vector<metadata::ConnectorRow> connectors);
  // The fetching thread's work: each connector in turn, into an upload and the
  // fetch's spool, until one has the blob.
  void run_fetch(const ResolvedRepository& repo, const oci::Digest& digest,
                 const std::vector<metadata::ConnectorRow>& connectors, BlobFetch& fetch);
  // A cached tag older than its connector's TTL: HEAD upstream, refetch when
  // the digest moved. Upstream failures serve the cached copy.
  Result<metadata::ManifestRow> revalidate(const ResolvedRepository& repo, const oci::ManifestReference& ref,
                                           metadata::ManifestRow row, bool with_bytes);
  std::shared_ptr<upstream::UpstreamClient> upstream_client(const metadata::ConnectorRow& connector);

  Result<std::shared_ptr<UploadState>> upload_state(std::string_view repository,
                                                    std::string_view id,
                                                    metadata::UploadRow& row);
  // Brings `state` up to date with the stored upload, then appends `body`.
  // While the store has no upload, the bytes so far (the row's head, then
  // `body`) stay in memory as long as they fit in the small-blob limit: in
  // `kept` for a completing request, else written back to the row's head.
  // `kept` is empty after the call when the bytes are in the store.
  Result<void> append_locked(UploadState& state, const metadata::UploadRow& row,
                             const ByteSource& body, std::optional<std::string>* kept = nullptr);
  void forget_upload(const std::string& id);

  std::filesystem::path m_data_dir;
  std::shared_ptr<const util::Clock> m_clock;
  std::unique_ptr<metadata::Metadata> m_metadata;
  std::unique_ptr<Accounts> m_accounts;
  std::mutex m_tokens_mutex;
  std::unique_ptr<TokenService> m_tokens;
  mutable std::mutex m_stores_mutex;
  std::map<int64_t, std::unique_ptr<storage::BlobStore>> m_stores; // opened on first use

  // Upstream clients by connector id, with the settings they were made for
  // (their token caches outlive single requests).
  std::mutex m_upstream_mutex;
  std::map<int64_t, std::pair<std::string, std::shared_ptr<upstream::UpstreamClient>>> m_upstreams;
  // One fetch per blob and repository at a time, by "repository@digest"; a
  // fetch leaves the map when it ends. The destructor stops the fetching
  // threads (m_closing) and waits for them (m_fetch_threads).
  std::mutex m_fetch_mutex;
  std::condition_variable m_fetch_ended;
  std::map<std::string, std::shared_ptr<BlobFetch>> m_fetching;
  size_t m_fetch_threads = 0;
  std::atomic<bool> m_closing{false};
  void count_connector(const std::string& url, uint64_t ConnectorActivity::*field, uint64_t n = 1);
  mutable std::mutex m_activity_mutex;
  std::map<std::string, ConnectorActivity> m_activity;

  std::mutex m_uploads_mutex;
  std::map<std::string, std::shared_ptr<UploadState>> m_uploads;
  uint64_t m_small_blob_limit = k_small_blob_limit;
};

} // namespace registry::service
