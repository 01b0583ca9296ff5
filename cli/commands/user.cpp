// `registryctl user add|list|passwd|disable|enable|delete`

#include "cli/commands/commands.hpp"
#include "common/util/strings.hpp"

#include <iostream>
#include <termios.h>
#include <unistd.h>

namespace registry::cli {

namespace {

// Reads a password from standard input: one line, without echo on a terminal.
// A password never has to appear in argv or shell history.
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

} // namespace

void
add_user_commands(CLI::App& app, AppContext& ctx)
{
  auto* user = app.add_subcommand("user", "Manage users (passwords are read from stdin)");
  user->require_subcommand(1);
  auto name = std::make_shared<std::string>();

  auto* add = user->add_subcommand("add", "Add a user; the password is read from stdin");
  add->add_option("name", *name, "User name")->required();
  auto from_stdin = std::make_shared<bool>(true);
  add->add_flag("--password-stdin", *from_stdin, "Read the password from stdin (the default)");
  add->callback([&ctx, name, from_stdin] {
    auto row = unwrap(ctx.registry().accounts().add_user(*name, read_password()));
    ctx.print({{"name", row.name}, {"created_at", util::format_time(row.created_at)}},
              [&] { std::cout << "added user " << row.name << "\n"; });
  });

  auto* list = user->add_subcommand("list", "List users");
  list->callback([&ctx] {
    auto users = unwrap(ctx.registry().accounts().list_users());
    nlohmann::json doc = nlohmann::json::array();
    std::vector<std::vector<std::string>> rows;
    for (const auto& u : users) {
      doc.push_back({{"name", u.name}, {"disabled", u.disabled}, {"created_at", util::format_time(u.created_at)}});
      rows.push_back({u.name, u.disabled ? "disabled" : "active", util::format_time(u.created_at)});
    }
    ctx.print(doc, [&] { print_table({"USER", "STATUS", "CREATED"}, rows); });
  });

  auto* passwd = user->add_subcommand("passwd", "Set a user's password (read from stdin)");
  passwd->add_option("name", *name, "User name")->required();
  passwd->add_flag("--password-stdin", *from_stdin, "Read the password from stdin (the default)");
  passwd->callback([&ctx, name] {
    unwrap(ctx.registry().accounts().set_password(*name, read_password()));
    ctx.print({{"name", *name}, {"password_changed", true}},
              [&] { std::cout << "password of " << *name << " changed\n"; });
  });

  for (bool disable : {true, false}) {
    auto* cmd = user->add_subcommand(disable ? "disable" : "enable",
                                     disable ? "Refuse a user's logins" : "Allow a user's logins again");
    cmd->add_option("name", *name, "User name")->required();
    cmd->callback([&ctx, name, disable] {
      unwrap(ctx.registry().accounts().set_disabled(*name, disable));
      ctx.print({{"name", *name}, {"disabled", disable}}, [&] {
        std::cout << (disable ? "disabled " : "enabled ") << *name << "\n";
      });
    });
  }

  auto* remove = user->add_subcommand("delete", "Delete a user");
  remove->add_option("name", *name, "User name")->required();
  remove->callback([&ctx, name] {
    unwrap(ctx.registry().accounts().delete_user(*name));
    ctx.print({{"deleted", *name}}, [&] { std::cout << "deleted user " << *name << "\n"; });
  });
}

} // namespace registry::cli
