#include "common/service/garbage_collector.hpp"

#include "common/oci/digest.hpp"
#include "common/util/hasher.hpp"
#include "common/util/log.hpp"
#include "common/util/strings.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <map>
#include <set>
#include <csignal>
#include <unistd.h>

namespace registry::service {

namespace {

constexpr int64_t k_batch = 500;
constexpr size_t k_max_listed = 1000;
constexpr const char* k_gc_lock = "gc";
constexpr int64_t k_lock_ttl = 6 * 3600;

std::string
host_name()
{
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  return host;
}

std::string
lock_holder()
{
  return host_name() + ":" + std::to_string(::getpid());
}

// True when `holder` names a process on this host that no longer exists (a
// collector that was killed): its lock may be taken over at once.
bool
holder_is_dead(const std::string& holder)
{
  size_t colon = holder.rfind(':');
  if (colon == std::string::npos || holder.substr(0, colon) != host_name()) {
    return false;
  }
  auto pid = util::parse_uint(holder.substr(colon + 1));
  return pid && *pid > 0 && ::kill(static_cast<pid_t>(*pid), 0) != 0 && errno == ESRCH;
}

void
report_progress(const GcOptions& options, const char* phase, uint64_t done, uint64_t total)
{
  if (options.progress) {
    options.progress(phase, done, total);
  }
}

// Crash leftovers: a quarantined blob whose row still exists goes back, the
// rest is purged.
Result<uint64_t>
recover_quarantine(Registry& registry, int64_t store_id, bool dry_run)
{
  REGISTRY_TRY_ASSIGN(auto* store, registry.store(store_id));
  REGISTRY_TRY_ASSIGN(auto keys, store->list_quarantined());
  uint64_t count = 0;
  for (const auto& key : keys) {
    ++count;
    if (dry_run) {
      continue;
    }
    REGISTRY_TRY_ASSIGN(auto row, registry.metadata().find_blob_by_key(store_id, key));
    if (row) {
      REGISTRY_TRY(store->restore_blob(key));
    } else {
      REGISTRY_TRY(store->purge_quarantined(key));
    }
  }
  return count;
}

Result<void>
purge_uploads(Registry& registry, const GcOptions& options, int64_t now, GcReport& report)
{
  auto& md = registry.metadata();
  REGISTRY_TRY_ASSIGN(auto uploads, md.list_uploads());
  int64_t cutoff = now - options.upload_expiry;
  std::string feed_prefix = options.feed.empty() ? "" : options.feed + "/";
  for (const auto& row : uploads) {
    if (row.updated_at > cutoff
        || (!feed_prefix.empty() && row.repository_name.rfind(feed_prefix, 0) != 0)) {
      continue;
    }
    ++report.uploads_purged;
  }
  if (!options.dry_run) {
    REGISTRY_TRY(registry.purge_uploads(cutoff, options.feed));
  }
  if (!options.feed.empty()) {
    return ok();
  }
  // Upload files without a row (a crash between file and row, a deleted feed).
  for (int64_t store_id : registry.store_ids()) {
    REGISTRY_TRY_ASSIGN(auto* store, registry.store(store_id));
    REGISTRY_TRY_ASSIGN(auto files, store->list_uploads());
    for (const auto& file : files) {
      if (file.modified > cutoff) {
        continue;
      }
      REGISTRY_TRY_ASSIGN(auto row, md.find_upload(file.key));
      if (row) {
        continue;
      }
      ++report.uploads_purged;
      if (!options.dry_run) {
        REGISTRY_TRY(store->remove_upload(file.key));
      }
    }
  }
  return ok();
}

// The cached manifests expire_cached() removes, in waves: a manifest joins a
// wave once every manifest of its repository that needs it (an index listing
// it, a referrer naming it as subject) is in an earlier wave. Stale manifests
// something kept still needs are left out.
Result<std::vector<std::vector<metadata::StaleManifest>>>
plan_expiry(Registry& registry, int64_t feed_id, int64_t now)
{
  auto& md = registry.metadata();
  std::map<int64_t, metadata::StaleManifest> stale;
  for (int64_t after = 0;;) {
    REGISTRY_TRY_ASSIGN(auto rows, md.list_stale_cached_manifests(feed_id, now, after, k_batch));
    if (rows.empty()) {
      break;
    }
    after = rows.back().manifest.id;
    for (auto& row : rows) {
      int64_t id = row.manifest.id;
      stale.emplace(id, std::move(row));
    }
  }
  std::map<int64_t, std::vector<int64_t>> dependents;
  for (const auto& [id, row] : stale) {
    const auto& m = row.manifest;
    auto& needs = dependents[id];
    REGISTRY_TRY_ASSIGN(auto parents, md.manifests_referencing(m.digest, true));
    for (const auto& [parent, repository] : parents) {
      if (repository == m.repository_id) {
        needs.push_back(parent);
      }
    }
    REGISTRY_TRY_ASSIGN(auto referrers, md.list_referrers(m.repository_id, m.digest, ""));
    for (const auto& referrer : referrers) {
      needs.push_back(referrer.id);
    }
  }
  std::vector<std::vector<metadata::StaleManifest>> waves;
  std::set<int64_t> planned;
  for (;;) {
    std::vector<metadata::StaleManifest> wave;
    for (const auto& [id, row] : stale) {
      if (planned.contains(id)) {
        continue;
      }
      const auto& needs = dependents[id];
      if (std::all_of(needs.begin(), needs.end(), [&](int64_t d) { return planned.contains(d); })) {
        wave.push_back(row);
      }
    }
    if (wave.empty()) {
      return waves;
    }
    for (const auto& row : wave) {
      planned.insert(row.manifest.id);
    }
    waves.push_back(std::move(wave));
  }
}

Result<void>
expire_cached(Registry& registry, const GcOptions& options, int64_t feed_id, int64_t now,
              GcReport& report)
{
  auto& md = registry.metadata();
  REGISTRY_TRY_ASSIGN(auto waves, plan_expiry(registry, feed_id, now));
  for (const auto& wave : waves) {
    for (const auto& row : wave) {
      std::vector<std::string> tags;
      if (options.dry_run) {
        REGISTRY_TRY_ASSIGN(tags, md.tags_of(row.manifest.repository_id, row.manifest.digest));
      } else {
        // Re-checked inside: a pull since the plan keeps it (and, through it,
        // whatever it lists).
        REGISTRY_TRY_ASSIGN(auto removed, md.expire_cached_manifest(row.manifest.id, now));
        if (!removed) {
          continue;
        }
        tags = std::move(*removed);
      }
      ++report.cached_manifests_expired;
      report.cached_tags_expired += tags.size();
      if (report.expired_manifests.size() < k_max_listed) {
        report.expired_manifests.push_back(row.repository + "@" + row.manifest.digest);
      }
    }
    report_progress(options, "cached manifests", report.cached_manifests_expired, 0);
  }
  return ok();
}

// The dry-run plan of delete_untagged() and of the blobs those deletions free:
// the first pass is what list_untagged_manifests() returns; later passes are
// the children and referrers that qualify once everything planned is gone.
Result<void>
plan_untagged(Registry& registry, const GcOptions& options, int64_t feed_id, int64_t now,
              GcReport& report)
{
  auto& md = registry.metadata();
  int64_t cutoff = now - *options.untagged_older_than;
  std::map<int64_t, metadata::ManifestRow> planned;
  std::vector<metadata::ManifestRow> frontier;
  for (int64_t after = 0;;) {
    REGISTRY_TRY_ASSIGN(auto rows, md.list_untagged_manifests(feed_id, cutoff, after, k_batch));
    if (rows.empty()) {
      break;
    }
    after = rows.back().id;
    for (auto& row : rows) {
      planned[row.id] = row;
      frontier.push_back(std::move(row));
    }
  }
  auto all_planned = [&](const std::vector<std::pair<int64_t, int64_t>>& refs, int64_t repo) {
    for (const auto& [id, repository] : refs) {
      if ((repo == 0 || repository == repo) && !planned.contains(id)) {
        return false;
      }
    }
    return true;
  };
  auto qualifies = [&](const metadata::ManifestRow& m) -> Result<bool> {
    if (planned.contains(m.id) || m.pushed_at > cutoff) {
      return false;
    }
    REGISTRY_TRY_ASSIGN(auto tags, md.tags_of(m.repository_id, m.digest));
    REGISTRY_TRY_ASSIGN(auto parents, md.manifests_referencing(m.digest, true));
    if (!tags.empty() || !all_planned(parents, m.repository_id)) {
      return false;
    }
    if (!m.subject_digest.empty()) {
      REGISTRY_TRY_ASSIGN(auto subject, md.find_manifest(m.repository_id, m.subject_digest, false));
      if (subject && !planned.contains(subject->id)) {
        return false;
      }
    }
    return true;
  };
  while (!frontier.empty()) {
    std::vector<metadata::ManifestRow> next;
    for (const auto& m : frontier) {
      std::vector<metadata::ManifestRow> related;
      REGISTRY_TRY_ASSIGN(auto refs, md.manifest_references(m.id));
      for (const auto& ref : refs) {
        if (ref.kind == metadata::ManifestReferenceRecord::Kind::manifest) {
          REGISTRY_TRY_ASSIGN(auto child, md.find_manifest(m.repository_id, ref.digest, false));
          if (child) {
            related.push_back(std::move(*child));
          }
        }
      }
      REGISTRY_TRY_ASSIGN(auto referrers, md.list_referrers(m.repository_id, m.digest, ""));
      related.insert(related.end(), referrers.begin(), referrers.end());
      for (auto& candidate : related) {
        REGISTRY_TRY_ASSIGN(bool ok_to_plan, qualifies(candidate));
        if (ok_to_plan) {
          planned[candidate.id] = candidate;
          next.push_back(std::move(candidate));
        }
      }
    }
    frontier = std::move(next);
  }
  report.manifests_removed = planned.size();
  // Blobs only planned manifests reference, past their grace.
  std::set<std::string> digests;
  for (const auto& [id, m] : planned) {
    REGISTRY_TRY_ASSIGN(auto refs, md.manifest_references(id));
    for (const auto& ref : refs) {
      if (ref.kind == metadata::ManifestReferenceRecord::Kind::blob) {
        digests.insert(ref.digest);
      }
    }
  }
  int64_t grace_cutoff = now - options.grace;
  for (const auto& digest : digests) {
    REGISTRY_TRY_ASSIGN(auto users, md.manifests_referencing(digest, false));
    if (!all_planned(users, 0)) {
      continue;
    }
    for (int64_t store_id : registry.store_ids()) {
      REGISTRY_TRY_ASSIGN(auto blob, md.find_blob(store_id, digest));
      if (blob && blob->last_touched_at <= grace_cutoff) {
        ++report.blobs_removed;
        report.bytes_freed += blob->size;
        if (report.removed_digests.size() < k_max_listed) {
          report.removed_digests.push_back(blob->digest);
        }
      }
    }
  }
  return ok();
}

Result<void>
delete_untagged(Registry& registry, const GcOptions& options, int64_t feed_id, int64_t now,
                GcReport& report)
{
  if (options.dry_run) {
    return plan_untagged(registry, options, feed_id, now, report);
  }
  int64_t cutoff = now - *options.untagged_older_than;
  auto& md = registry.metadata();
  // Deleting an index can make its children untagged-and-unreferenced: repeat
  // until a pass removes nothing (bounded by the depth of nesting).
  for (int pass = 0; pass < 8; ++pass) {
    uint64_t removed_this_pass = 0;
    int64_t after = 0;
    for (;;) {
      REGISTRY_TRY_ASSIGN(auto rows, md.list_untagged_manifests(feed_id, cutoff, after, k_batch));
      if (rows.empty()) {
        break;
      }
      after = rows.back().id;
      for (const auto& row : rows) {
        REGISTRY_TRY_ASSIGN(bool deleted, md.delete_untagged_manifest(row.id, cutoff));
        removed_this_pass += deleted ? 1 : 0;
      }
      report_progress(options, "manifests", report.manifests_removed + removed_this_pass, 0);
    }
    report.manifests_removed += removed_this_pass;
    if (removed_this_pass == 0) {
      break;
    }
  }
  return ok();
}

Result<void>
sweep_blobs(Registry& registry, const GcOptions& options, int64_t feed_id, int64_t now,
            GcReport& report)
{
  auto& md = registry.metadata();
  int64_t cutoff = now - options.grace;
  int64_t after = 0;
  for (;;) {
    REGISTRY_TRY_ASSIGN(auto candidates, md.list_unreferenced_blobs(after, cutoff, feed_id, k_batch));
    if (candidates.empty()) {
      return ok();
    }
    after = candidates.back().id;
    std::vector<metadata::BlobRow> removed;
    if (options.dry_run) {
      removed = std::move(candidates);
    } else {
      std::vector<int64_t> ids;
      for (const auto& c : candidates) {
        ids.push_back(c.id);
      }
      REGISTRY_TRY_ASSIGN(removed, md.delete_unreferenced_blobs(ids, cutoff, [&](const metadata::BlobRow& row) -> Result<void> {
        if (row.in_database()) {
          return ok(); // the bytes go with the row
        }
        REGISTRY_TRY_ASSIGN(auto* store, registry.store(row.store_id));
        return store->quarantine_blob(row.object_key);
      }));
      // Committed: the bytes are garbage now. A failure here leaves quarantined
      // files that the next run purges.
      for (const auto& row : removed) {
        auto store = registry.store(row.store_id);
        if (store && !row.in_database()) {
          if (auto purged = (*store)->purge_quarantined(row.object_key); !purged) {
            util::log_warn("gc: cannot purge " + row.digest + ": " + purged.error().message);
          }
        }
      }
    }
    for (const auto& row : removed) {
      ++report.blobs_removed;
      report.bytes_freed += row.size;
      if (report.removed_digests.size() < k_max_listed) {
        report.removed_digests.push_back(row.digest);
      }
    }
    report_progress(options, "blobs", report.blobs_removed, 0);
  }
}

} // namespace

Result<GcReport>
collect_garbage(Registry& registry, const GcOptions& options)
{
  auto started = std::chrono::steady_clock::now();
  GcReport report;
  report.dry_run = options.dry_run;
  int64_t feed_id = 0;
  if (!options.feed.empty()) {
    REGISTRY_TRY_ASSIGN(auto feed, registry.get_feed(options.feed));
    feed_id = feed.id;
  }
  auto& md = registry.metadata();
  std::string holder = lock_holder();
  std::string current;
  REGISTRY_TRY_ASSIGN(bool locked, md.acquire_lock(k_gc_lock, holder, registry.now(), k_lock_ttl, &current));
  if (!locked && holder_is_dead(current)) {
    util::log_warn("gc: taking over the lock of " + current + ", which no longer runs");
    REGISTRY_TRY_ASSIGN(locked, md.acquire_lock(k_gc_lock, holder, registry.now(), k_lock_ttl,
                                                &current, current));
  }
  if (!locked) {
    return fail(ErrorCode::conflict, "another garbage collection is running (" + current + ")",
                current);
  }
  auto run = [&]() -> Result<void> {
    for (int64_t store_id : registry.store_ids()) {
      REGISTRY_TRY_ASSIGN(uint64_t recovered, recover_quarantine(registry, store_id, options.dry_run));
      report.quarantine_recovered += recovered;
    }
    int64_t now = registry.now();
    REGISTRY_TRY(expire_cached(registry, options, feed_id, now, report));
    if (options.untagged_older_than) {
      REGISTRY_TRY(delete_untagged(registry, options, feed_id, now, report));
    }
    REGISTRY_TRY(purge_uploads(registry, options, now, report));
    return sweep_blobs(registry, options, feed_id, now, report);
  };
  auto result = run();
  (void)md.release_lock(k_gc_lock, holder);
  if (!result) {
    return fail(result.take_error());
  }
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (!options.dry_run
      && (report.blobs_removed + report.manifests_removed + report.uploads_purged
          + report.cached_manifests_expired)
           > 0) {
    registry.audit("gc.run", "gc", options.feed, options.feed.empty() ? "all feeds" : options.feed,
                   std::to_string(report.blobs_removed) + " blobs (" + std::to_string(report.bytes_freed)
                     + " bytes), " + std::to_string(report.manifests_removed) + " manifests, "
                     + std::to_string(report.uploads_purged) + " uploads, "
                     + std::to_string(report.cached_manifests_expired) + " expired cached manifests");
  }
  return report;
}

Result<FsckReport>
check_integrity(Registry& registry, const FsckOptions& options)
{
  auto started = std::chrono::steady_clock::now();
  FsckReport report;
  auto& md = registry.metadata();
  auto progress = [&](const char* phase, uint64_t done, uint64_t total) {
    if (options.progress) {
      options.progress(phase, done, total);
    }
  };
  // 1. every row has its bytes (and the right content when asked)
  int64_t after = 0;
  for (;;) {
    REGISTRY_TRY_ASSIGN(auto rows, md.list_blob_rows(after, k_batch));
    if (rows.empty()) {
      break;
    }
    after = rows.back().id;
    for (const auto& row : rows) {
      ++report.blobs_checked;
      auto reader = registry.open_stored(row);
      if (!reader) {
        report.problems.push_back({"missing_bytes", row.digest, "no data at " + row.object_key, false});
        continue;
      }
      if ((*reader)->size() != row.size) {
        report.problems.push_back({"size_mismatch", row.digest,
                                   "row says " + std::to_string(row.size) + " bytes, store has "
                                     + std::to_string((*reader)->size()),
                                   false});
        continue;
      }
      if (options.verify_content) {
        auto expected = oci::Digest::parse(row.digest);
        util::Hasher hasher(expected ? expected->hash_algorithm() : util::HashAlgorithm::sha256);
        std::string buffer(1 << 20, '\0');
        uint64_t offset = 0;
        bool read_ok = true;
        while (offset < row.size) {
          auto n = (*reader)->read_at(offset, buffer.data(), buffer.size());
          if (!n || *n == 0) {
            read_ok = false;
            break;
          }
          hasher.update(buffer.data(), *n);
          offset += *n;
        }
        if (!read_ok || !expected || !(oci::Digest::from_hasher(hasher) == *expected)) {
          report.problems.push_back({"digest_mismatch", row.digest, "content does not hash to its digest", false});
        }
      }
    }
    progress("blobs", report.blobs_checked, 0);
  }
  // 2. references that point at nothing
  REGISTRY_TRY_ASSIGN(auto dangling, md.dangling_references(10000));
  for (const auto& d : dangling) {
    report.problems.push_back({"dangling_reference", d.repository + "@" + d.manifest_digest,
                               (d.is_manifest ? "child manifest " : "blob ") + d.digest + " is missing",
                               false});
  }
  // 3. bytes no row knows (a crash after the store commit, before the row)
  int64_t cutoff = registry.now() - options.grace;
  for (int64_t store_id : registry.store_ids()) {
    REGISTRY_TRY_ASSIGN(auto* store, registry.store(store_id));
    Result<void> walk_error;
    REGISTRY_TRY(store->list_blobs([&](const storage::ObjectInfo& info) {
      ++report.files_checked;
      auto row = md.find_blob_by_key(store_id, info.key);
      if (!row) {
        walk_error = fail(row.take_error());
        return false;
      }
      if (!*row) {
        FsckProblem p{"orphan_blob", info.key, std::to_string(info.size) + " bytes without a row", false};
        if (options.repair && info.modified <= cutoff) {
          auto removed = md.remove_unrecorded(store_id, info.key,
                                              [&] { return store->remove_blob(info.key); });
          p.repaired = removed && *removed;
        }
        report.problems.push_back(std::move(p));
      }
      if (report.files_checked % 1000 == 0) {
        progress("files", report.files_checked, 0);
      }
      return true;
    }));
    REGISTRY_TRY(std::move(walk_error));
    REGISTRY_TRY_ASSIGN(auto uploads, store->list_uploads());
    for (const auto& file : uploads) {
      REGISTRY_TRY_ASSIGN(auto row, md.find_upload(file.key));
      if (!row) {
        FsckProblem p{"orphan_upload", file.key, std::to_string(file.size) + " bytes without a session", false};
        if (options.repair && file.modified <= cutoff) {
          p.repaired = store->remove_upload(file.key).has_value();
        }
        report.problems.push_back(std::move(p));
      }
    }
  }
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return report;
}

} // namespace registry::service
