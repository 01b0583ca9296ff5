// `registryctl completion SHELL` and the hidden `registryctl __complete KIND
// [PREFIX]` that completion scripts call for names stored in the data directory.

#include "cli/commands/commands.hpp"
#include "cli/completion.hpp"
#include "common/metadata/metadata.hpp"

#include <iostream>

namespace registry::cli {

namespace {

struct CompleteArgs {
  std::string kind;
  std::string prefix;
};

bool
starts_with(const std::string& text, const std::string& prefix)
{
  return text.compare(0, prefix.size(), prefix) == 0;
}

// Prints the names of `kind` that start with `prefix`, one per line. Opens the
// database read-only: a missing data directory or database prints nothing and
// creates nothing. Errors print nothing either (the shell shows no candidates).
void
print_names(const AppContext& ctx, const CompleteArgs& args)
{
  auto opened = metadata::Metadata::open_read_only(std::filesystem::path(ctx.data_dir) / "registry.db");
  if (!opened) {
    return;
  }
  auto& db = **opened;
  if (args.kind == "feeds") {
    if (auto feeds = db.list_feeds()) {
      for (const auto& feed : *feeds) {
        if (starts_with(feed.name, args.prefix)) {
          std::cout << feed.name << "\n";
        }
      }
    }
  } else if (args.kind == "users") {
    if (auto users = db.list_users()) {
      for (const auto& user : *users) {
        if (starts_with(user.name, args.prefix)) {
          std::cout << user.name << "\n";
        }
      }
    }
  } else if (args.kind == "repos") {
    // Within one feed once its name is typed; names come in order, so the scan
    // ends at the first name past the prefix.
    auto slash = args.prefix.find('/');
    std::string feed = slash == std::string::npos ? "" : args.prefix.substr(0, slash);
    std::string last;
    constexpr int64_t k_page = 500;
    for (;;) {
      auto names = db.list_repository_names(feed, last, k_page);
      if (!names || names->empty()) {
        return;
      }
      for (const auto& name : *names) {
        if (starts_with(name, args.prefix)) {
          std::cout << name << "\n";
        } else if (name > args.prefix) {
          return;
        }
      }
      if (static_cast<int64_t>(names->size()) < k_page) {
        return;
      }
      last = names->back();
    }
  }
}

} // namespace

void
add_completion_commands(CLI::App& app, AppContext& ctx)
{
  auto shell = std::make_shared<std::string>();
  auto* completion = app.add_subcommand("completion", "Print a shell completion script");
  completion->add_option("shell", *shell, "bash, zsh or fish")
    ->required()
    ->check(CLI::IsMember({"bash", "zsh", "fish"}));
  completion->callback([&app, shell] { std::cout << completion_script(app, *shell); });

  auto args = std::make_shared<CompleteArgs>();
  auto* complete = app.add_subcommand("__complete", "Names for shell completion (internal)");
  complete->group(""); // hidden from help and from the completion scripts
  complete->add_option("kind", args->kind, "feeds, repos or users")
    ->required()
    ->check(CLI::IsMember({"feeds", "repos", "users"}));
  complete->add_option("prefix", args->prefix, "Only names starting with this");
  complete->callback([&ctx, args] { print_names(ctx, *args); });
}

} // namespace registry::cli
