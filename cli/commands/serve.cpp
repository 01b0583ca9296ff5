// `registryctl serve`

#include "cli/commands/commands.hpp"
#include "common/service/garbage_collector.hpp"
#include "common/util/file.hpp"
#include "common/util/log.hpp"
#include "common/util/strings.hpp"
#include "common/version.hpp"
#include "server/http_server.hpp"
#include "server/metrics.hpp"

#include <condition_variable>
#include <csignal>
#include <malloc.h>
#include <cstdio>
#include <functional>
#include <mutex>
#include <pthread.h>
#include <thread>

namespace registry::cli {

namespace {

// A kept blob is received in memory: the limit stays well below a layer.
constexpr uint64_t k_max_small_blob_limit = 4 << 20;

struct ServeOptions {
  std::string listen = "127.0.0.1:5000";
  std::string base_url;
  std::string tls_cert;
  std::string tls_key;
  size_t workers = 32;
  std::string ready_file;
  bool quiet = false;
  std::string cleanup_interval = "1h";
  std::string gc_grace = "1h";
  std::string upload_expiry = "24h";
  uint64_t small_blob_limit = service::k_small_blob_limit;
  bool token_auth = false;
  std::string service = "registryctl";
  std::string token_lifetime = "5m";
  bool trust_proxy_headers = false;
  bool metrics_anonymous = false;
  std::string mirror_feed;
  std::string log_format = "text";
  std::string log_level = "info";
};

// A thread that calls `tick` every `interval` until it is destroyed; none when
// the interval is zero.
class Periodic
{
public:
  Periodic(std::chrono::milliseconds interval, std::function<void()> tick)
    : m_interval(interval),
      m_tick(std::move(tick))
  {
    if (m_interval.count() > 0) {
      m_thread = std::thread([this] { loop(); });
    }
  }
  ~Periodic()
  {
    {
      std::lock_guard lock(m_mutex);
      m_stopping = true;
    }
    m_wake.notify_all();
    if (m_thread.joinable()) {
      m_thread.join();
    }
  }
  Periodic(const Periodic&) = delete;
  Periodic& operator=(const Periodic&) = delete;

private:
  void
  loop()
  {
    std::unique_lock lock(m_mutex);
    while (!m_wake.wait_for(lock, m_interval, [this] { return m_stopping; })) {
      lock.unlock();
      m_tick();
      lock.lock();
    }
  }

  std::chrono::milliseconds m_interval;
  std::function<void()> m_tick;
  std::mutex m_mutex;
  std::condition_variable m_wake;
  bool m_stopping = false;
  std::thread m_thread;
};

// One run of the scheduled cleanup inside `serve`: the same collector as
// `registryctl gc`, one summary line. The database lock keeps it from
// overlapping a concurrent `registryctl gc`.
void
run_cleanup(service::Registry& registry, const service::GcOptions& options, server::Metrics& metrics)
{
  auto report = service::collect_garbage(registry, options);
  if (report) {
    metrics.record_gc(true, report->blobs_removed, report->bytes_freed);
    char line[320];
    std::snprintf(line, sizeof line,
                  "cleanup: removed %llu blobs (%s), %llu uploads, expired %llu cached "
                  "manifests (%llu tags) in %.2fs",
                  static_cast<unsigned long long>(report->blobs_removed),
                  util::human_size(report->bytes_freed).c_str(),
                  static_cast<unsigned long long>(report->uploads_purged),
                  static_cast<unsigned long long>(report->cached_manifests_expired),
                  static_cast<unsigned long long>(report->cached_tags_expired), report->seconds);
    util::log_info(line);
  } else if (report.error().code == ErrorCode::conflict) {
    util::log_info("cleanup: skipped, " + report.error().message);
  } else {
    metrics.record_gc(false, 0, 0);
    util::log_error("cleanup failed: " + report.error().message);
  }
}

// Called every second: once a whole second has passed without a request after
// some were served, hands back what the burst left behind: pooled database
// connections beyond two, the page caches of those kept, and the free pages
// of malloc's arenas (a quiet server does nothing here).
class IdleRelease
{
public:
  IdleRelease(service::Registry& registry, const server::HttpServer& http)
    : m_registry(registry),
      m_http(http)
  {
  }

