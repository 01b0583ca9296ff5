#pragma once

// One running registry per test case: a temp data directory with feed "main"
// (and "other"), `registryctl serve` on a free loopback port, and a client.

#include "tests/support/child_process.hpp"
#include "tests/support/object_stores.hpp"
#include "tests/support/oci_client.hpp"
#include "tests/support/radosgw.hpp"
#include "tests/support/test_dir.hpp"

#include <doctest/doctest.h>

#include <cstdlib>
#include <memory>

namespace registry::test {

// With REGISTRYCTL_TEST_FEED_STORE=s3 or azure (set by ctest's e2e-api-s3 and
// e2e-api-azure), the fixture's feeds live on that object store, added to the
// data directory as store "feeds" with --proxy so that blob GETs answer as on
// the filesystem; the `feed create` arguments that choose it. Empty otherwise.
inline std::vector<std::string>
feed_store_args(const std::filesystem::path& data)
{
  const char* kind = std::getenv("REGISTRYCTL_TEST_FEED_STORE");
  if (kind == nullptr || *kind == '\0') {
    return {};
  }
  std::vector<std::string> add = {"store", "add", "feeds", "--proxy", "--prefix", "e2e/" + data.parent_path().filename().string()};
  if (std::string(kind) == "s3") {
    const auto& s3 = radosgw();
    ::setenv("REGISTRYCTL_STORE_FEEDS_ACCESS_KEY_ID", s3.access_key_id.c_str(), 1);
    ::setenv("REGISTRYCTL_STORE_FEEDS_SECRET_ACCESS_KEY", s3.secret_access_key.c_str(), 1);
    add.insert(add.end(), {"--type", "s3", "--endpoint", s3.endpoint, "--region", s3.region, "--bucket",
                           s3.bucket, "--addressing", "path"});
  } else if (std::string(kind) == "azure") {
    REQUIRE_MESSAGE(azurite_endpoint() != nullptr, "run through tests/support/azurite/run-with-azurite.sh");
    create_azurite_container("feeds");
    ::setenv("REGISTRYCTL_STORE_FEEDS_ACCOUNT_KEY", k_azurite_key, 1);
    add.insert(add.end(), {"--type", "azure", "--endpoint", azurite_endpoint(), "--account", k_azurite_account,
                           "--container", "feeds"});
  } else {
    FAIL("REGISTRYCTL_TEST_FEED_STORE must be s3 or azure, not ", kind);
  }
  auto added = run_cli(data, add);
  REQUIRE_MESSAGE(added.exit_code == 0, added.err);
  return {"--store", "feeds"};
}

struct RegistryFixture {
  TestDir dir;
  std::filesystem::path data = dir / "data";
  std::unique_ptr<ServerProcess> server;
  std::unique_ptr<OciClient> client;

  explicit RegistryFixture(const std::vector<std::string>& serve_args = {})
  {
    auto store = feed_store_args(data);
    std::vector<std::string> create_main = {"feed", "create", "main"};
    create_main.insert(create_main.end(), store.begin(), store.end());
    auto created = run_cli(data, create_main);
    REQUIRE_MESSAGE(created.exit_code == 0, created.err);
    if (!store.empty()) {
      auto shown = run_cli(data, {"-o", "json", "feed", "show", "main"});
      REQUIRE_MESSAGE(nlohmann::json::parse(shown.out).value("store", "") == "feeds", shown.out);
    }
    server = std::make_unique<ServerProcess>(data, serve_args);
    client = std::make_unique<OciClient>(server->port());
    // A second feed created while the server runs: CLI and server share state.
    std::vector<std::string> create_other = {"feed", "create", "other"};
    create_other.insert(create_other.end(), store.begin(), store.end());
    auto other = run_cli(data, create_other);
    REQUIRE_MESSAGE(other.exit_code == 0, other.err);
  }

  OciClient&
  c()
  {
    return *client;
  }
};

} // namespace registry::test
