#include "common/util/uuid.hpp"

#include <doctest/doctest.h>

#include <set>
#include <string>

namespace util = registry::util;

TEST_SUITE("util")
{
  TEST_CASE("util::random_uuid")
  {
    SUBCASE("the result is a canonical lowercase version-4 UUID")
    {
      for (int i = 0; i < 100; ++i) {
        std::string id = util::random_uuid();
        INFO(id);
        REQUIRE(id.size() == 36);
        CHECK(util::is_uuid(id));
        CHECK(id[14] == '4'); // version
        CHECK((id[19] == '8' || id[19] == '9' || id[19] == 'a' || id[19] == 'b')); // variant
      }
    }

    SUBCASE("successive UUIDs differ")
    {
      std::set<std::string> seen;
      for (int i = 0; i < 1000; ++i) {
        seen.insert(util::random_uuid());
      }
      CHECK(seen.size() == 1000);
    }
  }

  TEST_CASE("util::is_uuid")
  {
    SUBCASE("canonical lowercase UUIDs are accepted")
    {
      CHECK(util::is_uuid("123e4567-e89b-42d3-a456-426614174000"));
      CHECK(util::is_uuid("00000000-0000-0000-0000-000000000000"));
    }

    SUBCASE("other forms are rejected")
    {
      for (const char* text : {"", "123E4567-E89B-42D3-A456-426614174000",
                               "123e4567e89b42d3a456426614174000",
                               "{123e4567-e89b-42d3-a456-426614174000}",
                               "123e4567-e89b-42d3-a456-42661417400",
                               "123e4567-e89b-42d3-a456-4266141740000",
                               "123e4567-e89b-42d3-a456_426614174000",
                               "123e4567-e89b-42d3-a456-42661417400g",
                               "../../../../../../../../../../etc/pa",
                               "123e4567-e89b-42d3-a456-42661417/000"}) {
        INFO("'", text, "'");
        CHECK_FALSE(util::is_uuid(text));
      }
    }
  }
}
