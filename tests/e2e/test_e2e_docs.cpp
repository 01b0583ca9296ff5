// Completions and man pages cannot drift from the command tree: the tree is
// read from the real binary's --help output (independently of the completion
// generator), and every command and long flag must appear in each completion
// script and on its man page.

#include "tests/e2e/fixture.hpp"

#include "common/util/file.hpp"

#include <algorithm>
#include <map>
#include <regex>
#include <set>
#include <sstream>

using namespace registry::test;
namespace fs = std::filesystem;
namespace util = registry::util;

namespace {

const fs::path k_source = REGISTRYCTL_SOURCE_DIR;

struct HelpNode {
  std::set<std::string> flags;             // long flags, "--listen"
  std::vector<std::string> subcommands;    // names
  std::set<std::string> environment;       // REGISTRYCTL_* named in the help
};

// Parses `registryctl <path> --help`.
HelpNode
help_of(const std::vector<std::string>& path)
{
  std::vector<std::string> args = path;
  args.push_back("--help");
  auto r = run_command(registryctl_bin(), args);
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  HelpNode node;
  std::istringstream lines(r.out);
  std::string section;
  static const std::regex env(R"(\(Env:(REGISTRYCTL_[A-Z_]+)\))");
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty() && line.back() == ':' && line[0] != ' ') {
      section = line;
      continue;
    }
    for (std::sregex_iterator it(line.begin(), line.end(), env), end; it != end; ++it) {
      node.environment.insert((*it)[1]);
    }
    // entries are indented by two spaces; wrapped descriptions by more
    if (line.size() < 3 || line.compare(0, 2, "  ") != 0 || line[2] == ' ') {
      continue;
    }
    std::string first = line.substr(2, line.find(' ', 2) - 2);
    if (section == "Options:") {
      std::istringstream names(first);
      for (std::string name; std::getline(names, name, ',');) {
        if (name.rfind("--", 0) == 0) {
          node.flags.insert(name);
        }
      }
    } else if (section == "Subcommands:") {
      node.subcommands.push_back(first);
    }
  }
  return node;
}

// Every visible command, by path ("" is the program itself).
std::map<std::string, HelpNode>
command_tree()
{
  std::map<std::string, HelpNode> tree;
  std::vector<std::vector<std::string>> pending = {{}};
  while (!pending.empty()) {
    auto path = pending.back();
    pending.pop_back();
    auto node = help_of(path);
    for (const auto& sub : node.subcommands) {
      auto child = path;
      child.push_back(sub);
      pending.push_back(child);
    }
    std::string key;
    for (const auto& p : path) {
      key += (key.empty() ? "" : " ") + p;
    }
    tree[key] = std::move(node);
  }
  return tree;
}

std::string
read_source(const std::string& relative)
{
  auto text = util::read_file(k_source / relative);
  REQUIRE_MESSAGE(text, "cannot read " << relative);
  return *text;
}

// A man page's source with the troff hyphen escape undone, so that
// "\-\-listen" reads "--listen".
std::string
man_text(const std::string& page)
{
  std::string text = read_source("man/" + page);
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 1 < text.size() && text[i + 1] == '-') {
      out += '-';
      ++i;
    } else {
      out += text[i];
    }
  }
  return out;
}

std::string
top_level(const std::string& path)
{
  return path.substr(0, path.find(' '));
}

} // namespace

