#include "common/storage/s3_blob_store.hpp"

#include "common/storage/sigv4.hpp"
#include "common/storage/stream_reader.hpp"
#include "common/util/file.hpp"
#include "common/util/log.hpp"
#include "common/util/strings.hpp"
#include "common/util/uuid.hpp"

#include <httplib.h>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <deque>
#include <fcntl.h>
#include <mutex>
#include <netdb.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

namespace registry::storage {

namespace {

constexpr uint64_t k_min_part_size = 5ULL << 20;
constexpr int k_max_parts = 10000;
constexpr int k_part_size_step = 2000;      // parts per part size
constexpr int k_max_part_doublings = 4;     // 16 MiB -> 256 MiB
constexpr size_t k_read_chunk = 1 << 20;    // pread size when sending a part
constexpr size_t k_pool_max = 16;
constexpr int k_attempts = 4;

// --- tiny XML helpers: S3 answers are flat enough for tag extraction ---


std::string
xml_escape(std::string_view text)
{
  std::string out;
  for (char c : text) {
    switch (c) {
    case '&': out += "&amp;"; break;
    case '<': out += "&lt;"; break;
    case '>': out += "&gt;"; break;
    case '"': out += "&quot;"; break;
    default: out.push_back(c);
    }
  }
  return out;
}

// The raw inner text of every <tag>...</tag> in `xml`, in order.
std::vector<std::string_view>
xml_blocks(std::string_view xml, std::string_view tag)
{
  std::vector<std::string_view> out;
  std::string open = "<" + std::string(tag) + ">";
  std::string close = "</" + std::string(tag) + ">";
  size_t pos = 0;
  while ((pos = xml.find(open, pos)) != std::string_view::npos) {
    size_t start = pos + open.size();
    size_t end = xml.find(close, start);
    if (end == std::string_view::npos) {
      break;
    }
    out.push_back(xml.substr(start, end - start));
    pos = end + close.size();
  }
  return out;
}

// The unescaped text of the first <tag>, or "".
std::string
xml_text(std::string_view xml, std::string_view tag)
{
  auto blocks = xml_blocks(xml, tag);
  return blocks.empty() ? std::string() : util::xml_unescape(blocks.front());
}

// "2026-01-02T03:04:05.000Z" -> Unix seconds (0 if unparsable).
int64_t
parse_iso8601(const std::string& text)
{
  std::tm tm{};
  if (strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm) == nullptr) {
    return 0;
  }
  return static_cast<int64_t>(timegm(&tm));
}

// "Mon, 02 Jan 2026 03:04:05 GMT" -> Unix seconds (0 if unparsable).
int64_t
parse_http_date(const std::string& text)
{
  std::tm tm{};
  if (strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S", &tm) == nullptr) {
    return 0;
  }
  return static_cast<int64_t>(timegm(&tm));
}

// Upload ids are lower-case UUIDs, as the service makes them.
bool
valid_upload_id(const std::string& id)
{
  return util::is_uuid(id);
}

Unexpected
invalid_upload_id(const std::string& id)
{
  return fail(ErrorCode::invalid_argument, "invalid upload id '" + id + "'");
}

// Keys this store produces: "blobs/<upload id>" or "blobs/<algorithm>/<hex>".
bool
valid_blob_key(const std::string& key)
{
  if (key.rfind("blobs/", 0) != 0 || key.size() > 300) {
    return false;
  }
  std::string_view rest = std::string_view(key).substr(6);
  size_t slash = rest.find('/');
  if (slash == std::string_view::npos) {
    return valid_upload_id(std::string(rest));
  }
  std::string_view algorithm = rest.substr(0, slash);
  std::string_view hex = rest.substr(slash + 1);
  if (algorithm.empty() || hex.empty() || hex.find('/') != std::string_view::npos) {
    return false;
  }
  for (char c : algorithm) {
    if (!std::isalnum(static_cast<unsigned char>(c))) {
      return false;
    }
  }
  for (char c : hex) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) {
      return false;
    }
  }
  return true;
}

Result<void>
check_blob_key(const std::string& key)
{
  if (!valid_blob_key(key)) {
    return fail(ErrorCode::invalid_argument, "not a key of this store: " + key);
  }
  return ok();
}

using Fd = util::UniqueFd;

Unexpected
errno_error(const std::string& what)
{
  return fail(ErrorCode::io_error, what + ": " + std::strerror(errno));
}

// Base64 of the MD5 of bytes [0, size) of `fd` (the Content-MD5 header).
Result<std::string>
file_md5_base64(int fd, uint64_t size)
{
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  EVP_DigestInit_ex(ctx.get(), EVP_md5(), nullptr);
  std::string buffer(k_read_chunk, '\0');
  uint64_t done = 0;
  while (done < size) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(buffer.size(), size - done));
    ssize_t n = ::pread(fd, buffer.data(), want, static_cast<off_t>(done));
    if (n <= 0) {
      return errno_error("cannot read spool file");
    }
    EVP_DigestUpdate(ctx.get(), buffer.data(), static_cast<size_t>(n));
    done += static_cast<uint64_t>(n);
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(ctx.get(), digest, &length);
  unsigned char encoded[64];
  int encoded_length = EVP_EncodeBlock(encoded, digest, static_cast<int>(length));
  return std::string(reinterpret_cast<const char*>(encoded), static_cast<size_t>(encoded_length));
}

} // namespace

// --- the HTTP side: signing, connection pool, retries, error mapping ---

struct S3Response {
  int status = 0;
  std::map<std::string, std::string> headers; // lower-case names
  std::string body;

