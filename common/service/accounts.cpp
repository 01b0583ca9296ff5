#include "common/service/accounts.hpp"

#include "common/auth/password.hpp"
#include "common/util/hasher.hpp"
#include "common/util/strings.hpp"
#include "common/util/uuid.hpp"

#include <algorithm>

namespace registry::service {

namespace {

constexpr int64_t k_cache_seconds = 60;
constexpr size_t k_cache_max = 10000;

bool
valid_user_name(const std::string& name)
{
  if (name.empty() || name.size() > 64 || name == "api") {
    return false;
  }
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-'))) {
      return false;
    }
  }
  return true;
}

Result<void>
check_password(const std::string& password)
{
  if (password.size() < 8) {
    return fail(ErrorCode::invalid_argument, "a password needs at least 8 characters");
  }
  return ok();
}

} // namespace

Accounts::Accounts(metadata::Metadata& metadata, std::shared_ptr<const util::Clock> clock)
  : m_metadata(metadata),
    m_clock(std::move(clock))
{
}

Result<metadata::UserRow>
Accounts::add_user(const std::string& name, const std::string& password)
{
  if (!valid_user_name(name)) {
    return fail(ErrorCode::name_invalid,
                "invalid user name '" + name
                  + "': lowercase letters, digits, '.', '_', '-'; 'api' is reserved for API keys",
                name);
  }
  REGISTRY_TRY(check_password(password));
  // The first user becomes the admin in the same transaction.
  return m_metadata.create_user(name, auth::hash_password(password), m_clock->now());
}

std::optional<Privilege>
parse_privilege(const std::string& text)
{
  if (text == "pull") {
    return Privilege::pull;
  }
  if (text == "push") {
    return Privilege::push;
  }
  if (text == "delete") {
    return Privilege::remove;
  }
  if (text == "manage") {
    return Privilege::manage;
  }
  return std::nullopt;
}

const char*
to_string(Privilege privilege)
{
  switch (privilege) {
  case Privilege::pull:
    return "pull";
  case Privilege::push:
    return "push";
  case Privilege::remove:
    return "delete";
  case Privilege::manage:
    return "manage";
  }
  return "pull";
}

namespace {

bool
covers(const std::vector<Privilege>& held, Privilege wanted)
{
  for (Privilege p : held) {
    // push implies pull; manage (the feed's owners) implies everything on it.
    if (p == wanted || p == Privilege::manage || (wanted == Privilege::pull && p == Privilege::push)) {
      return true;
    }
  }
  return false;
}

constexpr const char* k_key_prefix = "rk_";

} // namespace

Result<std::optional<Principal>>
Accounts::login(const std::string& name, const std::string& secret)
{
  int64_t now = m_clock->now();
  if (secret.rfind(k_key_prefix, 0) == 0) {
    // Keys are 160 random bits: a plain SHA-256 names them, and the lookup by
    // that hash reveals nothing about other keys.
    REGISTRY_TRY_ASSIGN(auto key, m_metadata.find_key_by_hash(util::hex_digest(secret)));
    if (key && (key->expires_at == 0 || key->expires_at > now)
        && (name == "api" || (key->user_id != 0 && key->user == name))) {
      if (key->last_used_at < now - 60) {
        (void)m_metadata.touch_key(key->id, now);
      }
      Principal p;
      p.kind = Principal::Kind::key;
      if (key->user_id != 0) {
        REGISTRY_TRY_ASSIGN(auto user, m_metadata.find_user_by_id(key->user_id));
        if (!user || user->disabled) {
          return std::optional<Principal>();
        }
        p.name = user->name;
        p.user_id = user->id;
        p.admin = user->admin;
      } else {
        p.name = "api";
        p.key_feed_id = key->feed_id;
        for (const auto& text : util::split(key->privileges, ',')) {
          if (auto priv = parse_privilege(text)) {
            p.key_privileges.push_back(*priv);
          }
        }
      }
      return std::optional<Principal>(std::move(p));
    }
  }
  REGISTRY_TRY_ASSIGN(auto row, verified_user(name, secret));
  if (!row) {
    return std::optional<Principal>();
  }
  return std::optional<Principal>(Principal{Principal::Kind::user, row->name, row->id, row->admin, 0, {}});
}

