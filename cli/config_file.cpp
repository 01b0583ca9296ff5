#include "cli/config_file.hpp"

#include <algorithm>
#include <cstdlib>
#include <memory>

namespace registry::cli {

namespace {

// The command a config item's section names, or nullptr.
const CLI::App*
command_of(const CLI::App& root, const CLI::ConfigItem& item)
{
  const CLI::App* app = &root;
  for (const auto& parent : item.parents) {
    try {
      app = app->get_subcommand(parent);
    } catch (const CLI::OptionNotFound&) {
      return nullptr;
    }
  }
  return app;
}

// The option a config item names, or nullptr.
const CLI::Option*
option_of(const CLI::App& root, const CLI::ConfigItem& item)
{
  const CLI::App* app = command_of(root, item);
  return app != nullptr ? app->get_option_no_throw("--" + item.name) : nullptr;
}

std::string
section_of(const CLI::ConfigItem& item)
{
  std::string out;
  for (const auto& parent : item.parents) {
    out += (out.empty() ? "" : ".") + parent;
  }
  return out;
}

// Throws a ConfigError naming the first item that is no option of `root`.
void
check_known(const CLI::App& root, const std::vector<CLI::ConfigItem>& items)
{
  for (const auto& item : items) {
    bool section_marker = item.name == "++" || item.name == "--";
    if (command_of(root, item) == nullptr) {
      throw CLI::ConfigError("config file: [" + section_of(item) + "] is not a registryctl command");
    }
    if (!section_marker && option_of(root, item) == nullptr) {
      std::string key = item.parents.empty() ? item.name : section_of(item) + "." + item.name;
      throw CLI::ConfigError("config file: unknown key '" + key
                             + "' (keys are long option names without the dashes)");
    }
  }
}

// TOML, except that items whose option is set in the environment are dropped.
class EnvironmentFirstConfig : public CLI::ConfigTOML
{
public:
  explicit EnvironmentFirstConfig(const CLI::App& root) : m_root(root) {}

  std::vector<CLI::ConfigItem>
  from_config(std::istream& input) const override
  {
    auto parsed = CLI::ConfigTOML::from_config(input);
    check_known(m_root, parsed);
    std::erase_if(parsed, [this](const CLI::ConfigItem& item) {
      const CLI::Option* option = option_of(m_root, item);
      if (option == nullptr || option->get_envname().empty()) {
        return false;
      }
      const char* value = std::getenv(option->get_envname().c_str());
      return value != nullptr && *value != '\0';
    });
    return parsed;
  }

private:
  const CLI::App& m_root;
};

} // namespace

void
add_config_option(CLI::App& app)
{
  const char* from_env = std::getenv("REGISTRYCTL_CONFIG");
  std::string file = from_env != nullptr ? from_env : k_default_config_file;
  // A file named by REGISTRYCTL_CONFIG must exist; the default one is optional.
  bool required = from_env != nullptr && *from_env != '\0';
  app.set_config("--config", file,
                 "Read options from this TOML file (default: $REGISTRYCTL_CONFIG, else "
                   + std::string(k_default_config_file) + " if it exists)",
                 required)
    ->type_name("FILE");
  app.config_formatter(std::make_shared<EnvironmentFirstConfig>(app));
  // A misspelt key would otherwise be ignored silently.
  app.allow_config_extras(CLI::config_extras_mode::error);
}

} // namespace registry::cli
