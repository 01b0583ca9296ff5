#include "common/upstream/upstream_client.hpp"

#include "common/oci/digest.hpp"
#include "common/oci/media_types.hpp"
#include "common/util/strings.hpp"

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <chrono>

namespace registry::upstream {

namespace {

constexpr const char* k_accept =
  "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, "
  "application/vnd.docker.distribution.manifest.list.v2+json, "
  "application/vnd.docker.distribution.manifest.v2+json";

int64_t
steady_seconds()
{
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now().time_since_epoch())
    .count();
}

// scheme://host[:port] and the path of an absolute URL.
std::optional<std::pair<std::string, std::string>>
split_url(const std::string& url)
{
  size_t scheme_end = url.find("://");
  if (scheme_end == std::string::npos) {
    return std::nullopt;
  }
  std::string scheme = url.substr(0, scheme_end);
  if (scheme != "http" && scheme != "https") {
    return std::nullopt;
  }
  size_t path_start = url.find('/', scheme_end + 3);
  if (path_start == std::string::npos) {
    return std::make_pair(url, std::string("/"));
  }
  return std::make_pair(url.substr(0, path_start), url.substr(path_start));
}

// The key="value" parameters of a WWW-Authenticate challenge, and its scheme.
std::map<std::string, std::string>
parse_challenge(const std::string& header, std::string& scheme)
{
  std::map<std::string, std::string> params;
  size_t space = header.find(' ');
  scheme = util::to_lower(header.substr(0, space));
  if (space == std::string::npos) {
    return params;
  }
  size_t i = space + 1;
  while (i < header.size()) {
    while (i < header.size() && (header[i] == ' ' || header[i] == ',')) {
      ++i;
    }
    size_t eq = header.find('=', i);
    if (eq == std::string::npos) {
      break;
    }
    std::string key = util::to_lower(std::string(util::trim(header.substr(i, eq - i))));
    std::string value;
    i = eq + 1;
    if (i < header.size() && header[i] == '"') {
      size_t close = header.find('"', i + 1);
      if (close == std::string::npos) {
        close = header.size();
      }
      value = header.substr(i + 1, close - i - 1);
      i = close + 1;
    } else {
      size_t comma = header.find(',', i);
      value = std::string(util::trim(header.substr(i, comma == std::string::npos ? std::string::npos : comma - i)));
      i = comma == std::string::npos ? header.size() : comma;
    }
    params[key] = value;
  }
  return params;
}

// A client of one origin. Redirects are followed by hand (see
// UpstreamClient::Impl::get): httplib's own handling copies every header,
// credentials included, to the new host.
std::unique_ptr<httplib::Client>
make_client(const std::string& origin)
{
  auto client = std::make_unique<httplib::Client>(origin);
  client->set_connection_timeout(10);
  client->set_read_timeout(120);
  client->set_follow_location(false);
  client->set_url_encode(false);
  return client;
}

bool
is_redirect(int status)
{
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

// A request target whose percent-escapes were decoded, encoded again. httplib
// (0.11) decodes a Location header as it reads it, so a signed URL's query
// arrives with its escapes undone: a signature's %2B is now a '+' that the
// target would read as a space. Each query key and value is encoded whole
// (base64 and timestamps come back as they were signed; a value that held an
// encoded '&' cannot be told apart and is lost), the path keeps its
// separators.
std::string
reencode_target(std::string_view target)
{
  size_t question = target.find('?');
  std::string out = util::percent_encode(target.substr(0, question), "/:@!$&'()*+,;=");
  if (question == std::string::npos) {
    return out;
  }
  out += '?';
  std::string_view query = target.substr(question + 1);
  while (true) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    size_t eq = pair.find('=');
    out += util::percent_encode(pair.substr(0, eq));
    if (eq != std::string_view::npos) {
      out += '=' + util::percent_encode(pair.substr(eq + 1));
    }
    if (amp == std::string_view::npos) {
      return out;
    }
    out += '&';
    query.remove_prefix(amp + 1);
  }
}

// The origin and target (path and query) a Location header names, relative to
// `origin`; nullopt when it is not an http(s) URL.
std::optional<std::pair<std::string, std::string>>
resolve_location(const std::string& origin, std::string location)
{
  location = location.substr(0, location.find('#'));
  if (location.empty() || location.find_first_of("\r\n") != std::string::npos) {
    return std::nullopt;
  }
  if (location.rfind("//", 0) == 0) {
    return split_url(origin.substr(0, origin.find("://") + 1) + location);
  }
  if (location.rfind('/', 0) == 0) {
    return std::make_pair(origin, location);
  }
  return split_url(location);
}

// An answer other than 200 or 404.
Unexpected
upstream_status(const std::string& base, const httplib::Response& res)
{
  std::string message = "upstream " + base + " answered " + std::to_string(res.status);
  if (res.status == 429 && res.has_header("Retry-After")) {
    message += " (retry after " + res.get_header_value("Retry-After") + " s)";
  }
  if (res.status == 401 || res.status == 403) {
    return fail(ErrorCode::unauthorized, message + ": credentials refused");
  }
  return fail(ErrorCode::io_error, message);
}

// No answer, or an answer other than 200 or 404.
Unexpected
upstream_failure(const std::string& base, const httplib::Result& res)
{
  if (!res) {
    return fail(ErrorCode::io_error, "upstream " + base + " unreachable: " + httplib::to_string(res.error()));
  }
  return upstream_status(base, *res);
}

} // namespace

