#include "server/access.hpp"

#include "common/util/strings.hpp"

namespace registry::server {

namespace {

// RFC 4648 base64 (standard alphabet, padding optional). nullopt when malformed.
std::optional<std::string>
decode_base64(std::string_view text)
{
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') {
      return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
      return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
      return c - '0' + 52;
    }
    if (c == '+') {
      return 62;
    }
    if (c == '/') {
      return 63;
    }
    return -1;
  };
  while (!text.empty() && text.back() == '=') {
    text.remove_suffix(1);
  }
  std::string out;
  uint32_t buffer = 0;
  int bits = 0;
  for (char c : text) {
    int v = value(c);
    if (v < 0) {
      return std::nullopt;
    }
    buffer = (buffer << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buffer >> bits) & 0xff));
    }
  }
  return out;
}

Unexpected
challenge(RequestContext& ctx, const std::string& message)
{
  ctx.res.set_header("WWW-Authenticate", "Basic realm=\"registryctl\"");
  return fail(ErrorCode::unauthorized, message);
}

} // namespace

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
authorize(RequestContext& ctx, const std::string& repository, std::optional<Action> action)
{
  auto& accounts = ctx.registry.accounts();
  REGISTRY_TRY_ASSIGN(bool open, accounts.open_access());
  if (open) {
    return ok(); // no users yet: the local default (serve warns about it)
  }
  std::string header = ctx.req.get_header_value("Authorization");
  std::optional<std::string> decoded;
  if (!header.empty()) {
    std::string_view value = util::trim(header);
    if (util::to_lower(value.substr(0, 6)) != "basic ") {
      return challenge(ctx, "unsupported authorization scheme; use Basic");
    }
    decoded = decode_base64(util::trim(value.substr(6)));
    if (!decoded || decoded->find(':') == std::string::npos) {
      return challenge(ctx, "malformed Basic credentials");
    }
  }
  // Clients without credentials answer a Basic challenge with an empty ":" pair
  // (containers/image does): that is an anonymous request.
  if (decoded && *decoded != ":") {
    size_t colon = decoded->find(':');
    REGISTRY_TRY_ASSIGN(auto user, accounts.authenticate(decoded->substr(0, colon),
                                                         decoded->substr(colon + 1)));
    if (!user) {
      return challenge(ctx, "invalid username or password");
    }
    // TODO(registryctl): feed-scoped privileges; until then a user may do everything.
    return ok();
  }
  // Anonymous: only pulls from feeds that allow anonymous pull.
  if (action == Action::pull && !repository.empty()) {
    std::string feed = repository.substr(0, repository.find('/'));
    auto row = ctx.registry.metadata().find_feed(feed);
    if (row && *row && (*row)->anonymous_access == "pull") {
      return ok();
    }
  }
  return challenge(ctx, "authentication required");
}

} // namespace registry::server
