// Users and HTTP Basic authentication against the real server.

#include "common/util/file.hpp"
#include "tests/e2e/fixture.hpp"

#include <chrono>
#include <thread>

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

TEST_SUITE("e2e")
{
  TEST_CASE("feed privileges and API keys")
  {
    RegistryFixture f;
    auto& c = f.c();
    REQUIRE(run_cli(f.data, {"feed", "create", "private", "--anonymous", "none"}).exit_code == 0);
    REQUIRE(run_cli(f.data, {"feed", "create", "secret", "--anonymous", "none"}).exit_code == 0);
    auto base = c.push_image("main/app", "v1", {"public layer"});
    auto hidden = c.push_image("secret/app", "v1", {"secret layer"});
    REQUIRE(run_cli(f.data, {"user", "add", "alice"}, "alice password\n").exit_code == 0);
    REQUIRE(run_cli(f.data, {"user", "add", "bob"}, "bob password\n").exit_code == 0);
    auto users = nlohmann::json::parse(run_cli(f.data, {"user", "list", "-o", "json"}).out);
    CHECK(users[0]["admin"] == true); // the first user is the admin
    CHECK(users[1]["admin"] == false);
    auto bob = basic("bob", "bob password");
    Blob blob = make_blob("bob's layer");
    auto push_as = [&](const httplib::Headers& who, const std::string& repo) {
      return c.http().Post("/v2/" + repo + "/blobs/uploads/?digest=" + blob.digest, who, blob.data,
                           "application/octet-stream");
    };

    SUBCASE("privileges decide, 403 DENIED when signed in without them")
    {
      expect_error(push_as(bob, "main/bob"), 403, "DENIED");
      CHECK(c.get("/v2/main/app/manifests/v1", bob)->status == 200); // anonymous pull feed
      expect_error(c.get("/v2/private/app/tags/list", bob), 403, "DENIED");
      REQUIRE(run_cli(f.data, {"privilege", "grant", "bob", "private", "push"}).exit_code == 0);
      auto pushed = push_as(bob, "private/app");
      REQUIRE(pushed);
      CHECK(pushed->status == 201);
      CHECK(c.head("/v2/private/app/blobs/" + blob.digest, bob)->status == 200); // push implies pull
      expect_error(c.http().Delete("/v2/private/app/blobs/" + blob.digest, bob), 403, "DENIED");
      REQUIRE(run_cli(f.data, {"privilege", "grant", "bob", "*", "delete"}).exit_code == 0);
      CHECK(c.http().Delete("/v2/private/app/blobs/" + blob.digest, bob)->status == 202);
      auto listed = nlohmann::json::parse(run_cli(f.data, {"privilege", "list", "bob", "-o", "json"}).out);
      CHECK(listed.size() == 2);
      REQUIRE(run_cli(f.data, {"privilege", "revoke", "bob", "private", "push"}).exit_code == 0);
      expect_error(push_as(bob, "private/app"), 403, "DENIED");
      CHECK(run_cli(f.data, {"privilege", "revoke", "bob", "private", "push"}).exit_code == 3);
      CHECK(run_cli(f.data, {"privilege", "grant", "bob", "private", "fly"}).exit_code == 2);
    }

    SUBCASE("the catalog and mounts respect privileges")
    {
      REQUIRE(run_cli(f.data, {"privilege", "grant", "bob", "private", "push"}).exit_code == 0);
      auto catalog = nlohmann::json::parse(c.get("/v2/_catalog", bob)->body)["repositories"];
      CHECK(catalog == nlohmann::json::array({"main/app"}));
      auto admin_view = nlohmann::json::parse(c.get("/v2/_catalog", basic("alice", "alice password"))->body);
      CHECK(admin_view["repositories"].size() == 2);
      // Without pull on the source the mount silently becomes an upload session.
      auto mount = c.http().Post("/v2/private/app/blobs/uploads/?mount=" + hidden.layers[0].digest
                                   + "&from=secret/app",
                                 bob, "", "application/octet-stream");
      REQUIRE(mount);
      CHECK(mount->status == 202);
      auto allowed = c.http().Post("/v2/private/app/blobs/uploads/?mount=" + base.layers[0].digest
                                     + "&from=main/app",
                                   bob, "", "application/octet-stream");
      REQUIRE(allowed);
      CHECK(allowed->status == 201);
    }

    SUBCASE("a key scoped to one feed cannot read, push to, mount from or list another")
    {
      auto created = run_cli(f.data, {"key", "create", "--feed", "private", "--privileges", "push", "-o", "json"});
      REQUIRE_MESSAGE(created.exit_code == 0, created.err);
      auto as_key = basic("api", nlohmann::json::parse(created.out)["key"].get<std::string>());
      REQUIRE(push_as(as_key, "private/ci")->status == 201);
      c.http().set_basic_auth("alice", "alice password");
      c.push_image("private/ci", "v1", {"ci layer"});
      c.http().set_basic_auth("", "");
      // Feed B ("secret"): every read and write is refused.
      expect_error(c.get("/v2/secret/app/manifests/v1", as_key), 403, "DENIED");
      expect_error(c.head("/v2/secret/app/blobs/" + hidden.layers[0].digest, as_key), 403, "DENIED", true);
      expect_error(c.get("/v2/secret/app/tags/list", as_key), 403, "DENIED");
      expect_error(c.get("/v2/secret/app/referrers/" + hidden.digest, as_key), 403, "DENIED");
      expect_error(push_as(as_key, "secret/app"), 403, "DENIED");
      expect_error(c.http().Put("/v2/secret/app/manifests/v2", as_key, hidden.manifest, k_oci_manifest),
                   403, "DENIED");
      expect_error(c.http().Delete("/v2/secret/app/manifests/" + hidden.digest, as_key), 403,
                   "DENIED");
      // Mounting from B into A opens an upload session instead: no hint that the blob exists.
      auto mount = c.http().Post("/v2/private/ci/blobs/uploads/?mount=" + hidden.layers[0].digest
                                   + "&from=secret/app",
                                 as_key, "", "application/octet-stream");
      REQUIRE(mount);
      CHECK(mount->status == 202);
      CHECK(c.head("/v2/private/ci/blobs/" + hidden.layers[0].digest, as_key)->status == 404);
      auto unknown = c.http().Post("/v2/private/ci/blobs/uploads/?mount=sha256:" + std::string(64, 'e')
                                     + "&from=secret/app",
                                   as_key, "", "application/octet-stream");
      REQUIRE(unknown);
      CHECK(unknown->status == mount->status);
      // The catalog shows feed A (and the anonymous feed), never feed B.
      auto catalog = nlohmann::json::parse(c.get("/v2/_catalog", as_key)->body)["repositories"];
      CHECK(catalog == nlohmann::json::array({"main/app", "private/ci"}));
      // Its own feed is open to it; an unknown feed answers like a forbidden one.
      CHECK(c.head("/v2/private/ci/blobs/" + blob.digest, as_key)->status == 200);
      expect_error(c.get("/v2/nosuchfeed/app/tags/list", as_key), 403, "DENIED");
    }

    SUBCASE("manage covers pull, push and delete on its feed only")
    {
      REQUIRE(run_cli(f.data, {"privilege", "grant", "bob", "private", "manage"}).exit_code == 0);
      REQUIRE(push_as(bob, "private/app")->status == 201);
      CHECK(c.head("/v2/private/app/blobs/" + blob.digest, bob)->status == 200);
      CHECK(c.http().Delete("/v2/private/app/blobs/" + blob.digest, bob)->status == 202);
      expect_error(push_as(bob, "secret/app"), 403, "DENIED");
    }

    SUBCASE("failed logins are logged without the password and slowed down per address")
    {
      auto wrong = basic("bob", "not bobs password");
      for (int i = 0; i < 5; ++i) {
        expect_error(c.get("/v2/", wrong), 401, "UNAUTHORIZED");
      }
      // The sixth failure starts a delay: even right credentials wait for it.
      expect_error(c.get("/v2/", wrong), 401, "UNAUTHORIZED");
      auto throttled = c.get("/v2/", bob);
      expect_error(throttled, 429, "TOOMANYREQUESTS");
      CHECK(throttled->get_header_value("Retry-After") == "1");
      auto token = c.http().Post("/auth/token", "grant_type=password&username=bob&password=bob+password",
                                 "application/x-www-form-urlencoded");
      REQUIRE(token);
      CHECK(token->status == 429);
      std::this_thread::sleep_for(std::chrono::milliseconds(1100));
      CHECK(c.get("/v2/", bob)->status == 200);
      // A success clears the record: the next failure is free again.
      expect_error(c.get("/v2/", wrong), 401, "UNAUTHORIZED");
      CHECK(c.get("/v2/", bob)->status == 200);
      std::string log = f.server->log();
      CHECK(log.find("login failed for user 'bob' from 127.0.0.1") != std::string::npos);
      CHECK(log.find("not bobs password") == std::string::npos);
      // The access log names the principal of each request.
      CHECK(log.find("GET /v2/ 200") != std::string::npos);
      CHECK(log.find(" 127.0.0.1 bob id=") != std::string::npos);
    }

    SUBCASE("API keys: feed-scoped and user keys, revocation")
    {
      auto created = run_cli(f.data, {"key", "create", "--feed", "private", "--privileges", "pull,push",
                                      "--description", "ci", "-o", "json"});
      REQUIRE_MESSAGE(created.exit_code == 0, created.err);
      auto key = nlohmann::json::parse(created.out);
      std::string secret = key["key"];
      auto as_key = basic("api", secret);
      CHECK(push_as(as_key, "private/ci")->status == 201);
      expect_error(push_as(as_key, "secret/ci"), 403, "DENIED");
      expect_error(c.http().Delete("/v2/private/ci/blobs/" + blob.digest, as_key), 403, "DENIED");
      // Only the hash is stored: the key appears nowhere in the database.
      auto db = registry::util::read_file(f.data / "registry.db");
      CHECK(db->find(secret) == std::string::npos);
      auto listing = run_cli(f.data, {"key", "list", "-o", "json"});
      auto keys = nlohmann::json::parse(listing.out);
      REQUIRE(keys.size() == 1);
      CHECK(keys[0]["last_used_at"] != "");
      CHECK(listing.out.find(secret) == std::string::npos);

      auto user_key = nlohmann::json::parse(
        run_cli(f.data, {"key", "create", "--user", "bob", "-o", "json"}).out)["key"].get<std::string>();
      CHECK(c.get("/v2/", basic("bob", user_key))->status == 200);
      CHECK(c.get("/v2/", basic("api", user_key))->status == 200);
      expect_error(c.get("/v2/", basic("alice", user_key)), 401, "UNAUTHORIZED");

      REQUIRE(run_cli(f.data, {"key", "revoke", key["prefix"]}).exit_code == 0);
      expect_error(push_as(as_key, "private/ci"), 401, "UNAUTHORIZED");
      CHECK(run_cli(f.data, {"key", "create", "--user", "bob", "--feed", "private"}).exit_code == 2);
    }
  }
}

