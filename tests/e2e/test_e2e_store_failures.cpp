// Feeds whose object store breaks: a store that becomes unreachable in the middle
// of an upload (a relay in front of it is cut), and a store whose secret is
// wrong. Clients get the spec's error JSON with a status they can act on, never
// a 500, never the store's endpoint; nothing in the metadata points at bytes
// that are not there, and pushes work again once the store is back.

#include "tests/e2e/fixture.hpp"
#include "tests/support/object_stores.hpp"
#include "tests/support/radosgw.hpp"
#include "tests/support/tcp_relay.hpp"

#include <cstdlib>
#include <functional>

using namespace registry::test;

namespace {

// The port of an http://127.0.0.1:PORT[/...] URL.
int
port_of(const std::string& url)
{
  auto colon = url.find(':', url.find("://") + 3);
  REQUIRE(colon != std::string::npos);
  return std::stoi(url.substr(colon + 1));
}

// The client must not learn where the store is.
void
check_hides_store(const httplib::Result& res)
{
  REQUIRE(res);
  CHECK_MESSAGE(res->body.find("127.0.0.1") == std::string::npos, res->body);
}

// The answer while the store is away: 503 UNAVAILABLE, to be retried.
void
expect_unavailable(const httplib::Result& res)
{
  expect_error(res, 503, "UNAVAILABLE");
  CHECK(res->get_header_value("Retry-After") == "10");
  check_hides_store(res);
}

// `store_args(port)` gives the `store add` arguments for the store server (or a
// relay) on loopback `port`; `store_port` is where the real server listens. The
// caller has put the secrets of stores "flaky" (right) and "badkey" (wrong) in
// the environment before this starts the registry.
void
check_broken_stores(const std::function<std::vector<std::string>(int)>& store_args, int store_port)
{
  TcpRelay relay(store_port);
  RegistryFixture f;
  auto add = [&](const std::string& name, int port, std::vector<std::string> extra) {
    std::vector<std::string> args = {"store", "add", name};
    auto settings = store_args(port);
    args.insert(args.end(), settings.begin(), settings.end());
    args.insert(args.end(), extra.begin(), extra.end());
    return run_cli(f.data, args);
  };
  // --proxy: blob GETs go through the server, so they meet the broken store too.
  auto flaky = add("flaky", relay.port(), {"--prefix", "flaky", "--proxy"});
  REQUIRE_MESSAGE(flaky.exit_code == 0, flaky.err);
  REQUIRE(run_cli(f.data, {"feed", "create", "flaky", "--store", "flaky"}).exit_code == 0);

  SUBCASE("a wrong secret refuses pushes with 403 DENIED, never a 5xx")
  {
    auto badkey = add("badkey", store_port, {"--prefix", "badkey", "--no-check"});
    REQUIRE_MESSAGE(badkey.exit_code == 0, badkey.err);
    REQUIRE(run_cli(f.data, {"feed", "create", "badkey", "--store", "badkey"}).exit_code == 0);
    // The store is first reached by the upload's first bytes past the small-
    // blob limit (smaller ones wait in the upload's row).
    auto started = f.c().post("/v2/badkey/app/blobs/uploads/");
    REQUIRE(started);
    REQUIRE(started->status == 202);
    auto patched = f.c().patch(started->get_header_value("Location"), random_bytes(100000, 6),
                               {{"Content-Range", "0-99999"}});
    expect_error(patched, 403, "DENIED");
    CHECK(patched->body.find("registryctl store check") != std::string::npos);
    check_hides_store(patched);
    Blob blob = make_blob(random_bytes(1 << 20, 7));
    auto monolithic = f.c().post("/v2/badkey/app/blobs/uploads/?digest=" + blob.digest, blob.data);
    expect_error(monolithic, 403, "DENIED");
    check_hides_store(monolithic);
    auto head = f.c().head("/v2/badkey/app/blobs/" + blob.digest);
    REQUIRE(head);
    CHECK(head->status == 404);
    // The administrator's view names the cause.
    auto checked = run_cli(f.data, {"store", "check", "badkey"});
    CHECK(checked.exit_code == 1);
    CHECK_MESSAGE(checked.err.find("authentication") != std::string::npos, checked.err);
  }

  SUBCASE("the store going away mid-upload: 503, nothing recorded, pushes work when it is back")
  {
    // 24 MiB: the first 20 MiB PATCH sends a whole multipart part or blocks.
    Blob layer = make_blob(random_bytes(24 << 20, 11));
    auto post = f.c().post("/v2/flaky/app/blobs/uploads/");
    REQUIRE(post);
    REQUIRE(post->status == 202);
    std::string location = post->get_header_value("Location");
    auto first = f.c().patch(location, layer.data.substr(0, 20 << 20),
                             {{"Content-Range", "0-" + std::to_string((20 << 20) - 1)}});
    REQUIRE(first);
    REQUIRE_MESSAGE(first->status == 202, first->body);
    location = first->get_header_value("Location");

    relay.cut();
    auto second = f.c().patch(location, layer.data.substr(20 << 20),
                              {{"Content-Range", std::to_string(20 << 20) + "-"
                                                   + std::to_string(layer.data.size() - 1)}});
    expect_unavailable(second);
    std::string separator = location.find('?') == std::string::npos ? "?" : "&";
    auto commit = f.c().put(location + separator + "digest=" + layer.digest, "");
    expect_unavailable(commit);
    auto head = f.c().head("/v2/flaky/app/blobs/" + layer.digest);
    REQUIRE(head);
    CHECK(head->status == 404);

    relay.restore();
    // The broken upload cannot be trusted to resume: its bytes may have run
    // ahead of the hash state saved with it. The client is told to start again
    // (400), or it resumes and completes with the right digest; never a 5xx.
    auto status = f.c().get(location);
    REQUIRE(status);
    INFO("upload status after the outage: ", status->status, " ", status->body);
    CHECK((status->status == 204 || status->status == 400));
    if (status->status == 204) {
      // Resumes from the offset the registry reports and completes.
      std::string range = status->get_header_value("Range");
      REQUIRE(range.rfind("0-", 0) == 0);
      size_t offset = std::stoul(range.substr(2)) + 1;
      REQUIRE(offset <= layer.data.size());
      auto rest = f.c().patch(location, layer.data.substr(offset),
                              {{"Content-Range", std::to_string(offset) + "-"
                                                   + std::to_string(layer.data.size() - 1)}});
      REQUIRE(rest);
      REQUIRE_MESSAGE(rest->status == 202, rest->body);
      auto resumed = f.c().put(rest->get_header_value("Location") + separator + "digest=" + layer.digest, "");
      REQUIRE(resumed);
      CHECK_MESSAGE(resumed->status == 201, resumed->body);
    }
    // Nothing in the metadata names missing bytes.
    auto fsck = run_cli(f.data, {"fsck"});
    CHECK_MESSAGE(fsck.exit_code == 0, fsck.out, fsck.err);
    CHECK(fsck.out.find("dangling") == std::string::npos);

    // The client's retry: a new upload of the same layer.
    f.c().push_blob("flaky/app", layer);
    auto pulled = f.c().get("/v2/flaky/app/blobs/" + layer.digest);
    REQUIRE(pulled);
    CHECK(pulled->status == 200);
    CHECK((pulled->body == layer.data));

    // Pulls of a stored blob while the store is away: 503, HEAD still answers.
    relay.cut();
    auto away = f.c().get("/v2/flaky/app/blobs/" + layer.digest);
    expect_unavailable(away);
    auto still = f.c().head("/v2/flaky/app/blobs/" + layer.digest);
    REQUIRE(still);
    CHECK(still->status == 200);
    relay.restore();
    auto back = f.c().get("/v2/flaky/app/blobs/" + layer.digest);
    REQUIRE(back);
    CHECK(back->status == 200);
    CHECK(back->body.size() == layer.data.size());
  }
}

} // namespace

