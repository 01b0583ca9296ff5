#include "server/login_throttle.hpp"

#include <doctest/doctest.h>

using registry::server::LoginThrottle;
using registry::server::ThrottlePolicy;

TEST_SUITE("server")
{
  TEST_CASE("LoginThrottle")
  {
    ThrottlePolicy policy;
    policy.free_failures = 3;
    policy.first_delay_ms = 1000;
    policy.max_delay_ms = 4000;
    policy.forget_after_ms = 60000;
    policy.max_addresses = 2;
    LoginThrottle throttle(policy);

    SUBCASE("free failures cost nothing, then the delay doubles up to the cap")
    {
      for (int i = 0; i < 3; ++i) {
        throttle.failed("10.0.0.1", 100);
      }
      CHECK(throttle.wait_ms("10.0.0.1", 100) == 0);
      throttle.failed("10.0.0.1", 100);
      CHECK(throttle.wait_ms("10.0.0.1", 100) == 1000);
      CHECK(throttle.wait_ms("10.0.0.1", 600) == 500);
      CHECK(throttle.wait_ms("10.0.0.1", 1100) == 0);
      throttle.failed("10.0.0.1", 1100);
      CHECK(throttle.wait_ms("10.0.0.1", 1100) == 2000);
      throttle.failed("10.0.0.1", 3100);
      CHECK(throttle.wait_ms("10.0.0.1", 3100) == 4000);
      throttle.failed("10.0.0.1", 7100);
      CHECK(throttle.wait_ms("10.0.0.1", 7100) == 4000);
      // Other addresses are not affected.
      CHECK(throttle.wait_ms("10.0.0.2", 7100) == 0);
    }

    SUBCASE("success clears the record; idle records are forgotten")
    {
      for (int i = 0; i < 5; ++i) {
        throttle.failed("a", 0);
      }
      CHECK(throttle.wait_ms("a", 0) > 0);
      throttle.succeeded("a");
      CHECK(throttle.wait_ms("a", 0) == 0);
      for (int i = 0; i < 4; ++i) {
        throttle.failed("a", 0);
      }
      CHECK(throttle.wait_ms("a", 0) == 1000);
      // A failure long after the last one starts counting again.
      throttle.failed("a", 100000);
      CHECK(throttle.wait_ms("a", 100000) == 0);
    }

    SUBCASE("memory stays bounded")
    {
      throttle.failed("a", 0);
      throttle.failed("b", 0);
      throttle.failed("c", 1); // table full of fresh records: not tracked
      for (int i = 0; i < 5; ++i) {
        throttle.failed("c", 1);
      }
      CHECK(throttle.wait_ms("c", 1) == 0);
      // Once the old records are idle they make room.
      for (int i = 0; i < 5; ++i) {
        throttle.failed("c", 70000);
      }
      CHECK(throttle.wait_ms("c", 70000) > 0);
    }
  }
}
