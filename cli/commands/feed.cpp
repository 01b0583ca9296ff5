// `registryctl feed create|list|show|update|delete`

#include "cli/commands/commands.hpp"
#include "common/util/strings.hpp"

#include <iostream>

namespace registry::cli {

namespace {

// Store names by id, for display.
std::map<int64_t, std::string>
store_names(AppContext& ctx)
{
  std::map<int64_t, std::string> names;
  for (const auto& row : unwrap(ctx.registry().list_stores())) {
    names[row.id] = row.name;
  }
  return names;
}

nlohmann::json
feed_json(const metadata::FeedRow& feed, const std::map<int64_t, std::string>& stores)
{
  auto store = stores.find(feed.store_id);
  return {{"name", feed.name},
          {"description", feed.description},
          {"anonymous", feed.anonymous_access},
          {"store", store == stores.end() ? std::to_string(feed.store_id) : store->second},
          {"cache_retention_seconds", feed.cache_retention},
          {"created_at", util::format_time(feed.created_at)}};
}

std::vector<std::string>
feed_cells(const metadata::FeedRow& feed, const std::map<int64_t, std::string>& stores)
{
  auto store = stores.find(feed.store_id);
  return {feed.name, feed.anonymous_access,
          store == stores.end() ? std::to_string(feed.store_id) : store->second,
          feed.cache_retention > 0 ? util::format_duration(feed.cache_retention) : "off",
          util::format_time(feed.created_at), feed.description};
}

const std::vector<std::string> k_feed_headers = {"FEED",    "ANONYMOUS", "STORE", "CACHE RETENTION",
                                                 "CREATED", "DESCRIPTION"};

// --cache-retention: a positive DURATION, or "off" (cached content never expires).
int64_t
cache_retention_flag(const std::string& text)
{
  if (text == "off") {
    return 0;
  }
  int64_t seconds = duration_flag(text, "--cache-retention");
  if (seconds <= 0) {
    throw CommandError(make_error(ErrorCode::invalid_argument,
                                  "--cache-retention must be a positive duration or 'off', not '"
                                    + text + "'"));
  }
  return seconds;
}

const char* const k_cache_retention_help
  = "Expire cached (pull-through) manifests nobody pulled for this long, e.g. 30d; "
    "'off' keeps them forever. Pushed content is never expired";

void
print_feed(AppContext& ctx, const metadata::FeedRow& feed)
{
  auto stores = store_names(ctx);
  ctx.print(feed_json(feed, stores), [&] { print_table(k_feed_headers, {feed_cells(feed, stores)}); });
}

struct FeedOptions {
  std::string name;
  std::string description;
  std::string anonymous = "pull";
  std::string store = "default";
  std::string cache_retention = "off";
  bool description_set = false;
  bool anonymous_set = false;
};

} // namespace

void
add_feed_commands(CLI::App& app, AppContext& ctx)
{
  auto* feed = app.add_subcommand("feed", "Manage feeds (named registries on this server)");
  feed->require_subcommand(1);
  auto options = std::make_shared<FeedOptions>();

  auto* create = feed->add_subcommand("create", "Create a feed");
  create->add_option("name", options->name, "Feed name")->required()->type_name("NAME");
  create->add_option("--description", options->description, "Free text");
  create->add_option("--anonymous", options->anonymous, "Anonymous access: none or pull")
    ->check(CLI::IsMember({"none", "pull"}))
    ->capture_default_str();
  create->add_option("--store", options->store, "Where the feed's blobs live (see 'registryctl store')")
    ->type_name("STORE")
    ->capture_default_str();
  create->add_option("--cache-retention", options->cache_retention, k_cache_retention_help)
    ->type_name("DURATION|off")
    ->capture_default_str();
  create->callback([&ctx, options] {
    int64_t retention = cache_retention_flag(options->cache_retention);
    auto row = unwrap(ctx.registry().create_feed(options->name, options->description,
                                                 options->anonymous, options->store, retention));
    ctx.audit("feed.create", row.name, row.name, "anonymous " + row.anonymous_access);
    print_feed(ctx, row);
  });

  auto* list = feed->add_subcommand("list", "List feeds");
  list->callback([&ctx] {
    auto feeds = unwrap(ctx.registry().list_feeds());
    auto stores = store_names(ctx);
    nlohmann::json doc = nlohmann::json::array();
    std::vector<std::vector<std::string>> rows;
    for (const auto& f : feeds) {
      doc.push_back(feed_json(f, stores));
      rows.push_back(feed_cells(f, stores));
    }
    ctx.print(doc, [&] { print_table(k_feed_headers, rows); });
  });

  auto* show = feed->add_subcommand("show", "Show one feed");
  show->add_option("name", options->name, "Feed name")->required()->type_name("FEED");
  show->callback([&ctx, options] { print_feed(ctx, unwrap(ctx.registry().get_feed(options->name))); });

  auto* update = feed->add_subcommand("update", "Change a feed's settings");
  update->add_option("name", options->name, "Feed name")->required()->type_name("FEED");
  update->add_option("--description", options->description, "Free text");
  update->add_option("--anonymous", options->anonymous, "Anonymous access: none or pull")
    ->check(CLI::IsMember({"none", "pull"}));
  update->add_option("--cache-retention", options->cache_retention, k_cache_retention_help)
    ->type_name("DURATION|off");
  update->callback([&ctx, options, update] {
    std::optional<std::string> description;
    std::optional<std::string> anonymous;
    std::optional<int64_t> retention;
    if (update->count("--cache-retention") > 0) {
      retention = cache_retention_flag(options->cache_retention);
    }
    if (update->count("--description") > 0) {
      description = options->description;
    }
    if (update->count("--anonymous") > 0) {
      anonymous = options->anonymous;
    }
    auto row = unwrap(ctx.registry().update_feed(options->name, description, anonymous, retention));
    ctx.audit("feed.update", row.name, row.name,
              "anonymous " + row.anonymous_access + ", cache retention "
                + (row.cache_retention > 0 ? util::format_duration(row.cache_retention) : "off"));
    print_feed(ctx, row);
  });

  auto* remove = feed->add_subcommand("delete", "Delete a feed with all its repositories");
  remove->add_option("name", options->name, "Feed name")->required()->type_name("FEED");
  remove->callback([&ctx, options] {
    unwrap(ctx.registry().delete_feed(options->name));
    ctx.audit("feed.delete", options->name, options->name);
    ctx.print({{"deleted", options->name}},
              [&] { std::cout << "deleted feed " << options->name << "\n"; });
  });
}

} // namespace registry::cli
