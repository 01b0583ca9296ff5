#include "common/storage/stream_reader.hpp"

#include "tests/support/test_dir.hpp"
#include "tests/unit/unit_helpers.hpp"

#include <doctest/doctest.h>

#include <optional>
#include <string>
#include <vector>

using registry::ErrorCode;
using registry::Result;
using registry::storage::RangeFetch;
using registry::storage::RangeSink;
using registry::storage::StreamingBlobReader;
using registry::test::code_of;

namespace {

// Serves `object` from the offset asked for in pieces of `piece` bytes, as an
// HTTP client hands a body over; records the offset of every GET.
struct FakeObject {
  std::string object;
  size_t piece = 3000;
  std::vector<uint64_t> gets;
  size_t cut_after = 0; // > 0: the first GET ends (ok) after this many bytes
  std::optional<ErrorCode> fail_with; // every GET fails with this

  RangeFetch
  fetch()
  {
    return [this](uint64_t offset, const RangeSink& sink) -> Result<void> {
      gets.push_back(offset);
      if (fail_with) {
        return registry::fail(*fail_with, "no such object");
      }
      size_t end = object.size();
      if (cut_after > 0 && gets.size() == 1) {
        end = std::min(end, static_cast<size_t>(offset) + cut_after);
      }
      for (size_t at = offset; at < end; at += piece) {
        if (!sink(object.data() + at, std::min(piece, end - at))) {
          break;
        }
      }
      return registry::ok();
    };
  }
};

std::string
read_all(StreamingBlobReader& reader, uint64_t from, size_t buffer_size)
{
  std::string out;
  std::vector<char> buffer(buffer_size);
  for (;;) {
    auto n = reader.read_at(from + out.size(), buffer.data(), buffer.size());
    REQUIRE_OK(n);
    if (*n == 0) {
      return out;
    }
    out.append(buffer.data(), *n);
  }
}

} // namespace

TEST_SUITE("storage")
{
  TEST_CASE("storage::StreamingBlobReader")
  {
    FakeObject f;
    f.object = registry::test::random_bytes(3 * 1024 * 1024 + 17, 5);

    SUBCASE("sequential reads take one GET and return the object")
    {
      StreamingBlobReader reader(f.object.size(), "GET test", f.fetch());
      CHECK(reader.size() == f.object.size());
      CHECK(read_all(reader, 0, 100000) == f.object);
      CHECK(f.gets == std::vector<uint64_t>{0});
    }

    SUBCASE("a read elsewhere starts a GET there")
    {
      StreamingBlobReader reader(f.object.size(), "GET test", f.fetch());
      char c = 0;
      REQUIRE_OK(reader.read_at(0, &c, 1));
      CHECK(c == f.object[0]);
      CHECK(read_all(reader, 2000000, 65536) == f.object.substr(2000000));
      CHECK(f.gets == std::vector<uint64_t>{0, 2000000});
      auto end = reader.read_at(f.object.size(), &c, 1);
      REQUIRE_OK(end);
      CHECK(*end == 0);
    }

    SUBCASE("a body cut short is fetched again from where it stopped")
    {
      f.cut_after = 1000000;
      StreamingBlobReader reader(f.object.size(), "GET test", f.fetch());
      CHECK(read_all(reader, 0, 100000) == f.object);
      REQUIRE(f.gets.size() == 2);
      CHECK(f.gets[1] == 1000000);
    }

    SUBCASE("a missing object is not_found at once; other failures after three tries")
    {
      f.fail_with = ErrorCode::not_found;
      char buffer[16];
      {
        StreamingBlobReader reader(f.object.size(), "GET test", f.fetch());
        CHECK(code_of(reader.read_at(0, buffer, sizeof buffer)) == ErrorCode::not_found);
        CHECK(f.gets.size() == 1);
      }
      f.gets.clear();
      f.fail_with = ErrorCode::io_error;
      StreamingBlobReader reader(f.object.size(), "GET test", f.fetch());
      CHECK(code_of(reader.read_at(0, buffer, sizeof buffer)) == ErrorCode::io_error);
      CHECK(f.gets.size() == 3);
    }

    SUBCASE("a reader dropped mid-object stops its stream")
    {
      // More than the read-ahead: the stream blocks until the reader goes.
      f.object = registry::test::random_bytes(40 * 1024 * 1024, 6);
      {
        StreamingBlobReader reader(f.object.size(), "GET test", f.fetch());
        char buffer[4096];
        REQUIRE_OK(reader.read_at(0, buffer, sizeof buffer));
      }
      CHECK(f.gets.size() == 1);
    }
  }
}
