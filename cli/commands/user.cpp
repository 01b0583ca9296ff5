// `registryctl user add|list|passwd|disable|enable|delete`

#include "cli/commands/commands.hpp"
#include "common/util/strings.hpp"

#include <iostream>

namespace registry::cli {

void
add_user_commands(CLI::App& app, AppContext& ctx)
{
  auto* user = app.add_subcommand("user", "Manage users (passwords are read from stdin)");
  user->require_subcommand(1);
  auto name = std::make_shared<std::string>();

  auto* add = user->add_subcommand("add", "Add a user; the password is read from stdin");
  add->add_option("name", *name, "User name")->required();
  auto from_stdin = std::make_shared<bool>(true);
  auto admin = std::make_shared<bool>(false);
  add->add_flag("--password-stdin", *from_stdin, "Read the password from stdin (the default)");
  add->add_flag("--admin", *admin, "Make the user a server admin (the first user always is)");
  add->callback([&ctx, name, from_stdin, admin] {
    auto& accounts = ctx.registry().accounts();
    auto row = unwrap(accounts.add_user(*name, read_password()));
    if (*admin && !row.admin) {
      unwrap(accounts.set_admin(*name, true));
      row.admin = true;
    }
    ctx.audit("user.add", "", row.name, row.admin ? "admin" : "");
    ctx.print({{"name", row.name}, {"admin", row.admin}, {"created_at", util::format_time(row.created_at)}},
              [&] { std::cout << "added user " << row.name << (row.admin ? " (admin)" : "") << "\n"; });
  });

  auto* list = user->add_subcommand("list", "List users");
  list->callback([&ctx] {
    auto users = unwrap(ctx.registry().accounts().list_users());
    nlohmann::json doc = nlohmann::json::array();
    std::vector<std::vector<std::string>> rows;
    for (const auto& u : users) {
      doc.push_back({{"name", u.name}, {"admin", u.admin}, {"disabled", u.disabled},
                     {"created_at", util::format_time(u.created_at)}});
      rows.push_back({u.name, u.admin ? "admin" : "", u.disabled ? "disabled" : "active",
                      util::format_time(u.created_at)});
    }
    ctx.print(doc, [&] { print_table({"USER", "ROLE", "STATUS", "CREATED"}, rows); });
  });

  auto* passwd = user->add_subcommand("passwd", "Set a user's password (read from stdin)");
  passwd->add_option("name", *name, "User name")->required()->type_name("USER");
  passwd->add_flag("--password-stdin", *from_stdin, "Read the password from stdin (the default)");
  passwd->callback([&ctx, name] {
    unwrap(ctx.registry().accounts().set_password(*name, read_password()));
    ctx.audit("user.passwd", "", *name);
    ctx.print({{"name", *name}, {"password_changed", true}},
              [&] { std::cout << "password of " << *name << " changed\n"; });
  });

  for (bool disable : {true, false}) {
    auto* cmd = user->add_subcommand(disable ? "disable" : "enable",
                                     disable ? "Refuse a user's logins" : "Allow a user's logins again");
    cmd->add_option("name", *name, "User name")->required()->type_name("USER");
    cmd->callback([&ctx, name, disable] {
      unwrap(ctx.registry().accounts().set_disabled(*name, disable));
      ctx.audit(disable ? "user.disable" : "user.enable", "", *name);
      ctx.print({{"name", *name}, {"disabled", disable}}, [&] {
        std::cout << (disable ? "disabled " : "enabled ") << *name << "\n";
      });
    });
  }

  for (bool make_admin : {true, false}) {
    auto* cmd = user->add_subcommand(make_admin ? "make-admin" : "drop-admin",
                                     make_admin ? "Make a user a server admin" : "Remove a user's admin role");
    cmd->add_option("name", *name, "User name")->required()->type_name("USER");
    cmd->callback([&ctx, name, make_admin] {
      unwrap(ctx.registry().accounts().set_admin(*name, make_admin));
      ctx.audit(make_admin ? "user.make-admin" : "user.drop-admin", "", *name);
      ctx.print({{"name", *name}, {"admin", make_admin}}, [&] {
        std::cout << *name << (make_admin ? " is now an admin" : " is no longer an admin") << "\n";
      });
    });
  }

  auto* remove = user->add_subcommand("delete", "Delete a user");
  remove->add_option("name", *name, "User name")->required()->type_name("USER");
  remove->callback([&ctx, name] {
    unwrap(ctx.registry().accounts().delete_user(*name));
    ctx.audit("user.delete", "", *name);
    ctx.print({{"deleted", *name}}, [&] { std::cout << "deleted user " << *name << "\n"; });
  });
}

namespace {

std::vector<service::Privilege>
parse_privileges(const std::string& text)
{
  std::vector<service::Privilege> out;
  for (const auto& item : util::split(text, ',')) {
    auto p = service::parse_privilege(std::string(util::trim(item)));
    if (!p) {
      throw CommandError(make_error(ErrorCode::invalid_argument,
                                    "unknown privilege '" + item + "' (use pull, push, delete, manage)"));
    }
    out.push_back(*p);
  }
  return out;
}

struct GrantArgs {
  std::string user;
  std::string feed;
  std::string privileges;
};

struct KeyArgs {
  std::string user;
  std::string feed;
  std::string privileges;
  std::string expires;
  std::string description;
  std::string prefix;
};

} // namespace

void
add_privilege_commands(CLI::App& app, AppContext& ctx)
{
  auto* priv = app.add_subcommand("privilege", "Grant users pull, push, delete or manage on feeds");
  priv->require_subcommand(1);
  auto args = std::make_shared<GrantArgs>();
  for (bool granting : {true, false}) {
    auto* cmd = priv->add_subcommand(granting ? "grant" : "revoke",
                                     granting ? "Grant privileges on a feed ('*' for every feed)"
                                              : "Revoke privileges on a feed ('*' for every feed)");
    cmd->add_option("user", args->user, "User name")->required()->type_name("USER");
    cmd->add_option("feed", args->feed, "Feed name, or '*' for every feed")->required()->type_name("FEED");
    cmd->add_option("privileges", args->privileges, "Comma list: pull,push,delete,manage")->required()->type_name("PRIVILEGES");
    cmd->callback([&ctx, args, granting] {
      auto& accounts = ctx.registry().accounts();
      for (auto p : parse_privileges(args->privileges)) {
        unwrap(granting ? accounts.grant(args->user, args->feed, p)
                        : accounts.revoke(args->user, args->feed, p));
      }
      ctx.audit(granting ? "privilege.grant" : "privilege.revoke", args->feed == "*" ? "" : args->feed,
                args->user, args->privileges + (args->feed == "*" ? " on every feed" : ""));
      ctx.print({{"user", args->user}, {"feed", args->feed}, {"privileges", util::split(args->privileges, ',')},
                 {"granted", granting}},
                [&] {
                  std::cout << (granting ? "granted " : "revoked ") << args->privileges << " on "
                            << (args->feed == "*" ? "every feed" : "feed " + args->feed)
                            << (granting ? " to " : " from ") << args->user << "\n";
                });
    });
  }
  auto* list = priv->add_subcommand("list", "List granted privileges");
  list->add_option("user", args->user, "Only this user")->type_name("USER");
  list->callback([&ctx, args] {
    auto grants = unwrap(ctx.registry().accounts().list_grants(args->user));
    nlohmann::json doc = nlohmann::json::array();
    std::vector<std::vector<std::string>> rows;
    for (const auto& g : grants) {
      std::string feed = g.feed.empty() ? "*" : g.feed;
      doc.push_back({{"user", g.user}, {"feed", feed}, {"privilege", g.privilege}});
      rows.push_back({g.user, feed, g.privilege});
    }
    ctx.print(doc, [&] { print_table({"USER", "FEED", "PRIVILEGE"}, rows); });
  });
}

void
add_key_commands(CLI::App& app, AppContext& ctx)
{
  auto* key = app.add_subcommand("key", "API keys: username 'api' (or the owner's name), the key as password");
  key->require_subcommand(1);
  auto args = std::make_shared<KeyArgs>();
  auto* create = key->add_subcommand("create", "Create a key; it is printed once and only its hash is stored");
  create->add_option("--user", args->user, "The key acts as this user")->type_name("USER");
  create->add_option("--feed", args->feed, "The key works on this feed only")->type_name("FEED");
  create->add_option("--privileges", args->privileges, "With --feed: pull,push,delete");
  create->add_option("--expires", args->expires, "Lifetime, e.g. 30d (default: never)")
    ->type_name("DURATION");
  create->add_option("--description", args->description, "Free text");
  create->callback([&ctx, args] {
    int64_t expires = 0;
    if (!args->expires.empty()) {
      auto seconds = util::parse_duration(args->expires);
      if (!seconds || *seconds <= 0) {
        throw CommandError(make_error(ErrorCode::invalid_argument, "invalid duration '" + args->expires + "'"));
      }
      expires = *seconds;
    }
    auto privileges = args->privileges.empty() ? std::vector<service::Privilege>() : parse_privileges(args->privileges);
    auto created = unwrap(ctx.registry().accounts().create_key(args->user, args->feed, privileges, expires,
                                                               args->description));
    ctx.audit("key.create", created.row.feed, created.row.prefix,
              created.row.user_id ? "acts as user " + created.row.user : "privileges " + created.row.privileges);
    ctx.print({{"key", created.key},
               {"prefix", created.row.prefix},
               {"user", created.row.user},
               {"feed", created.row.feed},
               {"privileges", created.row.privileges},
               {"expires_at", created.row.expires_at ? util::format_time(created.row.expires_at) : ""}},
              [&] {
                std::cout << created.key << "\n";
                std::cerr << "Store this key now: it cannot be shown again. Log in as 'api' "
                             "with the key as the password.\n";
              });
  });
  auto* list = key->add_subcommand("list", "List keys (prefix, owner, scope, last use)");
  list->callback([&ctx] {
    auto keys = unwrap(ctx.registry().accounts().list_keys());
    nlohmann::json doc = nlohmann::json::array();
    std::vector<std::vector<std::string>> rows;
    for (const auto& k : keys) {
      std::string scope = k.user_id ? "user " + k.user : "feed " + k.feed + " (" + k.privileges + ")";
      std::string expires = k.expires_at ? util::format_time(k.expires_at) : "never";
      std::string used = k.last_used_at ? util::format_time(k.last_used_at) : "never";
      doc.push_back({{"prefix", k.prefix}, {"user", k.user}, {"feed", k.feed}, {"privileges", k.privileges},
                     {"description", k.description}, {"created_at", util::format_time(k.created_at)},
                     {"expires_at", k.expires_at ? util::format_time(k.expires_at) : ""},
                     {"last_used_at", k.last_used_at ? util::format_time(k.last_used_at) : ""}});
      rows.push_back({k.prefix, scope, expires, used, k.description});
    }
    ctx.print(doc, [&] { print_table({"PREFIX", "SCOPE", "EXPIRES", "LAST USED", "DESCRIPTION"}, rows); });
  });
  auto* revoke = key->add_subcommand("revoke", "Revoke a key by its prefix");
  revoke->add_option("prefix", args->prefix, "The prefix key list shows")->required();
  revoke->callback([&ctx, args] {
    unwrap(ctx.registry().accounts().revoke_key(args->prefix));
    ctx.audit("key.revoke", "", args->prefix);
    ctx.print({{"revoked", args->prefix}}, [&] { std::cout << "revoked key " << args->prefix << "\n"; });
  });
}

} // namespace registry::cli
