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
// Access is open for now: every request is allowed. Authentication plugs in here.
Result<void> authorize(RequestContext& ctx, const std::string& repository,
                       std::optional<Action> action);

} // namespace registry::server
