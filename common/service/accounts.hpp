#pragma once

// Accounts: users and the check of their credentials. Passwords are stored as
// PBKDF2 hashes only (common/auth/password.hpp). The user row is read on every
// check, so changes by another process apply at once; a successful PBKDF2 check
// is cached for a minute under a SHA-256 of the credentials and the stored hash,
// because clients send Basic credentials on every request and PBKDF2 is slow on
// purpose.
//
// Thread-safety: all methods may be called concurrently.

#include "common/metadata/metadata.hpp"
#include "common/result.hpp"
#include "common/util/clock.hpp"

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace registry::service {

class Accounts
{
public:
  Accounts(metadata::Metadata& metadata, std::shared_ptr<const util::Clock> clock);

  // name_invalid for a bad name (`api` is reserved for API keys),
  // invalid_argument for a password under 8 characters, already_exists.
  Result<metadata::UserRow> add_user(const std::string& name, const std::string& password);
  Result<void> set_password(const std::string& name, const std::string& password);
  Result<void> set_disabled(const std::string& name, bool disabled);
  Result<void> delete_user(const std::string& name);
  Result<std::vector<metadata::UserRow>> list_users();

  // True when no user exists: the registry is open (the local default).
  Result<bool> open_access();

  // The user name when `name`/`password` are valid for an enabled user;
  // nullopt otherwise (never says which part was wrong).
  Result<std::optional<std::string>> authenticate(const std::string& name,
                                                  const std::string& password);

private:
  void forget(const std::string& name);

  metadata::Metadata& m_metadata;
  std::shared_ptr<const util::Clock> m_clock;
  std::mutex m_mutex;
  struct CacheEntry {
    std::string user;
    int64_t expires_at;
  };
  std::map<std::string, CacheEntry> m_cache; // key: hex SHA-256 of the credentials
};

} // namespace registry::service
