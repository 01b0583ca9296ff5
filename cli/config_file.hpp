#pragma once

// Where options come from, lowest precedence first:
//
//   1. built-in defaults;
//   2. a TOML config file: `--config FILE`, else $REGISTRYCTL_CONFIG, else
//      /etc/registryctl/config.toml when it exists (REGISTRYCTL_CONFIG set to the
//      empty string reads no file). Top-level keys are global options
//      (`data = "/srv/registry"`), `[serve]`, `[gc]`, `[feed.create]` ... are the
//      options of that command; keys are long flag names without the dashes.
//      Unknown keys are errors;
//   3. REGISTRYCTL_<NAME> environment variables, declared per option with
//      CLI::Option::envname();
//   4. flags on the command line.
//
// CLI11 on its own lets a config file override the environment; the formatter
// installed here drops every config item whose option's environment variable is
// set, which gives the order above.

#include <CLI/CLI.hpp>

namespace registry::cli {

inline constexpr const char* k_default_config_file = "/etc/registryctl/config.toml";

// Adds --config to `app` and installs the config file reader. `app` must
// outlive its parse; subcommands may be added afterwards.
void add_config_option(CLI::App& app);

} // namespace registry::cli
