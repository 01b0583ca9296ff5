#include "common/util/log.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <string>

namespace registry::util {

namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::info)};
std::mutex g_mutex;

const char*
level_name(LogLevel level)
{
  switch (level) {
  case LogLevel::debug:
    return "debug";
  case LogLevel::info:
    return "info";
  case LogLevel::warn:
    return "warn";
  case LogLevel::error:
    return "error";
  }
  return "info";
}
} // namespace

void
set_log_level(LogLevel level)
{
  g_level = static_cast<int>(level);
}

LogLevel
log_level()
{
  return static_cast<LogLevel>(g_level.load());
}

void
log(LogLevel level, std::string_view message)
{
  if (static_cast<int>(level) < g_level.load()) {
    return;
  }
  auto now = std::chrono::system_clock::now();
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count()
            % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
  std::string line = std::string(stamp) + "." + (ms < 100 ? (ms < 10 ? "00" : "0") : "")
                     + std::to_string(ms) + "Z " + level_name(level) + " ";
  line.append(message);
  line.push_back('\n');
  std::lock_guard lock(g_mutex);
  std::fwrite(line.data(), 1, line.size(), stderr);
}

} // namespace registry::util
