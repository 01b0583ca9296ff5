#pragma once

// Names and references from the OCI distribution-spec grammar, validated by hand
// (no std::regex: libstdc++'s recurses on long input).
//
// A repository here is "FEED/PATH": the first component names the feed.

#include "common/oci/digest.hpp"
#include "common/result.hpp"

#include <string>
#include <string_view>
#include <variant>

namespace registry::oci {

inline constexpr size_t k_max_name_length = 255;

// One path component: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*
bool is_valid_name_component(std::string_view component);

// A full repository name: components joined by '/', at most 255 characters.
bool is_valid_repository_name(std::string_view name);

// A tag: [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}
bool is_valid_tag(std::string_view tag);

// A feed name: [a-z0-9]+([._-][a-z0-9]+)*, not reserved (v2, auth, ui, api, _*),
// at most 64 characters.
bool is_valid_feed_name(std::string_view name);

struct RepositoryName {
  std::string feed; // first component
  std::string path; // the rest, e.g. "dotnet/aspnet"
  std::string
  full() const
  {
    return feed + "/" + path;
  }
};

// Splits and validates "FEED/PATH". name_invalid when the grammar fails or the
// name has a single component.
Result<RepositoryName> parse_repository_name(std::string_view name);

// A manifest reference: a tag or a digest.
struct ManifestReference {
  std::variant<std::string, Digest> value;
  bool
  is_digest() const
  {
    return value.index() == 1;
  }
  const std::string&
  tag() const
  {
    return std::get<0>(value);
  }
  const Digest&
  digest() const
  {
    return std::get<1>(value);
  }
  std::string
  str() const
  {
    return is_digest() ? digest().str() : tag();
  }
};

// Parses a tag or digest. A text with ':' must be a valid digest (digest_invalid),
// anything else a valid tag (manifest_invalid is wrong here; the spec answers
// tag errors with MANIFEST_INVALID on put and MANIFEST_UNKNOWN on get, so this
// returns invalid_argument and the caller picks).
Result<ManifestReference> parse_manifest_reference(std::string_view text);

// "FEED/REPO:TAG" or "FEED/REPO@DIGEST" as typed on the CLI.
struct ImageReference {
  RepositoryName repository;
  ManifestReference reference;
};
Result<ImageReference> parse_image_reference(std::string_view text);

} // namespace registry::oci
