#pragma once

// Per-request state handed to the handlers: the parsed route, the request and
// response, the streamed body (when the method has one) and the shared services.

#include "common/service/registry.hpp"
#include "server/http_server.hpp"
#include "server/login_throttle.hpp"
#include "server/routes.hpp"

#include <httplib.h>

#include <optional>
#include <string>

namespace registry::server {

// How long the server waits for the next piece of a request.
constexpr int k_read_timeout_seconds = 300;

// The operations the access decision is made for (Distribution's rule: GET/HEAD
// pull, POST/PUT/PATCH pull+push, DELETE delete).
enum class Action { pull, push, remove };

// The client's address: the peer's, or with options.trust_proxy_headers the one
// the reverse proxy reports (X-Real-IP, else the last X-Forwarded-For entry).
std::string client_address(const httplib::Request& req, const ServerOptions& options);

struct RequestContext {
  const httplib::Request& req;
  httplib::Response& res;
  const httplib::ContentReader* reader; // null for methods without a streamed body
  service::Registry& registry;
  const ServerOptions& options;
  Route route;
  service::Principal principal; // set by authorize()
  bool body_consumed = false;
  LoginThrottle* throttle = nullptr; // shared by the server; null disables throttling
  uint64_t received = 0;             // body bytes read so far
  bool plain_http = false;           // the connection is not TLS: a large body may be read directly

  bool
  is_head() const
  {
    return req.method == "HEAD";
  }

  // The request body as a service ByteSource. May be used once. A body its
  // sink stops reading (or the client cuts) closes the connection afterwards.
  service::ByteSource body();

  // Reads the whole body when it is at most `limit` bytes; nullopt when larger
  // (the rest is then left unread and the connection is closed afterwards).
  std::optional<std::string> read_body(size_t limit);

  // Reads and discards an unread body, so the connection can be reused.
  void drain_body();

  // Who the request acts for, as the audit trail and the log name it.
  std::string actor() const;
  // Records `kind` on `subject` in the audit trail, with the route's feed.
  void audit(const std::string& kind, const std::string& subject, const std::string& detail = {});

  // "<base-url>/v2/..." or "/v2/..." when no base URL is configured.
  std::string url(const std::string& path) const;

  // Writes the error envelope; `status` overrides the table's status when set.
  void write_error(const Error& error, int status = 0);
  void write_error(const Unexpected& error)
  {
    write_error(error.error);
  }

private:
  // body()'s reading; false when the body was not read to its end.
  bool read_whole_body(const storage::ByteSink& sink);
};

} // namespace registry::server
