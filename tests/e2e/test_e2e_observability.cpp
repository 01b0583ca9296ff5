// Observability of a running server: GET /metrics (Prometheus text format),
// the JSON access log with request ids, and --log-level.

#include "tests/e2e/fixture.hpp"

#include <chrono>
#include <sstream>
#include <thread>

using namespace registry::test;

namespace {

// The value of the sample `name` (with its labels, exactly as exposed), or -1.
double
metric(const std::string& text, const std::string& name)
{
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind(name + " ", 0) == 0) {
      return std::stod(line.substr(name.size() + 1));
    }
  }
  return -1;
}

std::vector<nlohmann::json>
json_lines(const std::string& log)
{
  std::vector<nlohmann::json> out;
  std::istringstream lines(log);
  std::string line;
  while (std::getline(lines, line)) {
    auto doc = nlohmann::json::parse(line, nullptr, false);
    REQUIRE_MESSAGE(!doc.is_discarded(), "not JSON: " << line);
    out.push_back(doc);
  }
  return out;
}

} // namespace

TEST_SUITE("e2e")
{
  TEST_CASE("metrics and the JSON access log")
  {
    RegistryFixture f({"--log-format", "json", "--cleanup-interval", "1s", "--gc-grace", "0s"});
    auto& c = f.c();
    auto image = c.push_image("main/app", "v1", {"layer one", "layer two"});
    auto started = c.post("/v2/main/app/blobs/uploads/");
    REQUIRE(started);
    REQUIRE(started->status == 202);

    auto res = c.get("/metrics");
    REQUIRE(res);
    CHECK(res->status == 200);
    CHECK(res->get_header_value("Content-Type") == "text/plain; version=0.0.4; charset=utf-8");
    const std::string& text = res->body;
    CHECK(metric(text, "registryctl_http_requests_total{method=\"PUT\",route=\"manifest\",status=\"201\"}") == 1);
    CHECK(metric(text, "registryctl_http_requests_total{method=\"POST\",route=\"upload_start\",status=\"201\"}")
          == 3);
    CHECK(metric(text, "registryctl_http_request_duration_seconds_count{method=\"PUT\",route=\"manifest\"}") == 1);
    CHECK(metric(text, "registryctl_http_request_duration_seconds_bucket{method=\"PUT\",route=\"manifest\",le=\"+Inf\"}")
          == 1);
    uint64_t pushed = image.manifest.size() + image.config.data.size() + 2 * std::string("layer one").size();
    CHECK(metric(text, "registryctl_http_received_bytes_total") == static_cast<double>(pushed));
    CHECK(metric(text, "registryctl_uploads_in_progress") == 1);
    CHECK(metric(text, "registryctl_feed_blobs{feed=\"main\"}") == 3);
    CHECK(metric(text, "registryctl_feed_repositories{feed=\"other\"}") == 0);
    CHECK(text.find("# TYPE registryctl_http_request_duration_seconds histogram") != std::string::npos);

    // The cleanup job reports into the same metrics.
    Blob orphan = make_blob("nobody links me twice");
    REQUIRE(c.http().Post("/v2/main/app/blobs/uploads/?digest=" + orphan.digest, orphan.data,
                          "application/octet-stream")->status == 201);
    REQUIRE(c.http().Delete("/v2/main/app/blobs/" + orphan.digest)->status == 202);
    double removed = 0;
    for (int i = 0; i < 50 && removed < 1; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      removed = metric(c.get("/metrics")->body, "registryctl_gc_blobs_removed_total");
    }
    CHECK(removed >= 1);

    // Every line of the log is one JSON object; access lines carry the request id
    // the client saw.
    auto head = c.head("/v2/main/app/manifests/v1");
    REQUIRE(head);
    std::string id = head->get_header_value("X-Request-Id");
    CHECK(!id.empty());
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    bool found = false;
    for (const auto& line : json_lines(f.server->log())) {
      CHECK(line.contains("time"));
      CHECK(line.contains("level"));
      if (line["msg"] == "access" && line["request_id"] == id) {
        found = true;
        CHECK(line["method"] == "HEAD");
        CHECK(line["route"] == "manifest");
        CHECK(line["repository"] == "main/app");
        CHECK(line["status"] == 200);
        CHECK(line["bytes_sent"] == 0);
        CHECK(line["client"] == "127.0.0.1");
        CHECK(line["principal"] == "(open)");
      }
    }
    CHECK(found);
    // A body method's line names its own path (httplib routes it under another).
    std::string post_id = started->get_header_value("X-Request-Id");
    bool post_found = false;
    for (const auto& line : json_lines(f.server->log())) {
      if (line["msg"] == "access" && line["request_id"] == post_id) {
        post_found = true;
        CHECK(line["method"] == "POST");
        CHECK(line["path"] == "/v2/main/app/blobs/uploads/");
        CHECK(line["route"] == "upload_start");
        CHECK(line["repository"] == "main/app");
        CHECK(line["status"] == 202);
      }
    }
    CHECK(post_found);
  }

  TEST_CASE("metrics are for admins unless --metrics-anonymous; --log-level")
  {
    TestDir dir;
    auto data = dir / "data";
    REQUIRE(run_cli(data, {"user", "add", "admin"}, "admin password\n").exit_code == 0);
    REQUIRE(run_cli(data, {"user", "add", "viewer"}, "viewer password\n").exit_code == 0);
    {
      ServerProcess server(data, {"--log-level", "warn"});
      httplib::Client client("127.0.0.1", server.port());
      auto anonymous = client.Get("/metrics");
      REQUIRE(anonymous);
      CHECK(anonymous->status == 401);
      auto viewer = client.Get("/metrics", {httplib::make_basic_authentication_header("viewer", "viewer password")});
      REQUIRE(viewer);
      CHECK(viewer->status == 403);
      CHECK(nlohmann::json::parse(viewer->body)["errors"][0]["code"] == "DENIED");
      auto admin = client.Get("/metrics", {httplib::make_basic_authentication_header("admin", "admin password")});
      REQUIRE(admin);
      CHECK(admin->status == 200);
      CHECK(metric(admin->body, "registryctl_http_requests_total{method=\"GET\",route=\"metrics\",status=\"401\"}")
            == 1);
      // warn: no access lines, but the failed login is there.
      server.stop();
      std::string log = server.log();
      CHECK(log.find(" access ") == std::string::npos);
      CHECK(log.find("serving http://") == std::string::npos);
    }
    ServerProcess open(data, {"--metrics-anonymous"});
    httplib::Client client("127.0.0.1", open.port());
    auto anonymous = client.Get("/metrics");
    REQUIRE(anonymous);
    CHECK(anonymous->status == 200);
    CHECK(run_cli(data, {"serve", "--log-level", "loud"}).exit_code == 2);
  }
}