  std::string
  header(const std::string& name) const
  {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

// A body sent from a file range, re-readable for retries.
struct FileBody {
  int fd = -1;
  uint64_t offset = 0;
  uint64_t size = 0;
};

struct S3Call {
  std::string method = "GET";
  std::string object;        // full object name in the bucket ("" = the bucket)
  sigv4::Pairs query;
  sigv4::Pairs headers;      // extra headers (Range, Content-Type), not signed
  std::string body;          // small bodies, signed with their hash
  std::optional<FileBody> file_body;
  bool idempotent = true;
};

class S3Client
{
public:
  explicit S3Client(const S3Options& options) : m_options(options)
  {
    std::string rest = options.endpoint.substr(options.endpoint.find("://") + 3);
    m_scheme = options.endpoint.substr(0, options.endpoint.find("://"));
    while (!rest.empty() && rest.back() == '/') {
      rest.pop_back();
    }
    // host, host:port, [IPv6] or [IPv6]:port (validated by open()).
    std::string literal; // the host as it appears in a URL and the Host header
    size_t port_colon = std::string::npos;
    if (!rest.empty() && rest.front() == '[') {
      size_t close = rest.find(']');
      m_host = rest.substr(1, close - 1);
      literal = rest.substr(0, close + 1);
      port_colon = close + 1 < rest.size() ? close + 1 : std::string::npos;
    } else {
      port_colon = rest.rfind(':');
      m_host = rest.substr(0, port_colon);
      literal = m_host;
    }
    m_port = port_colon != std::string::npos ? std::stoi(rest.substr(port_colon + 1))
                                             : (m_scheme == "https" ? 443 : 80);
    bool default_port = (m_scheme == "https" && m_port == 443) || (m_scheme == "http" && m_port == 80);
    std::string host = options.addressing == S3Options::Addressing::virtual_host ? options.bucket + "." + literal
                                                                                  : literal;
    m_host_header = default_port ? host : host + ":" + std::to_string(m_port);
    m_base_url = m_scheme + "://" + m_host_header;
    m_credentials = {options.access_key_id, options.secret_access_key, options.session_token};
  }

  const std::string&
  host() const
  {
    return m_host;
  }
  int
  port() const
  {
    return m_port;
  }
  const std::string&
  host_header() const
  {
    return m_host_header;
  }

  // The request path (unencoded) of `object`.
  std::string
  path_of(const std::string& object) const
  {
    if (m_options.addressing == S3Options::Addressing::virtual_host) {
      return "/" + object;
    }
    return object.empty() ? "/" + m_options.bucket : "/" + m_options.bucket + "/" + object;
  }

  std::unique_ptr<httplib::Client>
  acquire()
  {
    {
      std::lock_guard lock(m_mutex);
      if (!m_idle.empty()) {
        auto client = std::move(m_idle.back());
        m_idle.pop_back();
        return client;
      }
    }
    auto client = std::make_unique<httplib::Client>(m_base_url);
    client->set_connection_timeout(10);
    client->set_read_timeout(120);
    client->set_write_timeout(120);
    client->set_keep_alive(true);
    client->set_tcp_nodelay(true);
    client->set_url_encode(false);
    client->set_decompress(false);
    if (!m_options.connect_address.empty()) {
      std::string virtual_host = m_options.addressing == S3Options::Addressing::virtual_host
                                   ? m_options.bucket + "." + m_host
                                   : m_host;
      client->set_hostname_addr_map({{virtual_host, m_options.connect_address}});
    }
    if (m_scheme == "https") {
      client->enable_server_certificate_verification(true);
      if (!m_options.ca_file.empty()) {
        client->set_ca_cert_path(m_options.ca_file);
      }
    }
    return client;
  }

  void
  release(std::unique_ptr<httplib::Client> client)
  {
    std::lock_guard lock(m_mutex);
    if (m_idle.size() < k_pool_max) {
      m_idle.push_back(std::move(client));
    }
  }

  // Signed headers and the wire path (with query) for `call`.
  std::pair<httplib::Headers, std::string>
  prepare(const S3Call& call, const std::string& payload_hash) const
  {
    sigv4::Request request;
    request.method = call.method;
    request.path = path_of(call.object);
    request.query = call.query;
    request.headers.emplace_back("host", m_host_header);
    request.payload_hash = payload_hash;
    sigv4::sign_headers(request, m_credentials, m_options.region, std::chrono::system_clock::now());
    httplib::Headers headers;
    for (const auto& [name, value] : request.headers) {
      headers.emplace(name == "host" ? "Host" : name, value);
    }
    for (const auto& [name, value] : call.headers) {
      headers.emplace(name, value);
    }
    std::string wire = sigv4::encode_path(request.path);
    std::string query = sigv4::canonical_query(call.query);
    if (!query.empty()) {
      wire += "?" + query;
    }
    return {std::move(headers), std::move(wire)};
  }

  // Sends `call`; retries connection failures and 5xx answers of idempotent calls
  // with backoff. Any HTTP answer is returned (the caller judges the status);
  // io_error when no answer came.
  Result<S3Response>
  send(const S3Call& call)
  {
    std::string payload_hash = call.file_body ? sigv4::k_unsigned_payload : sigv4::sha256_hex(call.body);
    std::string last_error;
    for (int attempt = 0; attempt < k_attempts; ++attempt) {
      if (attempt > 0) {
        util::log_warn("S3 " + call.method + " " + call.object + ": " + last_error + "; retry "
                       + std::to_string(attempt) + " of " + std::to_string(k_attempts - 1));
        std::this_thread::sleep_for(std::chrono::milliseconds(100 << (2 * (attempt - 1))));
      }
      auto [headers, wire] = prepare(call, payload_hash);
      auto client = acquire();
      httplib::Result result = execute(*client, call, headers, wire);
      if (!result) {
        last_error = describe_transport_error(result.error());
        if (!call.idempotent) {
          break;
        }
        continue;
      }
      S3Response response;
      response.status = result->status;
      for (const auto& [name, value] : result->headers) {
        std::string lower = name;
        for (auto& c : lower) {
          c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        }
        response.headers[lower] = value;
      }
      response.body = std::move(result->body);
      release(std::move(client));
      if (response.status >= 500 && call.idempotent && attempt + 1 < k_attempts) {
        last_error = "HTTP " + std::to_string(response.status) + " " + xml_text(response.body, "Code");
        continue;
      }
      return response;
    }
    return fail(ErrorCode::storage_unavailable, "S3 " + call.method + " " + call.object + " on " + m_base_url
                                                  + " failed: " + last_error);
  }

  std::string
  describe_transport_error(httplib::Error error) const
  {
    switch (error) {
    case httplib::Error::Connection:
      return "cannot connect to " + m_host + ":" + std::to_string(m_port);
    case httplib::Error::ConnectionTimeout:
      return "connection to " + m_host + ":" + std::to_string(m_port) + " timed out";
    case httplib::Error::SSLConnection:
      return "TLS handshake with " + m_host + " failed";
    case httplib::Error::SSLLoadingCerts:
      return "cannot load CA certificates" + (m_options.ca_file.empty() ? "" : " from " + m_options.ca_file);
    case httplib::Error::SSLServerVerification:
      return "TLS certificate of " + m_host + " not trusted (ca_file?)";
    default:
      return httplib::to_string(error);
    }
  }

  // Maps an unexpected answer to an Error: 404 NoSuchKey/NoSuchUpload -> not_found;
  // refused credentials or permissions -> storage_denied; a missing bucket or a
  // server error left after the retries -> storage_unavailable; anything else ->
  // io_error. Every message names the S3 code and message.
  Error
  error_of(const S3Call& call, const S3Response& response) const
  {
    std::string code = xml_text(response.body, "Code");
    std::string message = xml_text(response.body, "Message");
    if (code.empty()) {
      code = "HTTP " + std::to_string(response.status);
    }
    std::string text = "S3 " + call.method + " " + call.object + ": " + code;
    if (!message.empty()) {
      text += " (" + message + ")";
    }
    if (code == "NoSuchBucket") {
      return make_error(ErrorCode::storage_unavailable,
                        "S3 bucket '" + m_options.bucket + "' does not exist (NoSuchBucket)");
    }
    if (response.status == 404 || code == "NoSuchKey" || code == "NoSuchUpload") {
      return make_error(ErrorCode::not_found, text);
    }
    if (code == "SignatureDoesNotMatch" || code == "InvalidAccessKeyId") {
      return make_error(ErrorCode::storage_denied, text + ": authentication failed, check access_key_id and "
                                                          "secret_access_key");
    }
    if (response.status == 403) {
      return make_error(ErrorCode::storage_denied, text);
    }
    if (response.status >= 500) {
      return make_error(ErrorCode::storage_unavailable, text);
    }
    return make_error(ErrorCode::io_error, text);
  }

  // A presigned GET URL for `object`.
  std::string
  presign_get(const std::string& object, std::chrono::seconds ttl) const
  {
    sigv4::Request request;
    request.method = "GET";
    request.path = path_of(object);
    request.headers.emplace_back("host", m_host_header);
    std::string query =
      sigv4::presign_query(request, m_credentials, m_options.region, std::chrono::system_clock::now(), ttl);
    return m_base_url + sigv4::encode_path(request.path) + "?" + query;
  }

private:
  httplib::Result
  execute(httplib::Client& client, const S3Call& call, const httplib::Headers& headers, const std::string& wire)
  {
    if (call.method == "GET") {
      return client.Get(wire, headers);
    }
    if (call.method == "HEAD") {
      return client.Head(wire, headers);
    }
    if (call.method == "DELETE") {
      return client.Delete(wire, headers);
    }
    if (call.method == "POST") {
      return client.Post(wire, headers, call.body, "application/xml");
    }
    if (call.file_body) {
      FileBody body = *call.file_body;
      return client.Put(
        wire, headers, body.size,
        [body](size_t offset, size_t length, httplib::DataSink& sink) {
          std::string buffer(std::min(length, k_read_chunk), '\0');
          ssize_t n = ::pread(body.fd, buffer.data(), buffer.size(), static_cast<off_t>(body.offset + offset));
          if (n <= 0) {
            return false;
          }
          return sink.write(buffer.data(), static_cast<size_t>(n));
        },
        "application/octet-stream");
    }
    return client.Put(wire, headers, call.body, "application/octet-stream");
  }

  const S3Options& m_options;
  std::string m_scheme;
  std::string m_host;
  int m_port = 0;
  std::string m_host_header;
  std::string m_base_url;
  sigv4::Credentials m_credentials;
  std::mutex m_mutex;
  std::vector<std::unique_ptr<httplib::Client>> m_idle;
};

namespace {

struct UploadInfo {
  std::string multipart_id;
  std::string key; // blob key, "blobs/<id>"
};

struct Part {
  int number = 0;
  std::string etag;
  uint64_t size = 0;
};

struct Listing {
  std::string object;
  uint64_t size = 0;
  int64_t modified = 0;
};

} // namespace

// Everything the store does on the bucket, with object names already prefixed.
class S3Ops
{
public:
  S3Ops(const S3Options& options, S3Client& client) : m_options(options), m_client(client)
  {
    m_prefix = options.prefix.empty() ? std::string() : options.prefix + "/";
  }

  std::string
  object(const std::string& name) const
  {
    return m_prefix + name;
  }
  std::string
  info_object(const std::string& id) const
  {
    return object("_uploads/" + id + "/info");
  }
  std::string
  state_object(const std::string& id) const
  {
    return object("_uploads/" + id + "/state");
  }
  std::string
  marker_object(const std::string& key) const
  {
    return object("_quarantine/" + key);
  }
  std::filesystem::path
  spool_path(const std::string& id, int part_number) const
  {
    return m_options.spool_dir / (id + "." + std::to_string(part_number));
  }

  // Sends `call` and returns the answer if its status is in `ok_statuses`.
  Result<S3Response>
  expect(const S3Call& call, std::initializer_list<int> ok_statuses)
  {
    REGISTRY_TRY_ASSIGN(auto response, m_client.send(call));
    for (int status : ok_statuses) {
      if (response.status == status) {
        // S3 may answer 200 to CompleteMultipartUpload and put the error in the body.
        if (call.method == "POST" && response.body.find("<Error>") != std::string::npos) {
          return fail(m_client.error_of(call, response));
        }
        return response;
      }
    }
    return fail(m_client.error_of(call, response));
  }

  Result<void>
  put_object(const std::string& name, std::string body)
  {
    S3Call call;
    call.method = "PUT";
    call.object = name;
    call.body = std::move(body);
    REGISTRY_TRY(expect(call, {200}));
    return ok();
  }

  // The object's bytes; not_found if absent.
  Result<std::string>
  get_object(const std::string& name)
  {
    S3Call call;
    call.object = name;
    REGISTRY_TRY_ASSIGN(auto response, expect(call, {200}));
    return std::move(response.body);
  }

  // Size and modification time; not_found if absent.
  Result<Listing>
  head_object(const std::string& name)
  {
    S3Call call;
    call.method = "HEAD";
    call.object = name;
    REGISTRY_TRY_ASSIGN(auto response, m_client.send(call));
    if (response.status == 404) {
      return fail(ErrorCode::not_found, "S3 object " + name + " not found");
    }
    if (response.status != 200) {
      return fail(m_client.error_of(call, response));
    }
    Listing listing;
    listing.object = name;
    listing.size = std::strtoull(response.header("content-length").c_str(), nullptr, 10);
    listing.modified = parse_http_date(response.header("last-modified"));
    return listing;
  }

  // Deletes an object; absent is fine.
  Result<void>
  delete_object(const std::string& name)
  {
    S3Call call;
    call.method = "DELETE";
    call.object = name;
    REGISTRY_TRY(expect(call, {200, 204, 404}));
    return ok();
  }

  // Every object whose name starts with `prefix`, page by page.
  Result<void>
  list(const std::string& prefix, const std::function<bool(const Listing&)>& visit)
  {
    std::string token;
    while (true) {
      S3Call call;
      call.object = "";
      call.query = {{"list-type", "2"}, {"prefix", prefix}, {"max-keys", std::to_string(m_options.list_page_size)}};
      if (!token.empty()) {
        call.query.emplace_back("continuation-token", token);
      }
      REGISTRY_TRY_ASSIGN(auto response, expect(call, {200}));
      for (auto block : xml_blocks(response.body, "Contents")) {
        Listing listing;
        listing.object = xml_text(block, "Key");
        listing.size = std::strtoull(xml_text(block, "Size").c_str(), nullptr, 10);
        listing.modified = parse_iso8601(xml_text(block, "LastModified"));
        if (!visit(listing)) {
          return ok();
        }
      }
      if (xml_text(response.body, "IsTruncated") != "true") {
        return ok();
      }
      token = xml_text(response.body, "NextContinuationToken");
      if (token.empty()) {
        return fail(ErrorCode::io_error, "S3 ListObjectsV2 is truncated but gave no continuation token");
      }
    }
  }

  // The upload's info object; not_found if the upload does not exist.
  Result<UploadInfo>
  upload_info(const std::string& id)
  {
    if (!valid_upload_id(id)) {
      return invalid_upload_id(id);
    }
    {
      std::lock_guard lock(m_mutex);
      if (auto it = m_info_cache.find(id); it != m_info_cache.end()) {
        return it->second;
      }
    }
    auto body = get_object(info_object(id));
    if (!body) {
      if (body.error().code == ErrorCode::not_found) {
        return fail(ErrorCode::not_found, "no upload " + id);
      }
      return fail(body.take_error());
    }
    auto json = nlohmann::json::parse(*body, nullptr, false);
    if (json.is_discarded() || !json.is_object() || !json.contains("multipart_id") || !json.contains("key")) {
      return fail(ErrorCode::corrupt, "S3 upload info of " + id + " is unreadable");
    }
    UploadInfo info{json["multipart_id"].get<std::string>(), json["key"].get<std::string>()};
    std::lock_guard lock(m_mutex);
    m_info_cache[id] = info;
    return info;
  }

  void
  forget_info(const std::string& id)
  {
    std::lock_guard lock(m_mutex);
    m_info_cache.erase(id);
  }

  // The parts uploaded so far (ListParts, every page), by part number.
  Result<std::vector<Part>>
  list_parts(const UploadInfo& info)
  {
    std::vector<Part> parts;
    std::string marker;
    while (true) {
      S3Call call;
      call.object = object(info.key);
      call.query = {{"uploadId", info.multipart_id}, {"max-parts", std::to_string(m_options.list_page_size)}};
      if (!marker.empty()) {
        call.query.emplace_back("part-number-marker", marker);
      }
      REGISTRY_TRY_ASSIGN(auto response, expect(call, {200}));
      for (auto block : xml_blocks(response.body, "Part")) {
        Part part;
        part.number = std::atoi(xml_text(block, "PartNumber").c_str());
        part.etag = xml_text(block, "ETag");
        part.size = std::strtoull(xml_text(block, "Size").c_str(), nullptr, 10);
        parts.push_back(std::move(part));
      }
      if (xml_text(response.body, "IsTruncated") != "true") {
        break;
      }
      marker = xml_text(response.body, "NextPartNumberMarker");
      if (marker.empty()) {
        return fail(ErrorCode::io_error, "S3 ListParts is truncated but gave no marker");
      }
    }
    std::sort(parts.begin(), parts.end(), [](const Part& a, const Part& b) { return a.number < b.number; });
    return parts;
  }

  // Sends bytes [0, size) of `fd` as part `number`.
  Result<void>
  upload_part(const UploadInfo& info, int number, int fd, uint64_t size)
  {
    if (number > k_max_parts) {
      return fail(ErrorCode::size_invalid, "upload too large: S3 allows at most 10,000 parts");
    }
    // The body is not hashed for the signature (UNSIGNED-PAYLOAD); Content-MD5
    // lets S3 reject a part that changed on the way (BadDigest).
    REGISTRY_TRY_ASSIGN(auto md5, file_md5_base64(fd, size));
    S3Call call;
    call.method = "PUT";
    call.object = object(info.key);
    call.query = {{"partNumber", std::to_string(number)}, {"uploadId", info.multipart_id}};
    call.headers.emplace_back("Content-MD5", md5);
    call.file_body = FileBody{fd, 0, size};
    REGISTRY_TRY(expect(call, {200}));
    return ok();
  }

  // The size of the spool tail of upload `id` whose next part is `next_part`.
  uint64_t
  spool_size(const std::string& id, int next_part) const
  {
    struct stat st{};
    if (::stat(spool_path(id, next_part).c_str(), &st) != 0) {
      return 0;
    }
    return static_cast<uint64_t>(st.st_size);
  }

  // Removes every spool file of upload `id`.
  void
  remove_spool(const std::string& id)
  {
    std::error_code ec;
    std::string prefix = id + ".";
    for (const auto& entry : std::filesystem::directory_iterator(m_options.spool_dir, ec)) {
      if (entry.path().filename().string().rfind(prefix, 0) == 0) {
        std::filesystem::remove(entry.path(), ec);
      }
    }
  }

  // Sends the spool tail (if any) as the next part. Leaves no spool behind.
  Result<void>
  flush_tail(const std::string& id, const UploadInfo& info, const std::vector<Part>& parts, std::vector<Part>* out)
  {
    int next = parts.empty() ? 1 : parts.back().number + 1;
    auto path = spool_path(id, next);
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) {
      if (errno == ENOENT) {
        return ok();
      }
      return errno_error("cannot open spool file " + path.string());
    }
    struct stat st{};
    if (::fstat(fd.get(), &st) != 0) {
      return errno_error("cannot stat spool file " + path.string());
    }
    if (st.st_size > 0) {
      REGISTRY_TRY(upload_part(info, next, fd.get(), static_cast<uint64_t>(st.st_size)));
      if (out != nullptr) {
        out->push_back(Part{next, "", static_cast<uint64_t>(st.st_size)});
      }
    }
    std::filesystem::remove(path);
    return ok();
  }

  const S3Options&
  options() const
  {
    return m_options;
  }

private:
  const S3Options& m_options;
  S3Client& m_client;
  std::string m_prefix;
  std::mutex m_mutex;
  std::map<std::string, UploadInfo> m_info_cache; // immutable once written
};

namespace {

// Appends to the spool of one upload and sends every full part. A full part is
// sent by a background task while the next part is spooled (at most one part in
// flight, so parts complete in order); close() waits for it.
class S3UploadWriter final : public UploadWriter
{
public:
  S3UploadWriter(S3Ops& ops, std::string id, UploadInfo info, int next_part, int fd, uint64_t spooled)
    : m_ops(ops), m_id(std::move(id)), m_info(std::move(info)), m_next_part(next_part), m_fd(fd),
      m_spooled(spooled)
  {
  }
  ~S3UploadWriter() override
  {
    (void)wait_pending();
  }

