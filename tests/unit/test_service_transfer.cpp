#include "common/service/transfer.hpp"

#include "common/archive/tar.hpp"
#include "common/oci/media_types.hpp"
#include "common/util/clock.hpp"
#include "tests/support/test_dir.hpp"
#include "tests/unit/unit_helpers.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <filesystem>

using registry::ErrorCode;
using registry::oci::Digest;
using registry::service::Registry;
using registry::test::code_of;
using registry::test::source_of;
using registry::test::TestDir;
using nlohmann::json;
namespace fs = std::filesystem;
namespace mt = registry::oci::media_type;
namespace service = registry::service;
namespace util = registry::util;

namespace {

class StringOutput : public util::OutputStream
{
public:
  registry::Result<void>
  write(const char* data, size_t size) override
  {
    bytes.append(data, size);
    return registry::ok();
  }
  registry::Result<void>
  finish() override
  {
    return registry::ok();
  }
  std::string bytes;
};

class StringInput : public util::InputStream
{
public:
  explicit StringInput(std::string bytes) : m_bytes(std::move(bytes)) {}
  registry::Result<size_t>
  read(char* buffer, size_t size) override
  {
    size_t n = std::min({size, size_t{10000}, m_bytes.size() - m_offset});
    std::memcpy(buffer, m_bytes.data() + m_offset, n);
    m_offset += n;
    return n;
  }

private:
  std::string m_bytes;
  size_t m_offset = 0;
};

struct Fixture {
  TestDir dir;
  std::unique_ptr<Registry> reg;
  std::string config = R"({"architecture":"amd64","os":"linux"})";
  std::string layer1 = registry::test::random_bytes(200000, 3);
  std::string layer2 = registry::test::random_bytes(5 * 1024 * 1024, 4); // above the spool limit
  std::string manifest;
  std::string index;

