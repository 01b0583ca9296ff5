#include "common/oci/manifest.hpp"

#include "common/oci/media_types.hpp"

#include <nlohmann/json.hpp>

namespace registry::oci {

using nlohmann::json;

namespace {

Unexpected
invalid(std::string message)
{
  return fail(ErrorCode::manifest_invalid, std::move(message));
}

std::string
string_field(const json& object, const char* key)
{
  auto it = object.find(key);
  if (it == object.end() || !it->is_string()) {
    return {};
  }
  return it->get<std::string>();
}

// Strips media type parameters ("; charset=utf-8") and surrounding blanks.
std::string_view
bare_media_type(std::string_view t)
{
  if (size_t semi = t.find(';'); semi != std::string_view::npos) {
    t = t.substr(0, semi);
  }
  while (!t.empty() && t.back() == ' ') {
    t.remove_suffix(1);
  }
  return t;
}

Result<Descriptor>
parse_descriptor(const json& node, const char* where)
{
  if (!node.is_object()) {
    return invalid(std::string(where) + ": descriptor must be an object");
  }
  Descriptor d;
  auto media = node.find("mediaType");
  if (media == node.end() || !media->is_string() || media->get<std::string>().empty()) {
    return invalid(std::string(where) + ": descriptor needs a mediaType");
  }
  d.media_type = media->get<std::string>();
  auto digest = node.find("digest");
  if (digest == node.end() || !digest->is_string()) {
    return invalid(std::string(where) + ": descriptor needs a digest");
  }
  auto parsed = Digest::parse(digest->get<std::string>());
  if (!parsed) {
    return invalid(std::string(where) + ": invalid digest " + digest->get<std::string>());
  }
  d.digest = *parsed;
  auto size = node.find("size");
  if (size == node.end() || !size->is_number_integer() || size->get<int64_t>() < 0) {
    return invalid(std::string(where) + ": descriptor needs a non-negative size");
  }
  d.size = size->get<uint64_t>();
  d.artifact_type = string_field(node, "artifactType");
  if (auto ann = node.find("annotations"); ann != node.end() && ann->is_object()) {
    d.annotations_json = ann->dump();
  }
  if (auto urls = node.find("urls"); urls != node.end() && urls->is_array() && !urls->empty()) {
    d.has_urls = true;
  }
  if (auto platform = node.find("platform"); platform != node.end() && platform->is_object()) {
    d.platform = Platform{string_field(*platform, "os"), string_field(*platform, "architecture"),
                          string_field(*platform, "variant")};
  }
  return d;
}

Result<std::vector<Descriptor>>
parse_descriptor_array(const json& root, const char* key, bool required)
{
  std::vector<Descriptor> out;
  auto it = root.find(key);
  if (it == root.end() || it->is_null()) {
    if (required) {
      return invalid(std::string("manifest needs a '") + key + "' array");
    }
    return out;
  }
  if (!it->is_array()) {
    return invalid(std::string("'") + key + "' must be an array");
  }
  for (const auto& node : *it) {
    REGISTRY_TRY_ASSIGN(auto d, parse_descriptor(node, key));
    out.push_back(std::move(d));
  }
  return out;
}

} // namespace

std::vector<Descriptor>
Manifest::referenced_blobs() const
{
  std::vector<Descriptor> out;
  if (config) {
    out.push_back(*config);
  }
  for (const auto& layer : layers) {
    if (!layer.has_urls) {
      out.push_back(layer);
    }
  }
  return out;
}

Result<Manifest>
parse_manifest(std::string_view bytes, std::string_view content_type)
{
  if (bytes.size() > k_max_manifest_bytes) {
    return invalid("manifest exceeds the 4 MiB limit");
  }
  json root = json::parse(bytes, nullptr, false);
  if (root.is_discarded() || !root.is_object()) {
    return invalid("manifest is not a JSON object");
  }
  auto version = root.find("schemaVersion");
  if (version == root.end() || !version->is_number_integer()) {
    return invalid("manifest needs schemaVersion");
  }
  std::string declared = string_field(root, "mediaType");
  std::string header(bare_media_type(content_type));
  if (version->get<int64_t>() == 1 || declared == media_type::docker_schema1
      || declared == media_type::docker_schema1_signed || header == media_type::docker_schema1
      || header == media_type::docker_schema1_signed) {
    return invalid("Docker schema1 manifests are not supported; push schema2 or OCI");
  }
  if (version->get<int64_t>() != 2) {
    return invalid("unsupported schemaVersion");
  }
  Manifest m;
  if (!declared.empty()) {
    if (!media_type::is_manifest_type(declared)) {
      return invalid("unsupported manifest mediaType " + declared);
    }
    if (!header.empty() && header != declared && media_type::is_manifest_type(header)) {
      return invalid("mediaType " + declared + " does not match Content-Type " + header);
    }
    m.media_type = declared;
  } else if (media_type::is_manifest_type(header)) {
    m.media_type = header;
  } else if (root.contains("manifests")) {
    m.media_type = media_type::oci_index;
  } else {
    m.media_type = media_type::oci_manifest;
  }
  m.is_index = media_type::is_index_type(m.media_type);
  if (m.is_index && (root.contains("layers") || root.contains("config"))) {
    return invalid("an index cannot have config or layers");
  }
  if (!m.is_index && root.contains("manifests")) {
    return invalid("an image manifest cannot have 'manifests'");
  }
  m.artifact_type = string_field(root, "artifactType");
  if (auto ann = root.find("annotations"); ann != root.end()) {
    if (!ann->is_object()) {
      return invalid("annotations must be an object");
    }
    m.annotations_json = ann->dump();
  }
  if (m.is_index) {
    REGISTRY_TRY_ASSIGN(m.manifests, parse_descriptor_array(root, "manifests", true));
  } else {
    auto config = root.find("config");
    if (config == root.end()) {
      return invalid("image manifest needs a config descriptor");
    }
    REGISTRY_TRY_ASSIGN(m.config, parse_descriptor(*config, "config"));
    REGISTRY_TRY_ASSIGN(m.layers, parse_descriptor_array(root, "layers", m.media_type == media_type::docker_manifest));
    if (m.artifact_type.empty()) {
      // distribution-spec referrers: "If the artifactType is empty or missing in an image
      // manifest, the value of artifactType MUST be set to the config descriptor mediaType"
      m.artifact_type = m.config->media_type;
    }
  }
  if (auto subject = root.find("subject"); subject != root.end() && !subject->is_null()) {
    REGISTRY_TRY_ASSIGN(m.subject, parse_descriptor(*subject, "subject"));
  }
  return m;
}

} // namespace registry::oci
