// Garbage collection and fsck against a live server: the CLI and the server's
// cleanup job on the same data directory, and a stress run with pushes,
// deletes and collections at once.

#include "common/util/file.hpp"
#include "tests/e2e/fixture.hpp"

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <thread>

using namespace registry::test;
namespace fs = std::filesystem;

namespace {

size_t
count_blob_files(const fs::path& data)
{
  size_t n = 0;
  for (const auto& e : fs::recursive_directory_iterator(data / "store" / "blobs")) {
    n += e.is_regular_file() ? 1 : 0;
  }
  return n;
}

nlohmann::json
cli_json(const fs::path& data, std::vector<std::string> args)
{
  args.push_back("-o");
  args.push_back("json");
  auto r = run_cli(data, args);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  return nlohmann::json::parse(r.out);
}

// Pulls a tag completely and checks every digest. Returns false on any failure.
bool
pulls_completely(OciClient& c, const std::string& repo, const std::string& tag)
{
  auto m = c.get("/v2/" + repo + "/manifests/" + tag, {{"Accept", k_oci_manifest}});
  if (!m || m->status != 200) {
    return m && m->status == 404; // a tag deleted meanwhile is not a broken pull
  }
  if (sha256_digest(m->body) != m->get_header_value("Docker-Content-Digest")) {
    return false;
  }
  auto j = nlohmann::json::parse(m->body);
  std::vector<nlohmann::json> parts = {j["config"]};
  for (const auto& l : j["layers"]) {
    parts.push_back(l);
  }
  for (const auto& d : parts) {
    auto b = c.get("/v2/" + repo + "/blobs/" + d["digest"].get<std::string>());
    if (!b || b->status != 200 || sha256_digest(b->body) != d["digest"]) {
      return false;
    }
  }
  return true;
}

} // namespace

