// GET and POST /auth/token: the Docker token endpoint.
//   GET  ?service=&scope=...&offline_token=true  with Basic credentials or none
//   POST grant_type=password|refresh_token (OAuth2 form, as containerd and docker send)

#include "common/service/tokens.hpp"
#include "common/util/strings.hpp"
#include "server/access.hpp"
#include "server/handlers/handlers.hpp"

#include <nlohmann/json.hpp>

namespace registry::server::handlers {

namespace {

std::string
url_decode(std::string_view text)
{
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '+') {
      out.push_back(' ');
    } else if (c == '%' && i + 2 < text.size()) {
      auto hex = [](char h) -> int {
        if (h >= '0' && h <= '9') {
          return h - '0';
        }
        if (h >= 'a' && h <= 'f') {
          return h - 'a' + 10;
        }
        if (h >= 'A' && h <= 'F') {
          return h - 'A' + 10;
        }
        return -1;
      };
      int hi = hex(text[i + 1]);
      int lo = hex(text[i + 2]);
      if (hi < 0 || lo < 0) {
        out.push_back(c);
        continue;
      }
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::multimap<std::string, std::string>
parse_form(const std::string& body)
{
  std::multimap<std::string, std::string> form;
  for (const auto& pair : util::split(body, '&')) {
    size_t eq = pair.find('=');
    if (eq == std::string::npos) {
      continue;
    }
    form.emplace(url_decode(pair.substr(0, eq)), url_decode(pair.substr(eq + 1)));
  }
  return form;
}

std::string
form_value(const std::multimap<std::string, std::string>& form, const std::string& key)
{
  auto it = form.find(key);
  return it == form.end() ? std::string() : it->second;
}

void
answer(RequestContext& ctx, const service::IssuedToken& issued, bool oauth)
{
  nlohmann::json doc = {{"token", issued.token},
                        {"access_token", issued.token},
                        {"expires_in", issued.expires_in},
                        {"issued_at", util::format_time(issued.issued_at)}};
  if (!issued.refresh_token.empty()) {
    doc["refresh_token"] = issued.refresh_token;
  }
  if (oauth) {
    doc["token_type"] = "Bearer";
  }
  ctx.res.status = 200;
  ctx.res.set_content(doc.dump(), "application/json");
}

void
unauthorized(RequestContext& ctx, const std::string& message)
{
  ctx.res.set_header("WWW-Authenticate", "Basic realm=\"registryctl\"");
  ctx.write_error(make_error(ErrorCode::unauthorized, message));
}

// `docker login` and friends ask for a refresh token (GET offline_token=true)
// or use the OAuth2 password grant: those are the logins the audit trail
// records, not the token every pull fetches.
void
record_login(RequestContext& ctx, const service::Principal& principal)
{
  if (principal.kind != service::Principal::Kind::anonymous) {
    ctx.registry.audit("login", principal.name, "", principal.name,
                       "from " + client_address(ctx.req, ctx.options));
  }
}

} // namespace

void
token(RequestContext& ctx)
{
  auto tokens = ctx.registry.tokens();
  if (!tokens) {
    return ctx.write_error(tokens.error());
  }
  std::string service = ctx.req.get_param_value("service");
  if (ctx.req.method == "GET") {
    std::vector<std::string> scopes;
    for (size_t i = 0; i < ctx.req.get_param_value_count("scope"); ++i) {
      for (const auto& s : util::split(ctx.req.get_param_value("scope", i), ' ')) {
        if (!s.empty()) {
          scopes.push_back(s);
        }
      }
    }
    // Credentials are checked by authorize() with no repository: anonymous
    // callers get a token with what anonymous access allows.
    auto allowed = authorize(ctx, "", std::nullopt);
    if (!allowed && allowed.error().code == ErrorCode::too_many_requests) {
      return ctx.write_error(allowed.error());
    }
    if (!allowed && !ctx.req.get_header_value("Authorization").empty()) {
      return unauthorized(ctx, "invalid username or password");
    }
    ctx.res.headers.erase("WWW-Authenticate");
    if (service.empty()) {
      service = ctx.options.service;
    }
    bool offline = ctx.req.get_param_value("offline_token") == "true";
    auto issued = (*tokens)->issue(ctx.principal, scopes, service, offline);
    if (!issued) {
      return ctx.write_error(issued.error());
    }
    if (offline) {
      record_login(ctx, ctx.principal);
    }
    return answer(ctx, *issued, false);
  }
  auto body = ctx.read_body(64 * 1024);
  if (!body) {
    return ctx.write_error(make_error(ErrorCode::invalid_argument, "form too large"));
  }
  auto form = parse_form(*body);
  service = form_value(form, "service");
  if (service.empty()) {
    service = ctx.options.service;
  }
  std::vector<std::string> scopes;
  for (const auto& s : util::split(form_value(form, "scope"), ' ')) {
    if (!s.empty()) {
      scopes.push_back(s);
    }
  }
  std::string grant = form_value(form, "grant_type");
  std::optional<service::Principal> principal;
  std::string refresh;
  if (grant == "password") {
    auto login = checked_login(ctx, form_value(form, "username"), form_value(form, "password"));
    if (!login) {
      return ctx.write_error(login.error());
    }
    principal = *login;
  } else if (grant == "refresh_token") {
    refresh = form_value(form, "refresh_token");
    auto redeemed = (*tokens)->redeem_refresh(refresh, service);
    if (!redeemed) {
      return ctx.write_error(redeemed.error());
    }
    principal = *redeemed;
  } else {
    return ctx.write_error(make_error(ErrorCode::invalid_argument,
                                      "grant_type must be password or refresh_token"));
  }
  if (!principal) {
    return unauthorized(ctx, "invalid credentials");
  }
  bool offline = grant == "password" && form_value(form, "access_type") == "offline";
  auto issued = (*tokens)->issue(*principal, scopes, service, offline);
  if (!issued) {
    return ctx.write_error(issued.error());
  }
  if (!refresh.empty()) {
    issued->refresh_token = refresh;
  }
  if (grant == "password") {
    record_login(ctx, *principal);
  }
  answer(ctx, *issued, true);
}

} // namespace registry::server::handlers
