#include "common/oci/manifest.hpp"

#include "common/oci/media_types.hpp"
#include "tests/unit/unit_helpers.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <string>
#include <utility>

using registry::ErrorCode;
using registry::oci::Digest;
using registry::test::code_of;
using nlohmann::json;
namespace oci = registry::oci;
namespace mt = registry::oci::media_type;

namespace {

const std::string k_config = R"({"architecture":"amd64","os":"linux"})";
const std::string k_layer1 = "layer one bytes";
const std::string k_layer2 = "layer two bytes";

json
docker_manifest()
{
  return {{"schemaVersion", 2},
          {"mediaType", mt::docker_manifest},
          {"config", registry::test::descriptor_json(mt::docker_config, k_config)},
          {"layers",
           {registry::test::descriptor_json("application/vnd.docker.image.rootfs.diff.tar.gzip",
                                            k_layer1),
            registry::test::descriptor_json("application/vnd.docker.image.rootfs.diff.tar.gzip",
                                            k_layer2)}}};
}

json
docker_manifest_list()
{
  auto amd = registry::test::descriptor_json(mt::docker_manifest, "amd64 manifest");
  amd["platform"] = {{"os", "linux"}, {"architecture", "amd64"}};
  auto arm = registry::test::descriptor_json(mt::docker_manifest, "arm64 manifest");
  arm["platform"] = {{"os", "linux"}, {"architecture", "arm64"}, {"variant", "v8"}};
  return {{"schemaVersion", 2}, {"mediaType", mt::docker_manifest_list}, {"manifests", {amd, arm}}};
}

// An OCI artifact: empty config, one blob, an artifactType and a subject.
json
oci_artifact(const std::string& subject_bytes)
{
  return {{"schemaVersion", 2},
          {"mediaType", mt::oci_manifest},
          {"artifactType", "application/vnd.example.sbom.v1"},
          {"config", registry::test::descriptor_json(mt::oci_empty, "{}")},
          {"layers", {registry::test::descriptor_json("application/spdx+json", "sbom")}},
          {"subject", registry::test::descriptor_json(mt::oci_manifest, subject_bytes)},
          {"annotations", {{"org.opencontainers.image.created", "2024-01-01T00:00:00Z"}}}};
}

registry::Result<oci::Manifest>
parse(const json& j, std::string_view content_type = {})
{
  return oci::parse_manifest(j.dump(), content_type);
}

} // namespace

