#pragma once

// Metadata: the registry's relational state (feeds, repositories, blobs, links,
// manifests, their references, tags, uploads). This is the only interface to it;
// the SQLite implementation lives in metadata.cpp and no SQLite type crosses
// this header, so a PostgreSQL backend can take its place.
//
// Every mutating method is one transaction: it either happens completely or not
// at all, and it re-checks its preconditions inside the transaction, so a
// concurrent writer (another server thread, `registryctl` on the same data
// directory, the garbage collector) never sees or creates a half state.
//
// Thread-safety: all methods may be called concurrently; connections are pooled.
// Errors: io_error/internal for database failures (the message is logged, not
// shown to clients); domain codes as documented per method.

#include "common/oci/digest.hpp"
#include "common/result.hpp"

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace registry::metadata {

struct FeedRow {
  int64_t id = 0;
  std::string name;
  std::string description;
  int64_t store_id = 0;
  std::string anonymous_access; // "none" | "pull"
  int64_t created_at = 0;
  int64_t cache_retention = 0; // seconds cached manifests stay unpulled before they expire; 0: forever
};

struct RepositoryRow {
  int64_t id = 0;
  int64_t feed_id = 0;
  int64_t store_id = 0;
  std::string name; // full name FEED/PATH
  int64_t created_at = 0;
};

struct FeedAndRepository {
  std::optional<FeedRow> feed;
  std::optional<RepositoryRow> repository; // looked up only when the feed exists
};

struct RepositorySummary {
  std::string name;
  int64_t tag_count = 0;
  int64_t manifest_count = 0;
  int64_t updated_at = 0;
};

// The object key of a blob whose bytes the database keeps itself (a small blob:
// a config, a tiny layer, a signature), see Metadata::keep_small_blob(). No
// store produces this key.
inline constexpr const char* k_database_key = "(database)";

struct BlobRow {
  int64_t id = 0;
  int64_t store_id = 0;
  std::string digest;
  uint64_t size = 0;
  std::string object_key;
  int64_t created_at = 0;
  int64_t last_touched_at = 0;

  // Whether the bytes are in the database (blob_content()), not in the store.
  bool
  in_database() const
  {
    return object_key == k_database_key;
  }
};

struct ManifestRow {
  int64_t id = 0;
  int64_t repository_id = 0;
  std::string digest;
  std::string media_type;
  std::string artifact_type;
  std::string subject_digest;
  std::string annotations_json;
  uint64_t size = 0;
  std::string bytes; // empty unless asked for
  int64_t pushed_at = 0;
  std::string origin;         // the connector URL of cached content; empty when pushed
  int64_t tag_updated_at = 0; // when found by tag: the tag's last move or revalidation
  int64_t last_pulled_at = 0; // cached content: when it was cached or last pulled (coarse); 0 when pushed
};

// A cached manifest past its feed's retention (gc's expiry candidates).
struct StaleManifest {
  ManifestRow manifest;
  std::string repository; // full name FEED/PATH
};

struct ManifestReferenceRecord {
  enum class Kind { blob, manifest };
  Kind kind = Kind::blob;
  std::string digest;
};

struct NewManifest {
  std::string digest;
  std::string media_type;
  std::string artifact_type;
  std::string subject_digest;
  std::string annotations_json;
  std::string bytes;
  std::vector<ManifestReferenceRecord> references;
  // The connector URL cached content came from; empty for pushed content. A
  // cached manifest's references are not checked (they are fetched lazily).
  std::string origin;
};

// An upstream registry a feed caches (pull-through).
struct ConnectorRow {
  int64_t id = 0;
  int64_t feed_id = 0;
  std::string feed;
  int64_t position = 0; // misses try connectors in this order
  std::string url;      // e.g. https://registry-1.docker.io
  std::string username; // empty: anonymous
  std::string password;
  int64_t created_at = 0;
  int64_t ttl = 300; // seconds a cached tag stays fresh before a HEAD revalidates it
};

struct TagRow {
  std::string name;
  std::string digest;
  int64_t updated_at = 0;
  std::string origin; // of the tagged manifest: the connector URL when cached
};

struct UploadRow {
  std::string id;
  int64_t feed_id = 0;
  int64_t store_id = 0;
  std::string repository_name; // full name FEED/PATH
  int64_t started_at = 0;
  int64_t updated_at = 0;
  // The bytes received so far of an upload the store has not seen yet (small
  // chunks, see set_upload_head()); nullopt when none. Read by find_upload().
  std::optional<std::string> head;
};

// One entry of the audit trail.
struct EventRow {
  int64_t id = 0;
  int64_t at = 0;
  std::string kind;    // "manifest.push", "feed.create", "login.failed", ...
  std::string actor;   // user name, "api", "cli:<os user>", "-" for anonymous
  std::string feed;    // empty when no feed is involved
  std::string subject; // what was acted on: FEED/REPO@DIGEST, a user name, ...
  std::string detail;
};

struct DanglingReference {
  std::string repository;
  std::string manifest_digest;
  std::string digest;
  bool is_manifest = false;
};

struct StoreStats {
  int64_t blob_count = 0;
  uint64_t total_bytes = 0;
};

// What one feed holds: blobs linked into any of its repositories, each counted once.
struct FeedUsage {
  std::string feed;
  int64_t repositories = 0;
  int64_t blobs = 0;
  uint64_t bytes = 0;
};

struct UserRow {
  int64_t id = 0;
  std::string name;
  std::string password_hash;
  bool disabled = false;
  int64_t created_at = 0;
  bool admin = false;
};

struct GrantRow {
  std::string user;
  std::string feed; // empty: every feed
  std::string privilege;
};

struct ApiKeyRow {
  int64_t id = 0;
  std::string prefix; // the first characters of the key, shown in listings
  std::string key_hash;
  int64_t user_id = 0; // 0 for a feed-scoped key
  std::string user;
  int64_t feed_id = 0; // 0 for a user key
  std::string feed;
  std::string privileges; // comma list, feed-scoped keys only
  std::string description;
  int64_t created_at = 0;
  int64_t expires_at = 0; // 0: never
  int64_t last_used_at = 0;
};

struct StoreRow {
  int64_t id = 0;
  std::string name;
  std::string type;
  std::string config_json;
};

// Row counts over the whole database (registryctl status).
struct Totals {
  int64_t feeds = 0;
  int64_t repositories = 0;
  int64_t manifests = 0;
  int64_t tags = 0;
  int64_t blobs = 0;
  uint64_t blob_bytes = 0;
  // Of those, the small blobs the database keeps (k_database_key).
  int64_t blobs_in_database = 0;
  uint64_t blob_bytes_in_database = 0;
  int64_t uploads = 0;
};

class Metadata
{
public:
  // Opens (creating if needed) the database file at `path` and applies pending
  // migrations. io_error if the file cannot be opened; corrupt if its schema is
  // newer than this program knows.
  static Result<std::unique_ptr<Metadata>> open(const std::filesystem::path& path);
  ~Metadata();
  Metadata(const Metadata&) = delete;
  Metadata& operator=(const Metadata&) = delete;

  int schema_version();

  // For the server: from now on the WAL is checkpointed by a thread of this
  // object, not inside the commit of the request that filled it. No effect on
  // a read-only database or when called again; when the thread's connection
  // cannot be opened, a warning is logged and commits go on checkpointing.
  void checkpoint_in_background();

  // For an idle server: closes the pooled connections beyond `keep` that no
  // caller is using and hands the page caches of the rest back to the
  // allocator. Returns how many connections were closed.
  size_t release_idle_memory(size_t keep);

  // --- stores ---
  Result<std::vector<StoreRow>> list_stores();
  // already_exists if the name is taken.
  Result<StoreRow> add_store(const std::string& name, const std::string& type,
                             const std::string& config_json);
  // nullopt when absent.
  Result<std::optional<StoreRow>> find_store(const std::string& name);
  // name_unknown when absent; conflict for the default store, a store that
  // feeds use, or one that still has blob rows (gc removes those first).
  Result<void> delete_store(const std::string& name);

  // --- feeds ---
  // already_exists if the name is taken.
  // `cache_retention`: see FeedRow (0: cached content never expires).
  Result<FeedRow> create_feed(const std::string& name, const std::string& description,
                              int64_t store_id, const std::string& anonymous_access,
                              int64_t now, int64_t cache_retention = 0);
  // nullopt when absent.
  Result<std::optional<FeedRow>> find_feed(const std::string& name);
  Result<std::vector<FeedRow>> list_feeds();
  // Sets description, anonymous access and, when given, the cache retention.
  // name_unknown when absent.
  Result<FeedRow> update_feed(const std::string& name, const std::string& description,
                              const std::string& anonymous_access,
                              std::optional<int64_t> cache_retention = std::nullopt);
  // Deletes the feed with its repositories, links, manifests, tags and uploads
  // (blob rows stay for gc). Returns the upload ids that were removed so the
  // caller can drop their bytes. name_unknown when absent.
  Result<std::vector<std::string>> delete_feed(const std::string& name);

  // --- repositories ---
  Result<std::optional<RepositoryRow>> find_repository(const std::string& full_name);
  // A feed by name and, when it exists, a repository by full name, in one read
  // transaction (what every repository request resolves first).
  Result<FeedAndRepository> find_feed_and_repository(const std::string& feed_name,
                                                     const std::string& full_name);
  // Lists repository names in lexical order after `last` (exclusive), at most
  // `limit` of them; `feed` restricts to one feed when not empty.
  Result<std::vector<std::string>> list_repository_names(const std::string& feed,
                                                         const std::string& last,
                                                         int64_t limit);
  Result<std::vector<RepositorySummary>> list_repositories(const std::string& feed);

  // --- blobs ---
  // The blob with `digest` linked to the repository; nullopt when not linked.
  Result<std::optional<BlobRow>> find_linked_blob(int64_t repository_id,
                                                  const std::string& digest);
  // The same by the repository's full name (FEED/REPO): one query, for the
  // blob HEAD and GET paths.
  Result<std::optional<BlobRow>> find_linked_blob(const std::string& repository,
                                                  const std::string& digest);
  // The blob with `digest` in a store, linked or not.
  Result<std::optional<BlobRow>> find_blob(int64_t store_id, const std::string& digest);
  // Records a committed blob (or refreshes an existing row) and links it to the
  // repository named `repository` in `feed`, creating the repository if needed.
  // name_unknown if the feed vanished meanwhile.
  Result<BlobRow> record_blob(int64_t feed_id, const std::string& repository,
                              int64_t store_id, const std::string& digest, uint64_t size,
                              const std::string& object_key, int64_t now);
  // As record_blob(), but `place_bytes` runs inside the transaction, before the
  // row is written, and returns the object key: the store's commit of the bytes.
  // Garbage collection removes bytes inside its own transaction, so the two are
  // serialised and a blob is never recorded over bytes a collector is removing.
  // When `place_bytes` fails nothing is recorded and its error is returned.
  // `finished_upload`, when not empty, is the upload whose bytes these are: its
  // row goes in the same transaction.
  Result<BlobRow> commit_blob(int64_t feed_id, const std::string& repository, int64_t store_id,
                              const std::string& digest, uint64_t size,
                              const std::function<Result<std::string>()>& place_bytes,
                              int64_t now, const std::string& finished_upload = {});
  // As commit_blob(), for a small blob whose `bytes` the database keeps in the
  // transaction that writes its row: no store object, no file, no fsync. The
  // bytes are exactly as durable as the row (and as the manifests, which the
  // database keeps too), and they go when gc deletes the row. When the store
  // already has a row for `digest`, that row stays as it is.
  Result<BlobRow> keep_small_blob(int64_t feed_id, const std::string& repository,
                                  int64_t store_id, const std::string& digest,
                                  std::string_view bytes, int64_t now,
                                  const std::string& finished_upload = {});
  // The bytes of a blob kept in the database; nullopt when it has none.
  Result<std::optional<std::string>> blob_content(int64_t blob_id);
  // Links an existing blob row to a repository (mount). Returns false when the
  // blob is not linked to `from_repository_id` (nothing is changed).
  Result<bool> mount_blob(int64_t from_repository_id, int64_t feed_id,
                          const std::string& repository, const std::string& digest,
                          int64_t now);
  // Removes the link. blob_unknown when there is none.
  Result<void> unlink_blob(int64_t repository_id, const std::string& digest);
  // Refreshes last_touched_at (HEAD and re-push count as use for the gc grace).
  Result<void> touch_blob(int64_t blob_id, int64_t now);

  // --- manifests and tags ---
  // In one transaction: creates the repository if needed, checks every blob
  // reference is linked and every manifest reference exists in it
  // (manifest_blob_unknown otherwise, detail = the digest), inserts the
  // manifest (idempotent for the same digest) and its references, links the
  // referenced blobs' use time, and points `tag` at it when not empty.
  // `event`, when given, is recorded in the audit trail in the same transaction.
  Result<RepositoryRow> put_manifest(int64_t feed_id, const std::string& repository,
                                     const NewManifest& manifest, const std::string& tag,
                                     int64_t now, const EventRow* event = nullptr);
  // nullopt when absent. `with_bytes` loads the stored bytes.
  Result<std::optional<ManifestRow>> find_manifest(int64_t repository_id,
                                                   const std::string& digest,
                                                   bool with_bytes);
  Result<std::optional<ManifestRow>> find_tagged_manifest(int64_t repository_id,
                                                          const std::string& tag,
                                                          bool with_bytes);
  // Deletes the manifest and every tag pointing at it; returns those tags.
  // manifest_unknown when absent; conflict when an index in the same repository
  // still references it (detail = that index's digest).
  // `event`, when given, is recorded in the same transaction, its detail
  // replaced by "tags A,B" when tags went with the manifest.
  Result<std::vector<std::string>> delete_manifest(int64_t repository_id,
                                                   const std::string& digest,
                                                   const EventRow* event = nullptr);
  // Removes one tag. manifest_unknown when absent. `event` as for delete_manifest.
  Result<void> delete_tag(int64_t repository_id, const std::string& tag,
                          const EventRow* event = nullptr);
  // Tags in lexical order after `last`, at most `limit`. Without
  // `with_manifests` only their names are read (from the tags' primary key
  // alone, no lookup of the manifests).
  Result<std::vector<TagRow>> list_tags(int64_t repository_id, const std::string& last,
                                        int64_t limit, bool with_manifests = true);
  // Tags pointing at one manifest.
  Result<std::vector<std::string>> tags_of(int64_t repository_id, const std::string& digest);
  // Manifests in the repository whose subject is `digest`, optionally filtered by
  // artifact type.
  Result<std::vector<ManifestRow>> list_referrers(int64_t repository_id,
                                                  const std::string& digest,
                                                  const std::string& artifact_type);
  // The references recorded for a manifest.
  Result<std::vector<ManifestReferenceRecord>> manifest_references(int64_t manifest_id);

  // --- garbage collection and integrity ---
  // Takes the lock `name` when it is free, expired, held by `holder` already, or
  // held by `stale_holder` (a holder the caller knows is dead); it expires `ttl`
  // seconds after `now`. Returns false (and the current holder in `current`)
  // when someone else holds it.
  Result<bool> acquire_lock(const std::string& name, const std::string& holder, int64_t now,
                            int64_t ttl, std::string* current = nullptr,
                            const std::string& stale_holder = {});
  // Releases the lock if `holder` holds it.
  Result<void> release_lock(const std::string& name, const std::string& holder);
  // Blobs with id > `after_id`, last touched at or before `cutoff` and referenced by
  // no manifest, in id order, at most `limit`. With `feed_id` != 0 only blobs
  // linked to a repository of that feed.
  Result<std::vector<BlobRow>> list_unreferenced_blobs(int64_t after_id, int64_t cutoff,
                                                       int64_t feed_id, int64_t limit);
  // In one transaction, for each of `ids` that is still unreferenced and
  // untouched after `cutoff`: calls `remove_bytes(row)` and deletes the row and
  // its links. Returns the rows deleted. A failing `remove_bytes` rolls the
  // whole batch back.
  Result<std::vector<BlobRow>>
  delete_unreferenced_blobs(const std::vector<int64_t>& ids, int64_t cutoff,
                            const std::function<Result<void>(const BlobRow&)>& remove_bytes);
  // Manifests with no tag, pushed at or before `cutoff`, not referenced by an index in
  // their repository and not a referrer of a manifest that still exists there.
  // `feed_id` 0 means every feed.
  Result<std::vector<ManifestRow>> list_untagged_manifests(int64_t feed_id, int64_t cutoff,
                                                           int64_t after_id, int64_t limit);
  // Deletes the manifest if it still qualifies (see list_untagged_manifests).
  Result<bool> delete_untagged_manifest(int64_t manifest_id, int64_t cutoff);
  // Cached manifests (origin set) with id > `after_id` in feeds with a cache
  // retention, last pulled at or before `now` minus their feed's retention, in
  // id order, at most `limit`; `feed_id` 0 means every feed. Whether something
  // still needs them (an index listing them, a referrer) is not checked here.
  Result<std::vector<StaleManifest>> list_stale_cached_manifests(int64_t feed_id, int64_t now,
                                                                 int64_t after_id, int64_t limit);
  // In one transaction: re-checks that the manifest is still cached, still not
  // pulled within its feed's retention (as of `now`) and that no index in its
  // repository lists it and no manifest there names it as subject; then deletes
  // it with its tags and returns those tags. nullopt (nothing changed) when it
  // no longer qualifies or is gone.
  Result<std::optional<std::vector<std::string>>> expire_cached_manifest(int64_t manifest_id,
                                                                         int64_t now);
  // Records a pull of a cached manifest: sets last_pulled_at to `now` when it is
  // older than `now - min_interval`. Pushed manifests are left alone. Returns
  // whether a row changed. Callers compare ManifestRow::last_pulled_at first,
  // so most pulls never get here.
  Result<bool> touch_manifest_pull(int64_t manifest_id, int64_t now, int64_t min_interval);
  // The manifests (id, repository id) whose references include `digest` as a
  // blob (`as_manifest` false) or as a child manifest (true).
  Result<std::vector<std::pair<int64_t, int64_t>>> manifests_referencing(const std::string& digest,
                                                                         bool as_manifest);
  // Every blob row, in id order, after `after_id`.
  Result<std::vector<BlobRow>> list_blob_rows(int64_t after_id, int64_t limit);
  Result<std::optional<BlobRow>> find_blob_by_key(int64_t store_id, const std::string& key);
  // Runs `remove_bytes` inside a write transaction when no blob row of the store
  // names `key`, and answers whether it ran. Serialised with commit_blob(), whose
  // placement of the bytes and row are one transaction: fsck cannot remove bytes
  // a push is recording.
  Result<bool> remove_unrecorded(int64_t store_id, const std::string& key,
                                 const std::function<Result<void>()>& remove_bytes);
  // Deletes a blob row (fsck repair of a row whose bytes are gone).
  Result<void> delete_blob_row(int64_t id);
  // Manifest references that point at nothing: a blob digest with no row in the
  // feed's store, or a child manifest missing from the repository.
  Result<std::vector<DanglingReference>> dangling_references(int64_t limit);
  Result<StoreStats> store_stats(int64_t store_id);
  // Per feed, by name: repositories, distinct linked blobs and their bytes.
  Result<std::vector<FeedUsage>> feed_usage();

  // --- users ---
  // already_exists when the name is taken. The first user created is an
  // admin (UserRow::admin), in the same transaction.
  Result<UserRow> create_user(const std::string& name, const std::string& password_hash,
                              int64_t now);
  Result<std::optional<UserRow>> find_user(const std::string& name);
  Result<std::vector<UserRow>> list_users();
  Result<bool> has_users();
  // not_found when absent.
  Result<void> update_user(const std::string& name, const std::optional<std::string>& password_hash,
                           std::optional<bool> disabled);
  Result<void> delete_user(const std::string& name);
  Result<void> set_admin(const std::string& name, bool admin);

  // --- privileges ---
  // `feed_id` 0 grants on every feed. Idempotent.
  Result<void> add_grant(int64_t user_id, int64_t feed_id, const std::string& privilege);
  // Returns false when there was no such grant.
  Result<bool> remove_grant(int64_t user_id, int64_t feed_id, const std::string& privilege);
  Result<std::vector<GrantRow>> list_grants(const std::string& user);
  // The privileges `user_id` holds on `feed_id` (directly or on every feed).
  Result<std::vector<std::string>> privileges_of(int64_t user_id, int64_t feed_id);
  Result<std::optional<UserRow>> find_user_by_id(int64_t id);

  // --- API keys ---
  Result<ApiKeyRow> create_key(const ApiKeyRow& key);
  Result<std::optional<ApiKeyRow>> find_key_by_hash(const std::string& key_hash);
  Result<std::vector<ApiKeyRow>> list_keys();
  // Deletes the key whose prefix is `prefix`. not_found when absent.
  Result<void> revoke_key(const std::string& prefix);
  Result<void> touch_key(int64_t id, int64_t now);

  // --- uploads ---
  Result<void> create_upload(const std::string& id, int64_t feed_id,
                             const std::string& repository, int64_t store_id, int64_t now);
  Result<std::optional<UploadRow>> find_upload(const std::string& id);
  Result<void> touch_upload(const std::string& id, int64_t now);
  // Keeps `head`, all the bytes an upload received so far, in its row (nullopt
  // drops them), and counts as activity. A small blob sent in chunks then
  // reaches the store only if it outgrows the small-blob limit. false when the
  // upload is gone.
  Result<bool> set_upload_head(const std::string& id, std::optional<std::string_view> head,
                               int64_t now);
  // Not an error when absent.
  Result<void> delete_upload(const std::string& id);
  Result<std::vector<UploadRow>> list_uploads();

  // --- connectors ---
  // already_exists when the feed has `url` already.
  Result<ConnectorRow> add_connector(int64_t feed_id, const std::string& url, const std::string& username,
                                     const std::string& password, int64_t ttl, int64_t now);
  // Marks a cached tag as revalidated at `now`.
  Result<void> touch_tag(int64_t repository_id, const std::string& tag, int64_t now);
  // Of `feed_id` (every feed when 0), in order.
  Result<std::vector<ConnectorRow>> list_connectors(int64_t feed_id);
  Result<bool> remove_connector(int64_t feed_id, const std::string& url);

  // --- audit trail ---
  Result<void> record_event(const EventRow& event);
  // The newest `limit` events at or after `since` (of `feed` when not empty), oldest first.
  Result<std::vector<EventRow>> list_events(const std::string& feed, int64_t since, int64_t limit);

  // --- read-only access (registryctl status, shell completion) ---
  // Opens an existing database for reading: never creates the file and never
  // migrates; every write through it fails. not_found when `path` does not
  // exist, io_error when it cannot be opened. schema_version() may be older or
  // newer than this program's; queries may then fail.
  static Result<std::unique_ptr<Metadata>> open_read_only(const std::filesystem::path& path);
  // The schema version this program creates and migrates to.
  static int current_schema_version();
  Result<Totals> totals();

private:
  struct Impl;
  explicit Metadata(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> m_impl;
};

} // namespace registry::metadata
