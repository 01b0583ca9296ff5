#include "common/storage/store_factory.hpp"

#include "common/storage/azure_blob_store.hpp"
#include "common/storage/fs_blob_store.hpp"
#include "common/storage/s3_blob_store.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <mutex>

namespace registry::storage {

namespace fs = std::filesystem;

namespace {

std::mutex g_secrets_mutex;
std::map<std::string, StoreSettings> g_configured_secrets;

const std::vector<std::string> k_no_names;

std::string
env_part(const std::string& text)
{
  std::string out;
  for (char c : text) {
    out.push_back(std::isalnum(static_cast<unsigned char>(c)) != 0
                    ? static_cast<char>(std::toupper(static_cast<unsigned char>(c)))
                    : '_');
  }
  return out;
}

const char*
provider_variable(const std::string& type, const std::string& secret)
{
  static const std::map<std::string, const char*> s3 = {
    {"access_key_id", "AWS_ACCESS_KEY_ID"},
    {"secret_access_key", "AWS_SECRET_ACCESS_KEY"},
    {"session_token", "AWS_SESSION_TOKEN"}};
  static const std::map<std::string, const char*> azure = {
    {"account_key", "AZURE_STORAGE_KEY"}, {"sas_token", "AZURE_STORAGE_SAS_TOKEN"}};
  const auto& table = type == "s3" ? s3 : azure;
  auto it = table.find(secret);
  return it == table.end() ? nullptr : it->second;
}

} // namespace

const std::vector<std::string>&
store_types()
{
  static const std::vector<std::string> types = {"filesystem", "s3", "azure"};
  return types;
}

const std::vector<std::string>&
setting_names(const std::string& type)
{
  static const std::map<std::string, std::vector<std::string>> names = {
    {"filesystem", {"path"}},
    {"s3",
     {"endpoint", "region", "bucket", "prefix", "addressing", "ca_file", "redirect",
      "access_key_id", "secret_access_key", "session_token"}},
    {"azure",
     {"endpoint", "account", "container", "prefix", "ca_file", "redirect", "account_key",
      "sas_token"}}};
  auto it = names.find(type);
  return it == names.end() ? k_no_names : it->second;
}

const std::vector<std::string>&
secret_names(const std::string& type)
{
  static const std::map<std::string, std::vector<std::string>> names = {
    {"s3", {"access_key_id", "secret_access_key", "session_token"}},
    {"azure", {"account_key", "sas_token"}}};
  auto it = names.find(type);
  return it == names.end() ? k_no_names : it->second;
}

bool
is_secret(const std::string& type, const std::string& setting)
{
  const auto& names = secret_names(type);
  return std::find(names.begin(), names.end(), setting) != names.end();
}

void
set_configured_secrets(std::map<std::string, StoreSettings> by_store)
{
  std::lock_guard lock(g_secrets_mutex);
  g_configured_secrets = std::move(by_store);
}

std::map<std::string, SecretSource>
find_secrets(const std::string& store_name, const std::string& type)
{
  std::map<std::string, SecretSource> found;
  StoreSettings configured;
  {
    std::lock_guard lock(g_secrets_mutex);
    auto it = g_configured_secrets.find(store_name);
    if (it != g_configured_secrets.end()) {
      configured = it->second;
    }
  }
  for (const auto& secret : secret_names(type)) {
    std::string own = "REGISTRYCTL_STORE_" + env_part(store_name) + "_" + env_part(secret);
    const char* value = std::getenv(own.c_str());
    if (value != nullptr && *value != '\0') {
      found[secret] = {value, "environment " + own};
      continue;
    }
    if (auto it = configured.find(secret); it != configured.end() && !it->second.empty()) {
      found[secret] = {it->second, "config file [stores." + store_name + "]"};
      continue;
    }
    const char* provider = provider_variable(type, secret);
    value = provider != nullptr ? std::getenv(provider) : nullptr;
    if (value != nullptr && *value != '\0') {
      found[secret] = {value, std::string("environment ") + provider};
    }
  }
  return found;
}

Result<StoreSettings>
parse_settings(const std::string& config_json)
{
  auto doc = nlohmann::json::parse(config_json, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) {
    return fail(ErrorCode::corrupt, "store settings are not a JSON object");
  }
  StoreSettings out;
  for (const auto& [key, value] : doc.items()) {
    if (!value.is_string()) {
      return fail(ErrorCode::corrupt, "store setting '" + key + "' is not a string");
    }
    out[key] = value.get<std::string>();
  }
  return out;
}

std::string
settings_json(const StoreSettings& settings)
{
  nlohmann::json doc = nlohmann::json::object();
  for (const auto& [key, value] : settings) {
    doc[key] = value;
  }
  return doc.dump();
}

Result<void>
validate_settings(const std::string& type, const StoreSettings& settings)
{
  const auto& names = setting_names(type);
  if (names.empty()) {
    return fail(ErrorCode::invalid_argument,
                "unknown store type '" + type + "': use filesystem, s3 or azure");
  }
  for (const auto& [key, value] : settings) {
    if (std::find(names.begin(), names.end(), key) == names.end()) {
      return fail(ErrorCode::invalid_argument,
                  "a " + type + " store has no setting '" + key + "'");
    }
    if (is_secret(type, key)) {
      return fail(ErrorCode::invalid_argument,
                  "'" + key + "' is a secret: set it in the environment or the config file, "
                  "never on the command line");
    }
  }
  if (type == "filesystem") {
    auto path = settings.find("path");
    if (path != settings.end() && !fs::path(path->second).is_absolute()) {
      return fail(ErrorCode::invalid_argument,
                  "a filesystem store's path must be absolute: '" + path->second + "'");
    }
  }
  return ok();
}

Result<std::unique_ptr<BlobStore>>
open_store(const metadata::StoreRow& row, const fs::path& data_dir)
{
  REGISTRY_TRY_ASSIGN(auto settings, parse_settings(row.config_json));
  if (row.type == "filesystem") {
    fs::path root;
    if (auto path = settings.find("path"); path != settings.end()) {
      root = path->second;
    } else {
      root = row.name == "default" ? data_dir / "store" : data_dir / "stores" / row.name;
    }
    REGISTRY_TRY_ASSIGN(auto store, FsBlobStore::open(root));
    return std::unique_ptr<BlobStore>(std::move(store));
  }
  for (const auto& [secret, found] : find_secrets(row.name, row.type)) {
    settings[secret] = found.value;
  }
  if (row.type == "s3") {
    // Upload tails shorter than one part wait on local disk until they fill one.
    // Absolute: the driver insists, and `--data` may be given relative.
    std::error_code ec;
    fs::path spool = fs::absolute(data_dir / "spool" / row.name, ec).lexically_normal();
    settings["spool_dir"] = (ec ? data_dir / "spool" / row.name : spool).string();
    REGISTRY_TRY_ASSIGN(auto options, S3Options::from_settings(settings));
    REGISTRY_TRY_ASSIGN(auto store, S3BlobStore::open(options));
    return std::unique_ptr<BlobStore>(std::move(store));
  }
  if (row.type == "azure") {
    REGISTRY_TRY_ASSIGN(auto options, AzureOptions::from_settings(settings));
    REGISTRY_TRY_ASSIGN(auto store, AzureBlobStore::open(options));
    return std::unique_ptr<BlobStore>(std::move(store));
  }
  return fail(ErrorCode::unsupported,
              "store '" + row.name + "' has type " + row.type + ", which this build cannot open");
}

} // namespace registry::storage