Result<bool>
Accounts::may(const Principal& principal, const metadata::FeedRow& feed, Privilege privilege)
{
  if (privilege == Privilege::pull && feed.anonymous_access == "pull") {
    return true;
  }
  if (principal.kind == Principal::Kind::anonymous) {
    return false;
  }
  if (principal.admin) {
    return true;
  }
  if (principal.user_id == 0) {
    return principal.key_feed_id == feed.id && covers(principal.key_privileges, privilege);
  }
  REGISTRY_TRY_ASSIGN(auto texts, m_metadata.privileges_of(principal.user_id, feed.id));
  std::vector<Privilege> held;
  for (const auto& t : texts) {
    if (auto p = parse_privilege(t)) {
      held.push_back(*p);
    }
  }
  return covers(held, privilege);
}

Result<void>
Accounts::set_admin(const std::string& name, bool admin)
{
  return m_metadata.set_admin(name, admin);
}

namespace {

struct GrantTarget {
  int64_t user_id;
  int64_t feed_id;
};

Result<GrantTarget>
grant_target(metadata::Metadata& md, const std::string& user, const std::string& feed)
{
  REGISTRY_TRY_ASSIGN(auto row, md.find_user(user));
  if (!row) {
    return fail(ErrorCode::not_found, "user '" + user + "' does not exist", user);
  }
  int64_t feed_id = 0;
  if (feed != "*") {
    REGISTRY_TRY_ASSIGN(auto f, md.find_feed(feed));
    if (!f) {
      return fail(ErrorCode::name_unknown, "feed '" + feed + "' does not exist", feed);
    }
    feed_id = f->id;
  }
  return GrantTarget{row->id, feed_id};
}

} // namespace

Result<void>
Accounts::grant(const std::string& user, const std::string& feed, Privilege privilege)
{
  REGISTRY_TRY_ASSIGN(auto target, grant_target(m_metadata, user, feed));
  return m_metadata.add_grant(target.user_id, target.feed_id, to_string(privilege));
}

Result<void>
Accounts::revoke(const std::string& user, const std::string& feed, Privilege privilege)
{
  REGISTRY_TRY_ASSIGN(auto target, grant_target(m_metadata, user, feed));
  REGISTRY_TRY_ASSIGN(bool removed, m_metadata.remove_grant(target.user_id, target.feed_id, to_string(privilege)));
  if (!removed) {
    return fail(ErrorCode::not_found, std::string("user '") + user + "' has no " + to_string(privilege)
                                        + " privilege on " + (feed == "*" ? "every feed" : "feed '" + feed + "'"));
  }
  return ok();
}

Result<std::vector<metadata::GrantRow>>
Accounts::list_grants(const std::string& user)
{
  return m_metadata.list_grants(user);
}

