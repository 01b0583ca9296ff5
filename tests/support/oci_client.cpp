#include "tests/support/oci_client.hpp"

#include "common/oci/digest.hpp"

#include <doctest/doctest.h>

namespace registry::test {

std::string
sha256_digest(const std::string& data)
{
  return oci::Digest::of(data).str();
}

nlohmann::json
Blob::descriptor() const
{
  return {{"mediaType", media_type}, {"digest", digest}, {"size", data.size()}};
}

Blob
make_blob(std::string data, std::string media_type)
{
  std::string digest = sha256_digest(data);
  return Blob{std::move(data), digest, std::move(media_type)};
}

std::string
image_manifest(const Blob& config, const std::vector<Blob>& layers, const std::string& media_type,
               const nlohmann::json& extra)
{
  nlohmann::json m = {{"schemaVersion", 2}, {"mediaType", media_type}, {"config", config.descriptor()}};
  m["layers"] = nlohmann::json::array();
  for (const auto& l : layers) {
    m["layers"].push_back(l.descriptor());
  }
  for (auto it = extra.begin(); it != extra.end(); ++it) {
    m[it.key()] = it.value();
  }
  return m.dump(2);
}

OciClient::OciClient(int port) : m_client("127.0.0.1", port)
{
  m_client.set_keep_alive(true);
  m_client.set_read_timeout(60);
  m_client.set_write_timeout(60);
}

httplib::Result
OciClient::get(const std::string& path, const httplib::Headers& headers)
{
  return m_client.Get(path, headers);
}

httplib::Result
OciClient::head(const std::string& path, const httplib::Headers& headers)
{
  return m_client.Head(path, headers);
}

httplib::Result
OciClient::del(const std::string& path)
{
  return m_client.Delete(path);
}

httplib::Result
OciClient::post(const std::string& path, const std::string& body, const std::string& content_type)
{
  return m_client.Post(path, body, content_type);
}

httplib::Result
OciClient::put(const std::string& path, const std::string& body, const std::string& content_type,
               const httplib::Headers& headers)
{
  return m_client.Put(path, headers, body, content_type);
}

httplib::Result
OciClient::patch(const std::string& path, const std::string& body, const httplib::Headers& headers)
{
  return m_client.Patch(path, headers, body, "application/octet-stream");
}

void
OciClient::push_blob(const std::string& repo, const Blob& blob)
{
  auto res = post("/v2/" + repo + "/blobs/uploads/?digest=" + blob.digest, blob.data);
  REQUIRE(res);
  REQUIRE_MESSAGE(res->status == 201, "push_blob " << repo << ": " << res->status << " " << res->body);
}

httplib::Result
OciClient::put_manifest(const std::string& repo, const std::string& reference,
                        const std::string& bytes, const std::string& media_type)
{
  return put("/v2/" + repo + "/manifests/" + reference, bytes, media_type);
}

PushedImage
OciClient::push_image(const std::string& repo, const std::string& tag,
                      const std::vector<std::string>& layer_contents, const std::string& media_type)
{
  PushedImage image;
  bool docker = media_type == k_docker_manifest;
  image.config = make_blob(R"({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}})",
                           docker ? "application/vnd.docker.container.image.v1+json" : k_oci_config);
  push_blob(repo, image.config);
  for (const auto& content : layer_contents) {
    image.layers.push_back(make_blob(content, docker ? "application/vnd.docker.image.rootfs.diff.tar.gzip"
                                                     : k_oci_layer));
    push_blob(repo, image.layers.back());
  }
  image.manifest = image_manifest(image.config, image.layers, media_type);
  image.digest = sha256_digest(image.manifest);
  auto res = put_manifest(repo, tag, image.manifest, media_type);
  REQUIRE(res);
  REQUIRE_MESSAGE(res->status == 201, "put manifest: " << res->status << " " << res->body);
  return image;
}

std::string
error_code(const httplib::Result& res)
{
  if (!res) {
    return {};
  }
  auto j = nlohmann::json::parse(res->body, nullptr, false);
  if (!j.is_object() || !j.contains("errors") || !j["errors"].is_array() || j["errors"].empty()) {
    return {};
  }
  return j["errors"][0].value("code", "");
}

void
expect_error(const httplib::Result& res, int status, const std::string& code, bool head)
{
  REQUIRE(res);
  CHECK_MESSAGE(res->status == status, "body: " << res->body);
  CHECK(res->get_header_value("Docker-Distribution-API-Version") == "registry/2.0");
  if (head) {
    CHECK(res->body.empty());
    return;
  }
  CHECK(res->get_header_value("Content-Type") == "application/json");
  CHECK(error_code(res) == code);
}

std::string
image_index(const std::vector<std::pair<const PushedImage*, std::string>>& platforms)
{
  nlohmann::json index = {{"schemaVersion", 2}, {"mediaType", k_oci_index}, {"manifests", nlohmann::json::array()}};
  for (const auto& [image, arch] : platforms) {
    index["manifests"].push_back({{"mediaType", k_oci_manifest},
                                  {"digest", image->digest},
                                  {"size", image->manifest.size()},
                                  {"platform", {{"os", "linux"}, {"architecture", arch}}}});
  }
  return index.dump();
}

} // namespace registry::test
