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
