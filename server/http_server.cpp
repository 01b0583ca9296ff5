#include "server/http_server.hpp"

#include "common/service/registry.hpp"
#include "common/util/log.hpp"
#include "common/util/strings.hpp"
#include "server/access.hpp"
#include "common/util/uuid.hpp"
#include "server/api_error.hpp"
#include "server/metrics.hpp"
#include "server/handlers/handlers.hpp"
#include "server/request_context.hpp"

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <sys/socket.h>

namespace registry::server {

namespace {

// What the access log and the metrics need to know of the request the current
// worker thread is serving; reset before routing, filled in by dispatch().
struct RequestRecord {
  std::chrono::steady_clock::time_point start;
  std::string id;
  std::string principal; // empty: anonymous
  const char* route = "none";
  std::string repository;
  uint64_t received = 0;
  // A body method's path while httplib routes it under k_routed_path.
  std::string parked_path;
  bool path_parked = false;
};
thread_local RequestRecord t_request;

// What httplib's regex routing sees of a POST, PUT, PATCH or DELETE: a
// one-character path, so the std::regex match costs nothing (see configure()).
constexpr const char* k_routed_path = "/";

// Gives the request its own path back after httplib's routing; idempotent.
void
restore_path(const httplib::Request& req)
{
  if (t_request.path_parked) {
    // Request objects are never const; httplib only hands them out as const.
    const_cast<std::string&>(req.path).swap(t_request.parked_path);
    t_request.path_parked = false;
  }
}

// Request ids: a random prefix per process and a counter, so ids are unique
// across restarts without a random draw per request.
std::string
next_request_id()
{
  static const std::string prefix = util::random_uuid().substr(0, 8);
  static std::atomic<uint64_t> counter{0};
  char text[32];
  std::snprintf(text, sizeof text, "%s-%08llx", prefix.c_str(),
                static_cast<unsigned long long>(counter.fetch_add(1) + 1));
  return text;
}

constexpr const char* k_api_version_header = "Docker-Distribution-API-Version";

using Handler = void (*)(RequestContext&);

// The API table: which handler serves a route and method. nullptr: the method is
// not allowed on an existing route (405 UNSUPPORTED).
Handler
select_handler(RouteKind kind, const std::string& method)
{
  bool read = method == "GET" || method == "HEAD";
  switch (kind) {
  case RouteKind::base:
    return read ? handlers::get_base : nullptr;
  case RouteKind::catalog:
    return read ? handlers::get_catalog : nullptr;
  case RouteKind::tags:
    return read ? handlers::get_tags : nullptr;
  case RouteKind::referrers:
    return read ? handlers::get_referrers : nullptr;
  case RouteKind::manifest:
    if (read) {
      return handlers::get_manifest;
    }
    if (method == "PUT") {
      return handlers::put_manifest;
    }
    return method == "DELETE" ? handlers::delete_manifest : nullptr;
  case RouteKind::blob:
    if (read) {
      return handlers::get_blob;
    }
    return method == "DELETE" ? handlers::delete_blob : nullptr;
  case RouteKind::upload_start:
    return method == "POST" ? handlers::post_upload : nullptr;
  case RouteKind::upload:
    if (method == "GET") {
      return handlers::get_upload;
    }
    if (method == "PATCH") {
      return handlers::patch_upload;
    }
    if (method == "PUT") {
      return handlers::put_upload;
    }
    return method == "DELETE" ? handlers::delete_upload : nullptr;
  case RouteKind::not_found:
    return nullptr;
  }
  return nullptr;
}

// cpp-httplib 0.11.4 listens with a backlog of 5 (compiled into Debian's
// library): 16 clients connecting at once overflow it and wait a second for the
// SYN retry. listen() again on the bound socket raises the backlog.
template<typename Base> class WideBacklogServer final : public Base
{
public:
  using Base::Base;
  void
  widen_backlog(int backlog)
  {
    ::listen(this->svr_sock_, backlog);
  }
};

constexpr int k_listen_backlog = 1024;

} // namespace

struct HttpServer::Impl {
  service::Registry& registry;
  ServerOptions options;
  LoginThrottle throttle;
  Metrics metrics;
  std::unique_ptr<httplib::Server> http;
  std::function<void()> widen_backlog;
  std::atomic<uint64_t> served{0};

