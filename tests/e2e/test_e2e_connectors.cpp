// Connectors: a feed caching another registryctl (token auth, a user) on
// loopback. The upstream's access log counts what reached it.

#include "tests/e2e/fixture.hpp"

#include "common/util/base64.hpp"
#include "common/util/hasher.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <thread>

using namespace registry::test;

namespace {

// A server writes its access-log line after the response went out: give the
// last lines a moment before reading the log.
std::string
settled_log(ServerProcess& server)
{
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  return server.log();
}

size_t
count(const std::string& text, const std::string& needle)
{
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
    ++n;
  }
  return n;
}

} // namespace

TEST_SUITE("e2e")
{
  TEST_CASE("connectors: pull-through caching of an upstream registry")
  {
    RegistryFixture upstream({"--token-auth"});
    REQUIRE(run_cli(upstream.data, {"user", "add", "mirror"}, "mirror password\n").exit_code == 0);
    REQUIRE(run_cli(upstream.data, {"feed", "update", "main", "--anonymous", "none"}).exit_code == 0);
    upstream.c().http().set_basic_auth("mirror", "mirror password");
    auto image = upstream.c().push_image("main/tools/app", "v1", {"layer a", "layer b"});
    auto big = upstream.c().push_image("main/tools/big", "v1", {std::string(4 << 20, 'x')});
    upstream.c().http().set_basic_auth("", "");
    std::string up = "http://" + upstream.server->host_port();

    RegistryFixture down;
    auto& c = down.c();
    REQUIRE(run_cli(down.data, {"feed", "create", "hub"}).exit_code == 0);
    auto added = run_cli(down.data, {"connector", "add", "hub", up, "--username", "mirror", "--password-stdin"},
                         "mirror password\n");
    REQUIRE_MESSAGE(added.exit_code == 0, added.err);
    auto listed = nlohmann::json::parse(run_cli(down.data, {"connector", "list", "-o", "json"}).out);
    REQUIRE(listed.size() == 1);
    CHECK(listed[0]["url"] == up);
    CHECK(listed[0].dump().find("mirror password") == std::string::npos);
    CHECK(run_cli(down.data, {"connector", "add", "hub", "ftp://example"}).exit_code == 2);
    CHECK(run_cli(down.data, {"connector", "add", "hub", up}).exit_code == 4);
    CHECK(run_cli(down.data, {"connector", "add", "nosuch", up}).exit_code == 3);

    // First pull: fetched from upstream, served, cached.
    auto manifest = c.get("/v2/hub/main/tools/app/manifests/v1");
    REQUIRE(manifest);
    REQUIRE_MESSAGE(manifest->status == 200, manifest->body);
    CHECK(manifest->body == image.manifest);
    CHECK(manifest->get_header_value("Docker-Content-Digest") == image.digest);
    std::vector<Blob> blobs = image.layers;
    blobs.push_back(image.config);
    for (const auto& blob : blobs) {
      auto got = c.get("/v2/hub/main/tools/app/blobs/" + blob.digest);
      REQUIRE(got);
      CHECK(got->status == 200);
      CHECK(got->body == blob.data);
    }
    std::string log = settled_log(*upstream.server);
    CHECK(count(log, "GET /v2/main/tools/app/manifests/v1 200") == 1);
    for (const auto& blob : blobs) {
      CHECK(count(log, "GET /v2/main/tools/app/blobs/" + blob.digest + " 200") == 1);
    }
    // Second pull: served locally, upstream sees nothing new.
    CHECK(c.get("/v2/hub/main/tools/app/manifests/" + image.digest)->status == 200);
    for (const auto& blob : blobs) {
      CHECK(c.head("/v2/hub/main/tools/app/blobs/" + blob.digest)->status == 200);
      CHECK(c.get("/v2/hub/main/tools/app/blobs/" + blob.digest)->body == blob.data);
    }
    CHECK(settled_log(*upstream.server) == log);
    auto tags = nlohmann::json::parse(run_cli(down.data, {"tag", "list", "hub/main/tools/app", "-o", "json"}).out);
    REQUIRE(tags.size() == 1);
    CHECK(tags[0]["name"] == "v1");
    CHECK(tags[0]["cached_from"] == up);
    CHECK(run_cli(down.data, {"tag", "list", "hub/main/tools/app"}).out.find(" cache:127.0.0.1:") != std::string::npos);
    auto shown = run_cli(down.data, {"digest", "show", "hub/main/tools/app:v1"});
    CHECK(shown.out.find("Source:     cached from " + up + "\n") != std::string::npos);
    // Pushed content says so.
    CHECK(run_cli(upstream.data, {"digest", "show", "main/tools/app:v1"}).out.find("Source:     pushed\n")
          != std::string::npos);
    CHECK(nlohmann::json::parse(run_cli(upstream.data, {"-o", "json", "tag", "list", "main/tools/app"}).out)[0]
            .contains("cached_from") == false);

    // Twenty clients miss the same layer at once: one upstream fetch.
    REQUIRE(c.get("/v2/hub/main/tools/big/manifests/v1")->status == 200);
    const Blob& layer = big.layers[0];
    std::vector<std::thread> clients;
    std::atomic<int> good{0};
    for (int i = 0; i < 20; ++i) {
      clients.emplace_back([&] {
        httplib::Client client("127.0.0.1", down.server->port());
        client.set_read_timeout(60);
        auto res = client.Get("/v2/hub/main/tools/big/blobs/" + layer.digest);
        if (res && res->status == 200 && res->body == layer.data) {
          ++good;
        }
      });
    }
    for (auto& t : clients) {
      t.join();
    }
    CHECK(good == 20);
    log = settled_log(*upstream.server);
    CHECK(count(log, "GET /v2/main/tools/big/blobs/" + layer.digest + " 200") == 1);
    // The token is cached per repository scope, not fetched per request.
    CHECK(count(log, "GET /auth/token 200") <= 2);

    // Unknown upstream: the usual 404.
    expect_error(c.get("/v2/hub/main/tools/app/manifests/nosuchtag"), 404, "MANIFEST_UNKNOWN");
    expect_error(c.get("/v2/hub/main/tools/app/blobs/sha256:" + std::string(64, 'a')), 404, "BLOB_UNKNOWN");

    // Wrong upstream credentials: nothing is cached, the client gets an error.
    REQUIRE(run_cli(down.data, {"feed", "create", "wrong"}).exit_code == 0);
    REQUIRE(run_cli(down.data, {"connector", "add", "wrong", up, "--username", "mirror", "--password-stdin"},
                    "not the password\n")
              .exit_code == 0);
    auto refused = c.get("/v2/wrong/main/tools/app/manifests/v1");
    REQUIRE(refused);
    CHECK(refused->status == 500);
    CHECK(refused->body.find("upstream unavailable") != std::string::npos);
    CHECK(run_cli(down.data, {"tag", "list", "wrong/main/tools/app"}).exit_code == 3);

    // skopeo pulls through the connector.
    auto copied = run_command("skopeo", {"--insecure-policy", "copy", "--src-tls-verify=false",
                                         "docker://" + down.server->host_port() + "/hub/main/tools/app:v1",
                                         "dir:" + (down.dir / "pulled").string()});
    CHECK_MESSAGE(copied.exit_code == 0, copied.err);

    // Upstream gone: cached images still pull; what was never cached fails clearly.
    upstream.server->stop();
    CHECK(c.get("/v2/hub/main/tools/app/manifests/v1")->status == 200);
    CHECK(c.get("/v2/hub/main/tools/app/blobs/" + image.layers[0].digest)->body == image.layers[0].data);
    auto gone = c.get("/v2/hub/main/tools/other/manifests/v1");
    REQUIRE(gone);
    CHECK(gone->status == 500);

    // Removing the connector keeps what was cached.
    REQUIRE(run_cli(down.data, {"connector", "remove", "hub", up}).exit_code == 0);
    CHECK(run_cli(down.data, {"connector", "remove", "hub", up}).exit_code == 3);
    CHECK(c.get("/v2/hub/main/tools/app/manifests/v1")->status == 200);
    expect_error(c.get("/v2/hub/main/tools/other/manifests/v1"), 404, "MANIFEST_UNKNOWN");
  }
}