TEST_SUITE("oci")
{
  TEST_CASE("oci::parse_manifest accepts the supported formats")
  {
    SUBCASE("a Docker schema2 manifest lists its config and layers")
    {
      auto m = parse(docker_manifest(), mt::docker_manifest);
      REQUIRE_OK(m);
      CHECK(m->media_type == mt::docker_manifest);
      CHECK_FALSE(m->is_index);
      REQUIRE(m->config.has_value());
      CHECK(m->config->media_type == mt::docker_config);
      CHECK(m->config->digest == Digest::of(k_config));
      CHECK(m->config->size == k_config.size());
      REQUIRE(m->layers.size() == 2);
      CHECK(m->layers[0].digest == Digest::of(k_layer1));
      CHECK(m->layers[1].digest == Digest::of(k_layer2));
      CHECK(m->manifests.empty());
      CHECK_FALSE(m->subject.has_value());

      auto blobs = m->referenced_blobs();
      REQUIRE(blobs.size() == 3);
      CHECK(blobs[0].digest == Digest::of(k_config));
      CHECK(blobs[1].digest == Digest::of(k_layer1));
      CHECK(blobs[2].digest == Digest::of(k_layer2));
    }

    SUBCASE("a Docker manifest list is an index with platforms")
    {
      auto m = parse(docker_manifest_list(), mt::docker_manifest_list);
      REQUIRE_OK(m);
      CHECK(m->media_type == mt::docker_manifest_list);
      CHECK(m->is_index);
      CHECK_FALSE(m->config.has_value());
      CHECK(m->layers.empty());
      REQUIRE(m->manifests.size() == 2);
      REQUIRE(m->manifests[0].platform.has_value());
      CHECK(m->manifests[0].platform->str() == "linux/amd64");
      REQUIRE(m->manifests[1].platform.has_value());
      CHECK(m->manifests[1].platform->str() == "linux/arm64/v8");
      CHECK(m->referenced_blobs().empty());
    }

    SUBCASE("an OCI image manifest is accepted with its media type")
    {
      auto j = registry::test::oci_manifest_json(k_config, {k_layer1});
      auto m = parse(j, mt::oci_manifest);
      REQUIRE_OK(m);
      CHECK(m->media_type == mt::oci_manifest);
      CHECK_FALSE(m->is_index);
      CHECK(m->layers.size() == 1);
    }

    SUBCASE("an OCI image index is accepted with its media type")
    {
      auto j = registry::test::oci_index_json({"a", "b", "c"});
      auto m = parse(j, mt::oci_index);
      REQUIRE_OK(m);
      CHECK(m->media_type == mt::oci_index);
      CHECK(m->is_index);
      REQUIRE(m->manifests.size() == 3);
      CHECK(m->manifests[2].digest == Digest::of("c"));
      CHECK(m->manifests[0].media_type == mt::oci_manifest);
    }

    SUBCASE("without a mediaType field the Content-Type decides")
    {
      auto j = registry::test::oci_manifest_json(k_config, {k_layer1});
      j.erase("mediaType");
      auto m = parse(j, mt::oci_manifest);
      REQUIRE_OK(m);
      CHECK(m->media_type == mt::oci_manifest);

      auto list = docker_manifest_list();
      list.erase("mediaType");
      auto l = parse(list, mt::docker_manifest_list);
      REQUIRE_OK(l);
      CHECK(l->media_type == mt::docker_manifest_list);
      CHECK(l->is_index);
    }

    SUBCASE("without mediaType or Content-Type the shape decides between manifest and index")
    {
      auto j = registry::test::oci_manifest_json(k_config, {});
      j.erase("mediaType");
      auto m = parse(j);
      REQUIRE_OK(m);
      CHECK(m->media_type == mt::oci_manifest);
      CHECK_FALSE(m->is_index);

      auto index = registry::test::oci_index_json({"a"});
      index.erase("mediaType");
      auto i = parse(index);
      REQUIRE_OK(i);
      CHECK(i->media_type == mt::oci_index);
      CHECK(i->is_index);
    }

    SUBCASE("Content-Type parameters are ignored")
    {
      auto m = parse(docker_manifest(), std::string(mt::docker_manifest) + "; charset=utf-8");
      REQUIRE_OK(m);
      CHECK(m->media_type == mt::docker_manifest);
    }

    SUBCASE("an OCI artifact keeps its artifactType, subject and annotations")
    {
      auto m = parse(oci_artifact("the subject"), mt::oci_manifest);
      REQUIRE_OK(m);
      CHECK(m->artifact_type == "application/vnd.example.sbom.v1");
      REQUIRE(m->subject.has_value());
      CHECK(m->subject->digest == Digest::of("the subject"));
      CHECK(m->subject->media_type == mt::oci_manifest);
      REQUIRE(m->config.has_value());
      CHECK(m->config->media_type == mt::oci_empty);
      CHECK(json::parse(m->annotations_json)
            == json{{"org.opencontainers.image.created", "2024-01-01T00:00:00Z"}});
      // the empty config and the layer must be linked like any blob
      CHECK(m->referenced_blobs().size() == 2);
    }

    SUBCASE("an artifact without artifactType takes the config mediaType")
    {
      json j = {{"schemaVersion", 2},
                {"mediaType", mt::oci_manifest},
                {"config", registry::test::descriptor_json("application/vnd.example.config", "c")},
                {"layers", json::array()}};
      auto m = parse(j, mt::oci_manifest);
      REQUIRE_OK(m);
      CHECK(m->artifact_type == "application/vnd.example.config");
    }

    SUBCASE("an index may carry an artifactType and a subject")
    {
      auto j = registry::test::oci_index_json({"a"});
      j["artifactType"] = "application/vnd.example.bundle";
      j["subject"] = registry::test::descriptor_json(mt::oci_manifest, "subject");
      auto m = parse(j, mt::oci_index);
      REQUIRE_OK(m);
      CHECK(m->artifact_type == "application/vnd.example.bundle");
      REQUIRE(m->subject.has_value());
      CHECK(m->subject->digest == Digest::of("subject"));
    }

    SUBCASE("absent annotations read as an empty JSON object")
    {
      auto m = parse(registry::test::oci_manifest_json(k_config, {k_layer1}), mt::oci_manifest);
      REQUIRE_OK(m);
      CHECK(m->annotations_json == "{}");
      REQUIRE(m->config.has_value());
      CHECK(m->config->annotations_json == "{}");
      CHECK(m->layers[0].annotations_json == "{}");
      auto index = parse(registry::test::oci_index_json({"a"}), mt::oci_index);
      REQUIRE_OK(index);
      CHECK(index->annotations_json == "{}");
      CHECK(index->manifests[0].annotations_json == "{}");
    }

    SUBCASE("a null subject means no subject")
    {
      auto j = registry::test::oci_manifest_json(k_config, {});
      j["subject"] = nullptr;
      auto m = parse(j, mt::oci_manifest);
      REQUIRE_OK(m);
      CHECK_FALSE(m->subject.has_value());
    }

    SUBCASE("layers with urls are foreign and not referenced blobs")
    {
      auto j = docker_manifest();
      j["layers"][1]["mediaType"] = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
      j["layers"][1]["urls"] = {"https://example.com/layer.tar.gz"};
      auto m = parse(j, mt::docker_manifest);
      REQUIRE_OK(m);
      REQUIRE(m->layers.size() == 2);
      CHECK_FALSE(m->layers[0].has_urls);
      CHECK(m->layers[1].has_urls);
      auto blobs = m->referenced_blobs();
      REQUIRE(blobs.size() == 2);
      CHECK(blobs[0].digest == Digest::of(k_config));
      CHECK(blobs[1].digest == Digest::of(k_layer1));
    }

    SUBCASE("descriptor artifactType and annotations are kept")
    {
      auto j = registry::test::oci_index_json({"a"});
      j["manifests"][0]["artifactType"] = "application/vnd.example.sig";
      j["manifests"][0]["annotations"] = {{"k", "v"}};
      auto m = parse(j, mt::oci_index);
      REQUIRE_OK(m);
      CHECK(m->manifests[0].artifact_type == "application/vnd.example.sig");
      CHECK(json::parse(m->manifests[0].annotations_json) == json{{"k", "v"}});
    }

    SUBCASE("a manifest of exactly 4 MiB is accepted")
    {
      std::string bytes = registry::test::oci_manifest_json(k_config, {k_layer1}).dump();
      bytes.resize(oci::k_max_manifest_bytes, ' '); // trailing whitespace is valid JSON
      auto m = oci::parse_manifest(bytes, mt::oci_manifest);
      CHECK_OK(m);
    }
  }

  TEST_CASE("oci::parse_manifest rejects what it must")
  {
    SUBCASE("Docker schema1 is rejected in every form")
    {
      json v1 = {{"schemaVersion", 1},
                 {"name", "feed/app"},
                 {"tag", "latest"},
                 {"fsLayers", json::array()}};
      CHECK(code_of(parse(v1)) == ErrorCode::manifest_invalid);
      CHECK(code_of(parse(v1, mt::docker_schema1_signed)) == ErrorCode::manifest_invalid);

      auto declared = docker_manifest();
      declared["mediaType"] = mt::docker_schema1;
      CHECK(code_of(parse(declared)) == ErrorCode::manifest_invalid);

      CHECK(code_of(parse(docker_manifest(), mt::docker_schema1_signed))
            == ErrorCode::manifest_invalid);
      CHECK(code_of(parse(docker_manifest(), mt::docker_schema1)) == ErrorCode::manifest_invalid);
    }

    SUBCASE("a mediaType that disagrees with the Content-Type is manifest_invalid")
    {
      CHECK(code_of(parse(docker_manifest(), mt::oci_manifest)) == ErrorCode::manifest_invalid);
      CHECK(code_of(parse(registry::test::oci_manifest_json(k_config, {}), mt::docker_manifest))
            == ErrorCode::manifest_invalid);
      CHECK(code_of(parse(registry::test::oci_index_json({"a"}), mt::docker_manifest_list))
            == ErrorCode::manifest_invalid);
      CHECK(code_of(parse(registry::test::oci_index_json({"a"}), mt::oci_manifest))
            == ErrorCode::manifest_invalid);
    }

    SUBCASE("a declared mediaType that is not a manifest type is manifest_invalid")
    {
      auto j = registry::test::oci_manifest_json(k_config, {});
      j["mediaType"] = mt::oci_config;
      CHECK(code_of(parse(j)) == ErrorCode::manifest_invalid);
      j["mediaType"] = "text/plain";
      CHECK(code_of(parse(j)) == ErrorCode::manifest_invalid);
    }

    SUBCASE("malformed JSON and non-objects are manifest_invalid")
    {
      for (const char* text : {"", " ", "{", "}", "[]", "null", "42", "\"manifest\"",
                               "{\"schemaVersion\":2,", "{'schemaVersion':2}",
                               "{\"schemaVersion\":2}garbage"}) {
        INFO("body: ", text);
        CHECK(code_of(oci::parse_manifest(text, mt::oci_manifest))
              == ErrorCode::manifest_invalid);
      }
    }

    SUBCASE("a missing, non-integer or unknown schemaVersion is manifest_invalid")
    {
      auto j = registry::test::oci_manifest_json(k_config, {});
      j.erase("schemaVersion");
      CHECK(code_of(parse(j)) == ErrorCode::manifest_invalid);
      j["schemaVersion"] = "2";
      CHECK(code_of(parse(j)) == ErrorCode::manifest_invalid);
      j["schemaVersion"] = 2.5;
      CHECK(code_of(parse(j)) == ErrorCode::manifest_invalid);
      j["schemaVersion"] = 3;
      CHECK(code_of(parse(j)) == ErrorCode::manifest_invalid);
      j["schemaVersion"] = 0;
      CHECK(code_of(parse(j)) == ErrorCode::manifest_invalid);
    }

    SUBCASE("a body over 4 MiB is manifest_invalid even when it is valid JSON")
    {
      std::string bytes = registry::test::oci_manifest_json(k_config, {k_layer1}).dump();
      bytes.resize(oci::k_max_manifest_bytes + 1, ' ');
      CHECK(code_of(oci::parse_manifest(bytes, mt::oci_manifest)) == ErrorCode::manifest_invalid);

      auto big = registry::test::oci_manifest_json(k_config, {k_layer1});
      big["annotations"] = {{"padding", std::string(oci::k_max_manifest_bytes, 'x')}};
      CHECK(code_of(parse(big, mt::oci_manifest)) == ErrorCode::manifest_invalid);
    }

    SUBCASE("an image manifest without config is manifest_invalid")
    {
      auto j = registry::test::oci_manifest_json(k_config, {k_layer1});
      j.erase("config");
      CHECK(code_of(parse(j, mt::oci_manifest)) == ErrorCode::manifest_invalid);
    }

    SUBCASE("a Docker manifest without layers is manifest_invalid")
    {
      auto j = docker_manifest();
      j.erase("layers");
      CHECK(code_of(parse(j, mt::docker_manifest)) == ErrorCode::manifest_invalid);
    }

    SUBCASE("an index without manifests is manifest_invalid")
    {
      auto j = registry::test::oci_index_json({});
      j.erase("manifests");
      CHECK(code_of(parse(j, mt::oci_index)) == ErrorCode::manifest_invalid);
    }

    SUBCASE("mixing index and image fields is manifest_invalid")
    {
      auto index = registry::test::oci_index_json({"a"});
      index["layers"] = json::array();
      CHECK(code_of(parse(index, mt::oci_index)) == ErrorCode::manifest_invalid);

      auto index_with_config = registry::test::oci_index_json({"a"});
      index_with_config["config"] = registry::test::descriptor_json(mt::oci_config, k_config);
      CHECK(code_of(parse(index_with_config, mt::oci_index)) == ErrorCode::manifest_invalid);

      auto image = registry::test::oci_manifest_json(k_config, {});
      image["manifests"] = json::array();
      CHECK(code_of(parse(image, mt::oci_manifest)) == ErrorCode::manifest_invalid);
    }

    SUBCASE("annotations that are not an object are manifest_invalid")
    {
      auto j = registry::test::oci_manifest_json(k_config, {});
      j["annotations"] = json::array({"a"});
      CHECK(code_of(parse(j, mt::oci_manifest)) == ErrorCode::manifest_invalid);
    }

    SUBCASE("malformed layer descriptors are manifest_invalid")
    {
      const json good = registry::test::descriptor_json("application/octet-stream", k_layer1);
      auto without = [&](const char* key) {
        json d = good;
        d.erase(key);
        return d;
      };
      auto with = [&](const char* key, json value) {
        json d = good;
        d[key] = std::move(value);
        return d;
      };
      const std::pair<const char*, json> cases[] = {
        {"not an object", json("sha256:abc")},
        {"an array", json::array()},
        {"no mediaType", without("mediaType")},
        {"an empty mediaType", with("mediaType", "")},
        {"a numeric mediaType", with("mediaType", 5)},
        {"no digest", without("digest")},
        {"a numeric digest", with("digest", 7)},
        {"a short digest", with("digest", "sha256:1234")},
        {"an uppercase digest", with("digest", "sha256:" + std::string(64, 'A'))},
        {"an unknown algorithm", with("digest", "md5:d41d8cd98f00b204e9800998ecf8427e")},
        {"no size", without("size")},
        {"a negative size", with("size", -1)},
        {"a fractional size", with("size", 1.5)},
        {"a string size", with("size", "15")},
      };
      for (const auto& [what, descriptor] : cases) {
        INFO("layer descriptor with ", what);
        auto j = registry::test::oci_manifest_json(k_config, {});
        j["layers"] = json::array({descriptor});
        CHECK(code_of(parse(j, mt::oci_manifest)) == ErrorCode::manifest_invalid);
      }
    }

    SUBCASE("a layers or manifests field that is not an array is manifest_invalid")
    {
      auto j = registry::test::oci_manifest_json(k_config, {});
      j["layers"] = registry::test::descriptor_json("application/octet-stream", k_layer1);
      CHECK(code_of(parse(j, mt::oci_manifest)) == ErrorCode::manifest_invalid);

      auto index = registry::test::oci_index_json({});
      index["manifests"] = "none";
      CHECK(code_of(parse(index, mt::oci_index)) == ErrorCode::manifest_invalid);
    }

    SUBCASE("a malformed config, index entry or subject is manifest_invalid")
    {
      auto config = registry::test::oci_manifest_json(k_config, {});
      config["config"]["digest"] = "sha256:nothex";
      CHECK(code_of(parse(config, mt::oci_manifest)) == ErrorCode::manifest_invalid);

      auto config_not_object = registry::test::oci_manifest_json(k_config, {});
      config_not_object["config"] = "config";
      CHECK(code_of(parse(config_not_object, mt::oci_manifest)) == ErrorCode::manifest_invalid);

      auto index = registry::test::oci_index_json({"a", "b"});
      index["manifests"][1].erase("size");
      CHECK(code_of(parse(index, mt::oci_index)) == ErrorCode::manifest_invalid);

      auto subject = oci_artifact("s");
      subject["subject"]["digest"] = "sha256:";
      CHECK(code_of(parse(subject, mt::oci_manifest)) == ErrorCode::manifest_invalid);

      auto subject_not_object = oci_artifact("s");
      subject_not_object["subject"] = "sha256:" + std::string(64, 'a');
      CHECK(code_of(parse(subject_not_object, mt::oci_manifest))
            == ErrorCode::manifest_invalid);
    }
  }
}