  Result<void>
  write(const char* data, size_t size) override
  {
    while (size > 0) {
      uint64_t part_size = S3BlobStore::part_size_for(m_ops.options().part_size, m_next_part);
      size_t n = static_cast<size_t>(std::min<uint64_t>(size, part_size - m_spooled));
      REGISTRY_TRY(util::write_all(m_fd.get(), data, n));
      m_spooled += n;
      data += n;
      size -= n;
      if (m_spooled == part_size) {
        REGISTRY_TRY(send_part());
      }
    }
    return ok();
  }

  Result<void>
  close() override
  {
    if (::fdatasync(m_fd.get()) != 0) {
      return errno_error("cannot sync spool of upload " + m_id);
    }
    return wait_pending();
  }

private:
  struct Pending {
    std::thread thread;
    Fd fd;
    std::filesystem::path path;
    std::optional<Error> error;
  };

  // The spool holds a full part: hand it to a background upload, then start the
  // next part's spool. A crash in between is harmless: ListParts decides which
  // spool file counts, and a stale later spool is truncated when reopened.
  Result<void>
  send_part()
  {
    REGISTRY_TRY(wait_pending());
    auto pending = std::make_unique<Pending>();
    pending->fd.reset(take_fd());
    pending->path = m_ops.spool_path(m_id, m_next_part);
    Pending* raw = pending.get();
    int number = m_next_part;
    uint64_t size = m_spooled;
    raw->thread = std::thread([this, raw, number, size]() {
      auto sent = m_ops.upload_part(m_info, number, raw->fd.get(), size);
      if (!sent) {
        raw->error = sent.take_error();
      }
    });
    m_pending = std::move(pending);

    ++m_next_part;
    auto path = m_ops.spool_path(m_id, m_next_part);
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
      return errno_error("cannot create spool file " + path.string());
    }
    m_fd.reset(fd);
    m_spooled = 0;
    return ok();
  }

