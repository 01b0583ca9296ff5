#include "server/access.hpp"

#include "common/util/base64.hpp"
#include "common/util/log.hpp"
#include "common/util/strings.hpp"

#include <chrono>

namespace registry::server {

namespace {

// Basic credentials are padded base64 (RFC 7617); some clients drop the padding.
std::optional<std::string>
decode_base64(std::string_view text)
{
  std::string padded(text);
  padded.append((4 - padded.size() % 4) % 4, '=');
  return util::base64_decode(padded);
}

thread_local std::string t_scope; // the scope the current request needs (for the challenge)

Unexpected
challenge(RequestContext& ctx, const std::string& message, const std::string& error = {})
{
  if (ctx.options.token_auth) {
    std::string header = "Bearer realm=\"" + token_realm(ctx) + "\",service=\"" + ctx.options.service + "\"";
    if (!t_scope.empty()) {
      header += ",scope=\"" + t_scope + "\"";
    }
    if (!error.empty()) {
      header += ",error=\"" + error + "\"";
    }
    ctx.res.set_header("WWW-Authenticate", header);
  } else {
    ctx.res.set_header("WWW-Authenticate", "Basic realm=\"registryctl\"");
  }
  return fail(ErrorCode::unauthorized, message);
}

const char*
action_name(Action action)
{
  return action == Action::pull ? "pull" : action == Action::push ? "push" : "delete";
}

} // namespace

std::string
token_realm(const RequestContext& ctx)
{
  if (!ctx.options.base_url.empty()) {
    return ctx.options.base_url + "/auth/token";
  }
  std::string scheme = ctx.options.tls_cert.empty() ? "http://" : "https://";
  return scheme + ctx.req.get_header_value("Host") + "/auth/token";
}

Result<std::optional<service::Principal>>
checked_login(RequestContext& ctx, const std::string& name, const std::string& secret)
{
  std::string address = client_address(ctx.req, ctx.options);
  int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::steady_clock::now().time_since_epoch())
                     .count();
  if (ctx.throttle != nullptr) {
    if (int64_t wait = ctx.throttle->wait_ms(address, now_ms); wait > 0) {
      ctx.res.set_header("Retry-After", std::to_string((wait + 999) / 1000));
      return fail(ErrorCode::too_many_requests,
                  "too many failed logins from this address; retry later");
    }
  }
  REGISTRY_TRY_ASSIGN(auto principal, ctx.registry.accounts().login(name, secret));
  if (ctx.throttle != nullptr) {
    if (principal) {
      ctx.throttle->succeeded(address);
    } else {
      ctx.throttle->failed(address, now_ms);
    }
  }
  if (!principal) {
    util::log_warn("login failed for user '" + util::printable(name) + "' from " + address);
    ctx.registry.audit("login.failed", util::printable(name), "", util::printable(name), "from " + address);
  }
  return principal;
}

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
    // No users yet: the local default (serve warns about it).
    ctx.principal = service::Principal{service::Principal::Kind::user, "", 0, true, 0, {}};
    return ok();
  }
  if (repository.empty()) {
    t_scope = ctx.route.kind == RouteKind::catalog ? "registry:catalog:*" : "";
  } else {
    t_scope = "repository:" + repository + ":"
              + (action == Action::push ? "pull,push" : action ? action_name(*action) : "pull");
  }
  std::string header = ctx.req.get_header_value("Authorization");
  std::optional<std::string> decoded;
  if (util::to_lower(std::string_view(header).substr(0, 7)) == "bearer ") {
    REGISTRY_TRY_ASSIGN(auto* tokens, ctx.registry.tokens());
    auto token = tokens->verify(std::string(util::trim(std::string_view(header).substr(7))),
                                ctx.options.service);
    if (!token) {
      return challenge(ctx, "invalid or expired token", "invalid_token");
    }
    if (!token->subject.empty() && token->subject != "api") {
      REGISTRY_TRY_ASSIGN(auto user, ctx.registry.metadata().find_user(token->subject));
      if (user && !user->disabled) {
        ctx.principal = service::Principal{service::Principal::Kind::user, user->name, user->id, user->admin, 0, {}};
      }
    } else if (token->subject == "api") {
      // A key's token: the claim decides; the principal names it in the log.
      ctx.principal = service::Principal{service::Principal::Kind::key, "api", 0, false, 0, {}};
    }
    bool covered = repository.empty() || !action
                     ? (ctx.route.kind != RouteKind::catalog || token->allows_catalog())
                     : token->allows(repository, action_name(*action));
    if (!covered) {
      return challenge(ctx, "the token does not grant this access", "insufficient_scope");
    }
    return ok();
  }
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
    REGISTRY_TRY_ASSIGN(auto principal,
                        checked_login(ctx, decoded->substr(0, colon), decoded->substr(colon + 1)));
    if (!principal) {
      return challenge(ctx, "invalid username or password");
    }
    ctx.principal = std::move(*principal);
  }
  bool anonymous = ctx.principal.kind == service::Principal::Kind::anonymous;
  if (repository.empty() || !action) {
    // /v2/ and the catalog: any signed-in principal (the catalog filters by feed).
    if (anonymous) {
      return challenge(ctx, "authentication required");
    }
    return ok();
  }
  // An unknown feed answers like a forbidden one: nothing leaks its existence.
  std::string feed_name = repository.substr(0, repository.find('/'));
  REGISTRY_TRY_ASSIGN(auto feed, ctx.registry.metadata().find_feed(feed_name));
  service::Privilege wanted = *action == Action::pull   ? service::Privilege::pull
                              : *action == Action::push ? service::Privilege::push
                                                        : service::Privilege::remove;
  if (feed) {
    REGISTRY_TRY_ASSIGN(bool allowed, accounts.may(ctx.principal, *feed, wanted));
    if (allowed) {
      return ok();
    }
  } else if (ctx.principal.admin) {
    return ok(); // the handler answers NAME_UNKNOWN
  }
  if (anonymous) {
    return challenge(ctx, "authentication required");
  }
  return fail(ErrorCode::denied, std::string("requested access to the resource is denied: ")
                                   + service::to_string(wanted) + " on feed '" + feed_name + "'",
              repository);
}

bool
may_pull(RequestContext& ctx, const std::string& repository)
{
  std::string feed_name = repository.substr(0, repository.find('/'));
  auto feed = ctx.registry.metadata().find_feed(feed_name);
  if (!feed || !*feed) {
    return false;
  }
  auto allowed = ctx.registry.accounts().may(ctx.principal, **feed, service::Privilege::pull);
  return allowed && *allowed;
}

} // namespace registry::server
