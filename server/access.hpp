#pragma once

// The single place where an authorization decision is made for a request.

#include "common/result.hpp"
#include "server/request_context.hpp"

namespace registry::server {

// The actions the route needs for `method`, or nullopt when no repository
// access is involved (base, catalog).
std::optional<Action> required_action(const std::string& method);

// Decides whether the request may perform `action` on `repository` (empty for
// registry-wide routes). unauthorized (with a challenge) or denied otherwise.
// With no users the registry is open. Otherwise Basic credentials (a user's
// password, or an API key as the password of "api" or of its owner) name a
// principal whose privileges on the repository's feed decide: 403 DENIED when
// it lacks them. Anonymous requests may pull from feeds whose anonymous access
// is "pull"; otherwise they get 401 with a Basic challenge.
Result<void> authorize(RequestContext& ctx, const std::string& repository,
                       std::optional<Action> action);

// Checks `name`/`secret` with Accounts::login, with failed attempts logged
// (user and address, never the secret) and throttled per client address:
// too_many_requests (with Retry-After set) while the address must wait.
Result<std::optional<service::Principal>> checked_login(RequestContext& ctx, const std::string& name,
                                                        const std::string& secret);

// The token endpoint's absolute URL for challenges: --base-url, else the Host.
std::string token_realm(const RequestContext& ctx);

// Whether the request's principal may pull from `repository`'s feed (cross-
// repository mount sources, catalog entries). REQUIRES: authorize() ran.
bool may_pull(RequestContext& ctx, const std::string& repository);

} // namespace registry::server
