// `registryctl status` against a data directory a running server shares.

#include "tests/e2e/fixture.hpp"

#include <sstream>

using namespace registry::test;

TEST_SUITE("e2e")
{
  TEST_CASE("status: counts, server probe, 80 columns, missing data directory")
  {
    RegistryFixture f;
    auto image = f.c().push_image("main/web/app", "v1", {"first layer", "second layer"});
    auto started = f.c().post("/v2/main/web/app/blobs/uploads/");
    REQUIRE(started->status == 202);

    SUBCASE("json: one document with every count and a reachable server")
    {
      auto st = run_cli(f.data, {"status", "-o", "json", "--server",
                                 "http://" + f.server->host_port()});
      REQUIRE_MESSAGE(st.exit_code == 0, st.err);
      auto j = nlohmann::json::parse(st.out);
      CHECK(j["data_dir_exists"] == true);
      CHECK(j["database"]["exists"] == true);
      CHECK(j["database"]["schema_version"] == j["database"]["supported_schema_version"]);
      CHECK(j["feeds"] == 2);
      CHECK(j["repositories"] == 1);
      CHECK(j["manifests"] == 1);
      CHECK(j["tags"] == 1);
      CHECK(j["blobs"] == 3); // config and two layers
      uint64_t bytes = image.config.data.size();
      for (const auto& layer : image.layers) {
        bytes += layer.data.size();
      }
      CHECK(j["blob_bytes"] == bytes);
      CHECK(j["blobs_in_database"] == 3); // all small, pushed whole
      CHECK(j["blob_bytes_in_database"] == bytes);
      CHECK(j["uploads_in_progress"] == 1);
      CHECK(j["server"]["reachable"] == true);
      CHECK(j["server"]["http_status"] == 200);
    }

    SUBCASE("table: every line fits 80 columns; an unreachable server still exits 0")
    {
      auto st = run_cli(f.data, {"status", "--server", "http://127.0.0.1:1"});
      REQUIRE_MESSAGE(st.exit_code == 0, st.err);
      CHECK(st.out.find("repositories") != std::string::npos);
      CHECK(st.out.find("unreachable") != std::string::npos);
      std::istringstream lines(st.out);
      for (std::string line; std::getline(lines, line);) {
        CHECK_MESSAGE(line.size() <= 80, line);
      }
      auto json = run_cli(f.data, {"status", "-o", "json", "--server", "127.0.0.1:1"});
      REQUIRE(json.exit_code == 0);
      CHECK(nlohmann::json::parse(json.out)["server"]["reachable"] == false);
    }

    SUBCASE("no server is probed unless asked")
    {
      auto st = run_cli(f.data, {"status", "-o", "json"});
      REQUIRE(st.exit_code == 0);
      CHECK(nlohmann::json::parse(st.out)["server"].is_null());
    }

    SUBCASE("a missing data directory is reported, not created")
    {
      auto missing = f.dir / "nowhere";
      auto st = run_cli(missing, {"status", "-o", "json"});
      REQUIRE_MESSAGE(st.exit_code == 0, st.err);
      auto j = nlohmann::json::parse(st.out);
      CHECK(j["data_dir_exists"] == false);
      CHECK(j["database"]["exists"] == false);
      CHECK(j["feeds"].is_null());
      CHECK(!std::filesystem::exists(missing));
    }
  }
}