  Fixture()
  {
    auto opened = Registry::open(dir / "data", std::make_shared<util::ManualClock>(1'700'000'000));
    REQUIRE_OK(opened);
    reg = std::move(opened).value();
    REQUIRE_OK(reg->create_feed("src", "", "pull"));
    REQUIRE_OK(reg->create_feed("dst", "", "pull"));
    for (const auto& blob : {config, layer1, layer2}) {
      REQUIRE_OK(reg->push_blob("src/app", Digest::of(blob).str(), source_of(blob)));
    }
    manifest = registry::test::oci_manifest_json(config, {layer1, layer2}).dump();
    REQUIRE_OK(reg->put_manifest("src/app", "v1", mt::oci_manifest, manifest));
    index = registry::test::oci_index_json({manifest}).dump();
    REQUIRE_OK(reg->put_manifest("src/app", "multi", mt::oci_index, index));
  }

  std::string
  export_tar(const std::string& source)
  {
    StringOutput out;
    auto stats = service::export_archive(*reg, {source, {}}, out);
    REQUIRE_OK(stats);
    return out.bytes;
  }

  size_t
  upload_files() const
  {
    size_t n = 0;
    fs::path uploads = dir.path() / "data" / "store" / "uploads";
    if (fs::exists(uploads)) {
      for (const auto& e : fs::recursive_directory_iterator(uploads)) {
        n += e.is_regular_file() ? 1 : 0;
      }
    }
    return n;
  }
};

} // namespace

TEST_SUITE("service")
{
  TEST_CASE("service::export_archive and import_archive")
  {
    Fixture f;
    std::string tar = f.export_tar("src");

    SUBCASE("the layout names every tag REPO:TAG")
    {
      StringInput in(tar);
      registry::archive::TarReader reader(in);
      std::string index;
      size_t blobs = 0;
      while (true) {
        auto entry = reader.next();
        REQUIRE_OK(entry);
        if (!*entry) {
          break;
        }
        if ((*entry)->name == "index.json") {
          index.resize((*entry)->size);
          REQUIRE(*reader.read(index.data(), index.size()) > 0);
        }
        blobs += (*entry)->name.rfind("blobs/sha256/", 0) == 0 ? 1 : 0;
      }
      auto doc = json::parse(index);
      REQUIRE(doc["manifests"].size() == 2);
      CHECK(doc["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == "app:multi");
      CHECK(doc["manifests"][1]["annotations"]["org.opencontainers.image.ref.name"] == "app:v1");
      CHECK(blobs == 5); // index, manifest, config, two layers
    }
    SUBCASE("imports into another feed with the same digests")
    {
      StringInput in(tar);
      auto stats = service::import_archive(*f.reg, {"dst", "", {}}, in);
      REQUIRE_OK(stats);
      CHECK(stats->manifests == 2);
      CHECK(stats->blobs == 3);
      CHECK(stats->skipped == 3); // one store: the bytes were there
      auto v1 = f.reg->get_manifest("dst/app", "v1", true);
      REQUIRE_OK(v1);
      CHECK(v1->bytes == f.manifest);
      auto multi = f.reg->get_manifest("dst/app", "multi", false);
      REQUIRE_OK(multi);
      CHECK(multi->digest == Digest::of(f.index));
      CHECK_OK(f.reg->stat_blob("dst/app", Digest::of(f.layer2).str()));
      CHECK(f.upload_files() == 0); // staged manifest copies were dropped
    }
    SUBCASE("--repository renames")
    {
      StringInput in(tar);
      REQUIRE_OK(service::import_archive(*f.reg, {"dst", "moved/here", {}}, in));
      CHECK_OK(f.reg->get_manifest("dst/moved/here", "v1", false));
    }
    SUBCASE("a digest mismatch imports nothing")
    {
      std::string bad = tar;
      auto at = bad.find(f.layer1.substr(0, 64));
      REQUIRE(at != std::string::npos);
      bad[at + 100] = static_cast<char>(bad[at + 100] ^ 1);
      StringInput in(bad);
      auto result = service::import_archive(*f.reg, {"dst", "", {}}, in);
      CHECK(code_of(result) == ErrorCode::digest_invalid);
      CHECK(!f.reg->metadata().find_repository("dst/app").value()); // not even created
      CHECK(f.upload_files() == 0);
    }
    SUBCASE("a truncated archive imports nothing")
    {
      StringInput in(tar.substr(0, tar.size() - 3000));
      auto result = service::import_archive(*f.reg, {"dst", "", {}}, in);
      CHECK(code_of(result) == ErrorCode::corrupt);
      CHECK(!f.reg->metadata().find_repository("dst/app").value()); // not even created
      CHECK(f.upload_files() == 0);
    }
  }

  TEST_CASE("service::import_archive keeps Docker media types")
  {
    Fixture f;
    json m = registry::test::oci_manifest_json(f.config, {f.layer1});
    m["mediaType"] = mt::docker_manifest;
    m["config"]["mediaType"] = mt::docker_config;
    m["layers"][0]["mediaType"] = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    std::string docker = m.dump();
    for (const auto& blob : {f.config, f.layer1}) {
      REQUIRE_OK(f.reg->push_blob("src/docker", Digest::of(blob).str(), source_of(blob)));
    }
    REQUIRE_OK(f.reg->put_manifest("src/docker", "v2", mt::docker_manifest, docker));
    json list = {{"schemaVersion", 2},
                 {"mediaType", mt::docker_manifest_list},
                 {"manifests", {{{"mediaType", mt::docker_manifest},
                                 {"digest", Digest::of(docker).str()},
                                 {"size", docker.size()},
                                 {"platform", {{"os", "linux"}, {"architecture", "amd64"}}}}}}};
    std::string list_bytes = list.dump();
    REQUIRE_OK(f.reg->put_manifest("src/docker", "list", mt::docker_manifest_list, list_bytes));
    std::string tar = f.export_tar("src/docker");
    StringInput in(tar);
    auto stats = service::import_archive(*f.reg, {"dst", "", {}}, in);
    REQUIRE_OK(stats);
    CHECK(stats->manifests == 2);
    auto got = f.reg->get_manifest("dst/docker", "list", true);
    REQUIRE_OK(got);
    CHECK(got->media_type == mt::docker_manifest_list);
    CHECK(got->bytes == list_bytes);
    auto child = f.reg->get_manifest("dst/docker", Digest::of(docker).str(), false);
    REQUIRE_OK(child);
    CHECK(child->media_type == mt::docker_manifest);
  }

  TEST_CASE("service::export_archive sources")
  {
    Fixture f;
    StringOutput out;
    CHECK(code_of(service::export_archive(*f.reg, {"nosuch", {}}, out)) == ErrorCode::name_unknown);
    CHECK(code_of(service::export_archive(*f.reg, {"dst", {}}, out)) == ErrorCode::invalid_argument);
    CHECK(code_of(service::export_archive(*f.reg, {"src/app:nope", {}}, out))
          == ErrorCode::manifest_unknown);
    auto by_digest = service::export_archive(*f.reg, {"src/app@" + Digest::of(f.manifest).str(), {}}, out);
    REQUIRE_OK(by_digest);
    CHECK(by_digest->manifests == 1);
    CHECK(by_digest->blobs == 3);
    CHECK(out.bytes.find("app@" + Digest::of(f.manifest).str()) != std::string::npos);
  }
}