  // Waits for the part in flight; removes its spool once it is in S3.
  Result<void>
  wait_pending()
  {
    if (!m_pending) {
      return ok();
    }
    auto pending = std::move(m_pending);
    pending->thread.join();
    if (pending->error) {
      return fail(*pending->error);
    }
    std::error_code ec;
    std::filesystem::remove(pending->path, ec);
    return ok();
  }

  int
  take_fd()
  {
    return m_fd.release();
  }

  S3Ops& m_ops;
  std::string m_id;
  UploadInfo m_info;
  int m_next_part;
  Fd m_fd;
  uint64_t m_spooled;
  std::unique_ptr<Pending> m_pending;
};

// The ranged GET a StreamingBlobReader streams `object` with.
RangeFetch
s3_range_fetch(S3Client& client, std::string object, uint64_t size)
{
  return [&client, object = std::move(object), size](uint64_t offset,
                                                     const RangeSink& sink) -> Result<void> {
    S3Call call;
    call.object = object;
    call.headers.emplace_back("Range", "bytes=" + std::to_string(offset) + "-" + std::to_string(size - 1));
    auto [headers, wire] = client.prepare(call, sigv4::k_unsigned_payload);
    auto http = client.acquire();
    int status = 0;
    std::string error_body;
    auto result = http->Get(
      wire, headers,
      [&status](const httplib::Response& response) {
        status = response.status;
        return true;
      },
      [&](const char* data, size_t length) {
        if (status != 200 && status != 206) {
          error_body.append(data, length);
          return true;
        }
        return sink(data, length);
      });
    if (!result) {
      return fail(ErrorCode::io_error,
                  "S3 GET " + object + " failed: " + client.describe_transport_error(result.error()));
    }
    if (status != 200 && status != 206) {
      S3Call failed;
      failed.object = object;
      S3Response response;
      response.status = status;
      response.body = error_body;
      std::string message = client.error_of(failed, response).message;
      return fail(status == 404 ? ErrorCode::not_found : ErrorCode::io_error, message);
    }
    client.release(std::move(http));
    return ok();
  };
}

} // namespace

