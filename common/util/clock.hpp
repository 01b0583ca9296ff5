#pragma once

// Injectable wall clock in Unix seconds, for upload expiry and GC grace periods.

#include <atomic>
#include <chrono>
#include <cstdint>

namespace registry::util {

class Clock
{
public:
  virtual ~Clock() = default;
  virtual int64_t now() const = 0; // seconds since the Unix epoch
};

class SystemClock final : public Clock
{
public:
  int64_t
  now() const override
  {
    return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
  }
};

// A clock that only moves when told to; for tests. Thread-safe.
class ManualClock final : public Clock
{
public:
  explicit ManualClock(int64_t start = 1'700'000'000) : m_now(start) {}
  int64_t
  now() const override
  {
    return m_now.load();
  }
  void
  advance(int64_t seconds)
  {
    m_now += seconds;
  }

private:
  std::atomic<int64_t> m_now;
};

} // namespace registry::util