TEST_SUITE("e2e")
{
  TEST_CASE("connectors: a moved tag is picked up after the TTL; stale copies when upstream fails")
  {
    RegistryFixture upstream; // open: anonymous upstream
    auto first = upstream.c().push_image("main/app", "v1", {"first version"});
    std::string up = "http://" + upstream.server->host_port();
    RegistryFixture down;
    auto& c = down.c();
    REQUIRE(run_cli(down.data, {"feed", "create", "hub"}).exit_code == 0);
    REQUIRE(run_cli(down.data, {"connector", "add", "hub", up, "--ttl", "3s"}).exit_code == 0);
    CHECK(run_cli(down.data, {"connector", "add", "other", up, "--ttl", "soon"}).exit_code == 2);

    auto digest_of = [&](const std::string& path) {
      auto res = c.get(path);
      REQUIRE(res);
      REQUIRE_MESSAGE(res->status == 200, res->body);
      return res->get_header_value("Docker-Content-Digest");
    };
    CHECK(digest_of("/v2/hub/main/app/manifests/v1") == first.digest);
    // The tag moves upstream; within the TTL (whole seconds: 3 s leaves room
    // for a slow machine) the cached copy is served, untouched.
    auto second = upstream.c().push_image("main/app", "v1", {"second version"});
    REQUIRE(second.digest != first.digest);
    CHECK(digest_of("/v2/hub/main/app/manifests/v1") == first.digest);
    std::string log = settled_log(*upstream.server);
    CHECK(count(log, "HEAD /v2/main/app/manifests/v1 200") == 0);
    CHECK(count(log, "GET /v2/main/app/manifests/v1 200") == 1);
    // After the TTL a HEAD notices the move and the new manifest is fetched.
    std::this_thread::sleep_for(std::chrono::milliseconds(3100));
    CHECK(digest_of("/v2/hub/main/app/manifests/v1") == second.digest);
    log = settled_log(*upstream.server);
    CHECK(count(log, "HEAD /v2/main/app/manifests/v1 200") == 1);
    CHECK(count(log, "GET /v2/main/app/manifests/v1 200") == 2);
    CHECK(c.get("/v2/hub/main/app/blobs/" + second.layers[0].digest)->body == "second version");
    // Unchanged upstream: the next revalidation is a HEAD alone.
    std::this_thread::sleep_for(std::chrono::milliseconds(3100));
    CHECK(digest_of("/v2/hub/main/app/manifests/v1") == second.digest);
    log = settled_log(*upstream.server);
    CHECK(count(log, "HEAD /v2/main/app/manifests/v1 200") == 2);
    CHECK(count(log, "GET /v2/main/app/manifests/v1 200") == 2);
    // Upstream down after the TTL: the stale copy is served and the failure logged.
    upstream.server->stop();
    std::this_thread::sleep_for(std::chrono::milliseconds(3100));
    CHECK(digest_of("/v2/hub/main/app/manifests/v1") == second.digest);
    CHECK(down.server->log().find("serving the cached copy") != std::string::npos);
    // A pushed tag is local content: never revalidated, never replaced.
    auto local = c.push_image("hub/main/app", "mine", {"pushed here"});
    CHECK(digest_of("/v2/hub/main/app/manifests/mine") == local.digest);
  }
}

