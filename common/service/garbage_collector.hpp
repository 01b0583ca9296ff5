#pragma once

// Online garbage collection and integrity checking (DESIGN.md §4.4).
//
// GC never needs read-only mode. It works from the metadata indexes in batches:
//   1. blobs left in quarantine by a crash are restored (row exists) or purged;
//   2. cached (pull-through) manifests of feeds with a cache retention that
//      nobody pulled within it are expired with their tags, one transaction
//      each, dependents first (an index before the manifests it lists, a
//      referrer before its subject); a manifest that a kept index, a pushed
//      manifest or a recent pull still needs stays. Upstream has them again.
//   2b. optionally, untagged manifests older than an age that no index references
//      (and that are not referrers of a live subject) are deleted;
//   3. uploads idle longer than the expiry are purged with their bytes, and
//      upload files no row knows are removed once older than the expiry;
//   4. blobs no manifest references and nobody created, linked, mounted or
//      HEAD-checked within the grace period are deleted: in one transaction per
//      batch the conditions are re-checked, the bytes moved to quarantine and the
//      rows deleted; after the commit the quarantined bytes are purged. Blob
//      commits take the same write lock around their store commit, so a blob
//      being re-pushed is never removed under it.
// A lock row in the database keeps two collectors (the server's cleanup job and
// `registryctl gc`) from running at once.

#include "common/service/registry.hpp"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace registry::service {

struct GcOptions {
  int64_t grace = 3600;          // seconds a blob stays after its last use
  int64_t upload_expiry = 86400; // seconds an idle upload survives
  std::optional<int64_t> untagged_older_than; // delete untagged manifests older than this
  std::string feed;              // limit to one feed (blobs linked to it)
  bool dry_run = false;
  // Progress callback: (phase, done, total or 0 when unknown).
  std::function<void(const char*, uint64_t, uint64_t)> progress;
};

struct GcReport {
  bool dry_run = false;
  uint64_t blobs_removed = 0;
  uint64_t bytes_freed = 0;
  uint64_t manifests_removed = 0;
  uint64_t uploads_purged = 0;
  uint64_t quarantine_recovered = 0;
  uint64_t cached_manifests_expired = 0; // past their feed's cache retention
  uint64_t cached_tags_expired = 0;      // the tags that pointed at them
  std::vector<std::string> expired_manifests; // FEED/REPO@DIGEST, at most 1000 listed
  double seconds = 0;
  std::vector<std::string> removed_digests; // at most 1000 listed
};

// Runs one collection. conflict when another collector holds the lock (detail
// names it).
Result<GcReport> collect_garbage(Registry& registry, const GcOptions& options);

struct FsckOptions {
  bool verify_content = false; // re-hash every blob
  bool repair = false;         // remove orphaned bytes older than the grace
  int64_t grace = 3600;
  std::function<void(const char*, uint64_t, uint64_t)> progress;
};

struct FsckProblem {
  std::string kind;   // missing_bytes, digest_mismatch, size_mismatch, dangling_reference, orphan_blob, orphan_upload
  std::string subject; // digest, key or repository@digest
  std::string detail;
  bool repaired = false;
};

struct FsckReport {
  uint64_t blobs_checked = 0;
  uint64_t files_checked = 0;
  std::vector<FsckProblem> problems;
  double seconds = 0;
  bool
  clean() const
  {
    for (const auto& p : problems) {
      if (!p.repaired) {
        return false;
      }
    }
    return true;
  }
};

Result<FsckReport> check_integrity(Registry& registry, const FsckOptions& options);

} // namespace registry::service
