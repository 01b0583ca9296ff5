#include "common/util/file.hpp"

#include "tests/support/test_dir.hpp"
#include "tests/unit/unit_helpers.hpp"

#include <doctest/doctest.h>

#include <fstream>
#include <string>

namespace util = registry::util;
using registry::ErrorCode;
using registry::test::code_of;
using registry::test::TestDir;

TEST_SUITE("util")
{
  TEST_CASE("util::read_file")
  {
    TestDir dir;

    SUBCASE("returns the whole file, whatever its size")
    {
      for (size_t size : {size_t{0}, size_t{1}, size_t{4095}, size_t{65536}, size_t{200001}}) {
        INFO(size);
        std::string bytes = registry::test::random_bytes(size, static_cast<unsigned>(size));
        REQUIRE_OK(util::write_file_atomic(dir / "f", bytes));
        auto read = util::read_file(dir / "f");
        REQUIRE_OK(read);
        CHECK(*read == bytes);
      }
    }

    SUBCASE("a file with no size to stat is read to its end")
    {
      auto read = util::read_file("/proc/self/status");
      REQUIRE_OK(read);
      CHECK(read->find("VmRSS:") != std::string::npos);
      CHECK(read->back() == '\n');
    }

    SUBCASE("a missing file is not_found; a directory is io_error")
    {
      CHECK(code_of(util::read_file(dir / "missing")) == ErrorCode::not_found);
      CHECK(code_of(util::read_file(dir.path())) == ErrorCode::io_error);
    }
  }
}
