#pragma once

// Export and import of OCI image layouts (image-spec image-layout.md) as tar
// streams: backup, migration between servers and air-gapped transfer.
//
// Layout written by export_archive(), in this order:
//   oci-layout                  {"imageLayoutVersion":"1.0.0"}
//   index.json                  one descriptor per exported tag (or digest)
//   blobs/, blobs/sha256/       directories
//   blobs/<alg>/<hex>           manifests (child manifests of indexes too),
//                               then configs and layers, each once
//
// Naming (org.opencontainers.image.ref.name in index.json): always the
// repository path inside the feed plus the tag, "REPO:TAG" (e.g.
// "dotnet/aspnet:8.0"), so importing into another feed restores every
// REPO:TAG; `skopeo copy oci-archive:FILE:dotnet/aspnet:8.0 ...` finds an
// image by that same string. A digest export is named "REPO@sha256:<hex>" and
// imports untagged. Untagged manifests are exported only when asked for by
// digest or as children of an exported index; referrers (signatures, SBOMs)
// are not followed.
//
// import_archive() reads such a stream in one pass. Blobs are verified against
// their names while they stream into the store (staged: visible nowhere yet);
// blobs the store already holds are only hashed ("skipped"). Small blobs
// (<= 4 MiB, the manifest limit) are also kept in a temporary spool directory
// so manifests can be read back. index.json may come anywhere in the stream:
// nothing is applied before the end of the archive. Then every manifest tree
// named by index.json is checked (present, digest, sizes, every blob in the
// archive) before anything becomes visible; any problem fails the import and
// discards all staged bytes. Applying goes through Registry::put_manifest, so
// every link and reference rule holds; each manifest and its tag is one
// transaction. A failure while applying leaves the manifests applied so far.
//
// ref.name forms accepted on import: "REPO:TAG", "REPO@DIGEST" (untagged) and
// a bare "TAG" (what `skopeo copy ... oci:DIR:TAG` writes), which needs
// ImportOptions::repository. When `repository` is set it replaces the
// repository of every reference. A descriptor without ref.name is imported
// untagged into `repository` (required then).

#include "common/service/registry.hpp"
#include "common/util/stream.hpp"

#include <cstdint>
#include <functional>
#include <string>

namespace registry::service {

struct TransferStats {
  uint64_t manifests = 0; // manifests written (export) or stored (import)
  uint64_t blobs = 0;     // blobs written / stored or linked
  uint64_t bytes = 0;     // blob and manifest bytes moved
  uint64_t skipped = 0;   // import: blobs the store already had
};

// Called now and then with the running totals (objects = manifests + blobs).
using TransferProgress = std::function<void(uint64_t bytes, uint64_t objects)>;

struct ExportOptions {
  // FEED, FEED/REPO, FEED/REPO:TAG or FEED/REPO@DIGEST.
  std::string source;
  TransferProgress progress;
};

// Writes the layout of `options.source` as a tar stream into `out` (the caller
// compresses and finishes it). name_invalid / name_unknown / manifest_unknown
// for a bad or unknown source, invalid_argument when it holds no tagged image.
Result<TransferStats> export_archive(Registry& registry, const ExportOptions& options,
                                     util::OutputStream& out);

struct ImportOptions {
  std::string feed;       // target feed (must exist)
  std::string repository; // optional repository path inside the feed
  TransferProgress progress;
};

// Reads a tar or zstd-compressed tar stream (detected by magic) from `in`.
// corrupt for a damaged or truncated stream, digest_invalid for content that
// does not match its digest, manifest_blob_unknown when a manifest needs a blob
// the archive lacks, invalid_argument for unsafe names or a bare-tag reference
// without `repository`.
Result<TransferStats> import_archive(Registry& registry, const ImportOptions& options,
                                     util::InputStream& in);

} // namespace registry::service
