#pragma once

// Slows down password guessing: after a few failed logins from one address,
// further attempts from it are refused (429 with Retry-After) for a delay that
// doubles with every failure, up to a cap. A successful login clears the
// record. Refusing instead of sleeping keeps worker threads free, so a guesser
// cannot tie up the server.
//
// Thread-safety: all members may be called concurrently.

#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

namespace registry::server {

struct ThrottlePolicy {
  int free_failures = 5;             // failures before any delay
  int64_t first_delay_ms = 1000;     // delay after the first failure over the limit
  int64_t max_delay_ms = 60 * 1000;  // cap of the doubling delay
  int64_t forget_after_ms = 15 * 60 * 1000; // a record idle this long is dropped
  size_t max_addresses = 100000;     // bound on memory under a distributed attack
};

class LoginThrottle
{
public:
  explicit LoginThrottle(ThrottlePolicy policy = {});

  // Milliseconds `address` must still wait before its next login attempt; 0
  // when it may try now.
  int64_t wait_ms(const std::string& address, int64_t now_ms);
  // Records a failed login from `address`.
  void failed(const std::string& address, int64_t now_ms);
  // Clears the record of `address` after a successful login.
  void succeeded(const std::string& address);

private:
  struct Record {
    int failures = 0;
    int64_t last_failure_ms = 0;
  };
  int64_t delay_ms(int failures) const;
  void forget_idle(int64_t now_ms);

  ThrottlePolicy m_policy;
  std::mutex m_mutex;
  std::unordered_map<std::string, Record> m_records;
};

} // namespace registry::server