TEST_SUITE("e2e")
{
  TEST_CASE("connectors: a multi-arch index is cached without fetching the platforms nobody pulls")
  {
    RegistryFixture upstream; // open: anonymous upstream
    auto& u = upstream.c();
    auto amd = u.push_image("main/multi", "amd64", {"amd layer"});
    auto arm = u.push_image("main/multi", "arm64", {"arm layer"});
    std::string index_bytes = image_index({{&amd, "amd64"}, {&arm, "arm64"}});
    auto pushed = u.put_manifest("main/multi", "latest", index_bytes, k_oci_index);
    REQUIRE(pushed);
    REQUIRE(pushed->status == 201);

    RegistryFixture down;
    auto& c = down.c();
    REQUIRE(run_cli(down.data, {"feed", "create", "hub"}).exit_code == 0);
    REQUIRE(run_cli(down.data, {"connector", "add", "hub", "http://" + upstream.server->host_port()}).exit_code
            == 0);
    // What a client on amd64 does: the index, its platform's manifest, its blobs.
    auto got_index = c.get("/v2/hub/main/multi/manifests/latest", {{"Accept", k_oci_index}});
    REQUIRE(got_index);
    REQUIRE(got_index->status == 200);
    CHECK(got_index->body == index_bytes);
    auto got_amd = c.get("/v2/hub/main/multi/manifests/" + amd.digest, {{"Accept", k_oci_manifest}});
    REQUIRE(got_amd);
    CHECK(got_amd->status == 200);
    CHECK(c.get("/v2/hub/main/multi/blobs/" + amd.config.digest)->status == 200);
    CHECK(c.get("/v2/hub/main/multi/blobs/" + amd.layers[0].digest)->body == "amd layer");

    std::string log = settled_log(*upstream.server);
    CHECK(count(log, "GET /v2/main/multi/manifests/latest 200") == 1);
    CHECK(count(log, "GET /v2/main/multi/manifests/" + amd.digest + " 200") == 1);
    CHECK(count(log, "/v2/main/multi/manifests/" + arm.digest) == 0);
    CHECK(count(log, "/v2/main/multi/blobs/" + arm.layers[0].digest) == 0);
    // The cached index lists both platforms; the other one arrives when asked.
    auto tags = nlohmann::json::parse(run_cli(down.data, {"-o", "json", "tag", "list", "hub/main/multi"}).out);
    REQUIRE(tags.size() == 1);
    CHECK(tags[0]["digest"] == pushed->get_header_value("Docker-Content-Digest"));
    auto got_arm = c.get("/v2/hub/main/multi/manifests/" + arm.digest, {{"Accept", k_oci_manifest}});
    REQUIRE(got_arm);
    CHECK(got_arm->status == 200);
    CHECK(count(settled_log(*upstream.server), "GET /v2/main/multi/manifests/" + arm.digest + " 200") == 1);
    auto fsck = run_cli(down.data, {"fsck"});
    CHECK_MESSAGE(fsck.exit_code == 0, fsck.out, fsck.err);
  }

  TEST_CASE("connectors: mirror mode answers names without a feed prefix")
  {
    RegistryFixture upstream;
    REQUIRE(run_cli(upstream.data, {"feed", "create", "lib"}).exit_code == 0);
    auto image = upstream.c().push_image("lib/tools/app", "v1", {"mirrored layer"});
    RegistryFixture down({"--mirror-feed", "main"});
    REQUIRE(run_cli(down.data, {"connector", "add", "main", "http://" + upstream.server->host_port()}).exit_code
            == 0);
    auto& c = down.c();
    // What a Docker daemon with registry-mirrors asks for: no feed in the name.
    auto manifest = c.get("/v2/lib/tools/app/manifests/v1?ns=docker.io");
    REQUIRE(manifest);
    REQUIRE_MESSAGE(manifest->status == 200, manifest->body);
    CHECK(manifest->body == image.manifest);
    CHECK(c.get("/v2/lib/tools/app/blobs/" + image.layers[0].digest)->body == "mirrored layer");
    // Cached in the mirror feed, where the CLI sees it; feed names still win.
    CHECK(run_cli(down.data, {"-q", "tag", "list", "main/lib/tools/app"}).out == "v1\n");
    CHECK(c.get("/v2/main/lib/tools/app/manifests/v1")->status == 200);
    auto inspected = run_command("skopeo", {"--insecure-policy", "inspect", "--raw", "--tls-verify=false",
                                            "docker://" + down.server->host_port() + "/lib/tools/app:v1"});
    CHECK_MESSAGE(inspected.exit_code == 0, inspected.err);
    CHECK(inspected.out == image.manifest);
    CHECK(run_cli(down.data, {"serve", "--listen", "127.0.0.1:0", "--mirror-feed", "nosuch"}).exit_code == 3);
  }
}