  Impl(service::Registry& r, ServerOptions o) : registry(r), options(std::move(o)) {}

  void
  dispatch(const httplib::Request& req, httplib::Response& res,
           const httplib::ContentReader* reader)
  {
    restore_path(req);
    RequestContext ctx{req, res, reader, registry, options, parse_route(req.path), {}, false, &throttle};
    ctx.plain_http = options.tls_cert.empty();
    // Whatever way dispatch() returns, the record learns who asked and what.
    struct Record {
      RequestContext& ctx;
      ~Record()
      {
        if (ctx.principal.kind == service::Principal::Kind::anonymous) {
          t_request.principal.clear();
        } else if (ctx.principal.name.empty()) {
          t_request.principal.assign("(open)");
        } else {
          t_request.principal.assign(ctx.principal.name);
        }
        t_request.received = ctx.received;
      }
    } record{ctx};
    res.set_header(k_api_version_header, "registry/2.0");
    res.set_header("X-Request-Id", t_request.id);
    if (req.path == "/auth/token" && (req.method == "GET" || req.method == "POST")) {
      t_request.route = "token";
      handlers::token(ctx);
      ctx.drain_body();
      return;
    }
    if (req.path == "/metrics" && req.method == "GET") {
      t_request.route = "metrics";
      return serve_metrics(ctx);
    }
    t_request.route = route_name(ctx.route.kind);
    apply_mirror(ctx.route);
    t_request.repository = ctx.route.name;
    if (ctx.route.kind == RouteKind::not_found) {
      ctx.drain_body();
      res.status = 404;
      res.set_content(error_body({404, "NAME_UNKNOWN"},
                                 make_error(ErrorCode::name_unknown, "no such API endpoint")),
                      "application/json");
      return;
    }
    Handler handler = select_handler(ctx.route.kind, req.method);
    if (handler == nullptr) {
      return ctx.write_error(make_error(ErrorCode::unsupported,
                                        "method " + req.method + " is not allowed here"));
    }
    bool per_repository = ctx.route.kind != RouteKind::base && ctx.route.kind != RouteKind::catalog;
    auto allowed = authorize(ctx, per_repository ? ctx.route.name : std::string(),
                             per_repository ? required_action(req.method) : std::nullopt);
    if (!allowed) {
      return ctx.write_error(allowed.error());
    }
    handler(ctx);
    if (!ctx.body_consumed) {
      ctx.drain_body();
    }
  }

  // Mirror mode: a name whose first component is not a feed (what the Docker
  // daemon's registry-mirrors and containerd's ?ns= requests send, e.g.
  // library/alpine) belongs to the mirror feed. An existing feed wins.
  void
  apply_mirror(Route& route)
  {
    if (options.mirror_feed.empty() || route.name.empty() || route.kind == RouteKind::base
        || route.kind == RouteKind::catalog) {
      return;
    }
    auto feed = registry.metadata().find_feed(route.name.substr(0, route.name.find('/')));
    if (feed && !*feed) {
      route.name = options.mirror_feed + "/" + route.name;
    }
  }

  // GET /metrics: for admins, or anyone with --metrics-anonymous (or while the
  // registry has no users).
  void
  serve_metrics(RequestContext& ctx)
  {
    if (!options.metrics_anonymous) {
      auto allowed = authorize(ctx, "", std::nullopt);
      if (!allowed) {
        return ctx.write_error(allowed.error());
      }
      if (!ctx.principal.admin) {
        return ctx.write_error(make_error(ErrorCode::denied, "metrics are for server admins"));
      }
    }
    ctx.res.status = 200;
    ctx.res.set_content(metrics.render(registry), "text/plain; version=0.0.4; charset=utf-8");
  }

