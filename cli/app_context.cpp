#include "cli/app_context.hpp"

#include <algorithm>
#include <cstdlib>
#include <iostream>
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

void
AppContext::audit(const std::string& kind, const std::string& feed, const std::string& subject,
                  const std::string& detail)
{
  std::string who;
  if (const passwd* pw = ::getpwuid(::geteuid()); pw != nullptr && pw->pw_name != nullptr) {
    who = pw->pw_name;
  } else if (const char* user = std::getenv("USER"); user != nullptr) {
    who = user;
  } else {
    who = std::to_string(::geteuid());
  }
  registry().audit(kind, "cli:" + who, feed, subject, detail);
}

void
AppContext::print(const nlohmann::json& doc, const std::function<void()>& table) const
{
  if (format() == OutputFormat::json) {
    std::cout << doc.dump(2) << "\n";
  } else {
    table();
  }
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