// --- options ---

Result<S3Options>
S3Options::from_settings(const std::map<std::string, std::string>& settings)
{
  static const std::vector<std::string> k_known = {"endpoint",      "region",        "bucket",   "prefix",
                                                   "addressing",    "ca_file",       "access_key_id",
                                                   "secret_access_key", "session_token", "redirect", "spool_dir"};
  S3Options options;
  std::vector<std::string> problems;
  auto get = [&](const std::string& key) -> std::optional<std::string> {
    auto it = settings.find(key);
    return it == settings.end() ? std::nullopt : std::optional<std::string>(it->second);
  };
  for (const auto& [key, value] : settings) {
    if (std::find(k_known.begin(), k_known.end(), key) == k_known.end()) {
      problems.push_back("unknown setting '" + key + "'");
    }
  }

  if (auto endpoint = get("endpoint"); !endpoint || endpoint->empty()) {
    problems.push_back("endpoint is required (http://host:port or https://host)");
  } else {
    std::string e = *endpoint;
    while (!e.empty() && e.back() == '/') {
      e.pop_back();
    }
    size_t scheme_end = e.find("://");
    std::string scheme = scheme_end == std::string::npos ? "" : e.substr(0, scheme_end);
    std::string rest = scheme_end == std::string::npos ? "" : e.substr(scheme_end + 3);
    if (scheme != "http" && scheme != "https") {
      problems.push_back("endpoint '" + *endpoint + "' must start with http:// or https://");
    } else if (rest.empty() || rest.find_first_of("/?#@ ") != std::string::npos) {
      problems.push_back("endpoint '" + *endpoint + "' must be scheme://host[:port] with no path, query or user");
    } else {
      // host[:port] or [IPv6 address][:port]
      size_t host_end = 0;
      bool host_ok = true;
      if (rest.front() == '[') {
        host_end = rest.find(']');
        host_ok = host_end != std::string::npos && host_end > 1
                  && std::all_of(rest.begin() + 1, rest.begin() + static_cast<long>(host_end), [](unsigned char c) {
                       return std::isxdigit(c) || c == ':' || c == '.';
                     });
        host_end = host_ok ? host_end + 1 : rest.size();
      } else {
        host_end = std::min(rest.find(':'), rest.size());
        host_ok = host_end > 0 && rest.find(':', host_end + 1) == std::string::npos;
      }
      if (!host_ok) {
        problems.push_back("endpoint '" + *endpoint + "' has no valid host (an IPv6 address goes in brackets)");
      } else if (host_end < rest.size()) {
        auto port = rest.substr(host_end + 1);
        bool digits = rest[host_end] == ':' && !port.empty() && port.size() <= 5
                      && std::all_of(port.begin(), port.end(), [](unsigned char c) { return std::isdigit(c); });
        if (!digits || std::stoi(port) == 0 || std::stoi(port) > 65535) {
          problems.push_back("endpoint '" + *endpoint + "' has an invalid port");
        }
      }
      options.endpoint = e;
    }
  }

  if (auto region = get("region")) {
    bool good = !region->empty() && std::all_of(region->begin(), region->end(), [](unsigned char c) {
      return std::islower(c) || std::isdigit(c) || c == '-';
    });
    if (!good) {
      problems.push_back("region '" + *region + "' must be lower-case letters, digits and '-' (e.g. us-east-1)");
    } else {
      options.region = *region;
    }
  }

  if (auto bucket = get("bucket"); !bucket || bucket->empty()) {
    problems.push_back("bucket is required");
  } else {
    const std::string& b = *bucket;
    bool chars = std::all_of(b.begin(), b.end(), [](unsigned char c) {
      return std::islower(c) || std::isdigit(c) || c == '-' || c == '.';
    });
    bool ends = std::isalnum(static_cast<unsigned char>(b.front())) && std::isalnum(static_cast<unsigned char>(b.back()));
    if (b.size() < 3 || b.size() > 63 || !chars || !ends || b.find("..") != std::string::npos) {
      problems.push_back("bucket '" + b
                         + "' is not a valid S3 bucket name (3-63 lower-case letters, digits, '-' and '.')");
    } else {
      options.bucket = b;
    }
  }

  if (auto prefix = get("prefix")) {
    std::string p = *prefix;
    while (!p.empty() && p.back() == '/') {
      p.pop_back();
    }
    bool bad = !p.empty() && (p.front() == '/' || p.find("//") != std::string::npos);
    for (const auto& segment : p.empty() ? std::vector<std::string>{} : std::vector<std::string>{p}) {
      if (segment.find("/../") != std::string::npos || segment == ".." || segment.rfind("../", 0) == 0
          || (segment.size() >= 3 && segment.compare(segment.size() - 3, 3, "/..") == 0)) {
        bad = true;
      }
    }
    for (unsigned char c : p) {
      if (c < 0x20 || c == 0x7f || c == '\\') {
        bad = true;
      }
    }
    if (bad || p.size() > 512) {
      problems.push_back("prefix '" + *prefix + "' must be a relative path like 'registry/store1' (no leading '/', '//' or '..')");
    } else {
      options.prefix = p;
    }
  }

  if (auto addressing = get("addressing")) {
    if (*addressing == "path") {
      options.addressing = Addressing::path;
    } else if (*addressing == "virtual") {
      options.addressing = Addressing::virtual_host;
    } else {
      problems.push_back("addressing '" + *addressing + "' must be 'path' or 'virtual'");
    }
  }

  if (auto ca_file = get("ca_file"); ca_file && !ca_file->empty()) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(*ca_file, ec)) {
      problems.push_back("ca_file '" + *ca_file + "' is not a readable file");
    } else if (options.endpoint.rfind("http://", 0) == 0) {
      problems.push_back("ca_file is set but endpoint is http://, not https://");
    } else {
      options.ca_file = *ca_file;
    }
  }

  auto access = get("access_key_id");
  auto secret = get("secret_access_key");
  if (!access || access->empty()) {
    problems.push_back("access_key_id is required");
  } else if (access->find_first_of(" /\t\r\n") != std::string::npos) {
    problems.push_back("access_key_id must not contain spaces or '/'");
  } else {
    options.access_key_id = *access;
  }
  if (!secret || secret->empty()) {
    problems.push_back("secret_access_key is required");
  } else {
    options.secret_access_key = *secret;
  }
  if (auto token = get("session_token")) {
    options.session_token = *token;
  }

  if (auto redirect = get("redirect")) {
    if (*redirect == "true" || *redirect == "yes" || *redirect == "1") {
      options.redirect = true;
    } else if (*redirect == "false" || *redirect == "no" || *redirect == "0") {
      options.redirect = false;
    } else {
      problems.push_back("redirect '" + *redirect + "' must be true or false");
    }
  }

  if (auto spool = get("spool_dir"); !spool || spool->empty()) {
    problems.push_back("spool_dir is required (a local directory that buffers upload chunks)");
  } else if (!std::filesystem::path(*spool).is_absolute()) {
    problems.push_back("spool_dir '" + *spool + "' must be an absolute path");
  } else {
    options.spool_dir = *spool;
  }

  if (!problems.empty()) {
    std::string message = "invalid S3 store settings: ";
    for (size_t i = 0; i < problems.size(); ++i) {
      message += (i == 0 ? "" : "; ") + problems[i];
    }
    return fail(ErrorCode::invalid_argument, message);
  }
  return options;
}

