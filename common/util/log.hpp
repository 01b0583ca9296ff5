#pragma once

// Leveled logging to stderr, one line per call, safe from many threads. Text
// lines read "TIME LEVEL MESSAGE"; with LogFormat::json each line is one JSON
// object {"time", "level", "msg", ...fields}.

#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace registry::util {

enum class LogLevel { debug = 0, info = 1, warn = 2, error = 3 };

enum class LogFormat { text, json };

void set_log_level(LogLevel level);
LogLevel log_level();
void set_log_format(LogFormat format);
LogFormat log_format();
void log(LogLevel level, std::string_view message);

// A named value of a structured record.
using LogValue = std::variant<std::string, int64_t, double>;
using LogFields = std::vector<std::pair<const char*, LogValue>>;

// A structured record: in JSON, `fields` join "time", "level" and "msg"; in
// text, `text` follows `message` on the line.
void log_record(LogLevel level, std::string_view message, const LogFields& fields, std::string_view text);

// Parses "debug", "info", "warn", "error".
bool parse_log_level(std::string_view text, LogLevel& level);

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
