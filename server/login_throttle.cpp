#include "server/login_throttle.hpp"

#include <algorithm>

namespace registry::server {

LoginThrottle::LoginThrottle(ThrottlePolicy policy)
  : m_policy(policy)
{
}

int64_t
LoginThrottle::delay_ms(int failures) const
{
  int over = failures - m_policy.free_failures;
  if (over <= 0) {
    return 0;
  }
  int64_t delay = m_policy.first_delay_ms;
  for (int i = 1; i < over && delay < m_policy.max_delay_ms; ++i) {
    delay *= 2;
  }
  return std::min(delay, m_policy.max_delay_ms);
}

int64_t
LoginThrottle::wait_ms(const std::string& address, int64_t now_ms)
{
  std::lock_guard lock(m_mutex);
  auto it = m_records.find(address);
  if (it == m_records.end()) {
    return 0;
  }
  int64_t until = it->second.last_failure_ms + delay_ms(it->second.failures);
  return std::max<int64_t>(0, until - now_ms);
}

void
LoginThrottle::failed(const std::string& address, int64_t now_ms)
{
  std::lock_guard lock(m_mutex);
  if (m_records.size() >= m_policy.max_addresses && !m_records.contains(address)) {
    forget_idle(now_ms);
    if (m_records.size() >= m_policy.max_addresses) {
      return;
    }
  }
  Record& record = m_records[address];
  if (record.failures > 0 && now_ms - record.last_failure_ms > m_policy.forget_after_ms) {
    record.failures = 0;
  }
  ++record.failures;
  record.last_failure_ms = now_ms;
}

void
LoginThrottle::succeeded(const std::string& address)
{
  std::lock_guard lock(m_mutex);
  m_records.erase(address);
}

void
LoginThrottle::forget_idle(int64_t now_ms)
{
  std::erase_if(m_records, [&](const auto& entry) {
    return now_ms - entry.second.last_failure_ms > m_policy.forget_after_ms;
  });
}

} // namespace registry::server