TEST_SUITE("e2e")
{
  // Run by ctest's e2e-s3 test; radosgw starts on first use.
  TEST_CASE("object stores (s3): a store that is unreachable or refuses the secret")
  {
    const auto& s3 = radosgw();
    ::setenv("REGISTRYCTL_STORE_FLAKY_ACCESS_KEY_ID", s3.access_key_id.c_str(), 1);
    ::setenv("REGISTRYCTL_STORE_FLAKY_SECRET_ACCESS_KEY", s3.secret_access_key.c_str(), 1);
    ::setenv("REGISTRYCTL_STORE_BADKEY_ACCESS_KEY_ID", s3.access_key_id.c_str(), 1);
    ::setenv("REGISTRYCTL_STORE_BADKEY_SECRET_ACCESS_KEY", "not the secret", 1);
    check_broken_stores(
      [&](int port) {
        return std::vector<std::string>{"--type",   "s3",      "--endpoint",   "http://127.0.0.1:" + std::to_string(port),
                                        "--region", s3.region, "--bucket",     s3.bucket,
                                        "--addressing", "path"};
      },
      port_of(s3.endpoint));
  }

  // Run by ctest's e2e-azure test, inside tests/support/azurite/run-with-azurite.sh.
  TEST_CASE("object stores (azure): a store that is unreachable or refuses the secret")
  {
    const char* endpoint = azurite_endpoint();
    REQUIRE_MESSAGE(endpoint != nullptr, "run this case through tests/support/azurite/run-with-azurite.sh");
    const std::string container = "broken" + std::to_string(std::rand() % 100000);
    create_azurite_container(container);
    ::setenv("REGISTRYCTL_STORE_FLAKY_ACCOUNT_KEY", k_azurite_key, 1);
    ::setenv("REGISTRYCTL_STORE_BADKEY_ACCOUNT_KEY", "d3Jvbmcga2V5", 1);
    check_broken_stores(
      [&](int port) {
        return std::vector<std::string>{"--type", "azure", "--endpoint",
                                        "http://127.0.0.1:" + std::to_string(port) + "/" + k_azurite_account,
                                        "--account", k_azurite_account, "--container", container};
      },
      port_of(endpoint));
  }
}