struct UpstreamClient::Impl {
  std::string base; // scheme://host[:port]
  bool docker_hub = false;
  std::string username;
  std::string password;
  std::mutex mutex;
  std::map<std::string, std::pair<std::string, int64_t>> tokens; // scope -> (token, valid until)
  bool basic = false; // upstream asked for Basic
  int64_t quiet_until = 0; // Retry-After: no requests before (steady seconds)

  Result<void>
  check_backoff()
  {
    std::lock_guard lock(mutex);
    if (quiet_until > steady_seconds()) {
      return fail(ErrorCode::io_error, "upstream " + base + " asked to wait (Retry-After) for "
                                         + std::to_string(quiet_until - steady_seconds()) + " s more");
    }
    return ok();
  }

  void
  note_backoff(const httplib::Response& res)
  {
    if ((res.status == 429 || res.status == 503) && res.has_header("Retry-After")) {
      auto seconds = util::parse_uint(res.get_header_value("Retry-After"));
      if (seconds) {
        std::lock_guard lock(mutex);
        quiet_until = steady_seconds() + static_cast<int64_t>(std::min<uint64_t>(*seconds, 3600));
      }
    }
  }

  httplib::Headers
  credentials(const std::string& scope)
  {
    std::lock_guard lock(mutex);
    auto it = tokens.find(scope);
    if (it != tokens.end() && it->second.second > steady_seconds()) {
      return {{"Authorization", "Bearer " + it->second.first}};
    }
    if (basic && !username.empty()) {
      return {httplib::make_basic_authentication_header(username, password)};
    }
    return {};
  }

  // Answers a 401 challenge: fetches a token or switches to Basic. false when
  // there is nothing more to try.
  Result<bool>
  answer(const httplib::Response& res, const std::string& scope)
  {
    std::string scheme;
    auto params = parse_challenge(res.get_header_value("WWW-Authenticate"), scheme);
    if (scheme == "basic") {
      std::lock_guard lock(mutex);
      if (basic || username.empty()) {
        return false;
      }
      basic = true;
      return true;
    }
    if (scheme != "bearer" || params["realm"].empty()) {
      return false;
    }
    auto realm = split_url(params["realm"]);
    if (!realm) {
      return fail(ErrorCode::io_error, "upstream " + base + " sent an unusable token realm: " + params["realm"]);
    }
    std::string path = realm->second + (realm->second.find('?') == std::string::npos ? "?" : "&")
                       + "service=" + util::url_encode(params["service"]) + "&scope=" + util::url_encode(scope);
    httplib::Headers headers;
    if (!username.empty()) {
      headers.insert(httplib::make_basic_authentication_header(username, password));
    }
    REGISTRY_TRY_ASSIGN(auto token_res, send(realm->first, path, headers, nullptr, false, {}));
    if (token_res.status != 200) {
      return upstream_status(realm->first, token_res);
    }
    auto doc = nlohmann::json::parse(token_res.body, nullptr, false);
    std::string token;
    if (doc.is_object()) {
      token = doc.value("token", doc.value("access_token", ""));
    }
    if (token.empty()) {
      return fail(ErrorCode::io_error, "upstream token endpoint " + realm->first + " returned no token");
    }
    int64_t lifetime = doc.value("expires_in", int64_t{60});
    std::lock_guard lock(mutex);
    tokens[scope] = {token, steady_seconds() + std::max<int64_t>(1, lifetime - 10)};
    return true;
  }