namespace {

// An upstream registry that misbehaves on demand: it serves one image, but
// answers one layer with the wrong bytes (as many, the last one changed), and
// can be switched to 429 Too Many Requests. A gated layer is sent slowly: the
// first half at once, the rest only once the test opens the gate. It counts
// what reaches it.
class MisbehavingUpstream
{
public:
  MisbehavingUpstream(PushedImage image, std::string bad_layer)
    : m_image(std::move(image)),
      m_bad_layer(std::move(bad_layer))
  {
    m_server.set_tcp_nodelay(true);
    m_server.Get("/v2/", [](const httplib::Request&, httplib::Response& res) { res.status = 200; });
    auto manifest = [this](const httplib::Request& req, httplib::Response& res) {
      count(req.method + " manifest");
      if (m_throttled) {
        res.status = 429;
        res.set_header("Retry-After", "30");
        return;
      }
      res.set_header("Docker-Content-Digest", m_image.digest);
      res.set_content(m_image.manifest, k_oci_manifest);
    };
    m_server.Get("/v2/main/app/manifests/v1", manifest);
    m_server.Get("/v2/main/app/manifests/" + m_image.digest, manifest);
    auto blob = [this](const httplib::Request& req, httplib::Response& res) {
      std::string digest = req.matches[1];
      count("GET " + digest);
      std::vector<Blob> blobs = m_image.layers;
      blobs.push_back(m_image.config);
      for (const auto& b : blobs) {
        if (b.digest != digest) {
          continue;
        }
        auto body = std::make_shared<std::string>(b.data);
        if (digest == m_bad_layer && !body->empty()) {
          body->back() = static_cast<char>(body->back() ^ 1);
        }
        if (m_gated.count(digest) == 0) {
          res.set_content(*body, "application/octet-stream");
        } else if (m_gated.at(digest) == Size::announced) {
          res.set_content_provider(body->size(), "application/octet-stream",
                                   [this, body, digest](size_t offset, size_t, httplib::DataSink& sink) {
                                     return send_paced(*body, digest, offset, sink);
                                   });
        } else {
          res.set_chunked_content_provider("application/octet-stream",
                                           [this, body, digest](size_t offset, httplib::DataSink& sink) {
                                             if (offset == body->size()) {
                                               sink.done();
                                               return true;
                                             }
                                             return send_paced(*body, digest, offset, sink);
                                           });
        }
        return;
      }
      res.status = 404;
    };
    m_server.Get(R"(/v2/main/app/blobs/(sha256:[0-9a-f]{64}))", blob);
    m_port = m_server.bind_to_any_port("127.0.0.1");
    m_thread = std::thread([this] { m_server.listen_after_bind(); });
    while (!m_server.is_running()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  ~MisbehavingUpstream()
  {
    open_gate();
    m_server.stop();
    m_thread.join();
  }

  // How a gated layer is sent: with Content-Length, or chunked.
  enum class Size { announced, chunked };
  // Sends `digest` slowly from now on (call before the server is used).
  void
  gate(const std::string& digest, Size size)
  {
    m_gated[digest] = size;
  }
  // Lets every gated body (now and later) send its second half.
  void
  open_gate()
  {
    {
      std::lock_guard lock(m_mutex);
      m_gate_open = true;
    }
    m_gate_changed.notify_all();
  }
  // How many bodies of `digest` went out completely.
  int
  sent(const std::string& digest)
  {
    std::lock_guard lock(m_mutex);
    return m_sent[digest];
  }

  std::string
  url() const
  {
    return "http://127.0.0.1:" + std::to_string(m_port);
  }
  void
  throttle()
  {
    m_throttled = true;
  }
  int
  requests(const std::string& what)
  {
    std::lock_guard lock(m_mutex);
    return m_counts[what];
  }

private:
  void
  count(const std::string& what)
  {
    std::lock_guard lock(m_mutex);
    ++m_counts[what];
  }

  // One piece of a gated body: up to its middle, then (once the gate is open,
  // or after a bound that keeps a broken test from hanging) the rest.
  bool
  send_paced(const std::string& body, const std::string& digest, size_t offset, httplib::DataSink& sink)
  {
    size_t half = body.size() / 2;
    if (offset == half) {
      std::unique_lock lock(m_mutex);
      m_gate_changed.wait_for(lock, std::chrono::seconds(30), [&] { return m_gate_open; });
    }
    size_t end = offset < half ? half : body.size();
    size_t n = std::min<size_t>(64 * 1024, end - offset);
    if (!sink.write(body.data() + offset, n)) {
      return false;
    }
    if (offset + n == body.size()) {
      std::lock_guard lock(m_mutex);
      ++m_sent[digest];
    }
    return true;
  }

  PushedImage m_image;
  std::string m_bad_layer;
  std::atomic<bool> m_throttled{false};
  std::mutex m_mutex;
  std::map<std::string, int> m_counts;
  std::map<std::string, Size> m_gated;
  std::condition_variable m_gate_changed;
  bool m_gate_open = false;
  std::map<std::string, int> m_sent;
  httplib::Server m_server;
  int m_port = 0;
  std::thread m_thread;
};

// The value of one sample in Prometheus text, or -1.
long
metric(const std::string& text, const std::string& series)
{
  size_t at = text.find("\n" + series + " ");
  if (at == std::string::npos) {
    return -1;
  }
  return std::stol(text.substr(at + series.size() + 2));
}

} // namespace

TEST_SUITE("e2e")
{
  TEST_CASE("connectors: a wrong digest caches nothing; 429 serves the cached copy; metrics count both")
  {
    Blob config = make_blob(R"({"architecture":"amd64","os":"linux"})", k_oci_config);
    std::vector<Blob> layers = {make_blob("good layer"), make_blob("tampered layer")};
    std::string manifest = image_manifest(config, layers);
    PushedImage image{manifest, sha256_digest(manifest), config, layers};
    MisbehavingUpstream upstream(image, layers[1].digest);

    RegistryFixture down({"--metrics-anonymous"});
    auto& c = down.c();
    REQUIRE(run_cli(down.data, {"feed", "create", "hub"}).exit_code == 0);
    REQUIRE(run_cli(down.data, {"connector", "add", "hub", upstream.url(), "--ttl", "1s"}).exit_code == 0);

    auto first = c.get("/v2/hub/main/app/manifests/v1");
    REQUIRE(first);
    REQUIRE_MESSAGE(first->status == 200, first->body);
    CHECK(first->get_header_value("Docker-Content-Digest") == image.digest);
    CHECK(c.get("/v2/hub/main/app/blobs/" + layers[0].digest)->body == layers[0].data);

    // Upstream sends bytes that do not hash to the digest asked for: the client
    // gets an error, nothing is stored, and the next request asks upstream again.
    const std::string bad = layers[1].digest;
    for (int attempt = 1; attempt <= 2; ++attempt) {
      auto res = c.get("/v2/hub/main/app/blobs/" + bad);
      REQUIRE(res);
      CHECK(res->status == 500);
      CHECK(res->body.find("upstream unavailable") != std::string::npos);
      CHECK(upstream.requests("GET " + bad) == attempt);
    }
    std::string hex = bad.substr(7);
    CHECK_FALSE(std::filesystem::exists(down.data / "store" / "blobs" / "sha256" / hex.substr(0, 2) / hex));
    CHECK(c.head("/v2/hub/main/app/blobs/" + layers[0].digest)->status == 200);
    CHECK(run_cli(down.data, {"upload", "list"}).out.find("hub/main/app") == std::string::npos);

    // Rate limited after the TTL: the HEAD gets 429, the cached copy is served,
    // and upstream is left alone until its Retry-After has passed.
    upstream.throttle();
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));
    for (int i = 0; i < 3; ++i) {
      auto stale = c.get("/v2/hub/main/app/manifests/v1");
      REQUIRE(stale);
      CHECK(stale->status == 200);
      CHECK(stale->get_header_value("Docker-Content-Digest") == image.digest);
    }
    CHECK(upstream.requests("HEAD manifest") == 1);
    CHECK(upstream.requests("GET manifest") == 1);
    CHECK(settled_log(*down.server).find("serving the cached copy") != std::string::npos);

