#include "common/service/accounts.hpp"

#include "common/auth/password.hpp"
#include "common/util/hasher.hpp"

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
  return m_metadata.create_user(name, auth::hash_password(password), m_clock->now());
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
  REGISTRY_TRY_ASSIGN(int64_t users, m_metadata.count_users());
  return users == 0;
}

void
Accounts::forget(const std::string& name)
{
  std::lock_guard lock(m_mutex);
  for (auto it = m_cache.begin(); it != m_cache.end();) {
    it = it->second.user == name ? m_cache.erase(it) : std::next(it);
  }
}

Result<std::optional<std::string>>
Accounts::authenticate(const std::string& name, const std::string& password)
{
  // The row is read every time (an indexed lookup), so a password change,
  // disable or delete by another process takes effect at once; only the slow
  // PBKDF2 check is cached, keyed by the credentials and the stored hash.
  REGISTRY_TRY_ASSIGN(auto user, m_metadata.find_user(name));
  if (!user || user->disabled) {
    return std::optional<std::string>();
  }
  std::string key = util::hex_digest(name + '\0' + password + '\0' + user->password_hash);
  int64_t now = m_clock->now();
  {
    std::lock_guard lock(m_mutex);
    auto it = m_cache.find(key);
    if (it != m_cache.end() && it->second.expires_at > now) {
      return std::optional<std::string>(name);
    }
  }
  if (!auth::verify_password(password, user->password_hash)) {
    return std::optional<std::string>();
  }
  std::lock_guard lock(m_mutex);
  if (m_cache.size() >= k_cache_max) {
    m_cache.clear();
  }
  m_cache[key] = CacheEntry{name, now + k_cache_seconds};
  return std::optional<std::string>(name);
}

} // namespace registry::service
