#include "common/util/strings.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace util = registry::util;

TEST_SUITE("util")
{
  TEST_CASE("util::printable")
  {
    CHECK(util::printable("alice") == "alice");
    CHECK(util::printable("a\nb\x1b[31m\xc3\xa9") == "a?b?[31m??");
    CHECK(util::printable(std::string(70, 'x')) == std::string(64, 'x') + "...");
    CHECK(util::printable("abcdef", 3) == "abc...");
  }

  TEST_CASE("util::join")
  {
    CHECK(util::join({}, ",") == "");
    CHECK(util::join({"a"}, ",") == "a");
    CHECK(util::join({"a", "b", "c"}, ", ") == "a, b, c");
  }

  TEST_CASE("util::parse_uint")
  {
    SUBCASE("whole decimal numbers parse")
    {
      CHECK(util::parse_uint("0") == uint64_t{0});
      CHECK(util::parse_uint("7") == uint64_t{7});
      CHECK(util::parse_uint("0042") == uint64_t{42});
      CHECK(util::parse_uint("1048576") == uint64_t{1048576});
    }

    SUBCASE("the largest uint64 parses and one more overflows")
    {
      CHECK(util::parse_uint("18446744073709551615") == std::numeric_limits<uint64_t>::max());
      CHECK_FALSE(util::parse_uint("18446744073709551616").has_value());
      CHECK_FALSE(util::parse_uint("18446744073709551620").has_value());
      CHECK_FALSE(util::parse_uint("99999999999999999999").has_value());
      CHECK_FALSE(util::parse_uint("184467440737095516150").has_value());
    }

    SUBCASE("anything but digits is rejected")
    {
      for (const char* text : {"", " ", " 1", "1 ", "+1", "-1", "1.0", "1e3", "0x10", "12a",
                               "a12", "１"}) {
        INFO("'", text, "'");
        CHECK_FALSE(util::parse_uint(text).has_value());
      }
    }
  }

  TEST_CASE("util::format_duration")
  {
    CHECK(util::format_duration(0) == "0s");
    CHECK(util::format_duration(2) == "2s");
    CHECK(util::format_duration(90) == "1m30s");
    CHECK(util::format_duration(30 * 86400) == "30d");
    CHECK(util::format_duration(86400 + 7200 + 4) == "1d2h4s");
    for (int64_t seconds : {int64_t{1}, int64_t{59}, int64_t{3601}, int64_t{93784}, int64_t{400 * 86400}}) {
      CHECK(util::parse_duration(util::format_duration(seconds)) == seconds);
    }
  }

  TEST_CASE("util::parse_duration")
  {
    SUBCASE("plain digits are seconds")
    {
      CHECK(util::parse_duration("0") == int64_t{0});
      CHECK(util::parse_duration("90") == int64_t{90});
    }

    SUBCASE("single units are seconds, minutes, hours and days")
    {
      CHECK(util::parse_duration("90s") == int64_t{90});
      CHECK(util::parse_duration("15m") == int64_t{15 * 60});
      CHECK(util::parse_duration("1h") == int64_t{3600});
      CHECK(util::parse_duration("7d") == int64_t{7 * 86400});
    }

    SUBCASE("units combine")
    {
      CHECK(util::parse_duration("1h30m") == int64_t{5400});
      CHECK(util::parse_duration("1d2h3m4s") == int64_t{86400 + 7200 + 180 + 4});
      CHECK(util::parse_duration("30m1h") == int64_t{5400});
    }

    SUBCASE("a duration too large for int64 is rejected, never wrapped to a negative value")
    {
      CHECK(util::parse_duration("9223372036854775807") == std::numeric_limits<int64_t>::max());
      CHECK_FALSE(util::parse_duration("9223372036854775808").has_value());
      CHECK_FALSE(util::parse_duration("18446744073709551615").has_value());
      // many large components must not overflow either
      std::string many;
      for (int i = 0; i < 20'000; ++i) {
        many += "9999999999d"; // 8.64e14 s each: 20000 of them exceed int64
      }
      CHECK_FALSE(util::parse_duration(many).has_value());
    }

    SUBCASE("malformed durations are rejected")
    {
      for (const char* text : {"", "h", "m5", "1x", "1h30", "1.5h", "-1h", " 1h", "1h ",
                               "1H", "1 h", "1hh", "s"}) {
        INFO("'", text, "'");
        CHECK_FALSE(util::parse_duration(text).has_value());
      }
    }
  }

  TEST_CASE("util::human_size")
  {
    SUBCASE("sizes below 1 KiB are whole bytes")
    {
      CHECK(util::human_size(0) == "0 B");
      CHECK(util::human_size(1) == "1 B");
      CHECK(util::human_size(1023) == "1023 B");
    }

    SUBCASE("larger sizes use binary units with one decimal")
    {
      CHECK(util::human_size(1024) == "1.0 KiB");
      CHECK(util::human_size(1536) == "1.5 KiB");
      CHECK(util::human_size(1024 * 1024) == "1.0 MiB");
      CHECK(util::human_size(3 * 1024 * 1024 / 2) == "1.5 MiB");
      CHECK(util::human_size(uint64_t{5} << 30) == "5.0 GiB");
      CHECK(util::human_size(uint64_t{2} << 40) == "2.0 TiB");
      CHECK(util::human_size(uint64_t{3} << 50) == "3.0 PiB");
    }

    SUBCASE("PiB is the largest unit")
    {
      CHECK(util::human_size(uint64_t{1} << 60) == "1024.0 PiB");
    }
  }

  TEST_CASE("util::split")
  {
    SUBCASE("every separator splits, keeping empty parts")
    {
      CHECK(util::split("a,b,c", ',') == std::vector<std::string>{"a", "b", "c"});
      CHECK(util::split("a,,b,", ',') == std::vector<std::string>{"a", "", "b", ""});
      CHECK(util::split("", ',') == std::vector<std::string>{""});
    }
  }

  TEST_CASE("util::trim")
  {
    SUBCASE("leading and trailing whitespace goes, inner whitespace stays")
    {
      CHECK(util::trim("  a b \t\n") == "a b");
      CHECK(util::trim("   ").empty());
      CHECK(util::trim("x") == "x");
    }
  }

  TEST_CASE("util::format_time")
  {
    SUBCASE("Unix seconds format as RFC 3339 UTC")
    {
      CHECK(util::format_time(0) == "1970-01-01T00:00:00Z");
      CHECK(util::format_time(1'700'000'000) == "2023-11-14T22:13:20Z");
    }
  }

  TEST_CASE("util::url_encode")
  {
    SUBCASE("unreserved characters, '/' and ':' stay; others are percent-encoded")
    {
      CHECK(util::url_encode("feed/app:1.0_x-y~z") == "feed/app:1.0_x-y~z");
      CHECK(util::url_encode("a b&c=d") == "a%20b%26c%3Dd");
      CHECK(util::url_encode("\xff") == "%FF");
    }
  }

  TEST_CASE("util::xml_unescape")
  {
    CHECK(util::xml_unescape("plain") == "plain");
    CHECK(util::xml_unescape("a&amp;b&lt;c&gt;d&quot;e&apos;f") == "a&b<c>d\"e'f");
    CHECK(util::xml_unescape("&#65;&#x42;&#X43;") == "ABC");
    CHECK(util::xml_unescape("&#233;") == "?");
    CHECK(util::xml_unescape("&nbsp; &") == "&nbsp; &");
    CHECK(util::xml_unescape("") == "");
  }
}
