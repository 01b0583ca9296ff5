#pragma once

// Docker token auth (distribution's "Token Authentication Specification"): the
// token endpoint issues short-lived ES256 JWTs whose `access` claim lists only
// what the principal may do of what was asked; the registry accepts them as
// Bearer credentials. Refresh tokens (offline_token / OAuth2 refresh_token
// grant) are JWTs too, bound to a user, re-checked against current privileges
// at every use.

#include "common/auth/token_signer.hpp"
#include "common/service/accounts.hpp"

#include <atomic>
#include <memory>
#include <string>
#include <vector>

namespace registry::service {

class Registry;

inline constexpr int64_t k_token_lifetime = 300;
inline constexpr int64_t k_refresh_lifetime = 30 * 86400;

struct AccessEntry {
  std::string type; // "repository" or "registry"
  std::string name; // repository name, or "catalog"
  std::vector<std::string> actions;
};

struct IssuedToken {
  std::string token;
  std::string refresh_token; // empty unless asked for
  int64_t expires_in = k_token_lifetime;
  int64_t issued_at = 0;
};

struct VerifiedToken {
  std::string subject; // user name, "api", or "" for anonymous
  std::vector<AccessEntry> access;
  // True when the token grants `action` on repository `name`.
  bool allows(const std::string& name, const std::string& action) const;
  bool allows_catalog() const;
};

class TokenService
{
public:
  TokenService(Registry& registry, std::unique_ptr<auth::TokenSigner> signer);

  // Issues a token for `principal` covering the subset of `scopes` ("repository:
  // NAME:ACTIONS", "registry:catalog:*") it is allowed. `offline` adds a
  // refresh token (users only).
  Result<IssuedToken> issue(const Principal& principal, const std::vector<std::string>& scopes,
                            const std::string& service, bool offline);
  // The user a refresh token names, when valid for `service`.
  Result<std::optional<Principal>> redeem_refresh(const std::string& refresh_token,
                                                  const std::string& service);
  // Verifies an access token for `service`. unauthorized when invalid or expired.
  Result<VerifiedToken> verify(const std::string& token, const std::string& service);

  // Lifetime of the access tokens issued from now on (seconds, > 0).
  void set_lifetime(int64_t seconds);

private:
  Registry& m_registry;
  std::unique_ptr<auth::TokenSigner> m_signer;
  std::atomic<int64_t> m_lifetime{k_token_lifetime};
};

} // namespace registry::service