TEST_SUITE("e2e")
{
  TEST_CASE("gc and fsck from the CLI while the server runs")
  {
    // Every blob in the store: the test counts its files.
    RegistryFixture f({"--cleanup-interval", "0", "--small-blob-limit", "0"});
    auto& c = f.c();
    auto image = c.push_image("main/app", "v1", {"kept layer one", "kept layer two"});
    Blob orphan = make_blob("pushed but never referenced");
    c.push_blob("main/app", orphan);
    REQUIRE(count_blob_files(f.data) == 4);

    SUBCASE("dry run reports, gc removes only the unreferenced blob")
    {
      auto plan = cli_json(f.data, {"gc", "--grace", "0", "--dry-run"});
      CHECK(plan["dry_run"] == true);
      CHECK(plan["blobs_removed"] == 1);
      CHECK(plan["bytes_freed"] == orphan.data.size());
      CHECK(count_blob_files(f.data) == 4);
      auto done = cli_json(f.data, {"gc", "--grace", "0"});
      CHECK(done["blobs_removed"] == 1);
      CHECK(done["removed_digests"] == nlohmann::json::array({orphan.digest}));
      CHECK(count_blob_files(f.data) == 3);
      expect_error(c.head("/v2/main/app/blobs/" + orphan.digest), 404, "BLOB_UNKNOWN", true);
      CHECK(pulls_completely(c, "main/app", "v1"));
      // The default grace keeps fresh blobs.
      c.push_blob("main/app", orphan);
      CHECK(cli_json(f.data, {"gc"})["blobs_removed"] == 0);
    }

    SUBCASE("deleting the image frees its blobs")
    {
      auto del = run_cli(f.data, {"image", "delete", "main/app:v1"});
      REQUIRE(del.exit_code == 0);
      auto done = cli_json(f.data, {"gc", "--grace", "0"});
      CHECK(done["blobs_removed"] == 4);
      CHECK(count_blob_files(f.data) == 0);
      // Pushing the same content again works.
      auto again = c.push_image("main/app", "v1", {"kept layer one", "kept layer two"});
      CHECK(again.digest == image.digest);
      CHECK(pulls_completely(c, "main/app", "v1"));
    }

    SUBCASE("untagged manifests go with --untagged-older-than")
    {
      auto untag = c.del("/v2/main/app/manifests/v1");
      REQUIRE(untag->status == 202);
      auto keep = cli_json(f.data, {"gc", "--grace", "0"});
      CHECK(keep["manifests_removed"] == 0);
      CHECK(keep["blobs_removed"] == 1);
      auto done = cli_json(f.data, {"gc", "--grace", "0", "--untagged-older-than", "0"});
      CHECK(done["manifests_removed"] == 1);
      CHECK(done["blobs_removed"] == 3);
      expect_error(c.get("/v2/main/app/manifests/" + image.digest), 404, "MANIFEST_UNKNOWN");
    }

    SUBCASE("fsck finds orphans, missing bytes, and repairs orphans")
    {
      auto clean = cli_json(f.data, {"fsck", "--verify-content"});
      CHECK(clean["clean"] == true);
      CHECK(clean["blobs_checked"] == 4);
      // Bytes without a row, as a crash between store commit and row leaves them.
      std::string hex = sha256_digest("stray").substr(7);
      fs::create_directories(f.data / "store" / "blobs" / "sha256" / hex.substr(0, 2));
      REQUIRE(registry::util::write_file_atomic(
        f.data / "store" / "blobs" / "sha256" / hex.substr(0, 2) / hex, "stray"));
      auto found = run_cli(f.data, {"fsck", "-o", "json"});
      CHECK(found.exit_code == 1);
      auto j = nlohmann::json::parse(found.out);
      REQUIRE(j["problems"].size() == 1);
      CHECK(j["problems"][0]["kind"] == "orphan_blob");
      auto repaired = run_cli(f.data, {"fsck", "--repair", "--grace", "0", "-o", "json"});
      CHECK(repaired.exit_code == 0);
      CHECK(nlohmann::json::parse(repaired.out)["problems"][0]["repaired"] == true);
      CHECK(cli_json(f.data, {"fsck"})["problems"].empty());
      // A layer's bytes lost behind the registry's back.
      std::string layer_hex = image.layers[0].digest.substr(7);
      fs::remove(f.data / "store" / "blobs" / "sha256" / layer_hex.substr(0, 2) / layer_hex);
      auto broken = run_cli(f.data, {"fsck", "-o", "json"});
      CHECK(broken.exit_code == 1);
      CHECK(nlohmann::json::parse(broken.out)["problems"][0]["kind"] == "missing_bytes");
    }
  }

  TEST_CASE("the server's cleanup job collects garbage on its own")
  {
    RegistryFixture f({"--cleanup-interval", "1s", "--gc-grace", "0"});
    auto& c = f.c();
    auto image = c.push_image("main/app", "v1", {"layer"});
    Blob orphan = make_blob("garbage");
    c.push_blob("main/app", orphan);
    bool gone = false;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    while (!gone && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      auto head = c.head("/v2/main/app/blobs/" + orphan.digest);
      gone = head && head->status == 404;
    }
    CHECK(gone);
    CHECK(pulls_completely(c, "main/app", "v1"));
    CHECK(f.server->log().find("cleanup: removed") != std::string::npos);
  }

  TEST_CASE("stress: pushes, deletes and gc at once never break a pull")
  {
    RegistryFixture f({"--cleanup-interval", "0"});
    const int clients = 4;
    const int images_per_client = 40;
    std::atomic<int> pushed{0};
    std::atomic<int> retries{0};
    std::atomic<int> deleted{0};
    std::atomic<bool> stop{false};
    std::atomic<int> gc_runs{0};
    std::atomic<long> gc_removed{0};
    std::mutex tags_mutex;
    std::vector<std::pair<std::string, std::string>> tags; // repo, tag

    std::atomic<int> failures{0};
    // Collections in a loop with a 2 s grace: a blob pushed in the last second
    // is safe, anything older and unreferenced goes.
    std::thread collector([&] {
      while (!stop) {
        auto r = run_cli(f.data, {"gc", "--grace", "2s", "-o", "json"});
        if (r.exit_code == 0) {
          ++gc_runs;
          gc_removed += nlohmann::json::parse(r.out)["blobs_removed"].get<long>();
        }
      }
    });
    std::vector<std::thread> pushers;
    for (int t = 0; t < clients; ++t) {
      pushers.emplace_back([&, t] {
        OciClient c(f.server->port());
        std::string repo = "main/stress" + std::to_string(t % 2);
        for (int i = 0; i < images_per_client; ++i) {
          // Layers shared between clients and images, plus one of its own.
          std::vector<Blob> layers = {make_blob("shared base layer"),
                                      make_blob("shared layer " + std::to_string(i % 3)),
                                      make_blob(random_bytes(4096, static_cast<unsigned>(t * 1000 + i)))};
          Blob config = make_blob("{\"n\":" + std::to_string(t * 1000 + i) + "}", k_oci_config);
          std::string manifest = image_manifest(config, layers);
          std::string tag = "c" + std::to_string(t) + "-" + std::to_string(i);
          bool ok = false;
          for (int attempt = 0; attempt < 20 && !ok; ++attempt) {
            // A blob collected between its push and the manifest push makes the
            // manifest fail with MANIFEST_BLOB_UNKNOWN; a client pushes it again.
            for (const auto& b : layers) {
              c.post("/v2/" + repo + "/blobs/uploads/?digest=" + b.digest, b.data);
            }
            c.post("/v2/" + repo + "/blobs/uploads/?digest=" + config.digest, config.data);
            auto res = c.put_manifest(repo, tag, manifest, k_oci_manifest);
            ok = res && res->status == 201;
            if (!ok) {
              if (!res || error_code(res) != "MANIFEST_BLOB_UNKNOWN") {
                ++failures; // anything else is a bug
              }
              ++retries;
            }
          }
          if (!ok) {
            ++failures;
            continue;
          }
          ++pushed;
          if (i % 4 == 3) {
            auto del = c.del("/v2/" + repo + "/manifests/" + sha256_digest(manifest));
            if (del && del->status == 202) {
              ++deleted;
            }
          } else {
            std::lock_guard lock(tags_mutex);
            tags.emplace_back(repo, tag);
          }
        }
      });
    }
    for (auto& t : pushers) {
      t.join();
    }
    stop = true;
    collector.join();
    MESSAGE("pushed " << pushed.load() << " images (" << retries.load()
                      << " manifest retries), deleted " << deleted.load() << ", " << gc_runs.load()
                      << " gc runs removed " << gc_removed.load() << " blobs");
    CHECK(failures == 0);
    CHECK(pushed == clients * images_per_client);
    CHECK(gc_runs > 0);
    int broken = 0;
    for (const auto& [repo, tag] : tags) {
      broken += pulls_completely(f.c(), repo, tag) ? 0 : 1;
    }
    CHECK(broken == 0);
    // A last collection leaves exactly the referenced blobs, and fsck agrees.
    cli_json(f.data, {"gc", "--grace", "0"});
    auto fsck = cli_json(f.data, {"fsck", "--verify-content"});
    CHECK(fsck["clean"] == true);
    CHECK(cli_json(f.data, {"gc", "--grace", "0", "--dry-run"})["blobs_removed"] == 0);
    for (const auto& [repo, tag] : tags) {
      CHECK(pulls_completely(f.c(), repo, tag));
    }
  }
}