Result<CreatedKey>
Accounts::create_key(const std::string& user, const std::string& feed,
                     const std::vector<Privilege>& privileges, int64_t expires_in,
                     const std::string& description)
{
  metadata::ApiKeyRow row;
  if (user.empty() == feed.empty()) {
    return fail(ErrorCode::invalid_argument, "a key belongs to a user (--user) or to a feed (--feed), not both");
  }
  if (!user.empty()) {
    REGISTRY_TRY_ASSIGN(auto u, m_metadata.find_user(user));
    if (!u) {
      return fail(ErrorCode::not_found, "user '" + user + "' does not exist", user);
    }
    row.user_id = u->id;
    row.user = u->name;
  } else {
    REGISTRY_TRY_ASSIGN(auto f, m_metadata.find_feed(feed));
    if (!f) {
      return fail(ErrorCode::name_unknown, "feed '" + feed + "' does not exist", feed);
    }
    if (privileges.empty()) {
      return fail(ErrorCode::invalid_argument, "a feed key needs --privileges, e.g. pull,push");
    }
    row.feed_id = f->id;
    row.feed = f->name;
    for (size_t i = 0; i < privileges.size(); ++i) {
      row.privileges += (i ? "," : "") + std::string(to_string(privileges[i]));
    }
  }
  std::string key = k_key_prefix + util::random_uuid() + util::random_uuid();
  key.erase(std::remove(key.begin(), key.end(), '-'), key.end());
  row.prefix = key.substr(0, 11);
  row.key_hash = util::hex_digest(key);
  row.description = description;
  row.created_at = m_clock->now();
  row.expires_at = expires_in > 0 ? row.created_at + expires_in : 0;
  REGISTRY_TRY_ASSIGN(row, m_metadata.create_key(row));
  return CreatedKey{key, row};
}

Result<std::vector<metadata::ApiKeyRow>>
Accounts::list_keys()
{
  return m_metadata.list_keys();
}

Result<void>
Accounts::revoke_key(const std::string& prefix)
{
  return m_metadata.revoke_key(prefix);
}

Result<void>
Accounts::set_password(const std::string& name, const std::string& password)
{
  REGISTRY_TRY(check_password(password));
  REGISTRY_TRY(m_metadata.update_user(name, auth::hash_password(password), std::nullopt));
  forget(name);
  return ok();
}

Result<void>
Accounts::set_disabled(const std::string& name, bool disabled)
{
  REGISTRY_TRY(m_metadata.update_user(name, std::nullopt, disabled));
  forget(name);
  return ok();
}

Result<void>
Accounts::delete_user(const std::string& name)
{
  REGISTRY_TRY(m_metadata.delete_user(name));
  forget(name);
  return ok();
}

Result<std::vector<metadata::UserRow>>
Accounts::list_users()
{
  return m_metadata.list_users();
}

Result<bool>
Accounts::open_access()
{
  REGISTRY_TRY_ASSIGN(bool users, m_metadata.has_users());
  return !users;
}

void
Accounts::forget(const std::string& name)
{
  std::lock_guard lock(m_mutex);
  for (auto it = m_cache.begin(); it != m_cache.end();) {
    it = it->second.user == name ? m_cache.erase(it) : std::next(it);
  }
}

Result<std::optional<metadata::UserRow>>
Accounts::verified_user(const std::string& name, const std::string& password)
{
  // The row is read every time (an indexed lookup), so a password change,
  // disable or delete by another process takes effect at once; only the slow
  // PBKDF2 check is cached, keyed by the credentials and the stored hash.
  REGISTRY_TRY_ASSIGN(auto user, m_metadata.find_user(name));
  if (!user || user->disabled) {
    return std::optional<metadata::UserRow>();
  }
  std::string key = util::hex_digest(name + '\0' + password + '\0' + user->password_hash);
  int64_t now = m_clock->now();
  {
    std::lock_guard lock(m_mutex);
    auto it = m_cache.find(key);
    if (it != m_cache.end() && it->second.expires_at > now) {
      return user;
    }
  }
  if (!auth::verify_password(password, user->password_hash)) {
    return std::optional<metadata::UserRow>();
  }
  std::lock_guard lock(m_mutex);
  if (m_cache.size() >= k_cache_max) {
    m_cache.clear();
  }
  m_cache[key] = CacheEntry{name, now + k_cache_seconds};
  return user;
}

Result<std::optional<std::string>>
Accounts::authenticate(const std::string& name, const std::string& password)
{
  REGISTRY_TRY_ASSIGN(auto user, verified_user(name, password));
  if (!user) {
    return std::optional<std::string>();
  }
  return std::optional<std::string>(user->name);
}

} // namespace registry::service