// --- the store ---

uint64_t
S3BlobStore::part_size_for(uint64_t base, int part_number)
{
  int doublings = std::min((part_number - 1) / k_part_size_step, k_max_part_doublings);
  return base << doublings;
}

S3BlobStore::S3BlobStore(S3Options options, std::unique_ptr<S3Client> client)
  : m_options(std::move(options)), m_client(std::move(client))
{
}

S3BlobStore::~S3BlobStore() = default;

Result<std::unique_ptr<S3BlobStore>>
S3BlobStore::open(const S3Options& options)
{
  if (options.endpoint.rfind("http://", 0) != 0 && options.endpoint.rfind("https://", 0) != 0) {
    return fail(ErrorCode::invalid_argument, "S3 endpoint must start with http:// or https://");
  }
  if (options.bucket.empty() || options.access_key_id.empty() || options.secret_access_key.empty()) {
    return fail(ErrorCode::invalid_argument, "S3 store needs a bucket, access_key_id and secret_access_key");
  }
  if (options.spool_dir.empty()) {
    return fail(ErrorCode::invalid_argument, "S3 store needs a spool_dir");
  }
  if (options.part_size < k_min_part_size) {
    return fail(ErrorCode::invalid_argument, "S3 part size must be at least 5 MiB");
  }
  if (options.list_page_size < 1 || options.list_page_size > 1000) {
    return fail(ErrorCode::invalid_argument, "S3 list page size must be 1-1000");
  }
  std::error_code ec;
  std::filesystem::create_directories(options.spool_dir, ec);
  if (ec) {
    return fail(ErrorCode::io_error, "cannot create spool_dir " + options.spool_dir.string() + ": " + ec.message());
  }
  auto store = std::unique_ptr<S3BlobStore>(new S3BlobStore(options, nullptr));
  store->m_client = std::make_unique<S3Client>(store->m_options);
  store->m_ops = std::make_unique<S3Ops>(store->m_options, *store->m_client);
  return store;
}

// --- check and redirect ---

Result<void>
S3BlobStore::check()
{
  const std::string& host =
    m_options.connect_address.empty() ? m_client->host() : m_options.connect_address;
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* addresses = nullptr;
  int rc = ::getaddrinfo(host.c_str(), std::to_string(m_client->port()).c_str(), &hints, &addresses);
  if (rc != 0) {
    return fail(ErrorCode::io_error, "S3 check: DNS resolution of '" + host + "' failed: " + gai_strerror(rc));
  }
  ::freeaddrinfo(addresses);

  // Names the step and explains the usual causes.
  auto explain = [&](const std::string& step, const Error& error) -> Unexpected {
    std::string message = error.message;
    std::string hint;
    if (message.find("cannot connect") != std::string::npos || message.find("timed out") != std::string::npos) {
      hint = "connect failed: is the endpoint " + m_options.endpoint + " right and the server up?";
    } else if (message.find("TLS") != std::string::npos || message.find("CA cert") != std::string::npos) {
      hint = "TLS failed: check ca_file and that the endpoint speaks https";
    } else if (message.find("SignatureDoesNotMatch") != std::string::npos
               || message.find("InvalidAccessKeyId") != std::string::npos) {
      hint = "authentication failed: check access_key_id and secret_access_key";
    } else if (message.find("NoSuchBucket") != std::string::npos) {
      hint = "bucket '" + m_options.bucket + "' does not exist";
    } else if (message.find("AccessDenied") != std::string::npos) {
      hint = "permission denied: the key may not read, write and delete in bucket '" + m_options.bucket + "'";
    }
    return fail(ErrorCode::io_error,
                "S3 check: " + step + " failed" + (hint.empty() ? "" : ": " + hint) + " [" + message + "]");
  };

  std::string name = m_ops->object("_check/" + util::random_uuid());
  std::string payload = "registryctl store check";
  if (auto put = m_ops->put_object(name, payload); !put) {
    return explain("writing a test object", put.error());
  }
  auto got = m_ops->get_object(name);
  if (!got) {
    (void)m_ops->delete_object(name);
    return explain("reading the test object back", got.error());
  }
  if (*got != payload) {
    (void)m_ops->delete_object(name);
    return fail(ErrorCode::io_error, "S3 check: the test object read back differs from what was written");
  }
  if (auto removed = m_ops->delete_object(name); !removed) {
    return explain("deleting the test object", removed.error());
  }
  return ok();
}

