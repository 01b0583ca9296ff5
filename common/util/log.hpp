#pragma once

// Leveled logging to stderr, one line per call, safe from many threads.

#include <string_view>

namespace registry::util {

enum class LogLevel { debug = 0, info = 1, warn = 2, error = 3 };

void set_log_level(LogLevel level);
LogLevel log_level();
void log(LogLevel level, std::string_view message);

inline void
log_info(std::string_view message)
{
  log(LogLevel::info, message);
}
inline void
log_warn(std::string_view message)
{
  log(LogLevel::warn, message);
}
inline void
log_error(std::string_view message)
{
  log(LogLevel::error, message);
}

} // namespace registry::util
