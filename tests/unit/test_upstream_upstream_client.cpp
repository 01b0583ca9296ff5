// UpstreamClient's naming rules, which need no network.

#include "common/upstream/upstream_client.hpp"
#include "tests/unit/unit_helpers.hpp"

#include <doctest/doctest.h>

using registry::upstream::UpstreamClient;

TEST_CASE("UpstreamClient: Docker Hub's library/ prefix for one-component names only")
{
  for (const char* hub : {"https://registry-1.docker.io", "https://docker.io", "https://index.docker.io"}) {
    auto client = UpstreamClient::create(hub, "", "");
    REQUIRE_OK(client);
    CHECK((*client)->upstream_name("alpine") == "library/alpine");
    CHECK((*client)->upstream_name("bitnami/redis") == "bitnami/redis");
  }
  auto other = UpstreamClient::create("http://127.0.0.1:5000", "", "");
  REQUIRE_OK(other);
  CHECK((*other)->upstream_name("alpine") == "alpine");
  CHECK(registry::test::code_of(UpstreamClient::create("ftp://example", "", "")) == registry::ErrorCode::invalid_argument);
}