  void
  tick()
  {
    uint64_t served = m_http.requests_served();
    if (served != m_seen) {
      m_seen = served;
      m_pending = true;
      return;
    }
    if (m_pending) {
      m_pending = false;
      m_registry.metadata().release_idle_memory(2);
      malloc_trim(0);
    }
  }

private:
  service::Registry& m_registry;
  const server::HttpServer& m_http;
  uint64_t m_seen = 0;
  bool m_pending = false;
};

server::ServerOptions
to_server_options(const ServeOptions& o)
{
  server::ServerOptions s;
  std::string listen = o.listen;
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos) {
    throw CommandError(make_error(ErrorCode::invalid_argument,
                                  "--listen must be ADDRESS:PORT, e.g. 127.0.0.1:5000"));
  }
  s.host = listen.substr(0, colon);
  if (s.host.size() >= 2 && s.host.front() == '[' && s.host.back() == ']') {
    s.host = s.host.substr(1, s.host.size() - 2);
  }
  try {
    s.port = std::stoi(listen.substr(colon + 1));
  } catch (const std::exception&) {
    s.port = -1;
  }
  if (s.port < 0 || s.port > 65535) {
    throw CommandError(make_error(ErrorCode::invalid_argument, "invalid port in --listen " + listen));
  }
  s.base_url = o.base_url;
  while (!s.base_url.empty() && s.base_url.back() == '/') {
    s.base_url.pop_back();
  }
  s.tls_cert = o.tls_cert;
  s.tls_key = o.tls_key;
  s.workers = o.workers;
  s.access_log = !o.quiet;
  s.token_auth = o.token_auth;
  s.service = o.service;
  s.trust_proxy_headers = o.trust_proxy_headers;
  s.metrics_anonymous = o.metrics_anonymous;
  s.mirror_feed = o.mirror_feed;
  return s;
}

void
run_serve(AppContext& ctx, const ServeOptions& options)
{
  auto server_options = to_server_options(options);
  // glibc gives each busy worker thread its own malloc arena (up to 8 per
  // core), and every arena keeps the pages its thread freed: after 16
  // concurrent connections that was 8 MiB of idle heap in a dozen arenas.
  // Two arenas on a 2-core machine cost no measurable request rate.
  mallopt(M_ARENA_MAX, 2);
  // Block the termination signals in every thread; one thread waits for them
  // and stops the server (no work inside a signal handler).
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  util::LogLevel level = util::LogLevel::info;
  if (!util::parse_log_level(options.log_level, level)) {
    throw CommandError(make_error(ErrorCode::invalid_argument,
                                  "--log-level must be debug, info, warn or error"));
  }
  util::set_log_level(level);
  util::set_log_format(options.log_format == "json" ? util::LogFormat::json : util::LogFormat::text);
  auto& registry = ctx.registry();
  int64_t token_lifetime = duration_flag(options.token_lifetime, "--token-lifetime");
  if (token_lifetime <= 0) {
    throw CommandError(make_error(ErrorCode::invalid_argument, "--token-lifetime must be positive"));
  }
  unwrap(registry.tokens())->set_lifetime(token_lifetime);
  if (!options.mirror_feed.empty()) {
    unwrap(registry.get_feed(options.mirror_feed)); // name_unknown: say so now, not per request
  }
  registry.set_small_blob_limit(options.small_blob_limit);
  registry.metadata().checkpoint_in_background();
  server::HttpServer http(registry, server_options);
  int port = unwrap(http.bind());
  std::string scheme = server_options.tls_cert.empty() ? "http" : "https";
  util::log_info(std::string("registryctl ") + k_version + " serving " + scheme + "://"
                 + server_options.host + ":" + std::to_string(port) + " (data "
                 + ctx.data_dir + ")");
  if (auto open = registry.accounts().open_access(); open && *open) {
    util::log_warn("no users exist: anyone who can reach this server can push and delete; "
                   "add one with `registryctl user add NAME --password-stdin` to require logins");
  }
  if (!options.ready_file.empty()) {
    unwrap(util::write_file_atomic(options.ready_file,
                                   server_options.host + ":" + std::to_string(port) + "\n"));
  }
  service::GcOptions gc_options;
  gc_options.grace = duration_flag(options.gc_grace, "--gc-grace");
  gc_options.upload_expiry = duration_flag(options.upload_expiry, "--upload-expiry");
  int64_t interval = duration_flag(options.cleanup_interval, "--cleanup-interval");
  Periodic cleanup(std::chrono::seconds(interval),
                   [&] { run_cleanup(registry, gc_options, http.metrics()); });
  IdleRelease idle(registry, http);
  Periodic release(std::chrono::seconds(1), [&] { idle.tick(); });
  std::thread waiter([&] {
    int received = 0;
    sigwait(&signals, &received);
    util::log_info("signal " + std::to_string(received) + " received, shutting down");
    http.stop();
  });
  http.run();
  // run() also returns when the listener fails; make sure the waiter ends.
  pthread_kill(waiter.native_handle(), SIGTERM);
  waiter.join();
  util::log_info("stopped");
}

} // namespace

