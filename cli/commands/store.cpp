// `registryctl store add|list|show|check|delete`: where feeds keep blob bytes.

#include "cli/commands/commands.hpp"
#include "common/storage/store_factory.hpp"

#include <algorithm>
#include <iostream>
#include <map>

namespace registry::cli {

namespace {

// One flag per non-secret setting; secrets have no flag on purpose.
struct StoreArgs {
  std::string name;
  std::string type;
  std::map<std::string, std::string> settings; // flag values, by setting name
  bool proxy = false;
  bool no_check = false;
};

const std::vector<std::pair<std::string, std::string>> k_setting_flags = {
  {"path", "filesystem: directory holding the blobs (default: DATA/stores/NAME)"},
  {"endpoint", "s3: service URL, e.g. https://s3.eu-west-1.amazonaws.com; azure: "
               "https://ACCOUNT.blob.core.windows.net"},
  {"region", "s3: signing region (default us-east-1)"},
  {"bucket", "s3: bucket name"},
  {"addressing", "s3: path or virtual (bucket in the host name)"},
  {"account", "azure: storage account name"},
  {"container", "azure: container name"},
  {"prefix", "s3, azure: key prefix inside the bucket or container"},
  {"ca-file", "s3, azure: PEM file of CAs to trust instead of the system ones"},
};

std::string
setting_of_flag(const std::string& flag)
{
  std::string out = flag;
  std::replace(out.begin(), out.end(), '-', '_');
  return out;
}

nlohmann::json
store_json(const metadata::StoreRow& row)
{
  nlohmann::json settings = nlohmann::json::object();
  if (auto parsed = storage::parse_settings(row.config_json)) {
    for (const auto& [key, value] : *parsed) {
      settings[key] = value;
    }
  }
  nlohmann::json secrets = nlohmann::json::object();
  for (const auto& [secret, found] : storage::find_secrets(row.name, row.type)) {
    secrets[secret] = found.source; // where it comes from, never the value
  }
  return {{"name", row.name}, {"type", row.type}, {"settings", settings}, {"secrets", secrets}};
}

std::string
location_of(const metadata::StoreRow& row)
{
  auto settings = storage::parse_settings(row.config_json);
  if (!settings) {
    return "?";
  }
  auto get = [&](const char* key) {
    auto it = settings->find(key);
    return it == settings->end() ? std::string() : it->second;
  };
  if (row.type == "filesystem") {
    return get("path").empty() ? "(data directory)" : get("path");
  }
  std::string where = get("endpoint") + "/" + (row.type == "s3" ? get("bucket") : get("container"));
  return get("prefix").empty() ? where : where + "/" + get("prefix");
}

} // namespace

void
add_store_commands(CLI::App& app, AppContext& ctx)
{
  auto* store = app.add_subcommand(
    "store", "Where feeds keep blob bytes: the data directory, other directories, S3 or Azure Blob");
  store->require_subcommand(1);
  auto args = std::make_shared<StoreArgs>();

  auto* add = store->add_subcommand(
    "add", "Add a named store; secrets come from the environment or the config file, never flags");
  add->add_option("name", args->name, "Store name")->required()->type_name("NAME");
  add->add_option("--type", args->type, "filesystem, s3 or azure")
    ->required()
    ->check(CLI::IsMember(storage::store_types()));
  for (const auto& [flag, help] : k_setting_flags) {
    add->add_option_function<std::string>(
      "--" + flag, [args, key = setting_of_flag(flag)](const std::string& value) {
        args->settings[key] = value;
      },
      help);
  }
  add->add_flag("--proxy", args->proxy,
                "s3, azure: stream pulls through the server instead of redirecting clients "
                "to a short-lived URL on the store");
  add->add_flag("--no-check", args->no_check, "Add the store without a round trip to it first");
  add->callback([&ctx, args] {
    if (args->proxy) {
      args->settings["redirect"] = "false";
    }
    auto row = unwrap(ctx.registry().add_store(args->name, args->type, args->settings, !args->no_check));
    ctx.audit("store.add", "", row.name, row.type + " " + location_of(row));
    ctx.print(store_json(row), [&] {
      std::cout << "store " << row.name << " (" << row.type << ") at " << location_of(row) << "\n";
    });
  });

  auto* list = store->add_subcommand("list", "List stores");
  list->callback([&ctx] {
    nlohmann::json doc = nlohmann::json::array();
    std::vector<std::vector<std::string>> table;
    for (const auto& row : unwrap(ctx.registry().list_stores())) {
      doc.push_back(store_json(row));
      table.push_back({row.name, row.type, location_of(row)});
    }
    ctx.print(doc, [&] { print_table({"STORE", "TYPE", "LOCATION"}, table); });
  });

  auto* show = store->add_subcommand("show", "Show a store's settings and where its secrets come from");
  show->add_option("name", args->name, "Store name")->required()->type_name("STORE");
  show->callback([&ctx, args] {
    auto row = unwrap(ctx.registry().get_store(args->name));
    auto doc = store_json(row);
    ctx.print(doc, [&] {
      std::cout << "Store:    " << row.name << "\nType:     " << row.type << "\nLocation: "
                << location_of(row) << "\n";
      for (const auto& [key, value] : doc["settings"].items()) {
        std::cout << "  " << key << " = " << value.get<std::string>() << "\n";
      }
      for (const auto& secret : storage::secret_names(row.type)) {
        std::cout << "  " << secret << ": "
                  << (doc["secrets"].contains(secret)
                        ? "set, from " + doc["secrets"][secret].get<std::string>()
                        : std::string("not set"))
                  << "\n";
      }
    });
  });

  auto* check = store->add_subcommand("check", "Write, read back and delete a small object in the store");
  check->add_option("name", args->name, "Store name")->required()->type_name("STORE");
  check->callback([&ctx, args] {
    unwrap(ctx.registry().check_store(args->name));
    ctx.print({{"store", args->name}, {"check", "ok"}},
              [&] { std::cout << "store " << args->name << ": ok\n"; });
  });

  auto* remove = store->add_subcommand("delete", "Delete a store no feed uses and gc has emptied");
  remove->add_option("name", args->name, "Store name")->required()->type_name("STORE");
  remove->callback([&ctx, args] {
    unwrap(ctx.registry().delete_store(args->name));
    ctx.audit("store.delete", "", args->name);
    ctx.print({{"deleted", args->name}}, [&] { std::cout << "deleted store " << args->name << "\n"; });
  });
}

} // namespace registry::cli
