#include "server/request_context.hpp"

#include "common/util/strings.hpp"
#include "server/api_error.hpp"

namespace registry::server {

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
} // namespace

service::ByteSource
RequestContext::body()
{
  return [this](const storage::ByteSink& sink) -> bool {
    body_consumed = true;
    if (reader == nullptr) {
      received += req.body.size();
      return sink(req.body.data(), req.body.size());
    }
    return (*reader)([&](const char* data, size_t size) {
      received += size;
      return sink(data, size);
    });
  };
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