    auto metrics = c.get("/metrics");
    REQUIRE(metrics);
    REQUIRE(metrics->status == 200);
    std::string labels = "{connector=\"" + upstream.url() + "\"}";
    CHECK(metric(metrics->body, "registryctl_connector_manifest_fetches_total" + labels) == 1);
    CHECK(metric(metrics->body, "registryctl_connector_blob_fetches_total" + labels) == 1);
    CHECK(metric(metrics->body, "registryctl_connector_blob_bytes_total" + labels)
          == static_cast<long>(layers[0].data.size()));
    CHECK(metric(metrics->body, "registryctl_connector_revalidations_total" + labels) == 3);
    CHECK(metric(metrics->body, "registryctl_connector_stale_served_total" + labels) == 3);
    // two wrong digests, one 429, two refusals while waiting out Retry-After
    CHECK(metric(metrics->body, "registryctl_connector_upstream_failures_total" + labels) == 5);
  }
}

namespace {

// An image of one layer, as MisbehavingUpstream serves it.
PushedImage
one_layer_image(const Blob& layer)
{
  Blob config = make_blob(R"({"architecture":"amd64","os":"linux"})", k_oci_config);
  std::string manifest = image_manifest(config, {layer});
  return PushedImage{manifest, sha256_digest(manifest), config, {layer}};
}

enum class Tampered { no, yes };

// A layer of `size` random bytes that only an upstream has, sent slowly (see
// MisbehavingUpstream::gate), and a server whose feed "hub" pulls through it.
struct SlowLayer {
  std::string data;
  Blob layer;
  MisbehavingUpstream upstream;
  std::unique_ptr<RegistryFixture> down;
  std::string path; // of the layer, on `down`

  SlowLayer(size_t size, unsigned seed, MisbehavingUpstream::Size announce, Tampered tampered = Tampered::no)
    : data(random_bytes(size, seed)),
      layer(make_blob(data)),
      upstream(one_layer_image(layer), tampered == Tampered::yes ? layer.digest : ""),
      path("/v2/hub/main/app/blobs/" + layer.digest)
  {
    upstream.gate(layer.digest, announce);
    down = std::make_unique<RegistryFixture>(std::vector<std::string>{"--metrics-anonymous"});
    REQUIRE(run_cli(down->data, {"feed", "create", "hub"}).exit_code == 0);
    REQUIRE(run_cli(down->data, {"connector", "add", "hub", upstream.url()}).exit_code == 0);
  }