  // One request to `origin` for `target`. The body of a 200 goes to `sink`
  // when given, else into the response.
  static Result<httplib::Response>
  send(const std::string& origin, const std::string& target, const httplib::Headers& headers,
       const std::function<bool(const char*, size_t)>* sink, bool head,
       const std::function<void(const httplib::Response&)>& on_ok)
  {
    auto client = make_client(origin);
    int status = 0;
    httplib::Result res =
      head ? client->Head(target.c_str(), headers)
      : sink == nullptr
        ? client->Get(target.c_str(), headers)
        : client->Get(
            target.c_str(), headers,
            [&](const httplib::Response& r) {
              status = r.status;
              if (status == 200 && on_ok) {
                on_ok(r);
              }
              return true;
            },
            [&](const char* data, size_t size) { return status != 200 || (*sink)(data, size); });
    if (!res) {
      return upstream_failure(origin, res);
    }
    return std::move(*res);
  }

  // GET (or HEAD) `path` with credentials for `scope`, answering one challenge
  // and following up to 5 redirects. A redirect to another origin (Docker
  // Hub's CDN, a store's signed URL) is sent without credentials, as its URL
  // carries its own. `origin` is set to where the answer came from.
  Result<httplib::Response>
  get(const std::string& path, const std::string& scope, const httplib::Headers& extra,
      const std::function<bool(const char*, size_t)>* sink, std::string& origin, bool head = false,
      const std::function<void(const httplib::Response&)>& on_ok = {})
  {
    REGISTRY_TRY(check_backoff());
    for (int attempt = 0; attempt < 2; ++attempt) {
      origin = base;
      std::string target = path;
      httplib::Headers headers = extra;
      for (auto& h : credentials(scope)) {
        headers.insert(h);
      }
      REGISTRY_TRY_ASSIGN(auto res, send(origin, target, headers, sink, head, on_ok));
      for (int hop = 0; is_redirect(res.status); ++hop) {
        auto next = resolve_location(origin, res.get_header_value("Location"));
        if (!next) {
          return fail(ErrorCode::io_error, "upstream " + origin + " answered " + std::to_string(res.status)
                                             + " without a usable Location");
        }
        if (hop == 5) {
          return fail(ErrorCode::io_error, "upstream " + base + " redirected more than 5 times");
        }
        if (next->first != origin) {
          headers = extra;
        }
        origin = next->first;
        target = reencode_target(next->second);
        REGISTRY_TRY_ASSIGN(res, send(origin, target, headers, sink, head, on_ok));
      }
      if (origin != base) {
        return res;
      }
      note_backoff(res);
      if (res.status == 401 && attempt == 0) {
        REGISTRY_TRY_ASSIGN(bool retry, answer(res, scope));
        if (retry) {
          continue;
        }
      }
      return res;
    }
    return fail(ErrorCode::unauthorized, "upstream " + base + " refused the credentials");
  }
};

UpstreamClient::UpstreamClient(std::string url, std::unique_ptr<Impl> impl)
  : m_url(std::move(url)),
    m_impl(std::move(impl))
{
}

UpstreamClient::~UpstreamClient() = default;

