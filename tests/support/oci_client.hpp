#pragma once

// A small OCI distribution client over httplib for end-to-end tests, plus
// builders for manifests and indexes.

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

namespace registry::test {

inline constexpr const char* k_oci_manifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr const char* k_oci_index = "application/vnd.oci.image.index.v1+json";
inline constexpr const char* k_oci_config = "application/vnd.oci.image.config.v1+json";
inline constexpr const char* k_oci_layer = "application/vnd.oci.image.layer.v1.tar";
inline constexpr const char* k_docker_manifest = "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr const char* k_docker_list = "application/vnd.docker.distribution.manifest.list.v2+json";

std::string sha256_digest(const std::string& data);

struct Blob {
  std::string data;
  std::string digest;
  std::string media_type;
  nlohmann::json descriptor() const;
};
Blob make_blob(std::string data, std::string media_type = k_oci_layer);

// An image manifest over `config` and `layers`.
std::string image_manifest(const Blob& config, const std::vector<Blob>& layers,
                           const std::string& media_type = k_oci_manifest,
                           const nlohmann::json& extra = nlohmann::json::object());

struct PushedImage {
  std::string manifest;
  std::string digest;
  Blob config;
  std::vector<Blob> layers;
};

// An OCI index over `platforms`: each image's manifest with its linux
// architecture ("amd64", "arm64", ...).
std::string image_index(const std::vector<std::pair<const PushedImage*, std::string>>& platforms);

class OciClient
{
public:
  explicit OciClient(int port);

  httplib::Client&
  http()
  {
    return m_client;
  }

  httplib::Result get(const std::string& path, const httplib::Headers& headers = {});
  httplib::Result head(const std::string& path, const httplib::Headers& headers = {});
  httplib::Result del(const std::string& path);
  httplib::Result post(const std::string& path, const std::string& body = {},
                       const std::string& content_type = "application/octet-stream");
  httplib::Result put(const std::string& path, const std::string& body,
                      const std::string& content_type = "application/octet-stream",
                      const httplib::Headers& headers = {});
  httplib::Result patch(const std::string& path, const std::string& body,
                        const httplib::Headers& headers = {});

  // Monolithic POST ?digest=. Checks for 201.
  void push_blob(const std::string& repo, const Blob& blob);
  httplib::Result put_manifest(const std::string& repo, const std::string& reference,
                               const std::string& bytes, const std::string& media_type);
  // Pushes `layers` + a config + the manifest under `tag`.
  PushedImage push_image(const std::string& repo, const std::string& tag,
                         const std::vector<std::string>& layer_contents,
                         const std::string& media_type = k_oci_manifest);

private:
  httplib::Client m_client;
};

// The first error code of an OCI error body ("" if none).
std::string error_code(const httplib::Result& res);

// REQUIREs `res` is an error with `status` and the spec `code`, with a JSON body
// (none for HEAD).
void expect_error(const httplib::Result& res, int status, const std::string& code,
                  bool head = false);

} // namespace registry::test