  // A GET now is served the whole layer, upstream having seen one GET, and the
  // connector counted one fetch.
  void
  check_cached_after_one_fetch()
  {
    auto got = down->c().get(path);
    REQUIRE(got);
    CHECK(got->status == 200);
    CHECK(got->body == data);
    CHECK(upstream.requests("GET " + layer.digest) == 1);
    auto metrics = down->c().get("/metrics");
    REQUIRE(metrics);
    CHECK(metric(metrics->body, "registryctl_connector_blob_fetches_total{connector=\"" + upstream.url() + "\"}")
          == 1);
  }
};

// One GET of a blob, read as it arrives; what it saw.
struct StreamedGet {
  std::atomic<bool> started{false}; // body bytes arrived
  std::atomic<uint64_t> received{0};
  int status = 0;
  bool complete = false;      // the body ended as announced (not cut off)
  std::string content_length; // empty when chunked
  std::string digest;         // of the bytes received
  double first_byte_seconds = 0;
  double total_seconds = 0;
};

// GETs `path`, giving up after `stop_after` bytes (the client hangs up).
void
stream_get(int port, const std::string& path, StreamedGet& out, uint64_t stop_after = UINT64_MAX)
{
  using clock = std::chrono::steady_clock;
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(60);
  registry::util::Hasher hasher;
  auto start = clock::now();
  auto seconds = [&] { return std::chrono::duration<double>(clock::now() - start).count(); };
  auto res = client.Get(
    path.c_str(),
    [&](const httplib::Response& r) {
      out.status = r.status;
      out.content_length = r.get_header_value("Content-Length");
      return true;
    },
    [&](const char* data, size_t n) {
      if (!out.started) {
        out.first_byte_seconds = seconds();
        out.started = true;
      }
      hasher.update(data, n);
      out.received += n;
      return out.received < stop_after;
    });
  out.total_seconds = seconds();
  out.complete = static_cast<bool>(res);
  out.digest = "sha256:" + hasher.hex_digest();
}

// Polls `done` for up to 30 s.
bool
eventually(const std::function<bool()>& done)
{
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) {
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

} // namespace

TEST_SUITE("e2e")
{
  TEST_CASE("connectors: an uncached layer streams to its first client while upstream still sends it")
  {
    SlowLayer slow(16 << 20, 7, MisbehavingUpstream::Size::announced);

    // Upstream holds the second half back until the client has its first bytes.
    StreamedGet first;
    std::thread client([&] { stream_get(slow.down->server->port(), slow.path, first); });
    bool started = eventually([&] { return first.started.load(); });
    int sent_when_started = slow.upstream.sent(slow.layer.digest);
    uint64_t received_when_started = first.received;
    slow.upstream.open_gate();
    client.join();
    REQUIRE(started);
    CHECK(sent_when_started == 0);
    CHECK(received_when_started <= slow.data.size() / 2);
    CHECK(first.status == 200);
    CHECK(first.complete);
    CHECK(first.content_length == std::to_string(slow.data.size()));
    CHECK(first.received == slow.data.size());
    CHECK(first.digest == slow.layer.digest);
    CHECK(slow.upstream.requests("GET " + slow.layer.digest) == 1);
    MESSAGE("16 MiB layer: first byte after " << first.first_byte_seconds << " s, whole body after "
                                              << first.total_seconds << " s");

    // Cached: the next client is served locally.
    slow.check_cached_after_one_fetch();
    auto metrics = slow.down->c().get("/metrics");
    REQUIRE(metrics);
    std::string labels = "{connector=\"" + slow.upstream.url() + "\"}";
    CHECK(metric(metrics->body, "registryctl_connector_blob_bytes_total" + labels) == static_cast<long>(slow.data.size()));
    CHECK(std::filesystem::is_empty(slow.down->data / "fetching"));
  }

  TEST_CASE("connectors: concurrent clients of an uncached layer share one upstream fetch and all stream it")
  {
    SlowLayer slow(8 << 20, 11, MisbehavingUpstream::Size::chunked);

    constexpr int k_clients = 10;
    std::vector<StreamedGet> gets(k_clients);
    std::vector<std::thread> clients;
    for (auto& get : gets) {
      clients.emplace_back([&] { stream_get(slow.down->server->port(), slow.path, get); });
    }
    // Every client has bytes while upstream is still held mid-body.
    bool all_started = eventually([&] {
      return std::all_of(gets.begin(), gets.end(), [](const StreamedGet& g) { return g.started.load(); });
    });
    int sent_when_started = slow.upstream.sent(slow.layer.digest);
    slow.upstream.open_gate();
    for (auto& t : clients) {
      t.join();
    }
    CHECK(all_started);
    CHECK(sent_when_started == 0);
    for (const auto& get : gets) {
      CHECK(get.status == 200);
      CHECK(get.complete);
      CHECK(get.content_length.empty()); // upstream announced no size: chunked
      CHECK(get.digest == slow.layer.digest);
    }
    CHECK(slow.upstream.requests("GET " + slow.layer.digest) == 1);
    CHECK(slow.down->c().get(slow.path)->body == slow.data);
    CHECK(slow.upstream.requests("GET " + slow.layer.digest) == 1);
  }

  TEST_CASE("connectors: wrong bytes from upstream cut the streamed response off and cache nothing")
  {
    SlowLayer slow(8 << 20, 13, MisbehavingUpstream::Size::announced, Tampered::yes); // last byte changed

    StreamedGet got;
    std::thread client([&] { stream_get(slow.down->server->port(), slow.path, got); });
    bool started = eventually([&] { return got.started.load(); });
    slow.upstream.open_gate();
    client.join();
    REQUIRE(started); // the response was under way when the mismatch showed
    CHECK(got.status == 200);
    CHECK(got.content_length == std::to_string(slow.data.size()));
    CHECK_FALSE(got.complete);
    CHECK(got.received < slow.data.size());
    CHECK(slow.upstream.requests("GET " + slow.layer.digest) == 1);

    // Nothing was cached: the next request asks upstream again (and is cut off again).
    StreamedGet again;
    stream_get(slow.down->server->port(), slow.path, again);
    CHECK_FALSE(again.complete);
    CHECK(slow.upstream.requests("GET " + slow.layer.digest) == 2);
    std::string hex = slow.layer.digest.substr(7);
    CHECK_FALSE(std::filesystem::exists(slow.down->data / "store" / "blobs" / "sha256" / hex.substr(0, 2) / hex));
    CHECK(run_cli(slow.down->data, {"upload", "list"}).out.find("hub/main/app") == std::string::npos);
    CHECK(std::filesystem::is_empty(slow.down->data / "fetching"));
    auto fsck = run_cli(slow.down->data, {"fsck", "-o", "json"});
    CHECK_MESSAGE(fsck.exit_code == 0, fsck.out << fsck.err);
    CHECK(nlohmann::json::parse(fsck.out)["clean"] == true);
  }

  TEST_CASE("connectors: HEAD of an uncached layer answers once upstream announced its size")
  {
    SlowLayer slow(8 << 20, 19, MisbehavingUpstream::Size::announced);

    // Upstream holds the second half back: the HEAD does not wait for it.
    auto head = slow.down->c().head(slow.path);
    REQUIRE(head);
    CHECK(head->status == 200);
    CHECK(head->get_header_value("Content-Length") == std::to_string(slow.data.size()));
    CHECK(head->get_header_value("Docker-Content-Digest") == slow.layer.digest);
    CHECK(slow.upstream.sent(slow.layer.digest) == 0);
    // The fetch it started goes on and caches the layer: one upstream GET in all.
    slow.upstream.open_gate();
    CHECK(eventually([&] { return slow.upstream.sent(slow.layer.digest) == 1; }));
    slow.check_cached_after_one_fetch();

    // Upstream sending no size: the HEAD waits for the end, then answers.
    SlowLayer chunked(1 << 20, 21, MisbehavingUpstream::Size::chunked);
    std::thread opener([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      chunked.upstream.open_gate();
    });
    auto waited = chunked.down->c().head(chunked.path);
    opener.join();
    REQUIRE(waited);
    CHECK(waited->status == 200);
    CHECK(waited->get_header_value("Content-Length") == std::to_string(chunked.data.size()));
    CHECK(chunked.upstream.sent(chunked.layer.digest) == 1);
    chunked.check_cached_after_one_fetch();
  }

  TEST_CASE("connectors: a fetch outlives the client that started it")
  {
    SlowLayer slow(8 << 20, 17, MisbehavingUpstream::Size::announced);

    // The first client hangs up after its first bytes, upstream still mid-body.
    StreamedGet quitter;
    stream_get(slow.down->server->port(), slow.path, quitter, 1);
    CHECK(quitter.started);
    CHECK_FALSE(quitter.complete);
    CHECK(slow.upstream.sent(slow.layer.digest) == 0);
    slow.upstream.open_gate();
    // The fetch went on: the blob arrives once, and is then served from the store.
    CHECK(eventually([&] { return slow.upstream.sent(slow.layer.digest) == 1; }));
    slow.check_cached_after_one_fetch();
  }
}

TEST_SUITE("e2e")
{
  TEST_CASE("connectors: cached content unpulled past the feed's cache retention expires in gc")
  {
    RegistryFixture upstream; // open: anonymous upstream
    auto old_image = upstream.c().push_image("main/app", "old", {"an old layer"});
    auto kept_image = upstream.c().push_image("main/app", "kept", {"a kept layer"});
    auto other_image = upstream.c().push_image("main/app", "other", {"a layer in a feed without retention"});
    std::string up = "http://" + upstream.server->host_port();
    RegistryFixture down;
    auto& c = down.c();

    // The setting: validated, shown, changeable.
    auto bad = run_cli(down.data, {"feed", "create", "hub", "--cache-retention", "soon"});
    CHECK(bad.exit_code == 2);
    CHECK(bad.err.find("--cache-retention") != std::string::npos);
    CHECK(count(bad.err, "\n") == 1);
    CHECK(run_cli(down.data, {"feed", "create", "hub", "--cache-retention", "0s"}).exit_code == 2);
    REQUIRE(run_cli(down.data, {"feed", "create", "hub", "--cache-retention", "30d"}).exit_code == 0);
    auto shown = nlohmann::json::parse(run_cli(down.data, {"feed", "show", "hub", "-o", "json"}).out);
    CHECK(shown["cache_retention_seconds"] == 30 * 86400);
    CHECK(run_cli(down.data, {"feed", "list"}).out.find(" 30d ") != std::string::npos);
    CHECK(run_cli(down.data, {"feed", "update", "hub", "--cache-retention", "-1"}).exit_code == 2);
    // Whole seconds: 3 s leaves room for a slow machine between a pull and gc.
    auto updated = run_cli(down.data, {"feed", "update", "hub", "--cache-retention", "3s", "-o", "json"});
    REQUIRE_MESSAGE(updated.exit_code == 0, updated.err);
    CHECK(nlohmann::json::parse(updated.out)["cache_retention_seconds"] == 3);
    REQUIRE(run_cli(down.data, {"feed", "create", "keep"}).exit_code == 0); // retention off
    CHECK(nlohmann::json::parse(run_cli(down.data, {"feed", "show", "keep", "-o", "json"}).out)
            ["cache_retention_seconds"]
          == 0);
    REQUIRE(run_cli(down.data, {"connector", "add", "hub", up}).exit_code == 0);
    REQUIRE(run_cli(down.data, {"connector", "add", "keep", up}).exit_code == 0);
    auto pushed = c.push_image("hub/local/app", "mine", {"pushed here"});

    auto pull = [&](const std::string& repository, const PushedImage& image, const std::string& tag) {
      auto manifest = c.get("/v2/" + repository + "/manifests/" + tag);
      REQUIRE(manifest);
      REQUIRE_MESSAGE(manifest->status == 200, manifest->body);
      CHECK(manifest->body == image.manifest);
      std::vector<Blob> blobs = image.layers;
      blobs.push_back(image.config);
      for (const auto& blob : blobs) {
        auto got = c.get("/v2/" + repository + "/blobs/" + blob.digest);
        REQUIRE(got);
        CHECK(got->status == 200);
        CHECK(got->body == blob.data);
      }
    };
    pull("hub/main/app", old_image, "old");
    pull("hub/main/app", kept_image, "kept");
    pull("keep/main/app", other_image, "other");
    std::string log = settled_log(*upstream.server);
    CHECK(count(log, "GET /v2/main/app/manifests/old 200") == 1);
    CHECK(count(log, "GET /v2/main/app/blobs/" + old_image.layers[0].digest + " 200") == 1);

    std::this_thread::sleep_for(std::chrono::milliseconds(3100));
    // Pulled again (by digest counts too): not expired.
    REQUIRE(c.get("/v2/hub/main/app/manifests/" + kept_image.digest)->status == 200);

    auto dry = run_cli(down.data, {"gc", "--dry-run", "--grace", "0s", "-o", "json"});
    REQUIRE_MESSAGE(dry.exit_code == 0, dry.err);
    auto plan = nlohmann::json::parse(dry.out);
    CHECK(plan["cached_manifests_expired"] == 1);
    CHECK(plan["cached_tags_expired"] == 1);
    CHECK(plan["expired_manifests"] == nlohmann::json::array({"hub/main/app@" + old_image.digest}));
    CHECK(run_cli(down.data, {"-q", "tag", "list", "hub/main/app"}).out == "kept\nold\n");

    auto ran = run_cli(down.data, {"gc", "--grace", "0s", "-o", "json"});
    REQUIRE_MESSAGE(ran.exit_code == 0, ran.err);
    auto report = nlohmann::json::parse(ran.out);
    CHECK(report["cached_manifests_expired"] == 1);
    CHECK(report["cached_tags_expired"] == 1);
    CHECK(report["expired_manifests"] == plan["expired_manifests"]);
    // The old image's layer (all test images share one config blob, which the
    // kept and pushed images still reference).
    CHECK(report["blobs_removed"] == 1);
    CHECK(report["removed_digests"] == nlohmann::json::array({old_image.layers[0].digest}));
    CHECK(run_cli(down.data, {"-q", "tag", "list", "hub/main/app"}).out == "kept\n");
    CHECK(run_cli(down.data, {"-q", "tag", "list", "keep/main/app"}).out == "other\n");
    CHECK(run_cli(down.data, {"-q", "tag", "list", "hub/local/app"}).out == "mine\n");
    CHECK(c.get("/v2/hub/local/app/blobs/" + pushed.layers[0].digest)->body == "pushed here");
    auto fsck = run_cli(down.data, {"fsck"});
    CHECK_MESSAGE(fsck.exit_code == 0, fsck.out);
    auto text = run_cli(down.data, {"gc", "--dry-run", "--grace", "0s"});
    CHECK(text.out.find("would remove 0 blobs") != std::string::npos);

    // Pulling the expired image again fetches it from upstream again.
    pull("hub/main/app", old_image, "old");
    log = settled_log(*upstream.server);
    CHECK(count(log, "GET /v2/main/app/manifests/old 200") == 2);
    CHECK(count(log, "GET /v2/main/app/blobs/" + old_image.layers[0].digest + " 200") == 2);
    CHECK(run_cli(down.data, {"-q", "tag", "list", "hub/main/app"}).out == "kept\nold\n");
  }
}

namespace {

// An upstream asking for Basic credentials that redirects every blob GET to a
// "CDN" on another port: first to an absolute URL signed in its query (whose
// signature holds the characters a careless client re-encodes: %2B, %2F,
// %3D), which redirects again to a relative one. The CDN serves only requests
// that carry the signature exactly and no Authorization of the upstream's.
// A blob named by `k_loop` redirects to itself forever.
class RedirectingUpstream
{
public:
  static constexpr const char* k_signature = "a%2Bb%2Fc%3D";
  static constexpr const char* k_loop = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

