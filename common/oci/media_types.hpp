#pragma once

#include <string_view>

namespace registry::oci::media_type {

inline constexpr std::string_view oci_manifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr std::string_view oci_index = "application/vnd.oci.image.index.v1+json";
inline constexpr std::string_view oci_config = "application/vnd.oci.image.config.v1+json";
inline constexpr std::string_view oci_empty = "application/vnd.oci.empty.v1+json";
inline constexpr std::string_view docker_manifest
  = "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr std::string_view docker_manifest_list
  = "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr std::string_view docker_config = "application/vnd.docker.container.image.v1+json";
inline constexpr std::string_view docker_schema1 = "application/vnd.docker.distribution.manifest.v1+json";
inline constexpr std::string_view docker_schema1_signed
  = "application/vnd.docker.distribution.manifest.v1+prettyjws";

inline bool
is_manifest_type(std::string_view t)
{
  return t == oci_manifest || t == oci_index || t == docker_manifest || t == docker_manifest_list;
}

inline bool
is_index_type(std::string_view t)
{
  return t == oci_index || t == docker_manifest_list;
}

} // namespace registry::oci::media_type
