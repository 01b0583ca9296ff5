#pragma once

// Shell completion scripts generated from the CLI11 command tree, so that they
// cannot drift from the commands: `registryctl completion bash|zsh|fish` prints
// them, completions/ holds the committed output, and a test checks the two are
// identical.
//
// What an option or positional argument completes to comes from its type name:
//   FEED -> feed names, REPOSITORY and IMAGE -> repository names, USER -> user
//   names (all three through the hidden `registryctl __complete KIND PREFIX`,
//   which reads the data directory's database read-only), FILE -> files,
//   DIR -> directories; an IsMember check ({a,b}) -> its words; anything else
//   completes to nothing.

#include <CLI/CLI.hpp>

#include <string>

namespace registry::cli {

// The completion script for `shell` ("bash", "zsh" or "fish") describing every
// visible command of `root`. Deterministic: the same tree gives the same bytes.
std::string completion_script(const CLI::App& root, const std::string& shell);

} // namespace registry::cli