  explicit RedirectingUpstream(PushedImage image)
    : m_image(std::move(image))
  {
    auto authorized = [](const httplib::Request& req, httplib::Response& res) {
      if (req.get_header_value("Authorization") == "Basic " + registry::util::base64_encode("puller:s3cret")) {
        return true;
      }
      res.status = 401;
      res.set_header("WWW-Authenticate", "Basic realm=\"upstream\"");
      return false;
    };
    m_registry.Get("/v2/main/app/manifests/v1", [this, authorized](const httplib::Request& req, httplib::Response& res) {
      if (authorized(req, res)) {
        res.set_header("Docker-Content-Digest", m_image.digest);
        res.set_content(m_image.manifest, k_oci_manifest);
      }
    });
    m_registry.Get(R"(/v2/main/app/blobs/(sha256:[0-9a-f]{64}))",
                   [this, authorized](const httplib::Request& req, httplib::Response& res) {
                     if (!authorized(req, res)) {
                       return;
                     }
                     std::string digest = req.matches[1];
                     count("GET " + digest);
                     res.status = 307;
                     res.set_header("Location", digest == k_loop ? req.path
                                                                 : cdn_url() + "/cdn/" + digest + "?sig="
                                                                     + k_signature + "&se=2099-01-01");
                   });
    m_cdn.Get(R"(/cdn/(sha256:[0-9a-f]{64}))", [](const httplib::Request& req, httplib::Response& res) {
      res.status = 302;
      res.set_header("Location", "/signed/" + std::string(req.matches[1]) + "?sig=" + k_signature);
    });
    m_cdn.Get(R"(/signed/(sha256:[0-9a-f]{64}))", [this](const httplib::Request& req, httplib::Response& res) {
      std::string digest = req.matches[1];
      count("CDN " + digest);
      // httplib decodes the query: the signature arrives intact only when the
      // client sent it as it was given.
      if (req.get_param_value("sig") != "a+b/c=" || req.has_header("Authorization")) {
        res.status = 403;
        return;
      }
      for (const auto& blob : all_blobs()) {
        if (blob.digest == digest) {
          res.set_content(blob.data, "application/octet-stream");
          return;
        }
      }
      res.status = 404;
    });
    m_registry_port = start(m_registry, m_registry_thread);
    m_cdn_port = start(m_cdn, m_cdn_thread);
  }
  ~RedirectingUpstream()
  {
    m_registry.stop();
    m_cdn.stop();
    m_registry_thread.join();
    m_cdn_thread.join();
  }

