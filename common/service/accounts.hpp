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

enum class Privilege { pull, push, remove, manage };

// Parses "pull", "push", "delete", "manage". nullopt otherwise.
std::optional<Privilege> parse_privilege(const std::string& text);
const char* to_string(Privilege privilege);

// Who a request acts for.
struct Principal {
  enum class Kind { anonymous, user, key };
  Kind kind = Kind::anonymous;
  std::string name; // user name; "api" for a feed-scoped key
  int64_t user_id = 0;
  bool admin = false;
  int64_t key_feed_id = 0;             // feed-scoped key: its feed
  std::vector<Privilege> key_privileges; // feed-scoped key: what it may do
};

struct CreatedKey {
  std::string key; // shown once, never stored
  metadata::ApiKeyRow row;
};

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

  // Basic credentials to a principal: a user with its password, "api" with an
  // API key, or a user name with one of that user's keys. nullopt when invalid,
  // disabled or expired.
  Result<std::optional<Principal>> login(const std::string& name, const std::string& secret);

  // Whether `principal` may exercise `privilege` on `feed`. Anyone may pull from
  // a feed with anonymous pull; a server admin may do everything; push implies
  // pull.
  Result<bool> may(const Principal& principal, const metadata::FeedRow& feed, Privilege privilege);

  // --- administration ---
  // The first user created becomes a server admin (so a fresh server is never
  // left without one); `admin` makes any other one.
  Result<void> set_admin(const std::string& name, bool admin);
  Result<void> grant(const std::string& user, const std::string& feed, Privilege privilege);
  Result<void> revoke(const std::string& user, const std::string& feed, Privilege privilege);
  Result<std::vector<metadata::GrantRow>> list_grants(const std::string& user);

  // A key for `user` (acts as that user), or for `feed` with `privileges`.
  // Exactly one of `user` and `feed` is set. `expires_in` 0: never.
  Result<CreatedKey> create_key(const std::string& user, const std::string& feed,
                                const std::vector<Privilege>& privileges, int64_t expires_in,
                                const std::string& description);
  Result<std::vector<metadata::ApiKeyRow>> list_keys();
  Result<void> revoke_key(const std::string& prefix);

private:
  // The enabled user `name` when `password` is right (one row read per call).
  Result<std::optional<metadata::UserRow>> verified_user(const std::string& name,
                                                         const std::string& password);
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
