#pragma once

// Opening a named store from its database row.
//
// A store's settings are split in two. The ones that are not secret (endpoint,
// bucket, container, prefix, path, redirect ...) are kept as JSON in the stores
// table, so every process sharing the database opens the same store. Secrets
// (access keys, account keys, SAS tokens) are never written to the database or
// taken from argv; each process reads them, first match wins, from:
//
//   1. REGISTRYCTL_STORE_<NAME>_<SETTING> in the environment (NAME and SETTING
//      upper-cased, other characters as '_'): REGISTRYCTL_STORE_HUB_S3_SECRET_ACCESS_KEY;
//   2. the [stores.<name>] table of the config file;
//   3. the usual variables of the provider: AWS_ACCESS_KEY_ID,
//      AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN for s3, AZURE_STORAGE_KEY and
//      AZURE_STORAGE_SAS_TOKEN for azure.

#include "common/metadata/metadata.hpp"
#include "common/storage/blob_store.hpp"

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace registry::storage {

using StoreSettings = std::map<std::string, std::string>;

// "filesystem", "s3", "azure".
const std::vector<std::string>& store_types();
// The settings `type` accepts, secret or not, in display order. Empty for an
// unknown type.
const std::vector<std::string>& setting_names(const std::string& type);
const std::vector<std::string>& secret_names(const std::string& type);
bool is_secret(const std::string& type, const std::string& setting);

// The [stores.<name>] tables of the config file; set once at startup.
void set_configured_secrets(std::map<std::string, StoreSettings> by_store);

struct SecretSource {
  std::string value;
  std::string source; // "environment REGISTRYCTL_STORE_...", "config file", "environment AWS_..."
};
// Where each secret of the store comes from; absent ones are left out.
std::map<std::string, SecretSource> find_secrets(const std::string& store_name,
                                                 const std::string& type);

// The non-secret settings kept in the database, parsed. corrupt if not an object
// of strings.
Result<StoreSettings> parse_settings(const std::string& config_json);
std::string settings_json(const StoreSettings& settings);

// Validates `settings` (non-secret) for a new store of `type`: invalid_argument
// naming the first bad or unknown setting. Secrets are refused here.
Result<void> validate_settings(const std::string& type, const StoreSettings& settings);

// Opens the store a row describes, with its secrets. `data_dir` holds the
// default filesystem store and local spool space. No network round trip is made
// (check() does that), so an unreachable store does not stop the process.
Result<std::unique_ptr<BlobStore>> open_store(const metadata::StoreRow& row,
                                              const std::filesystem::path& data_dir);

} // namespace registry::storage
