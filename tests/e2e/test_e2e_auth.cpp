// Users and HTTP Basic authentication against the real server.

#include "tests/e2e/fixture.hpp"

using namespace registry::test;

namespace {

httplib::Headers
basic(const std::string& user, const std::string& password)
{
  return {httplib::make_basic_authentication_header(user, password)};
}

} // namespace

TEST_SUITE("e2e")
{
  TEST_CASE("users and Basic authentication")
  {
    RegistryFixture f;
    auto& c = f.c();
    REQUIRE(run_cli(f.data, {"feed", "create", "private", "--anonymous", "none"}).exit_code == 0);
    // Open while no user exists: the local default.
    auto open_push = c.push_image("main/app", "v1", {"layer"});

    auto short_pw = run_cli(f.data, {"user", "add", "alice", "--password-stdin"}, "short\n");
    CHECK(short_pw.exit_code == 2);
    auto added = run_cli(f.data, {"user", "add", "alice", "--password-stdin"}, "correct horse\n");
    REQUIRE_MESSAGE(added.exit_code == 0, added.err);
    auto listed = run_cli(f.data, {"user", "list", "-o", "json"});
    CHECK(nlohmann::json::parse(listed.out)[0]["name"] == "alice");
    CHECK(listed.out.find("correct horse") == std::string::npos);
    auto reserved = run_cli(f.data, {"user", "add", "api"}, "password123\n");
    CHECK(reserved.exit_code == 2);

    SUBCASE("anonymous requests get 401 with a Basic challenge")
    {
      auto base = c.get("/v2/");
      expect_error(base, 401, "UNAUTHORIZED");
      CHECK(base->get_header_value("WWW-Authenticate") == "Basic realm=\"registryctl\"");
      expect_error(c.post("/v2/main/app/blobs/uploads/"), 401, "UNAUTHORIZED");
      expect_error(c.get("/v2/private/app/tags/list"), 401, "UNAUTHORIZED");
      expect_error(c.get("/v2/_catalog"), 401, "UNAUTHORIZED");
      expect_error(c.del("/v2/main/app/manifests/" + open_push.digest), 401, "UNAUTHORIZED");
    }

    SUBCASE("anonymous pull works where the feed allows it")
    {
      auto res = c.get("/v2/main/app/manifests/v1");
      REQUIRE(res);
      CHECK(res->status == 200);
      CHECK(c.get("/v2/main/app/blobs/" + open_push.layers[0].digest)->status == 200);
    }

    SUBCASE("valid credentials push and pull; wrong ones are refused")
    {
      auto good = basic("alice", "correct horse");
      CHECK(c.get("/v2/", good)->status == 200);
      Blob blob = make_blob("private layer");
      auto push = c.http().Post("/v2/private/app/blobs/uploads/?digest=" + blob.digest, good,
                                blob.data, "application/octet-stream");
      REQUIRE(push);
      CHECK(push->status == 201);
      CHECK(c.get("/v2/private/app/blobs/" + blob.digest, good)->status == 200);
      expect_error(c.get("/v2/private/app/blobs/" + blob.digest), 401, "UNAUTHORIZED");
      expect_error(c.get("/v2/", basic("alice", "wrong password")), 401, "UNAUTHORIZED");
      expect_error(c.get("/v2/", basic("mallory", "correct horse")), 401, "UNAUTHORIZED");
      expect_error(c.get("/v2/", {{"Authorization", "Basic !!!"}}), 401, "UNAUTHORIZED");
      // Changes made by the CLI apply to the running server at once.
      REQUIRE(run_cli(f.data, {"user", "disable", "alice"}).exit_code == 0);
      expect_error(c.get("/v2/", good), 401, "UNAUTHORIZED");
      REQUIRE(run_cli(f.data, {"user", "enable", "alice"}).exit_code == 0);
      CHECK(c.get("/v2/", good)->status == 200);
      REQUIRE(run_cli(f.data, {"user", "passwd", "alice"}, "battery staple\n").exit_code == 0);
      expect_error(c.get("/v2/", good), 401, "UNAUTHORIZED");
      CHECK(c.get("/v2/", basic("alice", "battery staple"))->status == 200);
    }

    SUBCASE("skopeo logs in with --dest-creds")
    {
      auto version = run_command("skopeo", {"--version"});
      REQUIRE(version.exit_code == 0);
      std::string layout = (f.dir / "pulled").string();
      std::string src = "docker://" + f.server->host_port() + "/main/app:v1";
      std::string dst = "docker://" + f.server->host_port() + "/private/copy:v1";
      auto anonymous = run_command("skopeo", {"--insecure-policy", "copy", "--preserve-digests",
                                              "--src-tls-verify=false", "--dest-tls-verify=false",
                                              src, dst}, 120);
      CHECK(anonymous.exit_code != 0);
      auto with_creds = run_command("skopeo", {"--insecure-policy", "copy", "--preserve-digests",
                                               "--src-tls-verify=false", "--dest-tls-verify=false",
                                               "--dest-creds", "alice:correct horse", src, dst}, 120);
      CHECK_MESSAGE(with_creds.exit_code == 0, with_creds.err);
      auto tags = run_cli(f.data, {"tag", "list", "private/copy", "-o", "json"});
      CHECK(nlohmann::json::parse(tags.out)[0]["digest"] == open_push.digest);
    }
  }
}
