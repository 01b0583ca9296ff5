#include "common/service/blob_fetch.hpp"

#include "tests/support/test_dir.hpp"
#include "tests/unit/unit_helpers.hpp"

#include <doctest/doctest.h>

#include <string>
#include <thread>

using registry::ErrorCode;
using registry::service::BlobFetch;
using namespace registry::test;

namespace {

// Reads everything a reader may read from `offset` on, until the end or an error.
registry::Result<std::string>
read_rest(BlobFetch& fetch, uint64_t offset)
{
  std::string out;
  char buffer[10000];
  while (true) {
    auto n = fetch.read_at(offset + out.size(), buffer, sizeof buffer);
    if (!n) {
      return registry::fail(n.error());
    }
    if (*n == 0) {
      return out;
    }
    out.append(buffer, *n);
  }
}

} // namespace

TEST_SUITE("service")
{
  TEST_CASE("service::BlobFetch")
  {
    TestDir dir;
    auto created = BlobFetch::create(dir / "spool");
    REQUIRE(created);
    auto fetch = *created;
    // The spool file is anonymous: nothing is left in the directory.
    CHECK(std::filesystem::is_empty(dir / "spool"));
    std::string data = random_bytes(3 * BlobFetch::k_hold_back + 123);

    SUBCASE("readers get everything but the held-back tail until the blob is committed")
    {
      fetch->announce(data.size());
      REQUIRE(fetch->append(data.data(), BlobFetch::k_hold_back));
      REQUIRE(fetch->append(data.data() + BlobFetch::k_hold_back, data.size() - BlobFetch::k_hold_back));
      auto progress = fetch->wait_streamable();
      CHECK(progress.state == BlobFetch::State::running);
      CHECK(progress.size == data.size());
      char buffer[16];
      auto n = fetch->read_at(0, buffer, sizeof buffer);
      REQUIRE(n);
      CHECK(std::string(buffer, *n) == data.substr(0, sizeof buffer));
      // The reader blocks at the held-back tail until the fetcher commits.
      std::thread committer([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        fetch->finish(BlobFetch::State::committed);
      });
      auto rest = read_rest(*fetch, 0);
      committer.join();
      REQUIRE(rest);
      CHECK(*rest == data);
      CHECK(fetch->wait_finished().state == BlobFetch::State::committed);
    }

    SUBCASE("a failed fetch ends readers with an error and never releases the tail")
    {
      REQUIRE(fetch->append(data.data(), data.size()));
      REQUIRE(fetch->wait_streamable().state == BlobFetch::State::running);
      std::string seen;
      char buffer[4096];
      while (seen.size() < data.size() - BlobFetch::k_hold_back) {
        auto n = fetch->read_at(seen.size(), buffer, sizeof buffer);
        REQUIRE(n);
        seen.append(buffer, *n);
      }
      fetch->finish(BlobFetch::State::failed,
                    registry::make_error(ErrorCode::io_error, "upstream unavailable: wrong bytes"));
      auto n = fetch->read_at(seen.size(), buffer, sizeof buffer);
      CHECK(code_of(n) == ErrorCode::io_error);
      CHECK(seen.size() == data.size() - BlobFetch::k_hold_back);
      // Once a reader started, another upstream cannot take over.
      CHECK_FALSE(fetch->restart());
    }

    SUBCASE("a fetch nobody read yet may start over with another upstream")
    {
      REQUIRE(fetch->append("wrong", 5));
      CHECK(fetch->restart());
      REQUIRE(fetch->append(data.data(), data.size()));
      fetch->finish(BlobFetch::State::committed);
      CHECK(fetch->wait_streamable().state == BlobFetch::State::committed);
      auto rest = read_rest(*fetch, 0);
      REQUIRE(rest);
      CHECK(*rest == data);
    }

    SUBCASE("a small blob is never streamable before it ends")
    {
      REQUIRE(fetch->append(data.data(), BlobFetch::k_hold_back));
      fetch->finish(BlobFetch::State::absent);
      CHECK(fetch->wait_streamable().state == BlobFetch::State::absent);
    }
  }
}