TEST_SUITE("e2e")
{
  TEST_CASE("docs: completion scripts are the generator's output and cover every command and flag")
  {
    auto tree = command_tree();
    REQUIRE(tree.size() > 20);
    const std::map<std::string, std::string> files = {
      {"bash", "completions/registryctl.bash"},
      {"zsh", "completions/_registryctl"},
      {"fish", "completions/registryctl.fish"}};
    for (const auto& [shell, file] : files) {
      CAPTURE(file);
      std::string committed = read_source(file);
      auto fresh = run_command(registryctl_bin(), {"completion", shell});
      REQUIRE(fresh.exit_code == 0);
      bool current = committed == fresh.out; // not CHECK(a == b): it would print both scripts
      CHECK_MESSAGE(current, file << " is stale: run `ninja -C build update-completions` and commit it");
      for (const auto& [path, node] : tree) {
        for (const auto& sub : node.subcommands) {
          CHECK_MESSAGE(committed.find(sub) != std::string::npos, "command '" << path << " " << sub << "'");
        }
        for (const auto& flag : node.flags) {
          // fish spells long options as `-l name`
          std::string spelled = shell == "fish" ? "-l " + flag.substr(2) : flag;
          CHECK_MESSAGE(committed.find(spelled) != std::string::npos, "'" << path << "' " << flag);
        }
      }
    }
    // the hidden name source for the scripts stays hidden
    CHECK(tree[""].subcommands.end()
          == std::find(tree[""].subcommands.begin(), tree[""].subcommands.end(), "__complete"));
  }

  TEST_CASE("docs: every command group has a man page naming each of its flags")
  {
    auto tree = command_tree();
    // fsck is documented with gc, import with export
    const std::map<std::string, std::string> page_of = {{"fsck", "registryctl-gc.1"},
                                                        {"import", "registryctl-export.1"}};
    std::set<std::string> environment;
    for (const auto& [path, node] : tree) {
      environment.insert(node.environment.begin(), node.environment.end());
      std::string page = "registryctl.1";
      if (!path.empty()) {
        auto group = top_level(path);
        page = page_of.count(group) != 0 ? page_of.at(group) : "registryctl-" + group + ".1";
      }
      CAPTURE(page);
      REQUIRE_MESSAGE(fs::exists(k_source / "man" / page), "no man page for '" << path << "'");
      std::string text = man_text(page);
      for (const auto& flag : node.flags) {
        if (flag == "--help" && !path.empty()) {
          continue; // documented once, in registryctl(1)
        }
        CHECK_MESSAGE(text.find(flag) != std::string::npos, "'" << path << "' " << flag);
      }
      if (!path.empty() && path.find(' ') == std::string::npos) {
        // the overview lists every group and points to its page
        CHECK_MESSAGE(man_text("registryctl.1").find(page.substr(0, page.size() - 2) + " (1)")
                        != std::string::npos,
                      page);
      }
    }

    std::string overview = man_text("registryctl.1");
    SUBCASE("ENVIRONMENT lists every variable an option reads")
    {
      auto env_section = overview.substr(overview.find(".SH ENVIRONMENT"));
      env_section = env_section.substr(0, env_section.find(".SH", 4));
      for (const auto& name : environment) {
        CHECK_MESSAGE(env_section.find(".B " + name) != std::string::npos, name);
      }
      CHECK(env_section.find(".B REGISTRYCTL_CONFIG") != std::string::npos);
    }

    SUBCASE("EXIT STATUS lists every code of cli/exit_codes.hpp")
    {
      std::string codes = read_source("cli/exit_codes.hpp");
      auto exit_section = overview.substr(overview.find(".SH EXIT STATUS"));
      exit_section = exit_section.substr(0, exit_section.find(".SH", 4));
      static const std::regex code(R"(k_exit_\w+ = (\d+);)");
      int found = 0;
      for (std::sregex_iterator it(codes.begin(), codes.end(), code), end; it != end; ++it) {
        ++found;
        CHECK_MESSAGE(exit_section.find(".TP\n.B " + (*it)[1].str() + "\n") != std::string::npos,
                      "exit status " << (*it)[1].str());
      }
      CHECK(found >= 5);
    }

    SUBCASE("groff renders every page without warnings")
    {
      auto probe = run_command("sh", {"-c", "command -v groff"});
      if (probe.exit_code != 0) {
        MESSAGE("groff is not installed; rendering not checked");
        return;
      }
      for (const auto& entry : fs::directory_iterator(k_source / "man")) {
        CAPTURE(entry.path());
        auto r = run_command("groff", {"-man", "-Tutf8", "-ww", "-z", entry.path().string()});
        CHECK(r.exit_code == 0);
        CHECK(r.err.empty());
      }
    }
  }
}
