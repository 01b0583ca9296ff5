// `registryctl events`: the audit trail (pushes, deletes, logins, admin changes).

#include "cli/commands/commands.hpp"
#include "common/util/strings.hpp"

#include <ctime>

namespace registry::cli {

namespace {

struct EventsOptions {
  std::string feed;
  std::string since = "7d";
  int64_t limit = 100;
};

// "24h" (a duration back from now) or an RFC 3339 UTC time "2026-11-23T10:00:00Z".
int64_t
since_time(const std::string& text, int64_t now)
{
  if (auto seconds = util::parse_duration(text)) {
    return now - *seconds;
  }
  std::tm tm{};
  const char* end = ::strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (end != nullptr && (*end == '\0' || (end[0] == 'Z' && end[1] == '\0'))) {
    return static_cast<int64_t>(::timegm(&tm));
  }
  throw CommandError(make_error(ErrorCode::invalid_argument,
                                "--since must be a duration (24h, 7d) or a UTC time (2026-11-23T10:00:00Z), not '"
                                  + text + "'"));
}

// "FEED/REPO@<12 hex>", as docker shortens ids: tables keep lines short; JSON
// has the whole digest.
std::string
short_subject(const std::string& subject)
{
  size_t at = subject.find('@');
  if (at == std::string::npos) {
    return subject;
  }
  std::string digest = short_digest(subject.substr(at + 1));
  return subject.substr(0, at + 1) + digest.substr(digest.find(':') + 1);
}

} // namespace

void
add_events_command(CLI::App& app, AppContext& ctx)
{
  auto options = std::make_shared<EventsOptions>();
  auto* events = app.add_subcommand("events", "Show the audit trail: pushes, deletes, logins and admin changes");
  events->add_option("--feed", options->feed, "Only events of this feed");
  events->add_option("--since", options->since, "A duration back from now (24h) or a UTC time")
    ->capture_default_str();
  events->add_option("--limit", options->limit, "At most this many (the newest)")
    ->check(CLI::Range(int64_t{1}, int64_t{1000000}))
    ->capture_default_str();
  events->callback([&ctx, options] {
    auto& registry = ctx.registry();
    int64_t since = since_time(options->since, registry.now());
    if (!options->feed.empty()) {
      unwrap(registry.get_feed(options->feed));
    }
    auto rows = unwrap(registry.metadata().list_events(options->feed, since, options->limit));
    nlohmann::json doc = nlohmann::json::array();
    std::vector<std::vector<std::string>> table;
    for (const auto& e : rows) {
      doc.push_back({{"time", util::format_time(e.at)},
                     {"kind", e.kind},
                     {"actor", e.actor},
                     {"feed", e.feed},
                     {"subject", e.subject},
                     {"detail", e.detail}});
      table.push_back({util::format_time(e.at), e.kind, e.actor, short_subject(e.subject), e.detail});
    }
    ctx.print(doc, [&] { print_table({"TIME", "EVENT", "ACTOR", "SUBJECT", "DETAIL"}, table); });
  });
}

} // namespace registry::cli
