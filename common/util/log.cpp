#include "common/util/log.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

namespace registry::util {

namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::info)};
std::atomic<int> g_format{static_cast<int>(LogFormat::text)};
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

std::string
timestamp()
{
  auto now = std::chrono::system_clock::now();
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char stamp[40];
  size_t n = std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(stamp + n, sizeof stamp - n, ".%03dZ", static_cast<int>(ms));
  return stamp;
}

void
write_line(std::string line)
{
  line.push_back('\n');
  std::lock_guard lock(g_mutex);
  std::fwrite(line.data(), 1, line.size(), stderr);
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
set_log_format(LogFormat format)
{
  g_format = static_cast<int>(format);
}

LogFormat
log_format()
{
  return static_cast<LogFormat>(g_format.load());
}

bool
parse_log_level(std::string_view text, LogLevel& level)
{
  for (LogLevel l : {LogLevel::debug, LogLevel::info, LogLevel::warn, LogLevel::error}) {
    if (text == level_name(l)) {
      level = l;
      return true;
    }
  }
  return false;
}

void
log_record(LogLevel level, std::string_view message, const LogFields& fields, std::string_view text)
{
  if (static_cast<int>(level) < g_level.load()) {
    return;
  }
  if (log_format() == LogFormat::json) {
    nlohmann::ordered_json doc = {{"time", timestamp()}, {"level", level_name(level)}, {"msg", message}};
    for (const auto& [name, value] : fields) {
      std::visit([&, key = name](const auto& v) { doc[key] = v; }, value);
    }
    // Log lines may carry bytes a client sent: never throw on invalid UTF-8.
    write_line(doc.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace));
    return;
  }
  std::string line = timestamp() + " " + level_name(level) + " ";
  line.append(message);
  if (!text.empty()) {
    line.push_back(' ');
    line.append(text);
  }
  write_line(std::move(line));
}

void
log(LogLevel level, std::string_view message)
{
  log_record(level, message, {}, {});
}

} // namespace registry::util
