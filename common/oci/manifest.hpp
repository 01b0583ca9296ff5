#pragma once

// Parsing and validation of manifests: Docker schema2 manifest and manifest list,
// OCI image manifest and image index, OCI artifacts (artifactType, subject).
// The exact bytes are never re-serialized: the digest names the bytes received.

#include "common/oci/digest.hpp"
#include "common/result.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace registry::oci {

inline constexpr size_t k_max_manifest_bytes = 4 * 1024 * 1024;

struct Platform {
  std::string os;
  std::string architecture;
  std::string variant;
  std::string
  str() const
  {
    return os + "/" + architecture + (variant.empty() ? "" : "/" + variant);
  }
};

struct Descriptor {
  std::string media_type;
  Digest digest;
  uint64_t size = 0;
  std::string artifact_type;
  std::string annotations_json = "{}"; // "{}" when absent; kept verbatim for referrers
  bool has_urls = false;        // a foreign layer: bytes live elsewhere
  std::optional<Platform> platform;
};

struct Manifest {
  std::string media_type; // the effective media type (declared or Content-Type)
  bool is_index = false;
  std::string artifact_type; // OCI 1.1: artifactType, else config.mediaType for artifacts
  std::optional<Descriptor> config;
  std::vector<Descriptor> layers;    // image manifests
  std::vector<Descriptor> manifests; // indexes
  std::optional<Descriptor> subject;
  std::string annotations_json = "{}"; // "{}" when absent

  // Blobs this manifest needs linked in its repository (config + non-foreign layers).
  std::vector<Descriptor> referenced_blobs() const;
};

// Parses and validates `bytes` pushed with Content-Type `content_type` (may be
// empty). manifest_invalid when the body is over 4 MiB, is not JSON, has the
// wrong schemaVersion, declares a media type that disagrees with
// `content_type`, is a schema1 manifest, or has a malformed descriptor.
Result<Manifest> parse_manifest(std::string_view bytes, std::string_view content_type);

} // namespace registry::oci