TEST_SUITE("e2e")
{
  TEST_CASE("Docker token auth")
  {
    RegistryFixture f({"--token-auth"});
    auto& c = f.c();
    REQUIRE(run_cli(f.data, {"feed", "create", "private", "--anonymous", "none"}).exit_code == 0);
    REQUIRE(run_cli(f.data, {"user", "add", "alice"}, "alice password\n").exit_code == 0);
    REQUIRE(run_cli(f.data, {"user", "add", "bob"}, "bob password\n").exit_code == 0);
    REQUIRE(run_cli(f.data, {"privilege", "grant", "bob", "private", "pull"}).exit_code == 0);

    auto challenge = c.post("/v2/private/app/blobs/uploads/");
    expect_error(challenge, 401, "UNAUTHORIZED");
    std::string header = challenge->get_header_value("WWW-Authenticate");
    CHECK(header.find("Bearer realm=\"http://127.0.0.1:") == 0);
    CHECK(header.find("/auth/token\",service=\"registryctl\",scope=\"repository:private/app:pull,push\"")
          != std::string::npos);

    auto get_token = [&](const std::string& user, const std::string& password, const std::string& scope) {
      auto res = c.http().Get("/auth/token?service=registryctl&scope=" + scope,
                              {httplib::make_basic_authentication_header(user, password)});
      REQUIRE(res);
      REQUIRE_MESSAGE(res->status == 200, res->body);
      auto doc = nlohmann::json::parse(res->body);
      CHECK(doc["expires_in"] == 300);
      return doc["token"].get<std::string>();
    };
    auto bearer = [](const std::string& token) {
      return httplib::Headers{{"Authorization", "Bearer " + token}};
    };

    SUBCASE("a token grants only what the principal holds")
    {
      std::string alice = get_token("alice", "alice password", "repository:private/app:pull,push");
      Blob blob = make_blob("via token");
      auto push = c.http().Post("/v2/private/app/blobs/uploads/?digest=" + blob.digest, bearer(alice),
                                blob.data, "application/octet-stream");
      REQUIRE(push);
      CHECK(push->status == 201);
      std::string bob = get_token("bob", "bob password", "repository:private/app:pull,push");
      CHECK(c.head("/v2/private/app/blobs/" + blob.digest, bearer(bob))->status == 200);
      auto denied = c.http().Post("/v2/private/app/blobs/uploads/", bearer(bob), "", "application/octet-stream");
      expect_error(denied, 401, "UNAUTHORIZED");
      CHECK(denied->get_header_value("WWW-Authenticate").find("error=\"insufficient_scope\"") != std::string::npos);
      // A token for one repository does not open another.
      expect_error(c.head("/v2/private/other/blobs/" + blob.digest, bearer(bob)), 401, "UNAUTHORIZED", true);
      // Tampered and foreign tokens are refused.
      std::string tampered = bob;
      tampered[tampered.size() / 2] = tampered[tampered.size() / 2] == 'A' ? 'B' : 'A';
      expect_error(c.get("/v2/private/app/tags/list", bearer(tampered)), 401, "UNAUTHORIZED");
      auto wrong = c.http().Get("/auth/token?service=registryctl&scope=repository:private/app:pull",
                                {httplib::make_basic_authentication_header("bob", "nope")});
      REQUIRE(wrong);
      CHECK(wrong->status == 401);
    }

    SUBCASE("tokens for another service, expired or without the scope are refused")
    {
      auto foreign = c.http().Get("/auth/token?service=elsewhere&scope=repository:private/app:pull",
                                  {httplib::make_basic_authentication_header("bob", "bob password")});
      REQUIRE(foreign);
      REQUIRE(foreign->status == 200);
      std::string other_service = nlohmann::json::parse(foreign->body)["token"];
      auto refused = c.get("/v2/private/app/tags/list", bearer(other_service));
      expect_error(refused, 401, "UNAUTHORIZED");
      CHECK(refused->get_header_value("WWW-Authenticate").find("error=\"invalid_token\"") != std::string::npos);
      // A token asked for a scope the user lacks carries no access for it.
      std::string scopeless = get_token("bob", "bob password", "repository:main/app:push");
      expect_error(c.http().Post("/v2/main/app/blobs/uploads/", bearer(scopeless), "", "application/octet-stream"),
                   401, "UNAUTHORIZED");
      expect_error(c.get("/v2/_catalog", bearer(scopeless)), 401, "UNAUTHORIZED");
      // Anonymous tokens carry only what anonymous access allows.
      auto anonymous = c.http().Get("/auth/token?service=registryctl&scope=repository:private/app:pull");
      REQUIRE(anonymous);
      REQUIRE(anonymous->status == 200);
      std::string anon = nlohmann::json::parse(anonymous->body)["token"];
      expect_error(c.get("/v2/private/app/tags/list", bearer(anon)), 401, "UNAUTHORIZED");
      // Garbage is not a token.
      expect_error(c.get("/v2/private/app/tags/list", bearer("not.a.token")), 401, "UNAUTHORIZED");
      expect_error(c.get("/v2/private/app/tags/list", bearer("")), 401, "UNAUTHORIZED");
    }

    SUBCASE("OAuth2 password and refresh_token grants")
    {
      auto res = c.http().Post("/auth/token",
                               "grant_type=password&username=alice&password=alice+password&service=registryctl"
                               "&scope=repository%3Aprivate%2Fapp%3Apull&access_type=offline&client_id=test",
                               "application/x-www-form-urlencoded");
      REQUIRE(res);
      REQUIRE_MESSAGE(res->status == 200, res->body);
      auto doc = nlohmann::json::parse(res->body);
      std::string refresh = doc["refresh_token"];
      auto again = c.http().Post("/auth/token",
                                 "grant_type=refresh_token&refresh_token=" + refresh
                                   + "&service=registryctl&scope=repository%3Aprivate%2Fapp%3Apull",
                                 "application/x-www-form-urlencoded");
      REQUIRE(again);
      CHECK(again->status == 200);
      std::string token = nlohmann::json::parse(again->body)["access_token"];
      CHECK(c.get("/v2/private/app/tags/list", bearer(token))->status != 401);
      // A refresh token is not an access token.
      expect_error(c.get("/v2/private/app/tags/list", bearer(refresh)), 401, "UNAUTHORIZED");
    }

    SUBCASE("skopeo follows the token flow")
    {
      Blob config = make_blob("{}", k_oci_config);
      std::string src = "docker://" + f.server->host_port() + "/private/app:v1";
      auto alice = get_token("alice", "alice password", "repository:private/app:pull,push");
      auto pushed = c.http().Post("/v2/private/app/blobs/uploads/?digest=" + config.digest, bearer(alice),
                                  config.data, "application/octet-stream");
      REQUIRE(pushed->status == 201);
      auto manifest = image_manifest(config, {});
      auto put = c.http().Put("/v2/private/app/manifests/v1", bearer(alice), manifest, k_oci_manifest);
      REQUIRE(put->status == 201);
      auto inspect = run_command("skopeo", {"--insecure-policy", "inspect", "--raw", "--tls-verify=false",
                                            "--creds", "bob:bob password", src});
      CHECK_MESSAGE(inspect.exit_code == 0, inspect.err);
      CHECK(inspect.out == manifest);
      auto copy = run_command("skopeo", {"--insecure-policy", "copy", "--preserve-digests",
                                         "--src-tls-verify=false", "--dest-tls-verify=false",
                                         "--src-creds", "alice:alice password", "--dest-creds",
                                         "alice:alice password", src,
                                         "docker://" + f.server->host_port() + "/private/copy:v1"});
      CHECK_MESSAGE(copy.exit_code == 0, copy.err);
      auto refused = run_command("skopeo", {"--insecure-policy", "copy", "--src-tls-verify=false",
                                            "--dest-tls-verify=false", "--src-creds", "bob:bob password",
                                            "--dest-creds", "bob:bob password", src,
                                            "docker://" + f.server->host_port() + "/private/bob:v1"});
      CHECK(refused.exit_code != 0);
    }
  }
}

