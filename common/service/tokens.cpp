#include "common/service/tokens.hpp"

#include "common/service/registry.hpp"
#include "common/util/strings.hpp"
#include "common/util/uuid.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>

namespace registry::service {

using nlohmann::json;

namespace {

constexpr const char* k_issuer = "registryctl";

} // namespace

bool
VerifiedToken::allows(const std::string& name, const std::string& action) const
{
  for (const auto& entry : access) {
    if (entry.type == "repository" && entry.name == name) {
      for (const auto& a : entry.actions) {
        if (a == action || a == "*") {
          return true;
        }
      }
    }
  }
  return false;
}

bool
VerifiedToken::allows_catalog() const
{
  for (const auto& entry : access) {
    if (entry.type == "registry" && entry.name == "catalog") {
      return true;
    }
  }
  return false;
}

TokenService::TokenService(Registry& registry, std::unique_ptr<auth::TokenSigner> signer)
  : m_registry(registry),
    m_signer(std::move(signer))
{
}

Result<IssuedToken>
TokenService::issue(const Principal& principal, const std::vector<std::string>& scopes,
                    const std::string& service, bool offline)
{
  int64_t now = m_registry.now();
  int64_t lifetime = m_lifetime.load();
  json access = json::array();
  for (const auto& scope : scopes) {
    // "repository:NAME:ACTIONS"; NAME may not contain ':' (no port in names).
    size_t first = scope.find(':');
    size_t last = scope.rfind(':');
    if (first == std::string::npos || first == last) {
      continue; // a malformed scope is ignored, as distribution does
    }
    std::string type = scope.substr(0, first);
    std::string name = scope.substr(first + 1, last - first - 1);
    auto actions = util::split(scope.substr(last + 1), ',');
    json granted = json::array();
    if (type == "registry" && name == "catalog") {
      if (principal.kind != Principal::Kind::anonymous) {
        granted.push_back("*");
      }
    } else if (type == "repository" && oci::parse_repository_name(name)) {
      auto feed = m_registry.metadata().find_feed(name.substr(0, name.find('/')));
      for (const auto& action : actions) {
        // Token actions are named as privileges (pull, push, delete).
        auto privilege = parse_privilege(action);
        if (!privilege || !feed || !*feed) {
          continue;
        }
        REGISTRY_TRY_ASSIGN(bool allowed, m_registry.accounts().may(principal, **feed, *privilege));
        if (allowed && std::find(granted.begin(), granted.end(), action) == granted.end()) {
          granted.push_back(action);
        }
      }
    }
    if (!granted.empty()) {
      access.push_back({{"type", type}, {"name", name}, {"actions", granted}});
    }
  }
  json claims = {{"iss", k_issuer},
                 {"sub", principal.name},
                 {"aud", service},
                 {"iat", now},
                 {"nbf", now - 5},
                 {"exp", now + lifetime},
                 {"jti", util::random_uuid()},
                 {"access", access}};
  IssuedToken issued;
  issued.expires_in = lifetime;
  issued.token = m_signer->sign(claims.dump());
  issued.issued_at = now;
  if (offline && principal.kind == Principal::Kind::user && principal.user_id != 0) {
    json refresh = {{"iss", k_issuer},
                    {"sub", principal.name},
                    {"aud", service},
                    {"typ", "refresh"},
                    {"iat", now},
                    {"exp", now + k_refresh_lifetime},
                    {"jti", util::random_uuid()}};
    issued.refresh_token = m_signer->sign(refresh.dump());
  }
  return issued;
}

void
TokenService::set_lifetime(int64_t seconds)
{
  REGISTRY_ASSERT(seconds > 0);
  m_lifetime.store(seconds);
}

namespace {

Result<json>
checked_claims(const auth::TokenSigner& signer, const std::string& token, const std::string& service,
               int64_t now)
{
  REGISTRY_TRY_ASSIGN(auto text, signer.verify(token));
  json claims = json::parse(text, nullptr, false);
  if (!claims.is_object() || !claims.contains("exp") || !claims["exp"].is_number_integer()
      || claims["exp"].get<int64_t>() <= now || claims.value("aud", "") != service
      || (claims.contains("nbf") && (!claims["nbf"].is_number_integer() || claims["nbf"].get<int64_t>() > now))) {
    return fail(ErrorCode::unauthorized, "token expired or not for this service");
  }
  return claims;
}

} // namespace

Result<std::optional<Principal>>
TokenService::redeem_refresh(const std::string& refresh_token, const std::string& service)
{
  auto claims = checked_claims(*m_signer, refresh_token, service, m_registry.now());
  if (!claims || claims->value("typ", "") != "refresh") {
    return std::optional<Principal>();
  }
  REGISTRY_TRY_ASSIGN(auto user, m_registry.metadata().find_user(claims->value("sub", "")));
  if (!user || user->disabled) {
    return std::optional<Principal>();
  }
  return std::optional<Principal>(Principal{Principal::Kind::user, user->name, user->id, user->admin, 0, {}});
}

Result<VerifiedToken>
TokenService::verify(const std::string& token, const std::string& service)
{
  REGISTRY_TRY_ASSIGN(auto claims, checked_claims(*m_signer, token, service, m_registry.now()));
  if (claims.value("typ", "") == "refresh") {
    return fail(ErrorCode::unauthorized, "a refresh token is not an access token");
  }
  VerifiedToken verified;
  verified.subject = claims.value("sub", "");
  if (claims.contains("access") && claims["access"].is_array()) {
    for (const auto& entry : claims["access"]) {
      AccessEntry e{entry.value("type", ""), entry.value("name", ""), {}};
      if (entry.contains("actions") && entry["actions"].is_array()) {
        for (const auto& a : entry["actions"]) {
          if (a.is_string()) {
            e.actions.push_back(a.get<std::string>());
          }
        }
      }
      verified.access.push_back(std::move(e));
    }
  }
  return verified;
}

} // namespace registry::service