Result<std::optional<std::string>>
S3BlobStore::redirect_url(const std::string& key, std::chrono::seconds ttl)
{
  REGISTRY_TRY(check_blob_key(key));
  if (!m_options.redirect) {
    return std::optional<std::string>();
  }
  // SigV4 presigned URLs live at most 7 days.
  ttl = std::clamp(ttl, std::chrono::seconds(1), std::chrono::seconds(7 * 24 * 3600));
  return std::optional<std::string>(m_client->presign_get(m_ops->object(key), ttl));
}

// --- uploads ---

Result<void>
S3BlobStore::create_upload(const std::string& id)
{
  if (!valid_upload_id(id)) {
    return invalid_upload_id(id);
  }
  auto existing = m_ops->head_object(m_ops->info_object(id));
  if (existing) {
    return fail(ErrorCode::already_exists, "upload " + id + " already exists");
  }
  if (existing.error().code != ErrorCode::not_found) {
    return fail(existing.take_error());
  }
  UploadInfo info;
  info.key = "blobs/" + id;
  S3Call call;
  call.method = "POST";
  call.object = m_ops->object(info.key);
  call.query = {{"uploads", ""}};
  REGISTRY_TRY_ASSIGN(auto response, m_ops->expect(call, {200}));
  info.multipart_id = xml_text(response.body, "UploadId");
  if (info.multipart_id.empty()) {
    return fail(ErrorCode::io_error, "S3 CreateMultipartUpload gave no UploadId");
  }
  nlohmann::json json = {{"multipart_id", info.multipart_id}, {"key", info.key}};
  REGISTRY_TRY(m_ops->put_object(m_ops->info_object(id), json.dump()));
  auto path = m_ops->spool_path(id, 1);
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    return errno_error("cannot create spool file " + path.string());
  }
  ::close(fd);
  return ok();
}

Result<uint64_t>
S3BlobStore::upload_size(const std::string& id)
{
  REGISTRY_TRY_ASSIGN(auto info, m_ops->upload_info(id));
  auto parts = m_ops->list_parts(info);
  if (!parts) {
    if (parts.error().code == ErrorCode::not_found) {
      return fail(ErrorCode::not_found, "no upload " + id);
    }
    return fail(parts.take_error());
  }
  uint64_t size = 0;
  for (const auto& part : *parts) {
    size += part.size;
  }
  int next = parts->empty() ? 1 : parts->back().number + 1;
  return size + m_ops->spool_size(id, next);
}

Result<std::unique_ptr<UploadWriter>>
S3BlobStore::append_upload(const std::string& id)
{
  REGISTRY_TRY_ASSIGN(auto info, m_ops->upload_info(id));
  auto parts = m_ops->list_parts(info);
  if (!parts) {
    if (parts.error().code == ErrorCode::not_found) {
      return fail(ErrorCode::not_found, "no upload " + id);
    }
    return fail(parts.take_error());
  }
  int next = parts->empty() ? 1 : parts->back().number + 1;
  if (next > 1) {
    // A crash right after a part was sent leaves its spool behind.
    std::error_code ec;
    std::filesystem::remove(m_ops->spool_path(id, next - 1), ec);
  }
  auto path = m_ops->spool_path(id, next);
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) {
    return errno_error("cannot open spool file " + path.string());
  }
  struct stat st{};
  ::fstat(fd, &st);
  return std::unique_ptr<UploadWriter>(
    std::make_unique<S3UploadWriter>(*m_ops, id, info, next, fd, static_cast<uint64_t>(st.st_size)));
}

Result<void>
S3BlobStore::read_upload(const std::string& id, const ByteSink& sink)
{
  (void)sink;
  return fail(ErrorCode::unsupported, "S3 uploads cannot be read back (upload " + id + ")");
}

Result<void>
S3BlobStore::save_upload_state(const std::string& id, std::string_view state)
{
  REGISTRY_TRY(m_ops->upload_info(id));
  return m_ops->put_object(m_ops->state_object(id), std::string(state));
}

Result<std::optional<std::string>>
S3BlobStore::load_upload_state(const std::string& id)
{
  if (!valid_upload_id(id)) {
    return invalid_upload_id(id);
  }
  auto body = m_ops->get_object(m_ops->state_object(id));
  if (!body) {
    if (body.error().code == ErrorCode::not_found) {
      return std::optional<std::string>();
    }
    return fail(body.take_error());
  }
  return std::optional<std::string>(std::move(body).value());
}

Result<void>
S3BlobStore::sync_upload(const std::string& id)
{
  REGISTRY_TRY_ASSIGN(auto info, m_ops->upload_info(id));
  auto parts = m_ops->list_parts(info);
  if (!parts) {
    if (parts.error().code == ErrorCode::not_found) {
      // Already completed by an earlier commit attempt?
      if (m_ops->head_object(m_ops->object(info.key))) {
        return ok();
      }
      return fail(ErrorCode::not_found, "no upload " + id);
    }
    return fail(parts.take_error());
  }
  return m_ops->flush_tail(id, info, *parts, nullptr);
}

