#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace registry::util {

std::vector<std::string> split(std::string_view text, char sep);
std::string join(const std::vector<std::string>& parts, std::string_view sep);
std::string_view trim(std::string_view text);
bool starts_with(std::string_view text, std::string_view prefix);
std::string to_lower(std::string_view text);
// `text` safe for one log line: control and non-ASCII bytes become '?', and at
// most `limit` bytes are kept (then "...").
std::string printable(std::string_view text, size_t limit = 64);

// Parses a whole decimal unsigned integer; nullopt on any other text or overflow.
std::optional<uint64_t> parse_uint(std::string_view text);

// "1.5 MiB"-style size for humans.
std::string human_size(uint64_t bytes);

// Parses durations such as "90s", "15m", "1h", "7d", "1h30m"; plain digits are
// seconds. nullopt on malformed text.
std::optional<int64_t> parse_duration(std::string_view text);

// The duration `seconds` as parse_duration() reads it back, largest units
// first: 90 -> "1m30s", 86400 -> "1d", 0 -> "0s".
std::string format_duration(int64_t seconds);

// RFC 3339 UTC timestamp of Unix seconds `t`.
std::string format_time(int64_t t);

// RFC 3986 percent-encoding: every byte but the unreserved characters
// (A-Z a-z 0-9 - _ . ~) and those in `keep` becomes %XX (upper-case hex). The
// one encoder behind query values, SigV4's canonical URIs and Azure's paths.
std::string percent_encode(std::string_view text, std::string_view keep = {});

// Percent-encoding for a URL query value (':' and '/' kept, as registries send).
inline std::string
url_encode(std::string_view text)
{
  return percent_encode(text, "/:");
}

// The text of an XML element with the five named entities and numeric
// character references decoded (those above U+007F become '?'); an unknown
// entity is kept as written. Enough for the flat answers of S3 and Azure.
std::string xml_unescape(std::string_view text);

} // namespace registry::util