  std::string
  url() const
  {
    return "http://127.0.0.1:" + std::to_string(m_registry_port);
  }
  int
  requests(const std::string& what)
  {
    std::lock_guard lock(m_mutex);
    return m_counts[what];
  }

private:
  static int
  start(httplib::Server& server, std::thread& thread)
  {
    int port = server.bind_to_any_port("127.0.0.1");
    thread = std::thread([&server] { server.listen_after_bind(); });
    while (!server.is_running()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return port;
  }
  std::string
  cdn_url() const
  {
    return "http://127.0.0.1:" + std::to_string(m_cdn_port);
  }
  std::vector<Blob>
  all_blobs() const
  {
    std::vector<Blob> blobs = m_image.layers;
    blobs.push_back(m_image.config);
    return blobs;
  }
  void
  count(const std::string& what)
  {
    std::lock_guard lock(m_mutex);
    ++m_counts[what];
  }

  PushedImage m_image;
  std::mutex m_mutex;
  std::map<std::string, int> m_counts;
  httplib::Server m_registry;
  httplib::Server m_cdn;
  int m_registry_port = 0;
  int m_cdn_port = 0;
  std::thread m_registry_thread;
  std::thread m_cdn_thread;
};

} // namespace

TEST_SUITE("e2e")
{
  TEST_CASE("connectors: blobs redirected to signed URLs on another host are fetched as given, without credentials")
  {
    Blob layer = make_blob(random_bytes(3 << 20, 23));
    RedirectingUpstream upstream(one_layer_image(layer));
    RegistryFixture down;
    auto& c = down.c();
    REQUIRE(run_cli(down.data, {"feed", "create", "hub"}).exit_code == 0);
    auto added = run_cli(down.data, {"connector", "add", "hub", upstream.url(), "--username", "puller",
                                     "--password-stdin"},
                         "s3cret\n");
    REQUIRE_MESSAGE(added.exit_code == 0, added.err);

    auto manifest = c.get("/v2/hub/main/app/manifests/v1");
    REQUIRE(manifest);
    REQUIRE_MESSAGE(manifest->status == 200, manifest->body);
    auto got = c.get("/v2/hub/main/app/blobs/" + layer.digest);
    REQUIRE(got);
    CHECK_MESSAGE(got->status == 200, got->body);
    CHECK(got->body == layer.data);
    CHECK(upstream.requests("GET " + layer.digest) == 1);
    CHECK(upstream.requests("CDN " + layer.digest) == 1);
    // Cached: served locally from now on.
    CHECK(c.get("/v2/hub/main/app/blobs/" + layer.digest)->body == layer.data);
    CHECK(upstream.requests("CDN " + layer.digest) == 1);

    // A redirect loop ends after 5 hops with an error, not a hang.
    auto looped = c.get(std::string("/v2/hub/main/app/blobs/") + RedirectingUpstream::k_loop);
    REQUIRE(looped);
    CHECK(looped->status == 500);
    CHECK(looped->body.find("upstream unavailable") != std::string::npos);
    CHECK(upstream.requests(std::string("GET ") + RedirectingUpstream::k_loop) == 6);
    CHECK(settled_log(*down.server).find("redirected more than 5 times") != std::string::npos);
  }
}