void
add_serve_command(CLI::App& app, AppContext& ctx)
{
  auto options = std::make_shared<ServeOptions>();
  auto* cmd = app.add_subcommand("serve", "Run the registry HTTP server");
  cmd->add_option("--listen", options->listen, "Address and port to listen on (port 0: any)")
    ->envname("REGISTRYCTL_LISTEN")
    ->capture_default_str();
  cmd->add_option("--base-url", options->base_url,
                  "External URL of the registry (behind a reverse proxy), for absolute Locations")
    ->envname("REGISTRYCTL_BASE_URL");
  cmd->add_option("--tls-cert", options->tls_cert, "PEM certificate file (enables HTTPS)")
    ->type_name("FILE")
    ->envname("REGISTRYCTL_TLS_CERT");
  cmd->add_option("--tls-key", options->tls_key, "PEM private key file")
    ->type_name("FILE")
    ->envname("REGISTRYCTL_TLS_KEY");
  cmd->add_option("--workers", options->workers, "Worker threads (concurrent connections)")
    ->envname("REGISTRYCTL_WORKERS")
    ->check(CLI::Range(1, 4096))
    ->capture_default_str();
  cmd->add_option("--ready-file", options->ready_file,
                  "Write ADDRESS:PORT to this file once listening")
    ->type_name("FILE")
    ->envname("REGISTRYCTL_READY_FILE");
  cmd->add_flag("--quiet", options->quiet, "No access log")->envname("REGISTRYCTL_QUIET");
  cmd->add_flag("--token-auth", options->token_auth,
                "Challenge clients with Docker token auth (Bearer, /auth/token) instead of Basic")
    ->envname("REGISTRYCTL_TOKEN_AUTH");
  cmd->add_option("--service", options->service, "Service name (token audience)")
    ->envname("REGISTRYCTL_SERVICE")
    ->capture_default_str();
  cmd->add_flag("--trust-proxy-headers", options->trust_proxy_headers,
                "Log and throttle by the client address a reverse proxy sends (X-Real-IP, "
                "X-Forwarded-For); only when every request comes through that proxy")
    ->envname("REGISTRYCTL_TRUST_PROXY_HEADERS");
  cmd->add_option("--mirror-feed", options->mirror_feed,
                  "Answer repository names without a feed prefix from this feed (a Docker Hub mirror "
                  "for registry-mirrors / containerd)")
    ->type_name("FEED")
    ->envname("REGISTRYCTL_MIRROR_FEED");
  cmd->add_flag("--metrics-anonymous", options->metrics_anonymous,
                "Serve GET /metrics without credentials (otherwise admins only)")
    ->envname("REGISTRYCTL_METRICS_ANONYMOUS");
  cmd->add_option("--log-format", options->log_format, "Log lines as text or one JSON object each")
    ->check(CLI::IsMember({"text", "json"}))
    ->envname("REGISTRYCTL_LOG_FORMAT")
    ->capture_default_str();
  cmd->add_option("--log-level", options->log_level, "Least severe level logged: debug, info, warn, error")
    ->check(CLI::IsMember({"debug", "info", "warn", "error"}))
    ->envname("REGISTRYCTL_LOG_LEVEL")
    ->capture_default_str();
  cmd->add_option("--token-lifetime", options->token_lifetime, "Lifetime of issued Bearer tokens")
    ->envname("REGISTRYCTL_TOKEN_LIFETIME")
    ->capture_default_str();
  cmd->add_option("--cleanup-interval", options->cleanup_interval,
                  "Run garbage collection this often (0 disables)")
    ->type_name("DURATION")
    ->envname("REGISTRYCTL_CLEANUP_INTERVAL")
    ->capture_default_str();
  cmd->add_option("--gc-grace", options->gc_grace, "Grace period of the cleanup job")
    ->type_name("DURATION")
    ->envname("REGISTRYCTL_GC_GRACE")
    ->capture_default_str();
  cmd->add_option("--upload-expiry", options->upload_expiry,
                  "The cleanup job purges uploads idle for longer")
    ->type_name("DURATION")
    ->envname("REGISTRYCTL_UPLOAD_EXPIRY")
    ->capture_default_str();
  cmd->add_option("--small-blob-limit", options->small_blob_limit,
                  "Blobs up to this many bytes are kept in the database, not the store (0: none)")
    ->type_name("BYTES")
    ->check(CLI::Range(uint64_t{0}, k_max_small_blob_limit))
    ->envname("REGISTRYCTL_SMALL_BLOB_LIMIT")
    ->capture_default_str();
  cmd->callback([&ctx, options] { run_serve(ctx, *options); });
}

} // namespace registry::cli
