#include "server/request_context.hpp"

#include "common/util/strings.hpp"
#include "server/api_error.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <climits>
#include <filesystem>
#include <memory>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>

namespace registry::server {

namespace fs = std::filesystem;

std::string
client_address(const httplib::Request& req, const ServerOptions& options)
{
  if (options.trust_proxy_headers) {
    std::string real = std::string(util::trim(req.get_header_value("X-Real-IP")));
    if (real.empty()) {
      std::string forwarded = req.get_header_value("X-Forwarded-For");
      real = std::string(util::trim(std::string_view(forwarded).substr(forwarded.rfind(',') + 1)));
    }
    if (!real.empty()) {
      return util::printable(real);
    }
  }
  return req.remote_addr;
}

namespace {
// Bodies up to this size are read and dropped after an error so the connection
// stays usable; larger ones close the connection instead.
constexpr size_t k_max_drain = 64 << 20;

// Bodies from this size on are read from the socket directly, in pieces of up
// to k_direct_piece bytes (see RequestContext::body()).
constexpr uint64_t k_direct_min = 256 << 10;
constexpr size_t k_direct_piece = 512 << 10;

// The direct read relies on how cpp-httplib 0.11 buffers a connection (below);
// another version reads every body through its ContentReader.
constexpr bool k_known_httplib = std::string_view(CPPHTTPLIB_VERSION).starts_with("0.11.");

// The body's length when it may be read directly: a Content-Length of at least
// k_direct_min, with no transfer or content coding for httplib to undo.
std::optional<uint64_t>
direct_length(const httplib::Request& req)
{
  if (!k_known_httplib || req.has_header("Transfer-Encoding")
      || (req.has_header("Content-Encoding")
          && util::to_lower(util::trim(req.get_header_value("Content-Encoding"))) != "identity")) {
    return std::nullopt;
  }
  auto length = util::parse_uint(req.get_header_value("Content-Length"));
  if (!length || *length < k_direct_min) {
    return std::nullopt;
  }
  return length;
}

// The socket of the plain-HTTP connection `req` arrived on, or -1: cpp-httplib
// 0.11 does not hand it to handlers, so it is found among the process's sockets
// by the connection's two ports and the peer's address (one connection at a time
// has them). A worker thread serves one connection at a time, so the last socket
// found is kept and checked again first.
int
connection_socket(const httplib::Request& req)
{
  auto port_of = [](const sockaddr_storage& a) {
    return ntohs(a.ss_family == AF_INET6 ? reinterpret_cast<const sockaddr_in6&>(a).sin6_port
                                         : reinterpret_cast<const sockaddr_in&>(a).sin_port);
  };
  auto serves = [&](int fd) {
    sockaddr_storage peer{};
    sockaddr_storage local{};
    socklen_t peer_size = sizeof peer;
    socklen_t local_size = sizeof local;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_size) != 0
        || port_of(peer) != req.remote_port
        || ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_size) != 0
        || port_of(local) != req.local_port) {
      return false;
    }
    char host[NI_MAXHOST];
    return ::getnameinfo(reinterpret_cast<sockaddr*>(&peer), peer_size, host, sizeof host,
                         nullptr, 0, NI_NUMERICHOST) == 0
           && req.remote_addr == host;
  };
  thread_local int last = -1;
  if (last >= 0 && serves(last)) {
    return last;
  }
  last = -1;
  std::error_code ec;
  for (fs::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end; it.increment(ec)) {
    auto fd = util::parse_uint(it->path().filename().string());
    if (fd && *fd <= INT_MAX && serves(static_cast<int>(*fd))) {
      last = static_cast<int>(*fd);
      break;
    }
  }
  return last;
}

// Reads `remaining` bytes from `fd` into `sink`, each piece after waiting at most
// the server's read timeout for it. False when the peer stops sending first, the
// wait times out, or the sink refuses a piece.
bool
read_socket(int fd, uint64_t remaining, const storage::ByteSink& sink)
{
  std::unique_ptr<char[]> buffer(new char[k_direct_piece]);
  while (remaining > 0) {
    pollfd waiting{fd, POLLIN, 0};
    int ready = ::poll(&waiting, 1, k_read_timeout_seconds * 1000);
    if (ready < 0 && errno == EINTR) {
      continue;
    }
    if (ready <= 0) {
      return false;
    }
    ssize_t n = ::recv(fd, buffer.get(), std::min<uint64_t>(remaining, k_direct_piece), 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
      continue;
    }
    if (n <= 0 || !sink(buffer.get(), static_cast<size_t>(n))) {
      return false;
    }
    remaining -= static_cast<uint64_t>(n);
  }
  return true;
}
} // namespace

service::ByteSource
RequestContext::body()
{
  // A body read only in part (the sink stopped: a store failed midway, a
  // digest or size check ended it) leaves its rest on the socket, where the
  // next request on the connection would start: the connection closes.
  return [this](const storage::ByteSink& sink) -> bool {
    bool whole = read_whole_body(sink);
    if (!whole && reader != nullptr) {
      res.set_header("Connection", "close");
    }
    return whole;
  };
}

bool
RequestContext::read_whole_body(const storage::ByteSink& sink)
{
  body_consumed = true;
  if (reader == nullptr) {
    received += req.body.size();
    return sink(req.body.data(), req.body.size());
  }
  auto counted = [&](const char* data, size_t size) {
    received += size;
    return sink(data, size);
  };
  auto length = plain_http ? direct_length(req) : std::nullopt;
  int socket = length ? connection_socket(req) : -1;
  if (socket < 0) {
    return (*reader)(counted);
  }
  // httplib reads a body 4 KiB at a time, each piece after a poll(): for a
  // layer, a third of the server's CPU. Its first piece hands over what it
  // buffered past the headers (at most 4 KiB, and all of it: SocketStream::read
  // returns the buffer's rest before it reads the socket again); stopping it
  // there leaves the rest of the body, and nothing else, on the socket.
  bool first = false;
  bool accepted = false;
  (*reader)([&](const char* data, size_t size) {
    first = true;
    accepted = size <= *length && counted(data, size);
    return false;
  });
  if (!first || !accepted) {
    return false;
  }
  return read_socket(socket, *length - received, counted);
}

std::optional<std::string>
RequestContext::read_body(size_t limit)
{
  std::string out;
  bool too_large = false;
  body()([&](const char* data, size_t size) {
    if (out.size() + size > limit) {
      too_large = true;
      return false;
    }
    out.append(data, size);
    return true;
  });
  if (too_large) {
    res.set_header("Connection", "close");
    return std::nullopt;
  }
  return out;
}

void
RequestContext::drain_body()
{
  if (body_consumed || reader == nullptr) {
    return;
  }
  size_t seen = 0;
  body()([&](const char*, size_t size) {
    seen += size;
    return seen <= k_max_drain;
  });
  if (seen > k_max_drain) {
    res.set_header("Connection", "close");
  }
}

std::string
RequestContext::actor() const
{
  if (principal.kind == service::Principal::Kind::anonymous) {
    return "-";
  }
  return principal.name.empty() ? "(open)" : principal.name;
}

void
RequestContext::audit(const std::string& kind, const std::string& subject, const std::string& detail)
{
  registry.audit(kind, actor(), route.name.substr(0, route.name.find('/')), subject, detail);
}

std::string
RequestContext::url(const std::string& path) const
{
  return options.base_url + path;
}

void
RequestContext::write_error(const Error& error, int status)
{
  drain_body();
  server::write_error(res, error);
  if (status != 0) {
    res.status = status;
  }
}

} // namespace registry::server
