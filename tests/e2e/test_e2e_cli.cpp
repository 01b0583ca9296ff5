// The admin CLI against a data directory a running server shares.

#include "tests/e2e/fixture.hpp"

using namespace registry::test;

TEST_SUITE("e2e")
{
  TEST_CASE("cli: feed, tag, digest and image commands")
  {
    RegistryFixture f;
    auto image = f.c().push_image("main/web/app", "v1", {"first layer", "second layer"});
    auto v2 = f.c().put_manifest("main/web/app", "v2", image.manifest, k_oci_manifest);
    REQUIRE(v2->status == 201);

    SUBCASE("--quiet prints only what a script needs")
    {
      CHECK(run_cli(f.data, {"-q", "feed", "list"}).out == "main\nother\n");
      CHECK(run_cli(f.data, {"-q", "repo", "list", "main"}).out == "main/web/app\n");
      CHECK(run_cli(f.data, {"-q", "tag", "list", "main/web/app"}).out == "v1\nv2\n");
      CHECK(run_cli(f.data, {"--quiet", "digest", "show", "main/web/app:v1"}).out == image.digest + "\n");
      auto key = run_cli(f.data, {"-q", "key", "create", "--feed", "main", "--privileges", "pull"});
      CHECK(key.out.rfind("rk_", 0) == 0);
      CHECK(key.out.find('\n') == key.out.size() - 1);
      CHECK(run_cli(f.data, {"-q", "repo", "list", "other"}).out.empty());
      // JSON wins over --quiet.
      CHECK(nlohmann::json::parse(run_cli(f.data, {"-q", "-o", "json", "feed", "list"}).out).size() == 2);
      CHECK(run_cli(f.data, {"-q", "image", "delete", "main/web/app:v2"}).out == image.digest + "\n");
    }

    SUBCASE("tables fit 80 columns; digests are shortened there only")
    {
      auto fits = [](const std::string& out) {
        size_t start = 0;
        while (start < out.size()) {
          size_t end = out.find('\n', start);
          std::string line = out.substr(start, end - start);
          if (line.size() > 80 && line.rfind("Digest:", 0) != 0) {
            return false;
          }
          start = end == std::string::npos ? out.size() : end + 1;
        }
        return true;
      };
      auto tags = run_cli(f.data, {"tag", "list", "main/web/app"});
      CHECK(fits(tags.out));
      CHECK(tags.out.find(image.digest.substr(0, 19) + " ") != std::string::npos);
      CHECK(tags.out.find(image.digest) == std::string::npos);
      auto shown = run_cli(f.data, {"digest", "show", "main/web/app:v1"});
      CHECK(fits(shown.out));
      CHECK(shown.out.find("Digest:     " + image.digest) != std::string::npos); // whole, to copy
      CHECK(run_cli(f.data, {"events"}).out.find("main/web/app@" + image.digest.substr(7, 12) + " ") != std::string::npos);
      CHECK(fits(run_cli(f.data, {"repo", "list", "main"}).out));
    }

    SUBCASE("feed commands")
    {
      auto list = run_cli(f.data, {"feed", "list", "-o", "json"});
      CHECK(list.exit_code == 0);
      auto feeds = nlohmann::json::parse(list.out);
      REQUIRE(feeds.size() == 2);
      CHECK(feeds[0]["name"] == "main");
      auto dup = run_cli(f.data, {"feed", "create", "main"});
      CHECK(dup.exit_code == 4);
      CHECK(dup.err.find("already exists") != std::string::npos);
      auto bad = run_cli(f.data, {"feed", "create", "v2"});
      CHECK(bad.exit_code == 2);
      auto upd = run_cli(f.data, {"feed", "update", "main", "--anonymous", "none", "-o", "json"});
      CHECK(upd.exit_code == 0);
      CHECK(nlohmann::json::parse(upd.out)["anonymous"] == "none");
      auto missing = run_cli(f.data, {"feed", "show", "nope"});
      CHECK(missing.exit_code == 3);
      CHECK(missing.err == "registryctl: error: feed 'nope' does not exist\n");
    }

    SUBCASE("repo list and tag list")
    {
      auto repos = run_cli(f.data, {"repo", "list", "main", "-o", "json"});
      CHECK(repos.exit_code == 0);
      auto j = nlohmann::json::parse(repos.out);
      REQUIRE(j.size() == 1);
      CHECK(j[0]["name"] == "main/web/app");
      CHECK(j[0]["tags"] == 2);
      auto tags = run_cli(f.data, {"tag", "list", "main/web/app"});
      CHECK(tags.exit_code == 0);
      CHECK(tags.out.find("v1") != std::string::npos);
      CHECK(tags.out.find(image.digest.substr(0, 19)) != std::string::npos);
      auto unknown = run_cli(f.data, {"tag", "list", "main/none"});
      CHECK(unknown.exit_code == 3);
    }

    SUBCASE("digest show by tag and by digest")
    {
      auto by_tag = run_cli(f.data, {"digest", "show", "main/web/app:v1", "-o", "json"});
      REQUIRE(by_tag.exit_code == 0);
      auto j = nlohmann::json::parse(by_tag.out);
      CHECK(j["digest"] == image.digest);
      CHECK(j["mediaType"] == k_oci_manifest);
      CHECK(j["layers"].size() == 2);
      CHECK(j["tags"] == nlohmann::json::array({"v1", "v2"}));
      auto by_digest = run_cli(f.data, {"digest", "show", "main/web/app@" + image.digest});
      CHECK(by_digest.exit_code == 0);
      CHECK(by_digest.out.find("layer 2") != std::string::npos);
      auto bad = run_cli(f.data, {"digest", "show", "main/web/app@sha256:xyz"});
      CHECK(bad.exit_code == 2);
    }

    SUBCASE("image delete by tag removes every tag and the server sees it")
    {
      auto del = run_cli(f.data, {"image", "delete", "main/web/app:v1", "-o", "json"});
      REQUIRE(del.exit_code == 0);
      auto j = nlohmann::json::parse(del.out);
      CHECK(j["digest"] == image.digest);
      CHECK(j["removed_tags"] == nlohmann::json::array({"v1", "v2"}));
      expect_error(f.c().get("/v2/main/web/app/manifests/v2"), 404, "MANIFEST_UNKNOWN");
      auto again = run_cli(f.data, {"image", "delete", "main/web/app@" + image.digest});
      CHECK(again.exit_code == 3);
    }

    SUBCASE("usage errors exit 2 with one line")
    {
      auto none = run_cli(f.data, {});
      CHECK(none.exit_code == 2);
      auto unknown = run_cli(f.data, {"frobnicate"});
      CHECK(unknown.exit_code == 2);
      auto version = run_command(registryctl_bin(), {"--version"});
      CHECK(version.exit_code == 0);
      CHECK(version.out.rfind("registryctl ", 0) == 0);
    }
  }
}
