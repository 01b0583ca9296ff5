// Named stores: `registryctl store ...` and feeds whose blobs live outside the
// data directory, with a server running over them.

#include "tests/e2e/fixture.hpp"

#include <fstream>

using namespace registry::test;
namespace fs = std::filesystem;

namespace {

nlohmann::json
json_of(const CommandResult& result)
{
  INFO(result.err);
  REQUIRE(result.exit_code == 0);
  return nlohmann::json::parse(result.out);
}

} // namespace

TEST_SUITE("e2e")
{
  TEST_CASE("stores: a feed on its own filesystem store, from creation to deletion")
  {
    RegistryFixture f({"--small-blob-limit", "0"}); // the test looks for the layer's file
    const fs::path big = f.dir / "big-disk" / "registry";

    auto listed = json_of(run_cli(f.data, {"-o", "json", "store", "list"}));
    REQUIRE(listed.size() == 1);
    CHECK(listed[0]["name"] == "default");
    CHECK(listed[0]["type"] == "filesystem");

    auto added = run_cli(f.data, {"store", "add", "big", "--type", "filesystem", "--path", big.string()});
    REQUIRE_MESSAGE(added.exit_code == 0, added.err);
    CHECK(added.out == "store big (filesystem) at " + big.string() + "\n");
    CHECK(fs::is_directory(big / "blobs"));
    CHECK(run_cli(f.data, {"store", "check", "big"}).out == "store big: ok\n");
    auto shown = json_of(run_cli(f.data, {"-o", "json", "store", "show", "big"}));
    CHECK(shown["settings"]["path"] == big.string());
    CHECK(shown["secrets"].empty());

    // The server, started before the store existed, opens it on first use.
    auto created = run_cli(f.data, {"feed", "create", "archive", "--store", "big"});
    REQUIRE_MESSAGE(created.exit_code == 0, created.err);
    CHECK(created.out.find(" big ") != std::string::npos);
    auto image = f.c().push_image("archive/app", "v1", {"a layer kept on the big disk"});
    const auto& layer = image.layers[0];
    auto pulled = f.c().get("/v2/archive/app/blobs/" + layer.digest);
    REQUIRE(pulled);
    CHECK(pulled->status == 200);
    CHECK(pulled->body == layer.data);
    std::string hex = layer.digest.substr(7);
    CHECK(fs::is_regular_file(big / "blobs" / "sha256" / hex.substr(0, 2) / hex));
    CHECK_FALSE(fs::exists(f.data / "store" / "blobs" / "sha256" / hex.substr(0, 2) / hex));
    // Feeds on different stores share nothing: mounting from another store's
    // feed uploads instead (202).
    auto mount = f.c().post("/v2/main/app/blobs/uploads/?mount=" + layer.digest + "&from=archive/app");
    REQUIRE(mount);
    CHECK(mount->status == 202);

    // A store in use cannot go; an emptied one can.
    auto busy = run_cli(f.data, {"store", "delete", "big"});
    CHECK(busy.exit_code == 4);
    CHECK(busy.err == "registryctl: error: store 'big' holds feeds: archive; delete them first\n");
    REQUIRE(run_cli(f.data, {"feed", "delete", "archive"}).exit_code == 0);
    auto blobs_left = run_cli(f.data, {"store", "delete", "big"});
    CHECK(blobs_left.exit_code == 4);
    CHECK(blobs_left.err.find("run 'registryctl gc' first") != std::string::npos);
    REQUIRE(run_cli(f.data, {"gc", "--grace", "0"}).exit_code == 0);
    CHECK_FALSE(fs::exists(big / "blobs" / "sha256" / hex.substr(0, 2) / hex));
    auto deleted = run_cli(f.data, {"store", "delete", "big"});
    CHECK_MESSAGE(deleted.exit_code == 0, deleted.err);
    CHECK(json_of(run_cli(f.data, {"-o", "json", "store", "list"})).size() == 1);
    CHECK(run_cli(f.data, {"store", "delete", "default"}).exit_code == 4);
    CHECK(run_cli(f.data, {"store", "show", "big"}).exit_code == 3);
  }

  TEST_CASE("stores: bad settings are refused with one line")
  {
    TestDir dir;
    const fs::path data = dir / "data";
    struct Bad {
      std::vector<std::string> args;
      int exit_code;
      std::string message;
    };
    for (const auto& bad : std::vector<Bad>{
           {{"store", "add", "rel", "--type", "filesystem", "--path", "relative/dir"}, 2,
            "registryctl: error: a filesystem store's path must be absolute: 'relative/dir'\n"},
           {{"store", "add", "x", "--type", "filesystem", "--bucket", "b"}, 2,
            "registryctl: error: a filesystem store has no setting 'bucket'\n"},
           {{"store", "add", "Bad/Name", "--type", "filesystem"}, 2, ""},
           {{"store", "add", "x", "--type", "ftp"}, 2, ""},
           {{"store", "add", "default", "--type", "filesystem"}, 4,
            "registryctl: error: store 'default' already exists\n"},
           {{"feed", "create", "f", "--store", "nope"}, 3,
            "registryctl: error: store 'nope' does not exist\n"},
         }) {
      INFO(bad.args[2]);
      auto result = run_cli(data, bad.args);
      CHECK(result.exit_code == bad.exit_code);
      if (!bad.message.empty()) {
        CHECK(result.err == bad.message);
      }
    }
    CHECK(json_of(run_cli(data, {"-o", "json", "store", "list"})).size() == 1);

    // Store tables in the config file hold secrets only.
    std::ofstream(dir / "bad.toml") << "[stores.big]\nbucket = \"b\"\n";
    auto config = run_cli(data, {"--config", (dir / "bad.toml").string(), "store", "list"});
    CHECK(config.exit_code == 2);
    CHECK(config.err.find("unknown key 'stores.big.bucket'") != std::string::npos);
  }
}
