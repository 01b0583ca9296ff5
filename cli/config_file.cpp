#include "cli/config_file.hpp"

#include "common/storage/store_factory.hpp"

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

// Moves the [stores.<name>] tables (store secrets) out of `items` into the
// store factory. Only secret names are allowed there: the other settings live
// in the database.
void
take_store_secrets(std::vector<CLI::ConfigItem>& items)
{
  std::map<std::string, registry::storage::StoreSettings> by_store;
  std::erase_if(items, [&](const CLI::ConfigItem& item) {
    if (item.parents.empty() || item.parents[0] != "stores") {
      return false;
    }
    if (item.name == "++" || item.name == "--") {
      return true; // section markers
    }
    if (item.parents.size() != 2) {
      throw CLI::ConfigError("config file: store secrets go in [stores.NAME] tables");
    }
    bool known = false;
    for (const auto& type : registry::storage::store_types()) {
      known = known || registry::storage::is_secret(type, item.name);
    }
    if (!known) {
      throw CLI::ConfigError("config file: unknown key 'stores." + item.parents[1] + "." + item.name
                             + "' (store tables hold secrets: access_key_id, secret_access_key, "
                               "session_token, account_key, sas_token)");
    }
    std::string value;
    for (const auto& part : item.inputs) {
      value += part;
    }
    by_store[item.parents[1]][item.name] = value;
    return true;
  });
  registry::storage::set_configured_secrets(std::move(by_store));
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
    take_store_secrets(parsed);
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
