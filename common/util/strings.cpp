#include "common/util/strings.hpp"

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <limits>

namespace registry::util {

std::vector<std::string>
split(std::string_view text, char sep)
{
  std::vector<std::string> parts;
  size_t start = 0;
  for (;;) {
    size_t pos = text.find(sep, start);
    if (pos == std::string_view::npos) {
      parts.emplace_back(text.substr(start));
      return parts;
    }
    parts.emplace_back(text.substr(start, pos - start));
    start = pos + 1;
  }
}

std::string
join(const std::vector<std::string>& parts, std::string_view sep)
{
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) {
      out.append(sep);
    }
    out += parts[i];
  }
  return out;
}

std::string_view
trim(std::string_view text)
{
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) {
    text.remove_prefix(1);
  }
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
    text.remove_suffix(1);
  }
  return text;
}

bool
starts_with(std::string_view text, std::string_view prefix)
{
  return text.substr(0, prefix.size()) == prefix;
}

std::string
to_lower(std::string_view text)
{
  std::string out(text);
  for (auto& c : out) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

std::string
printable(std::string_view text, size_t limit)
{
  std::string out;
  for (char c : text.substr(0, limit)) {
    auto u = static_cast<unsigned char>(c);
    out.push_back(u < 0x20 || u >= 0x7f ? '?' : c);
  }
  if (text.size() > limit) {
    out += "...";
  }
  return out;
}

std::optional<uint64_t>
parse_uint(std::string_view text)
{
  if (text.empty() || text.size() > 20) {
    return std::nullopt;
  }
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') {
      return std::nullopt;
    }
    uint64_t digit = static_cast<uint64_t>(c - '0');
    if (value > (std::numeric_limits<uint64_t>::max() - digit) / 10) {
      return std::nullopt;
    }
    value = value * 10 + digit;
  }
  return value;
}

std::string
human_size(uint64_t bytes)
{
  static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  if (bytes < 1024) {
    return std::to_string(bytes) + " B";
  }
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024.0 && unit < 5) {
    value /= 1024.0;
    ++unit;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f %s", value, units[unit]);
  return buf;
}

std::optional<int64_t>
parse_duration(std::string_view text)
{
  if (text.empty()) {
    return std::nullopt;
  }
  if (auto plain = parse_uint(text)) {
    if (*plain > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return std::nullopt;
    }
    return static_cast<int64_t>(*plain);
  }
  int64_t total = 0;
  uint64_t number = 0;
  bool have_number = false;
  for (char c : text) {
    if (c >= '0' && c <= '9') {
      if (number > 1'000'000'000ULL) {
        return std::nullopt;
      }
      number = number * 10 + static_cast<uint64_t>(c - '0');
      have_number = true;
      continue;
    }
    if (!have_number) {
      return std::nullopt;
    }
    int64_t unit = 0;
    switch (c) {
    case 's':
      unit = 1;
      break;
    case 'm':
      unit = 60;
      break;
    case 'h':
      unit = 3600;
      break;
    case 'd':
      unit = 86400;
      break;
    default:
      return std::nullopt;
    }
    int64_t part = static_cast<int64_t>(number) * unit; // number <= ~1e10: no overflow
    if (total > std::numeric_limits<int64_t>::max() - part) {
      return std::nullopt;
    }
    total += part;
    number = 0;
    have_number = false;
  }
  if (have_number) {
    return std::nullopt;
  }
  return total;
}

std::string
format_duration(int64_t seconds)
{
  if (seconds <= 0) {
    return "0s";
  }
  std::string out;
  for (auto [unit, suffix] : {std::pair{int64_t{86400}, 'd'}, std::pair{int64_t{3600}, 'h'},
                              std::pair{int64_t{60}, 'm'}, std::pair{int64_t{1}, 's'}}) {
    if (seconds >= unit) {
      out += std::to_string(seconds / unit);
      out += suffix;
      seconds %= unit;
    }
  }
  return out;
}

std::string
format_time(int64_t t)
{
  std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string
percent_encode(std::string_view text, std::string_view keep)
{
  static constexpr char k_hex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
                      || c == '-' || c == '_' || c == '.' || c == '~';
    if (unreserved || keep.find(static_cast<char>(c)) != std::string_view::npos) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(k_hex[c >> 4]);
      out.push_back(k_hex[c & 0xf]);
    }
  }
  return out;
}

std::string
xml_unescape(std::string_view text)
{
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '&') {
      out.push_back(text[i]);
      continue;
    }
    size_t semi = text.find(';', i);
    if (semi == std::string_view::npos) {
      out.push_back('&');
      continue;
    }
    std::string_view entity = text.substr(i + 1, semi - i - 1);
    if (entity == "amp") {
      out.push_back('&');
    } else if (entity == "lt") {
      out.push_back('<');
    } else if (entity == "gt") {
      out.push_back('>');
    } else if (entity == "quot") {
      out.push_back('"');
    } else if (entity == "apos") {
      out.push_back('\'');
    } else if (!entity.empty() && entity[0] == '#') {
      unsigned long code = entity.size() > 1 && (entity[1] == 'x' || entity[1] == 'X')
                             ? std::strtoul(std::string(entity.substr(2)).c_str(), nullptr, 16)
                             : std::strtoul(std::string(entity.substr(1)).c_str(), nullptr, 10);
      if (code < 0x80) {
        out.push_back(static_cast<char>(code));
      } else {
        out += "?";
      }
    } else {
      out.append(text.substr(i, semi - i + 1));
    }
    i = semi;
  }
  return out;
}

} // namespace registry::util