TEST_SUITE("e2e")
{
  TEST_CASE("Docker tokens expire after --token-lifetime")
  {
    RegistryFixture f({"--token-auth", "--token-lifetime", "1s"});
    auto& c = f.c();
    REQUIRE(run_cli(f.data, {"user", "add", "alice"}, "alice password\n").exit_code == 0);
    auto res = c.http().Get("/auth/token?service=registryctl&scope=repository:main/app:pull",
                            {httplib::make_basic_authentication_header("alice", "alice password")});
    REQUIRE(res);
    REQUIRE(res->status == 200);
    auto doc = nlohmann::json::parse(res->body);
    CHECK(doc["expires_in"] == 1);
    httplib::Headers bearer{{"Authorization", "Bearer " + doc["token"].get<std::string>()}};
    CHECK(c.get("/v2/main/app/tags/list", bearer)->status == 404); // valid: the repository is empty
    std::this_thread::sleep_for(std::chrono::milliseconds(2100));
    auto expired = c.get("/v2/main/app/tags/list", bearer);
    expect_error(expired, 401, "UNAUTHORIZED");
    CHECK(expired->get_header_value("WWW-Authenticate").find("error=\"invalid_token\"") != std::string::npos);
    CHECK(run_cli(f.data, {"serve", "--token-lifetime", "0s"}).exit_code == 2);
  }
}