  static bool
  has_body(const httplib::Request& req)
  {
    return req.has_header("Transfer-Encoding") || req.get_header_value<uint64_t>("Content-Length") > 0;
  }

  // GET, HEAD and OPTIONS: the health check, then the API.
  void
  serve_plain(const httplib::Request& req, httplib::Response& res)
  {
    if (req.path == "/healthz" && req.method != "OPTIONS") {
      res.set_header(k_api_version_header, "registry/2.0");
      res.set_content("ok\n", "text/plain");
      return;
    }
    dispatch(req, res, nullptr);
  }

  void
  log_request(const httplib::Request& req, const httplib::Response& res)
  {
    restore_path(req); // a request httplib answered itself (e.g. a body it could not read)
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_request.start).count();
    uint64_t sent = req.method == "HEAD" ? 0 : res.content_length_ > 0 ? res.content_length_ : res.body.size();
    const char* route = req.path == "/healthz" ? "healthz" : t_request.route;
    metrics.record_request(req.method, route, res.status, seconds, t_request.received, sent);
    served.fetch_add(1, std::memory_order_relaxed);
    if (!options.access_log) {
      return;
    }
    std::string client = client_address(req, options);
    std::string principal = t_request.principal.empty() ? "-" : util::printable(t_request.principal);
    char text[160];
    std::snprintf(text, sizeof text, "%d %llu %.3fms %s %s id=%s", res.status,
                  static_cast<unsigned long long>(sent), seconds * 1000.0, client.c_str(),
                  principal.c_str(), t_request.id.c_str());
    util::log_record(util::LogLevel::info, "access",
                     {{"request_id", t_request.id},
                      {"method", req.method},
                      {"path", req.path},
                      {"route", std::string(route)},
                      {"repository", t_request.repository},
                      {"status", static_cast<int64_t>(res.status)},
                      {"bytes_received", static_cast<int64_t>(t_request.received)},
                      {"bytes_sent", static_cast<int64_t>(sent)},
                      {"duration_ms", seconds * 1000.0},
                      {"client", client},
                      {"principal", principal}},
                     req.method + " " + util::printable(req.path, 512) + " " + text);
  }

  void
  configure()
  {
    auto& svr = *http;
    svr.set_tcp_nodelay(true);
    svr.set_keep_alive_max_count(100000);
    // httplib re-checks for shutdown only between keep-alive waits, so this also
    // bounds how long stop() takes with idle client connections open.
    svr.set_keep_alive_timeout(5);
    svr.set_read_timeout(k_read_timeout_seconds);
    svr.set_write_timeout(300);
    size_t workers = options.workers == 0 ? 32 : options.workers;
    svr.new_task_queue = [workers] { return new httplib::ThreadPool(workers); };
    svr.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      t_request.start = std::chrono::steady_clock::now();
      t_request.id = next_request_id();
      t_request.principal.clear();
      t_request.route = "none";
      t_request.repository.clear();
      t_request.received = 0;
      t_request.path_parked = false; // a request httplib dropped unanswered
      // Methods without a request body are served here. httplib's own routing
      // matches every path against a std::regex, which recurses once per
      // character: 40-90 KiB of stack for a digest path (kept resident in
      // every worker thread), and CPU on the hottest requests.
      if (req.method == "GET" || req.method == "HEAD" || req.method == "OPTIONS") {
        if (has_body(req)) {
          // httplib does not read a body on these methods; its bytes would be
          // parsed as the next request. Answer, then close.
          res.set_header("Connection", "close");
        }
        serve_plain(req, res);
        return httplib::Server::HandlerResponse::Handled;
      }
      // The body methods need httplib's routing for their ContentReader. It
      // matches k_routed_path instead of the real path, which dispatch() puts
      // back; the match is then one character long, not a digest path's 100.
      t_request.parked_path = std::move(const_cast<std::string&>(req.path));
      const_cast<std::string&>(req.path) = k_routed_path;
      t_request.path_parked = true;
      return httplib::Server::HandlerResponse::Unhandled;
    });
    auto streamed = [this](const httplib::Request& req, httplib::Response& res,
                           const httplib::ContentReader& reader) { dispatch(req, res, &reader); };
    svr.Post(k_routed_path, streamed);
    svr.Put(k_routed_path, streamed);
    svr.Patch(k_routed_path, streamed);
    svr.Delete(k_routed_path, streamed);
    svr.set_exception_handler(
      [](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
        // Fail-safe only: handlers report errors through Result.
        std::string what = "unknown exception";
        try {
          std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        util::log_error("unhandled exception on " + req.method + " " + req.path + ": " + what);
        res.set_header(k_api_version_header, "registry/2.0");
        write_error(res, make_error(ErrorCode::internal, "internal server error"));
      });
    svr.set_error_handler([](const httplib::Request&, httplib::Response& res) {
      // Also called for errors httplib raises itself (bad request line, 416 from
      // Range, ...): those have neither our header nor a body.
      if (!res.has_header(k_api_version_header)) {
        res.set_header(k_api_version_header, "registry/2.0");
      }
      if (res.body.empty() && res.status >= 400 && res.status != 416) {
        Error error = make_error(ErrorCode::invalid_argument, "malformed request");
        res.set_content(error_body({res.status, res.status == 404 ? "NAME_UNKNOWN" : "UNSUPPORTED"},
                                   error),
                        "application/json");
      }
    });
    svr.set_logger([this](const httplib::Request& req, const httplib::Response& res) { log_request(req, res); });
  }
};

