#pragma once

// One running registry per test case: a temp data directory with feed "main"
// (and "other"), `registryctl serve` on a free loopback port, and a client.

#include "tests/support/child_process.hpp"
#include "tests/support/oci_client.hpp"
#include "tests/support/test_dir.hpp"

#include <doctest/doctest.h>

#include <memory>

namespace registry::test {

struct RegistryFixture {
  TestDir dir;
  std::filesystem::path data = dir / "data";
  std::unique_ptr<ServerProcess> server;
  std::unique_ptr<OciClient> client;

  explicit RegistryFixture(const std::vector<std::string>& serve_args = {})
  {
    auto created = run_cli(data, {"feed", "create", "main"});
    REQUIRE_MESSAGE(created.exit_code == 0, created.err);
    server = std::make_unique<ServerProcess>(data, serve_args);
    client = std::make_unique<OciClient>(server->port());
    // A second feed created while the server runs: CLI and server share state.
    auto other = run_cli(data, {"feed", "create", "other"});
    REQUIRE_MESSAGE(other.exit_code == 0, other.err);
  }

  OciClient&
  c()
  {
    return *client;
  }
};

} // namespace registry::test
