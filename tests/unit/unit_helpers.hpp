#pragma once

// Helpers shared by the unit tests: readable ErrorCode output in doctest
// messages, Result checks, request-body sources and manifest builders.

#include "common/error.hpp"
#include "common/oci/digest.hpp"
#include "common/oci/media_types.hpp"
#include "common/result.hpp"
#include "common/service/registry.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace doctest {
template<> struct StringMaker<registry::ErrorCode> {
  static String
  convert(const registry::ErrorCode& code)
  {
    return registry::to_string(code);
  }
};
template<> struct StringMaker<std::optional<registry::ErrorCode>> {
  static String
  convert(const std::optional<registry::ErrorCode>& code)
  {
    return code ? registry::to_string(*code) : "(success)";
  }
};
} // namespace doctest

namespace registry::test {

// The error code of `result`, or nullopt when it holds a value. Compare it with
// an ErrorCode: CHECK(code_of(r) == ErrorCode::digest_invalid).
template<typename R>
std::optional<ErrorCode>
code_of(const R& result)
{
  if (result.has_value()) {
    return std::nullopt;
  }
  return result.error().code;
}

// "ok" or "code: message [detail]", for failure messages.
template<typename R>
std::string
describe(const R& result)
{
  if (result.has_value()) {
    return "ok";
  }
  const Error& e = result.error();
  return std::string(to_string(e.code)) + ": " + e.message
         + (e.detail.empty() ? "" : " [" + e.detail + "]");
}

} // namespace registry::test

// Requires (or checks) that a Result holds a value; prints its error otherwise.
// `expr` is evaluated once.
#define REQUIRE_OK(expr)                                                                 \
  do {                                                                                   \
    const auto& registry_ok_result_ = (expr);                                            \
    REQUIRE_MESSAGE(registry_ok_result_.has_value(),                                     \
                    ::registry::test::describe(registry_ok_result_));                    \
  } while (false)
#define CHECK_OK(expr)                                                                   \
  do {                                                                                   \
    const auto& registry_ok_result_ = (expr);                                            \
    CHECK_MESSAGE(registry_ok_result_.has_value(),                                       \
                  ::registry::test::describe(registry_ok_result_));                      \
  } while (false)

namespace registry::test {

// A body that delivers `data` in pieces of `chunk` bytes.
inline service::ByteSource
source_of(std::string data, size_t chunk = 64 * 1024)
{
  return [data = std::move(data), chunk](const storage::ByteSink& sink) {
    for (size_t pos = 0; pos < data.size(); pos += chunk) {
      size_t n = std::min(chunk, data.size() - pos);
      if (!sink(data.data() + pos, n)) {
        return false;
      }
    }
    return true;
  };
}

// A body that delivers `data` and then reports that the client went away.
inline service::ByteSource
cut_source_of(std::string data)
{
  return [data = std::move(data)](const storage::ByteSink& sink) {
    if (!data.empty()) {
      (void)sink(data.data(), data.size());
    }
    return false;
  };
}

inline nlohmann::json
descriptor_json(std::string_view media_type, const std::string& bytes)
{
  return {{"mediaType", media_type},
          {"digest", oci::Digest::of(bytes).str()},
          {"size", bytes.size()}};
}

// An OCI image manifest JSON for a config and layers given by their bytes.
inline nlohmann::json
oci_manifest_json(const std::string& config, const std::vector<std::string>& layers)
{
  nlohmann::json m = {{"schemaVersion", 2},
                      {"mediaType", oci::media_type::oci_manifest},
                      {"config", descriptor_json(oci::media_type::oci_config, config)},
                      {"layers", nlohmann::json::array()}};
  for (const auto& layer : layers) {
    m["layers"].push_back(
      descriptor_json("application/vnd.oci.image.layer.v1.tar+gzip", layer));
  }
  return m;
}

// An OCI image index JSON over manifests given by their bytes.
inline nlohmann::json
oci_index_json(const std::vector<std::string>& manifests)
{
  nlohmann::json index = {{"schemaVersion", 2},
                          {"mediaType", oci::media_type::oci_index},
                          {"manifests", nlohmann::json::array()}};
  for (const auto& m : manifests) {
    auto d = descriptor_json(oci::media_type::oci_manifest, m);
    d["platform"] = {{"os", "linux"}, {"architecture", "amd64"}};
    index["manifests"].push_back(d);
  }
  return index;
}

} // namespace registry::test