TEST_SUITE("e2e")
{
  TEST_CASE("the audit trail: registryctl events")
  {
    RegistryFixture f;
    auto& c = f.c();
    REQUIRE(run_cli(f.data, {"user", "add", "admin"}, "admin password\n").exit_code == 0);
    REQUIRE(run_cli(f.data, {"feed", "create", "private", "--anonymous", "none"}).exit_code == 0);
    REQUIRE(run_cli(f.data, {"user", "add", "bob"}, "bob password\n").exit_code == 0);
    REQUIRE(run_cli(f.data, {"privilege", "grant", "bob", "private", "push"}).exit_code == 0);
    REQUIRE(run_cli(f.data, {"key", "create", "--feed", "private", "--privileges", "pull"}).exit_code == 0);

    c.http().set_basic_auth("bob", "bob password");
    auto image = c.push_image("private/app", "v1", {"audited layer"});
    c.http().set_basic_auth("", "");
    auto wrong = c.get("/v2/", {httplib::make_basic_authentication_header("bob", "guess")});
    REQUIRE(wrong);
    CHECK(wrong->status == 401);
    auto login = c.http().Get("/auth/token?service=registryctl&offline_token=true&client_id=test",
                              {httplib::make_basic_authentication_header("bob", "bob password")});
    REQUIRE(login);
    CHECK(login->status == 200);
    auto removed = c.http().Delete("/v2/private/app/manifests/" + image.digest,
                                   {httplib::make_basic_authentication_header("admin", "admin password")});
    REQUIRE(removed);
    CHECK(removed->status == 202);
    REQUIRE(run_cli(f.data, {"gc", "--grace", "0s"}).exit_code == 0);
    REQUIRE(run_cli(f.data, {"feed", "delete", "other"}).exit_code == 0);

    auto listed = run_cli(f.data, {"events", "-o", "json"});
    REQUIRE_MESSAGE(listed.exit_code == 0, listed.err);
    auto events = nlohmann::json::parse(listed.out);
    std::vector<std::string> kinds;
    for (const auto& e : events) {
      kinds.push_back(e["kind"]);
    }
    // `feed create main/other` ran before the first user existed; they are in the trail too.
    std::vector<std::string> expected = {"feed.create", "feed.create", "user.add", "feed.create", "user.add",
                                         "privilege.grant", "key.create", "manifest.push", "login.failed",
                                         "login", "manifest.delete", "gc.run", "feed.delete"};
    CHECK(kinds == expected);
    auto find = [&](const std::string& kind) {
      for (const auto& e : events) {
        if (e["kind"] == kind) {
          return e;
        }
      }
      return nlohmann::json();
    };
    CHECK(find("manifest.push")["actor"] == "bob");
    CHECK(find("manifest.push")["feed"] == "private");
    CHECK(find("manifest.push")["subject"] == "private/app@" + image.digest);
    CHECK(find("manifest.push")["detail"] == "tag v1");
    CHECK(find("manifest.delete")["actor"] == "admin");
    CHECK(find("manifest.delete")["detail"] == "tags v1");
    CHECK(find("login.failed")["detail"] == "from 127.0.0.1");
    CHECK(find("login")["actor"] == "bob");
    CHECK(find("privilege.grant")["actor"].get<std::string>().rfind("cli:", 0) == 0);
    CHECK(find("gc.run")["detail"].get<std::string>().rfind("2 blobs (", 0) == 0); // config and layer
    CHECK(listed.out.find("bob password") == std::string::npos);

    auto private_only = nlohmann::json::parse(run_cli(f.data, {"events", "--feed", "private", "-o", "json"}).out);
    for (const auto& e : private_only) {
      CHECK(e["feed"] == "private");
    }
    CHECK(private_only.size() == 5); // create, grant, key, push, delete
    CHECK(nlohmann::json::parse(run_cli(f.data, {"events", "--limit", "2", "-o", "json"}).out).size() == 2);
    CHECK(nlohmann::json::parse(run_cli(f.data, {"events", "--since", "2099-01-01T00:00:00Z", "-o", "json"}).out)
            .empty());
    CHECK(run_cli(f.data, {"events", "--since", "yesterday"}).exit_code == 2);
    CHECK(run_cli(f.data, {"events", "--feed", "nosuch"}).exit_code == 3);
    auto table = run_cli(f.data, {"events"});
    CHECK(table.out.find("manifest.push") != std::string::npos);
  }
}