HttpServer::HttpServer(service::Registry& registry, ServerOptions options)
  : m_impl(std::make_unique<Impl>(registry, std::move(options)))
{
}

Metrics&
HttpServer::metrics()
{
  return m_impl->metrics;
}

uint64_t
HttpServer::requests_served() const
{
  return m_impl->served.load(std::memory_order_relaxed);
}

HttpServer::~HttpServer()
{
  stop();
}

Result<int>
HttpServer::bind()
{
  auto& o = m_impl->options;
  if (!o.tls_cert.empty() || !o.tls_key.empty()) {
    if (o.tls_cert.empty() || o.tls_key.empty()) {
      return fail(ErrorCode::invalid_argument, "--tls-cert and --tls-key must be given together");
    }
    auto ssl = std::make_unique<WideBacklogServer<httplib::SSLServer>>(o.tls_cert.c_str(),
                                                                       o.tls_key.c_str());
    if (!ssl->is_valid()) {
      return fail(ErrorCode::invalid_argument,
                  "cannot load the TLS certificate or key (" + o.tls_cert + ", " + o.tls_key + ")");
    }
    m_impl->widen_backlog = [raw = ssl.get()] { raw->widen_backlog(k_listen_backlog); };
    m_impl->http = std::move(ssl);
  } else {
    auto plain = std::make_unique<WideBacklogServer<httplib::Server>>();
    m_impl->widen_backlog = [raw = plain.get()] { raw->widen_backlog(k_listen_backlog); };
    m_impl->http = std::move(plain);
  }
  m_impl->configure();
  int port = o.port;
  if (port == 0) {
    port = m_impl->http->bind_to_any_port(o.host);
    if (port <= 0) {
      return fail(ErrorCode::io_error, "cannot listen on " + o.host + ":0");
    }
  } else if (!m_impl->http->bind_to_port(o.host, port)) {
    return fail(ErrorCode::io_error,
                "cannot listen on " + o.host + ":" + std::to_string(port)
                  + " (address in use or not available)");
  }
  m_impl->widen_backlog();
  o.port = port;
  return port;
}

void
HttpServer::run()
{
  m_impl->http->listen_after_bind();
}

void
HttpServer::stop()
{
  if (m_impl && m_impl->http) {
    m_impl->http->stop();
  }
}

bool
HttpServer::is_running() const
{
  return m_impl->http && m_impl->http->is_running();
}

} // namespace registry::server
