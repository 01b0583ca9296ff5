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
// With no users the registry is open. Otherwise: valid Basic credentials may do
// everything (privileges per feed come later); anonymous requests may pull from
// feeds whose anonymous access is "pull"; the rest gets 401 with a challenge.
Result<void> authorize(RequestContext& ctx, const std::string& repository,
                       std::optional<Action> action);

} // namespace registry::server
