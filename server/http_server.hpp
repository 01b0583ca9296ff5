#pragma once

// HttpServer: the registry's HTTP front (Docker Registry HTTP API V2 / OCI
// Distribution Spec v1.1). A facade over cpp-httplib: httplib types stay in the
// .cpp files of server/.
//
// Thread-safety: bind() and run() are called once, from one thread; stop() may
// be called from any thread (a signal-handling thread, a test).

#include "common/result.hpp"

#include <cstdint>
#include <memory>
#include <string>

namespace registry::service {
class Registry;
}

namespace registry::server {

class Metrics;

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 5000;      // 0 picks a free port
  std::string base_url; // e.g. https://registry.example.com; empty -> relative Locations
  size_t workers = 32;  // worker threads (concurrent connections served)
  std::string tls_cert; // PEM files; both set -> HTTPS
  std::string tls_key;
  bool access_log = true;
  bool token_auth = false;            // challenge with Bearer (Docker token auth) instead of Basic
  std::string service = "registryctl"; // the token audience
  bool trust_proxy_headers = false;    // client address from X-Real-IP / X-Forwarded-For
  bool metrics_anonymous = false;      // GET /metrics without credentials
  std::string mirror_feed;             // answers names without a feed prefix
};

class HttpServer
{
public:
  // `registry` must outlive the server.
  HttpServer(service::Registry& registry, ServerOptions options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds the listening socket; returns the bound port. io_error when the
  // address cannot be bound, invalid_argument for unusable TLS files.
  Result<int> bind();
  // Serves until stop(). REQUIRES: bind() succeeded.
  void run();
  void stop();
  bool is_running() const;
  // The server's metrics, for jobs running beside it to report into.
  Metrics& metrics();
  // Requests answered so far (any route, any status).
  uint64_t requests_served() const;

private:
  struct Impl;
  std::unique_ptr<Impl> m_impl;
};

} // namespace registry::server