TEST_SUITE("e2e")
{
  TEST_CASE("crash: kill -9 during uploads and during gc leaves a consistent registry")
  {
    TestDir dir;
    fs::path data = dir / "data";
    REQUIRE(run_cli(data, {"feed", "create", "main"}).exit_code == 0);
    PushedImage image;
    {
      ServerProcess server(data, {"--cleanup-interval", "0"});
      OciClient c(server.port());
      image = c.push_image("main/app", "v1", {"committed layer"});
      // Uploads in flight: chunked sessions with data, and big monolithic pushes.
      std::vector<std::thread> writers;
      for (int t = 0; t < 4; ++t) {
        writers.emplace_back([&, t] {
          OciClient w(server.port());
          std::string data_bytes = random_bytes(8 << 20, static_cast<unsigned>(t + 100));
          auto start = w.post("/v2/main/inflight" + std::to_string(t) + "/blobs/uploads/");
          if (start && start->status == 202) {
            w.patch(start->get_header_value("Location"), data_bytes.substr(0, 1 << 20));
          }
          w.post("/v2/main/inflight/blobs/uploads/?digest=" + sha256_digest(data_bytes), data_bytes);
        });
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(150));
      server.crash();
      for (auto& t : writers) {
        t.join();
      }
    }
    // Lots of garbage, then a collector killed at an arbitrary instant.
    {
      ServerProcess server(data, {"--cleanup-interval", "0"});
      OciClient c(server.port());
      for (int i = 0; i < 300; ++i) {
        c.push_blob("main/garbage", make_blob("garbage " + std::to_string(i)));
      }
      CHECK(pulls_completely(c, "main/app", "v1"));
    }
    for (int ms : {5, 20, 60}) {
      run_and_kill(registryctl_bin(), {"--data", data.string(), "gc", "--grace", "0"},
                   std::chrono::milliseconds(ms));
      // A killed collector never leaves a row without its bytes.
      auto check = run_cli(data, {"fsck", "-o", "json"});
      auto report = nlohmann::json::parse(check.out);
      for (const auto& p : report["problems"]) {
        CHECK(p["kind"] != "missing_bytes");
        CHECK(p["kind"] != "dangling_reference");
      }
    }
    // The lock of a killed collector is taken over (its process is gone), and
    // the next run recovers what it left in quarantine.
    auto gc = run_cli(data, {"gc", "--grace", "0", "-o", "json"});
    CHECK_MESSAGE(gc.exit_code == 0, gc.err);
    auto repaired = run_cli(data, {"fsck", "--repair", "--grace", "0", "-o", "json"});
    INFO(repaired.out);
    CHECK(repaired.exit_code == 0);
    ServerProcess server(data);
    OciClient c(server.port());
    CHECK(pulls_completely(c, "main/app", "v1"));
  }
}