Result<std::unique_ptr<UpstreamClient>>
UpstreamClient::create(const std::string& url, std::string username, std::string password)
{
  auto parts = split_url(url);
  if (!parts || (parts->second != "/" && !parts->second.empty()) || parts->first.size() <= 8) {
    return fail(ErrorCode::invalid_argument,
                "connector URL must be http(s)://HOST[:PORT], e.g. https://registry-1.docker.io", url);
  }
  auto impl = std::make_unique<Impl>();
  impl->base = parts->first;
  std::string host = impl->base.substr(impl->base.find("://") + 3);
  impl->docker_hub = host == "registry-1.docker.io" || host == "docker.io" || host == "index.docker.io";
  impl->username = std::move(username);
  impl->password = std::move(password);
  std::string base = impl->base;
  return std::unique_ptr<UpstreamClient>(new UpstreamClient(std::move(base), std::move(impl)));
}

std::string
UpstreamClient::upstream_name(const std::string& path) const
{
  if (m_impl->docker_hub && path.find('/') == std::string::npos) {
    return "library/" + path;
  }
  return path;
}

Result<std::optional<UpstreamManifest>>
UpstreamClient::get_manifest(const std::string& name, const std::string& reference)
{
  std::string origin;
  REGISTRY_TRY_ASSIGN(auto res, m_impl->get("/v2/" + name + "/manifests/" + reference,
                                            "repository:" + name + ":pull", {{"Accept", k_accept}}, nullptr, origin));
  if (res.status == 404) {
    return std::optional<UpstreamManifest>();
  }
  if (res.status != 200) {
    return upstream_status(origin, res);
  }
  UpstreamManifest manifest;
  manifest.media_type = res.get_header_value("Content-Type");
  manifest.media_type = manifest.media_type.substr(0, manifest.media_type.find(';'));
  auto algorithm = util::HashAlgorithm::sha256;
  std::optional<oci::Digest> expected;
  if (auto asked = oci::Digest::parse(reference)) {
    expected = *asked;
  } else if (auto announced = oci::Digest::parse(res.get_header_value("Docker-Content-Digest"))) {
    expected = *announced;
  }
  if (expected) {
    algorithm = expected->hash_algorithm();
  }
  oci::Digest actual = oci::Digest::of(res.body, algorithm);
  if (expected && !(actual == *expected)) {
    return fail(ErrorCode::digest_invalid, "upstream " + m_impl->base + " sent a manifest that does not match "
                                             + expected->str());
  }
  manifest.digest = actual.str();
  manifest.bytes = std::move(res.body);
  return std::optional<UpstreamManifest>(std::move(manifest));
}

Result<std::optional<std::string>>
UpstreamClient::head_manifest(const std::string& name, const std::string& reference)
{
  std::string origin;
  REGISTRY_TRY_ASSIGN(auto res, m_impl->get("/v2/" + name + "/manifests/" + reference,
                                            "repository:" + name + ":pull", {{"Accept", k_accept}}, nullptr, origin,
                                            true));
  if (res.status == 404) {
    return std::optional<std::string>();
  }
  if (res.status != 200) {
    return upstream_status(origin, res);
  }
  return std::optional<std::string>(res.get_header_value("Docker-Content-Digest"));
}

Result<bool>
UpstreamClient::fetch_blob(const std::string& name, const std::string& digest,
                           const std::function<bool(const char*, size_t)>& sink,
                           const std::function<void(std::optional<uint64_t>)>& on_size)
{
  auto announced = [&](const httplib::Response& r) {
    if (!on_size) {
      return;
    }
    // A length of encoded bytes says nothing about the blob's own size.
    std::string encoding = r.get_header_value("Content-Encoding");
    std::optional<uint64_t> size;
    if (r.has_header("Content-Length") && (encoding.empty() || encoding == "identity")) {
      size = util::parse_uint(r.get_header_value("Content-Length"));
    }
    on_size(size);
  };
  // Layers are compressed already; ask for the bytes the digest names.
  std::string origin;
  REGISTRY_TRY_ASSIGN(auto res, m_impl->get("/v2/" + name + "/blobs/" + digest, "repository:" + name + ":pull",
                                            {{"Accept-Encoding", "identity"}}, &sink, origin, false, announced));
  if (res.status == 404) {
    return false;
  }
  if (res.status != 200) {
    return upstream_status(origin, res);
  }
  return true;
}

} // namespace registry::upstream
