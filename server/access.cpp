#include "server/access.hpp"

namespace registry::server {

std::optional<Action>
required_action(const std::string& method)
{
  if (method == "GET" || method == "HEAD") {
    return Action::pull;
  }
  if (method == "DELETE") {
    return Action::remove;
  }
  return Action::push;
}

Result<void>
authorize(RequestContext& /*ctx*/, const std::string& /*repository*/,
          std::optional<Action> /*action*/)
{
  return ok();
}

} // namespace registry::server
