// `registryctl connector add|list|remove`: upstream registries a feed caches.

#include "cli/commands/commands.hpp"
#include "common/util/strings.hpp"

#include <iostream>

namespace registry::cli {

namespace {

struct ConnectorArgs {
  std::string feed;
  std::string url;
  std::string username;
  bool password_stdin = false;
  std::string ttl = "5m";
};

nlohmann::json
connector_json(const metadata::ConnectorRow& c)
{
  return {{"feed", c.feed},
          {"position", c.position},
          {"url", c.url},
          {"username", c.username},
          {"ttl_seconds", c.ttl},
          {"created_at", util::format_time(c.created_at)}};
}

} // namespace

void
add_connector_commands(CLI::App& app, AppContext& ctx)
{
  auto* connector = app.add_subcommand(
    "connector", "Upstream registries a feed caches: misses are fetched from them (pull-through)");
  connector->require_subcommand(1);
  auto args = std::make_shared<ConnectorArgs>();

  auto* add = connector->add_subcommand("add", "Add a connector; misses try connectors in the order added");
  add->add_option("feed", args->feed, "Feed name")->required();
  add->add_option("url", args->url, "Upstream registry, e.g. https://registry-1.docker.io")->required();
  add->add_option("--username", args->username, "Upstream user (anonymous when absent)");
  add->add_flag("--password-stdin", args->password_stdin, "Read the upstream password from stdin");
  add->add_option("--ttl", args->ttl, "How long a cached tag is served before a HEAD upstream revalidates it")
    ->type_name("DURATION")
    ->capture_default_str();
  add->callback([&ctx, args] {
    int64_t ttl = duration_flag(args->ttl, "--ttl");
    std::string password = args->password_stdin ? read_password() : std::string();
    auto row = unwrap(ctx.registry().add_connector(args->feed, args->url, args->username, password, ttl));
    ctx.audit("connector.add", row.feed, row.url, row.username.empty() ? "anonymous" : "as " + row.username);
    ctx.print(connector_json(row), [&] { std::cout << "feed " << row.feed << " caches " << row.url << "\n"; });
  });

  auto* list = connector->add_subcommand("list", "List connectors");
  list->add_option("feed", args->feed, "Only this feed's");
  list->callback([&ctx, args] {
    auto rows = unwrap(ctx.registry().list_connectors(args->feed));
    nlohmann::json doc = nlohmann::json::array();
    std::vector<std::vector<std::string>> table;
    for (const auto& c : rows) {
      doc.push_back(connector_json(c));
      table.push_back({c.feed, std::to_string(c.position), c.url, c.username.empty() ? "(anonymous)" : c.username,
                       std::to_string(c.ttl) + "s"});
    }
    ctx.print(doc, [&] { print_table({"FEED", "ORDER", "URL", "USER", "TTL"}, table); });
  });

  auto* remove = connector->add_subcommand("remove", "Remove a connector (cached content stays)");
  remove->add_option("feed", args->feed, "Feed name")->required();
  remove->add_option("url", args->url, "The connector's URL")->required();
  remove->callback([&ctx, args] {
    unwrap(ctx.registry().remove_connector(args->feed, args->url));
    ctx.audit("connector.remove", args->feed, args->url);
    ctx.print({{"feed", args->feed}, {"removed", args->url}},
              [&] { std::cout << "feed " << args->feed << " no longer caches " << args->url << "\n"; });
  });
}

} // namespace registry::cli
