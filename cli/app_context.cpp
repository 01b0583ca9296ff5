#include "cli/app_context.hpp"

#include "common/util/strings.hpp"

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <span>
#include <pwd.h>
#include <termios.h>
#include <unistd.h>

namespace registry::cli {

service::Registry&
AppContext::registry()
{
  if (!m_registry) {
    m_registry = unwrap(service::Registry::open(data_dir));
  }
  return *m_registry;
}

int64_t
duration_flag(const std::string& text, const char* flag)
{
  auto seconds = util::parse_duration(text);
  if (!seconds) {
    throw CommandError(make_error(ErrorCode::invalid_argument,
                                  std::string("invalid duration for ") + flag + ": '" + text
                                    + "' (use e.g. 90s, 30m, 1h, 7d)"));
  }
  return *seconds;
}

std::string
read_password()
{
  bool tty = ::isatty(STDIN_FILENO) != 0;
  termios old_mode{};
  if (tty) {
    std::cerr << "Password: " << std::flush;
    ::tcgetattr(STDIN_FILENO, &old_mode);
    termios silent = old_mode;
    silent.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ::tcsetattr(STDIN_FILENO, TCSANOW, &silent);
  }
  std::string password;
  std::getline(std::cin, password);
  if (tty) {
    ::tcsetattr(STDIN_FILENO, TCSANOW, &old_mode);
    std::cerr << "\n";
  }
  while (!password.empty() && (password.back() == '\r' || password.back() == '\n')) {
    password.pop_back();
  }
  return password;
}

std::string
short_digest(const std::string& digest)
{
  size_t colon = digest.find(':');
  if (colon == std::string::npos || digest.size() <= colon + 1 + 12) {
    return digest;
  }
  return digest.substr(0, colon + 1 + 12);
}

std::string
AppContext::actor() const
{
  std::string who;
  if (const passwd* pw = ::getpwuid(::geteuid()); pw != nullptr && pw->pw_name != nullptr) {
    who = pw->pw_name;
  } else if (const char* user = std::getenv("USER"); user != nullptr) {
    who = user;
  } else {
    who = std::to_string(::geteuid());
  }
  return "cli:" + who;
}

void
AppContext::audit(const std::string& kind, const std::string& feed, const std::string& subject,
                  const std::string& detail)
{
  registry().audit(kind, actor(), feed, subject, detail);
}

namespace {

// The value --quiet prints for one document: what a script feeds to the next
// command (a key just created, a digest, a name, an id).
// In a list the entries' names come first (tag list: the tags); a single
// result says what it made or resolved first (a key, a digest).
std::optional<std::string>
quiet_value(const nlohmann::json& item, bool in_list)
{
  if (item.is_string()) {
    return item.get<std::string>();
  }
  if (!item.is_object()) {
    return std::nullopt;
  }
  static const char* const k_list_fields[] = {"name", "id", "prefix", "url", "digest", "kind"};
  static const char* const k_single_fields[] = {"key", "digest", "name", "id", "prefix", "url", "deleted", "revoked", "removed"};
  for (const char* field : in_list ? std::span<const char* const>(k_list_fields) : std::span<const char* const>(k_single_fields)) {
    auto it = item.find(field);
    if (it != item.end() && it->is_string()) {
      return it->get<std::string>();
    }
  }
  return std::nullopt;
}

} // namespace

void
AppContext::print(const nlohmann::json& doc, const std::function<void()>& table) const
{
  if (format() == OutputFormat::json) {
    std::cout << doc.dump(2) << "\n";
    return;
  }
  if (quiet) {
    std::vector<std::string> lines;
    for (const auto& item : doc.is_array() ? doc : nlohmann::json::array({doc})) {
      auto value = quiet_value(item, doc.is_array());
      if (!value) {
        lines.clear();
        break;
      }
      lines.push_back(*value);
    }
    if (!lines.empty() || (doc.is_array() && doc.empty())) {
      for (const auto& line : lines) {
        std::cout << line << "\n";
      }
      return;
    }
  }
  table();
}

void
print_table(const std::vector<std::string>& headers,
            const std::vector<std::vector<std::string>>& rows)
{
  std::vector<size_t> widths(headers.size());
  for (size_t i = 0; i < headers.size(); ++i) {
    widths[i] = headers[i].size();
    for (const auto& row : rows) {
      if (i < row.size()) {
        widths[i] = std::max(widths[i], row[i].size());
      }
    }
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (size_t i = 0; i < headers.size(); ++i) {
      std::string cell = i < cells.size() ? cells[i] : "";
      out += cell;
      if (i + 1 < headers.size()) {
        out += std::string(widths[i] - cell.size() + 2, ' ');
      }
    }
    while (!out.empty() && out.back() == ' ') {
      out.pop_back();
    }
    std::cout << out << "\n";
  };
  line(headers);
  for (const auto& row : rows) {
    line(row);
  }
}

} // namespace registry::cli