Result<std::string>
S3BlobStore::commit_upload(const std::string& id, const oci::Digest& digest)
{
  (void)digest; // the metadata maps the digest to the key; see the header
  std::string key = "blobs/" + id;
  auto info = m_ops->upload_info(id);
  if (!info) {
    if (info.error().code == ErrorCode::not_found && valid_upload_id(id) && m_ops->head_object(m_ops->object(key))) {
      return key; // committed by an earlier attempt that stopped before cleaning up
    }
    return fail(info.take_error());
  }
  auto cleanup = [&]() {
    (void)m_ops->delete_object(m_ops->state_object(id));
    (void)m_ops->delete_object(m_ops->info_object(id));
    m_ops->remove_spool(id);
    m_ops->forget_info(id);
  };
  std::string object = m_ops->object(info->key);
  auto parts = m_ops->list_parts(*info);
  if (!parts) {
    if (parts.error().code == ErrorCode::not_found && m_ops->head_object(object)) {
      cleanup();
      return info->key;
    }
    return fail(parts.take_error());
  }
  // Without sync_upload() first, the tail is still in the spool.
  std::vector<Part> all = *parts;
  REGISTRY_TRY(m_ops->flush_tail(id, *info, *parts, &all));
  if (all.size() != parts->size()) {
    REGISTRY_TRY_ASSIGN(auto listed, m_ops->list_parts(*info));
    all = std::move(listed);
  }

  if (all.empty()) {
    // Multipart needs one part; an empty blob is a plain empty object.
    REGISTRY_TRY(m_ops->put_object(object, ""));
    S3Call abort;
    abort.method = "DELETE";
    abort.object = object;
    abort.query = {{"uploadId", info->multipart_id}};
    (void)m_ops->expect(abort, {200, 204, 404});
  } else {
    std::string xml = "<CompleteMultipartUpload>";
    for (const auto& part : all) {
      xml += "<Part><PartNumber>" + std::to_string(part.number) + "</PartNumber><ETag>" + xml_escape(part.etag)
             + "</ETag></Part>";
    }
    xml += "</CompleteMultipartUpload>";
    S3Call call;
    call.method = "POST";
    call.object = object;
    call.query = {{"uploadId", info->multipart_id}};
    call.body = std::move(xml);
    auto completed = m_ops->expect(call, {200});
    if (!completed) {
      // A retried completion that already succeeded answers NoSuchUpload (or,
      // on radosgw, 500): the object is there.
      auto head = m_ops->head_object(object);
      if (!head) {
        return fail(completed.take_error());
      }
    }
  }
  cleanup();
  return info->key;
}

Result<void>
S3BlobStore::remove_upload(const std::string& id)
{
  if (!valid_upload_id(id)) {
    return invalid_upload_id(id);
  }
  auto info = m_ops->upload_info(id);
  if (info) {
    S3Call abort;
    abort.method = "DELETE";
    abort.object = m_ops->object(info->key);
    abort.query = {{"uploadId", info->multipart_id}};
    REGISTRY_TRY(m_ops->expect(abort, {200, 204, 404}));
  } else if (info.error().code != ErrorCode::not_found) {
    return fail(info.take_error());
  }
  REGISTRY_TRY(m_ops->delete_object(m_ops->state_object(id)));
  REGISTRY_TRY(m_ops->delete_object(m_ops->info_object(id)));
  m_ops->remove_spool(id);
  m_ops->forget_info(id);
  return ok();
}

Result<std::vector<ObjectInfo>>
S3BlobStore::list_uploads()
{
  std::string prefix = m_ops->object("_uploads/");
  std::map<std::string, int64_t> modified;
  REGISTRY_TRY(m_ops->list(prefix, [&](const Listing& listing) {
    std::string rest = listing.object.substr(prefix.size());
    size_t slash = rest.find('/');
    if (slash != std::string::npos) {
      std::string id = rest.substr(0, slash);
      std::string what = rest.substr(slash + 1);
      if (what == "info") {
        modified.emplace(id, 0);
      }
      auto& t = modified[id];
      t = std::max(t, listing.modified);
    }
    return true;
  }));
  std::vector<ObjectInfo> out;
  for (const auto& [id, t] : modified) {
    auto size = upload_size(id);
    if (!size) {
      if (size.error().code == ErrorCode::not_found) {
        continue; // finished or removed meanwhile, or a state without info
      }
      return fail(size.take_error());
    }
    out.push_back(ObjectInfo{id, *size, t});
  }
  return out;
}

// --- blobs ---

Result<std::string>
S3BlobStore::put_blob(const oci::Digest& digest, std::string_view bytes)
{
  std::string key = "blobs/" + std::string(digest.algorithm()) + "/" + std::string(digest.hex());
  REGISTRY_TRY(m_ops->put_object(m_ops->object(key), std::string(bytes)));
  return key;
}

Result<std::unique_ptr<BlobReader>>
S3BlobStore::open_blob(const std::string& key)
{
  REGISTRY_TRY(check_blob_key(key));
  // A quarantine marker leaves the bytes in place: no need to look for one
  // here (gc's recovery drops a marker left on a blob that kept its row).
  REGISTRY_TRY_ASSIGN(auto head, m_ops->head_object(m_ops->object(key)));
  std::string object = m_ops->object(key);
  return std::unique_ptr<BlobReader>(std::make_unique<StreamingBlobReader>(
    head.size, "S3 GET " + object, s3_range_fetch(*m_client, object, head.size)));
}

Result<ObjectInfo>
S3BlobStore::stat_blob(const std::string& key)
{
  REGISTRY_TRY(check_blob_key(key));
  REGISTRY_TRY_ASSIGN(auto head, m_ops->head_object(m_ops->object(key)));
  return ObjectInfo{key, head.size, head.modified};
}

Result<void>
S3BlobStore::remove_blob(const std::string& key)
{
  REGISTRY_TRY(check_blob_key(key));
  return m_ops->delete_object(m_ops->object(key));
}

Result<void>
S3BlobStore::quarantine_blob(const std::string& key)
{
  REGISTRY_TRY(check_blob_key(key));
  auto head = m_ops->head_object(m_ops->object(key));
  if (!head) {
    if (head.error().code == ErrorCode::not_found) {
      return ok();
    }
    return fail(head.take_error());
  }
  return m_ops->put_object(m_ops->marker_object(key), "");
}

Result<void>
S3BlobStore::restore_blob(const std::string& key)
{
  REGISTRY_TRY(check_blob_key(key));
  return m_ops->delete_object(m_ops->marker_object(key));
}

Result<void>
S3BlobStore::purge_quarantined(const std::string& key)
{
  REGISTRY_TRY(check_blob_key(key));
  // Only a quarantined blob is purged: without a marker the key may hold a
  // blob that was restored (or re-pushed) meanwhile.
  auto marker = m_ops->head_object(m_ops->marker_object(key));
  if (!marker) {
    if (marker.error().code == ErrorCode::not_found) {
      return ok();
    }
    return fail(marker.take_error());
  }
  REGISTRY_TRY(m_ops->delete_object(m_ops->object(key)));
  return m_ops->delete_object(m_ops->marker_object(key));
}

Result<std::vector<std::string>>
S3BlobStore::list_quarantined()
{
  std::string prefix = m_ops->object("_quarantine/");
  std::vector<std::string> keys;
  REGISTRY_TRY(m_ops->list(prefix, [&](const Listing& listing) {
    keys.push_back(listing.object.substr(prefix.size()));
    return true;
  }));
  return keys;
}

Result<void>
S3BlobStore::list_blobs(const std::function<bool(const ObjectInfo&)>& visit)
{
  std::string prefix = m_ops->object("blobs/");
  size_t strip = m_ops->object("").size();
  return m_ops->list(prefix, [&](const Listing& listing) {
    return visit(ObjectInfo{listing.object.substr(strip), listing.size, listing.modified});
  });
}

} // namespace registry::storage
