#include "common/storage/azure_blob_store.hpp"

#include "common/storage/azure_auth.hpp"
#include "common/storage/stream_reader.hpp"
#include "common/util/log.hpp"
#include "common/util/strings.hpp"
#include "common/util/uuid.hpp"

#include <httplib.h>

#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <deque>
#include <filesystem>
#include <future>
#include <thread>

namespace registry::storage {

namespace {

// x-ms-version pinned for every request: Azurite 3.35 rejects versions newer
// than it knows, and this one has everything used here.
constexpr const char* k_api_version = "2024-11-04";
// Small writes are gathered into blocks of this size; one write larger than
// this goes out directly in blocks of at most k_max_block.
constexpr size_t k_buffer_block = 16 << 20;
constexpr size_t k_max_block = 64 << 20;
constexpr int k_attempts = 4;
constexpr const char* k_quarantine_meta = "x-ms-meta-registryquarantined";
constexpr size_t k_pool_max = 8;

int64_t
now_seconds()
{
  return static_cast<int64_t>(std::time(nullptr));
}

// "Mon, 23 Nov 2026 04:55:00 GMT" -> unix seconds (0 if unparsable).
int64_t
parse_http_date(const std::string& text)
{
  std::tm tm{};
  if (strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S", &tm) == nullptr) {
    return 0;
  }
  return static_cast<int64_t>(timegm(&tm));
}


// The text of the first <tag>...</tag> in `xml` at or after `from`; nullopt if
// absent. A self-closed <tag/> gives "".
std::optional<std::string>
xml_element(std::string_view xml, std::string_view tag, size_t from = 0)
{
  std::string open = "<" + std::string(tag) + ">";
  std::string empty = "<" + std::string(tag) + " />";
  std::string empty2 = "<" + std::string(tag) + "/>";
  size_t start = xml.find(open, from);
  size_t e1 = xml.find(empty, from);
  size_t e2 = xml.find(empty2, from);
  size_t first_empty = std::min(e1, e2);
  if (first_empty < start) {
    return std::string();
  }
  if (start == std::string_view::npos) {
    return std::nullopt;
  }
  start += open.size();
  size_t end = xml.find("</" + std::string(tag) + ">", start);
  if (end == std::string_view::npos) {
    return std::nullopt;
  }
  return util::xml_unescape(xml.substr(start, end - start));
}

// Calls `visit` with the inner text of each <tag>...</tag> in `xml`.
void
for_each_element(std::string_view xml, std::string_view tag, const std::function<void(std::string_view)>& visit)
{
  std::string open = "<" + std::string(tag) + ">";
  std::string close = "</" + std::string(tag) + ">";
  size_t pos = 0;
  while (true) {
    size_t start = xml.find(open, pos);
    if (start == std::string_view::npos) {
      return;
    }
    start += open.size();
    size_t end = xml.find(close, start);
    if (end == std::string_view::npos) {
      return;
    }
    visit(xml.substr(start, end - start));
    pos = end + close.size();
  }
}

bool
valid_account(const std::string& account)
{
  if (account.size() < 3 || account.size() > 24) {
    return false;
  }
  return std::all_of(account.begin(), account.end(),
                     [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); });
}

bool
valid_container(const std::string& name)
{
  if (name.size() < 3 || name.size() > 63 || name.front() == '-' || name.back() == '-'
      || name.find("--") != std::string::npos) {
    return false;
  }
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
}

bool
valid_prefix(const std::string& prefix)
{
  if (prefix.size() > 512) {
    return false;
  }
  for (const auto& part : util::split(prefix, '/')) {
    if (part.empty() || part == "." || part == "..") {
      return false;
    }
    for (char c : part) {
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) {
        return false;
      }
    }
  }
  return true;
}

// The sp= value of a SAS token, "" if absent.
std::string
sas_permissions(const std::string& token)
{
  for (const auto& part : util::split(token, '&')) {
    if (util::starts_with(part, "sp=")) {
      return part.substr(3);
    }
  }
  return {};
}

std::string
block_id(uint64_t index)
{
  char text[32];
  std::snprintf(text, sizeof text, "block-%012llu", static_cast<unsigned long long>(index));
  return azure::base64_encode(text);
}

struct Block {
  std::string id;      // base64, as sent
  std::string decoded; // sorts in upload order
  uint64_t size = 0;
};

std::string
describe_transport(httplib::Error error, const std::string& where)
{
  switch (error) {
  case httplib::Error::Connection:
  case httplib::Error::ConnectionTimeout:
    return "connect: cannot connect to " + where;
  case httplib::Error::SSLConnection:
  case httplib::Error::SSLLoadingCerts:
  case httplib::Error::SSLServerVerification:
    return "TLS: handshake or certificate verification with " + where + " failed ("
           + httplib::to_string(error) + ")";
  default:
    return "request to " + where + " failed: " + httplib::to_string(error);
  }
}

} // namespace

// One Blob service request. `name` is the decoded blob name, or empty for a
// container-level request.
struct AzureBlobStore::Request {
  Request(std::string method_, std::string name_, azure::HeaderList query_ = {}, azure::HeaderList headers_ = {},
          std::string body_ = {}, std::string content_type_ = {})
    : method(std::move(method_)), name(std::move(name_)), query(std::move(query_)), headers(std::move(headers_)),
      body(std::move(body_)), content_type(std::move(content_type_))
  {
  }
  std::string method;
  std::string name;
  azure::HeaderList query;
  azure::HeaderList headers;
  std::string body;
  std::string content_type;
  bool idempotent = true;
  // When set, a 2xx body is streamed here instead of collected; return false to stop.
  std::function<bool(const char*, size_t)> receiver;
};

struct AzureBlobStore::Response {
  int status = 0;
  httplib::Headers headers;
  std::string body;
  std::string error_code; // x-ms-error-code or <Code> of the XML body

  std::string
  header(const std::string& name) const
  {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
  bool
  ok() const
  {
    return status >= 200 && status < 300;
  }
};

struct AzureBlobStore::Listing {
  struct Item {
    std::string name;
    uint64_t size = 0;
    int64_t modified = 0;
    bool quarantined = false;
  };
  std::vector<Item> items;
  std::string next_marker;
};

namespace {

// Turns an unexpected answer into an Error with a clear message.
Unexpected
azure_failure(const AzureBlobStore::Response& res, const std::string& what)
{
  std::string code = res.error_code.empty() ? std::to_string(res.status) : res.error_code;
  std::string message = what + ": Azure answered " + std::to_string(res.status) + " " + code;
  if (res.status == 403) {
    return fail(ErrorCode::storage_denied,
                message + " (authentication or permission refused: check account, account_key or sas_token)");
  }
  if (code == "ContainerNotFound") {
    return fail(ErrorCode::storage_unavailable, message + " (the container does not exist)");
  }
  if (res.status == 404) {
    return fail(ErrorCode::not_found, message);
  }
  if (res.status == 409 && code == "BlobAlreadyExists") {
    return fail(ErrorCode::already_exists, message);
  }
  if (res.status == 412) {
    return fail(ErrorCode::conflict, message);
  }
  if (res.status >= 500) {
    return fail(ErrorCode::storage_unavailable, message);
  }
  return fail(ErrorCode::io_error, message);
}

} // namespace

// --- options ---

Result<AzureOptions>
AzureOptions::from_settings(const std::map<std::string, std::string>& settings)
{
  static const char* known[] = {"endpoint", "account", "container", "prefix", "ca_file",
                                "account_key", "sas_token", "redirect"};
  for (const auto& [key, value] : settings) {
    if (std::find_if(std::begin(known), std::end(known), [&](const char* k) { return key == k; })
        == std::end(known)) {
      return fail(ErrorCode::invalid_argument, "azure: unknown setting '" + key + "'");
    }
  }
  auto get = [&](const char* key) {
    auto it = settings.find(key);
    return it == settings.end() ? std::string() : std::string(util::trim(it->second));
  };

  AzureOptions o;
  o.endpoint = get("endpoint");
  if (o.endpoint.empty()) {
    return fail(ErrorCode::invalid_argument,
                "azure: 'endpoint' is required (e.g. https://ACCOUNT.blob.core.windows.net)");
  }
  bool https = util::starts_with(o.endpoint, "https://");
  if (!https && !util::starts_with(o.endpoint, "http://")) {
    return fail(ErrorCode::invalid_argument, "azure: 'endpoint' must start with http:// or https://: " + o.endpoint);
  }
  while (o.endpoint.size() > 8 && o.endpoint.back() == '/') {
    o.endpoint.pop_back();
  }
  std::string rest = o.endpoint.substr(https ? 8 : 7);
  if (rest.empty() || rest.front() == '/' || rest.front() == ':' || rest.find_first_of("?#@ ") != std::string::npos) {
    return fail(ErrorCode::invalid_argument, "azure: 'endpoint' has no valid host: " + o.endpoint);
  }

  o.account = get("account");
  if (!valid_account(o.account)) {
    return fail(ErrorCode::invalid_argument,
                "azure: 'account' must be 3-24 lowercase letters or digits, got '" + o.account + "'");
  }
  o.container = get("container");
  if (!valid_container(o.container)) {
    return fail(ErrorCode::invalid_argument,
                "azure: 'container' must be 3-63 lowercase letters, digits or single hyphens, got '"
                  + o.container + "'");
  }
  o.prefix = get("prefix");
  while (!o.prefix.empty() && o.prefix.front() == '/') {
    o.prefix.erase(0, 1);
  }
  while (!o.prefix.empty() && o.prefix.back() == '/') {
    o.prefix.pop_back();
  }
  if (!o.prefix.empty() && !valid_prefix(o.prefix)) {
    return fail(ErrorCode::invalid_argument,
                "azure: 'prefix' must be '/'-separated names of letters, digits, '-', '_' or '.', got '"
                  + o.prefix + "'");
  }
  o.ca_file = get("ca_file");
  if (!o.ca_file.empty()) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(o.ca_file, ec)) {
      return fail(ErrorCode::invalid_argument, "azure: 'ca_file' is not a readable file: " + o.ca_file);
    }
  }
  o.account_key = get("account_key");
  o.sas_token = get("sas_token");
  if (!o.sas_token.empty() && o.sas_token.front() == '?') {
    o.sas_token.erase(0, 1);
  }
  if (o.account_key.empty() == o.sas_token.empty()) {
    return fail(ErrorCode::invalid_argument, "azure: set exactly one of 'account_key' and 'sas_token'");
  }
  if (!o.account_key.empty()) {
    auto decoded = azure::base64_decode(o.account_key);
    if (!decoded || decoded->empty()) {
      return fail(ErrorCode::invalid_argument, "azure: 'account_key' is not valid base64");
    }
  }
  if (!o.sas_token.empty() && o.sas_token.find("sig=") == std::string::npos) {
    return fail(ErrorCode::invalid_argument, "azure: 'sas_token' has no sig= parameter");
  }
  std::string redirect = util::to_lower(get("redirect"));
  if (redirect.empty() || redirect == "true" || redirect == "yes" || redirect == "1") {
    o.redirect = true;
  } else if (redirect == "false" || redirect == "no" || redirect == "0") {
    o.redirect = false;
  } else {
    return fail(ErrorCode::invalid_argument, "azure: 'redirect' must be true or false, got '" + redirect + "'");
  }
  return o;
}

// --- store ---

AzureBlobStore::AzureBlobStore(AzureOptions options) : m_options(std::move(options)) {}

AzureBlobStore::~AzureBlobStore() = default;

Result<std::unique_ptr<AzureBlobStore>>
AzureBlobStore::open(const AzureOptions& options)
{
  std::map<std::string, std::string> settings = {
    {"endpoint", options.endpoint},   {"account", options.account},
    {"container", options.container}, {"prefix", options.prefix},
    {"ca_file", options.ca_file},     {"account_key", options.account_key},
    {"sas_token", options.sas_token}, {"redirect", options.redirect ? "true" : "false"}};
  REGISTRY_TRY_ASSIGN(AzureOptions checked, AzureOptions::from_settings(settings));
  checked.list_page_size = std::clamp(options.list_page_size, 1, 5000);
  std::unique_ptr<AzureBlobStore> store(new AzureBlobStore(std::move(checked)));
  const AzureOptions& o = store->m_options;
  if (!o.account_key.empty()) {
    store->m_key = *azure::base64_decode(o.account_key);
  }
  size_t scheme_end = o.endpoint.find("://") + 3;
  size_t path_start = o.endpoint.find('/', scheme_end);
  if (path_start == std::string::npos) {
    store->m_scheme_host_port = o.endpoint;
  } else {
    store->m_scheme_host_port = o.endpoint.substr(0, path_start);
    store->m_base_path = o.endpoint.substr(path_start);
  }
  return store;
}

std::unique_ptr<httplib::Client>
AzureBlobStore::make_client() const
{
  auto client = std::make_unique<httplib::Client>(m_scheme_host_port);
  client->set_connection_timeout(10);
  client->set_read_timeout(120);
  client->set_write_timeout(120);
  client->set_tcp_nodelay(true);
  client->set_keep_alive(true);
  client->set_decompress(false);
  if (!m_options.ca_file.empty()) {
    client->set_ca_cert_path(m_options.ca_file);
  }
  client->enable_server_certificate_verification(true);
  return client;
}

std::unique_ptr<httplib::Client>
AzureBlobStore::take_client()
{
  {
    std::lock_guard lock(m_pool_mutex);
    if (!m_pool.empty()) {
      auto client = std::move(m_pool.back());
      m_pool.pop_back();
      return client;
    }
  }
  return make_client();
}

void
AzureBlobStore::give_back(std::unique_ptr<httplib::Client> client)
{
  std::lock_guard lock(m_pool_mutex);
  if (m_pool.size() < k_pool_max) {
    m_pool.push_back(std::move(client));
  }
}

std::string
AzureBlobStore::blob_name(const std::string& relative) const
{
  return m_options.prefix.empty() ? relative : m_options.prefix + "/" + relative;
}

std::string
AzureBlobStore::blob_path(const std::string& name) const
{
  std::string path = m_base_path + "/" + m_options.container;
  if (!name.empty()) {
    path += "/" + azure::percent_encode(name, true);
  }
  return path;
}

Result<std::string>
AzureBlobStore::upload_blob_name(const std::string& id) const
{
  if (!util::is_uuid(id)) {
    return fail(ErrorCode::invalid_argument, "not an upload id: " + util::printable(id));
  }
  return blob_name("blobs/" + id);
}

Result<std::string>
AzureBlobStore::key_blob_name(const std::string& key) const
{
  std::string_view rest(key);
  bool valid = util::starts_with(rest, "blobs/") && rest.size() > 6 && rest.size() <= 200;
  if (valid) {
    rest.remove_prefix(6);
    valid = std::all_of(rest.begin(), rest.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
    });
  }
  if (!valid) {
    return fail(ErrorCode::invalid_argument, "not a blob key of this store: " + util::printable(key));
  }
  return blob_name(key);
}

Result<AzureBlobStore::Response>
AzureBlobStore::send_once(httplib::Client& client, const Request& request) const
{
  httplib::Request req;
  req.method = request.method;
  std::string path = blob_path(request.name);
  std::string query;
  for (const auto& [name, value] : request.query) {
    query += (query.empty() ? "" : "&") + azure::percent_encode(name, false) + "="
             + azure::percent_encode(value, false);
  }
  if (!m_options.sas_token.empty()) {
    query += (query.empty() ? "" : "&") + m_options.sas_token;
  }
  req.path = query.empty() ? path : path + "?" + query;

  azure::HeaderList headers = request.headers;
  headers.emplace_back("x-ms-date", azure::http_date(now_seconds()));
  headers.emplace_back("x-ms-version", k_api_version);
  if (!request.body.empty() && !request.content_type.empty()) {
    headers.emplace_back("Content-Type", request.content_type);
  }
  if (!m_key.empty()) {
    azure::RequestToSign to_sign{request.method, path, request.query, headers, request.body.size()};
    headers.emplace_back("Authorization", azure::shared_key_authorization(m_options.account, m_key, to_sign));
  }
  for (const auto& [name, value] : headers) {
    req.headers.emplace(name, value);
  }
  req.body = request.body;

  Response response;
  if (request.receiver) {
    req.response_handler = [&](const httplib::Response& r) {
      response.status = r.status;
      return true;
    };
    req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
      if (response.status >= 200 && response.status < 300) {
        return request.receiver(data, n);
      }
      response.body.append(data, n);
      return true;
    };
  }
  httplib::Response res;
  httplib::Error error = httplib::Error::Success;
  if (!client.send(req, res, error)) {
    return fail(ErrorCode::storage_unavailable, describe_transport(error, m_scheme_host_port));
  }
  response.status = res.status;
  response.headers = std::move(res.headers);
  if (!request.receiver) {
    response.body = std::move(res.body);
  }
  if (!response.ok()) {
    response.error_code = response.header("x-ms-error-code");
    if (response.error_code.empty()) {
      response.error_code = xml_element(response.body, "Code").value_or("");
    }
  }
  return response;
}

Result<AzureBlobStore::Response>
AzureBlobStore::send(const Request& request)
{
  std::chrono::milliseconds backoff(100);
  for (int attempt = 1;; ++attempt) {
    auto client = take_client();
    auto result = send_once(*client, request);
    bool retry = request.idempotent && attempt < k_attempts
                 && (!result || result->status >= 500 || result->status == 408);
    if (result) {
      give_back(std::move(client)); // a transport error drops the connection with the client
    }
    if (!retry) {
      return result;
    }
    util::log_warn("azure: " + request.method + " " + request.name + " failed ("
                   + (result ? std::to_string(result->status) : result.error().message) + "), retrying");
    std::this_thread::sleep_for(backoff);
    backoff *= 4;
  }
}

// --- check ---

Result<void>
AzureBlobStore::check()
{
  // DNS first: httplib reports a name that does not resolve as a connection error.
  std::string host = m_scheme_host_port.substr(m_scheme_host_port.find("://") + 3);
  if (!host.empty() && host.front() == '[') {
    host = host.substr(1, host.find(']') - 1);
  } else if (auto colon = host.rfind(':'); colon != std::string::npos) {
    host = host.substr(0, colon);
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (int rc = getaddrinfo(host.c_str(), nullptr, &hints, &found); rc != 0) {
    return fail(ErrorCode::io_error, "azure check: DNS: cannot resolve '" + host + "': " + gai_strerror(rc));
  }
  freeaddrinfo(found);

  std::string name = blob_name("check/" + util::random_uuid());
  const std::string payload = "registryctl storage check";
  auto step = [&](const char* what, const Request& request, int expect) -> Result<Response> {
    auto res = send(request);
    if (!res) {
      return fail(ErrorCode::io_error, "azure check (" + std::string(what) + "): " + res.error().message);
    }
    if (res->status == expect) {
      return res;
    }
    std::string code = res->error_code;
    std::string reason;
    bool permission = code == "AuthorizationPermissionMismatch" || code == "AuthorizationResourceTypeMismatch";
    if (res->status == 403 && permission) {
      reason = "permission: the credentials may not " + std::string(what) + " (403 " + code + ")";
    } else if (res->status == 403 && !m_options.sas_token.empty()) {
      reason = "the SAS token was refused (403 " + code + "): it is invalid, expired, or lacks the permission to "
               + std::string(what) + " (needs r, w and d on the container)";
    } else if (res->status == 403) {
      reason = "authentication failed (403 " + code + "): check account '" + m_options.account
               + "' and its account_key";
    } else if (code == "ContainerNotFound") {
      reason = "container '" + m_options.container + "' does not exist";
    } else {
      reason = "unexpected answer " + std::to_string(res->status) + " " + code;
    }
    return fail(ErrorCode::io_error, "azure check (" + std::string(what) + "): " + reason);
  };
  Request put{"PUT", name, {}, {{"x-ms-blob-type", "BlockBlob"}}, payload, "application/octet-stream"};
  REGISTRY_TRY(step("write", put, 201));
  Request get{"GET", name, {}, {}, {}, {}};
  REGISTRY_TRY_ASSIGN(auto got, step("read", get, 200));
  if (got.body != payload) {
    return fail(ErrorCode::io_error, "azure check (read): the blob read back differs from what was written");
  }
  Request del{"DELETE", name, {}, {}, {}, {}};
  REGISTRY_TRY(step("delete", del, 202));
  return ok();
}

Result<std::optional<std::string>>
AzureBlobStore::redirect_url(const std::string& key, std::chrono::seconds ttl)
{
  REGISTRY_TRY_ASSIGN(std::string name, key_blob_name(key));
  if (!m_options.redirect) {
    return std::optional<std::string>();
  }
  std::string url = m_scheme_host_port + blob_path(name);
  if (m_key.empty()) {
    // Only a SAS token: hand it out only when it grants read and nothing else
    // (a token that may also write or delete must never reach clients); else the
    // registry serves the bytes. The token's own expiry applies, not `ttl`.
    if (sas_permissions(m_options.sas_token) != "r") {
      return std::optional<std::string>();
    }
    return std::optional<std::string>(url + "?" + m_options.sas_token);
  }
  azure::BlobSas sas;
  sas.account = m_options.account;
  sas.container = m_options.container;
  sas.blob = name;
  sas.permissions = "r";
  int64_t now = now_seconds();
  sas.start = now - 300; // tolerate clock skew between us and the storage service
  sas.expiry = now + std::max<int64_t>(ttl.count(), 1);
  sas.protocol = util::starts_with(m_options.endpoint, "https://") ? "https" : "https,http";
  return std::optional<std::string>(url + "?" + azure::service_sas_query(sas, m_key));
}

// --- uploads ---

namespace {

Result<std::vector<Block>>
parse_block_list(const std::string& xml)
{
  std::vector<Block> blocks;
  auto uncommitted = xml_element(xml, "UncommittedBlocks");
  if (!uncommitted) {
    return blocks;
  }
  bool bad = false;
  for_each_element(*uncommitted, "Block", [&](std::string_view block) {
    Block b;
    b.id = xml_element(block, "Name").value_or("");
    auto decoded = azure::base64_decode(b.id);
    auto size = util::parse_uint(xml_element(block, "Size").value_or(""));
    if (!decoded || !size) {
      bad = true;
      return;
    }
    b.decoded = *decoded;
    b.size = *size;
    blocks.push_back(std::move(b));
  });
  if (bad) {
    return fail(ErrorCode::corrupt, "azure: unreadable block list");
  }
  std::sort(blocks.begin(), blocks.end(), [](const Block& a, const Block& b) { return a.decoded < b.decoded; });
  return blocks;
}

} // namespace

Result<void>
AzureBlobStore::require_upload(const std::string& id)
{
  REGISTRY_TRY(upload_blob_name(id));
  Request head{"HEAD", blob_name("uploads/" + id), {}, {}, {}, {}};
  REGISTRY_TRY_ASSIGN(auto res, send(head));
  if (res.status == 404) {
    return fail(ErrorCode::not_found, "upload " + id + " does not exist");
  }
  if (!res.ok()) {
    return azure_failure(res, "upload " + id);
  }
  return ok();
}

// The upload's uncommitted blocks in upload order.
static Result<std::vector<Block>>
uncommitted_blocks(const std::string& id,
                   const std::function<Result<AzureBlobStore::Response>(const AzureBlobStore::Request&)>& send,
                   const std::string& name)
{
  AzureBlobStore::Request req{"GET", name, {{"comp", "blocklist"}, {"blocklisttype", "uncommitted"}}, {}, {}, {}};
  REGISTRY_TRY_ASSIGN(auto res, send(req));
  if (res.status == 404) {
    return std::vector<Block>(); // no block yet
  }
  if (!res.ok()) {
    return azure_failure(res, "block list of upload " + id);
  }
  return parse_block_list(res.body);
}

Result<void>
AzureBlobStore::create_upload(const std::string& id)
{
  REGISTRY_TRY(upload_blob_name(id));
  Request put{"PUT", blob_name("uploads/" + id), {}, {{"x-ms-blob-type", "BlockBlob"}, {"If-None-Match", "*"}}, {}, {}};
  put.idempotent = false; // a retry after a lost answer would see 409
  REGISTRY_TRY_ASSIGN(auto res, send(put));
  if (res.status == 409 || res.status == 412) {
    return fail(ErrorCode::already_exists, "upload " + id + " already exists");
  }
  if (!res.ok()) {
    return azure_failure(res, "create upload " + id);
  }
  return ok();
}

Result<uint64_t>
AzureBlobStore::upload_size(const std::string& id)
{
  REGISTRY_TRY(require_upload(id));
  REGISTRY_TRY_ASSIGN(std::string name, upload_blob_name(id));
  REGISTRY_TRY_ASSIGN(auto blocks, uncommitted_blocks(id, [this](const Request& r) { return send(r); }, name));
  uint64_t total = 0;
  for (const auto& b : blocks) {
    total += b.size;
  }
  return total;
}

// Sends each full block in the background while the next one fills (at most one
// block in flight, so a failed block is never followed by a later one: the
// upload stays a prefix of what was written).
class AzureUploadWriter final : public UploadWriter
{
public:
  AzureUploadWriter(AzureBlobStore& store, std::string id, std::string name, uint64_t next_block)
    : m_store(store), m_id(std::move(id)), m_name(std::move(name)), m_next(next_block)
  {
  }
  ~AzureUploadWriter() override
  {
    if (m_inflight.valid()) {
      (void)m_inflight.get();
    }
  }

  Result<void>
  write(const char* data, size_t size) override
  {
    if (m_buffer.size() + size <= k_buffer_block) {
      append_to_buffer(data, size);
      if (m_buffer.size() == k_buffer_block) {
        return flush();
      }
      return ok();
    }
    REGISTRY_TRY(flush());
    while (size >= k_buffer_block) {
      size_t n = std::min(size, k_max_block);
      REGISTRY_TRY(start_block(std::string(data, n)));
      data += n;
      size -= n;
    }
    append_to_buffer(data, size);
    return ok();
  }

  Result<void>
  close() override
  {
    REGISTRY_TRY(flush());
    return wait_inflight();
  }

private:
  void
  append_to_buffer(const char* data, size_t size)
  {
    if (m_buffer.capacity() < k_buffer_block) {
      m_buffer.reserve(k_buffer_block);
    }
    m_buffer.append(data, size);
  }

  Result<void>
  flush()
  {
    if (m_buffer.empty()) {
      return ok();
    }
    std::string block;
    block.swap(m_buffer);
    return start_block(std::move(block));
  }

  Result<void>
  wait_inflight()
  {
    if (!m_inflight.valid()) {
      return ok();
    }
    return m_inflight.get();
  }

  Result<void>
  start_block(std::string bytes)
  {
    REGISTRY_TRY(wait_inflight());
    uint64_t index = m_next++;
    m_inflight = std::async(std::launch::async, [this, index, bytes = std::move(bytes)]() mutable -> Result<void> {
      AzureBlobStore::Request req{"PUT",          m_name, {{"comp", "block"}, {"blockid", block_id(index)}}, {},
                                  std::move(bytes), "application/octet-stream"};
      REGISTRY_TRY_ASSIGN(auto res, m_store.send(req));
      if (res.status != 201) {
        return azure_failure(res, "append to upload " + m_id);
      }
      return ok();
    });
    return ok();
  }

  AzureBlobStore& m_store;
  std::string m_id;
  std::string m_name;
  uint64_t m_next;
  std::string m_buffer;
  std::future<Result<void>> m_inflight;
};

Result<std::unique_ptr<UploadWriter>>
AzureBlobStore::append_upload(const std::string& id)
{
  REGISTRY_TRY(require_upload(id));
  REGISTRY_TRY_ASSIGN(std::string name, upload_blob_name(id));
  REGISTRY_TRY_ASSIGN(auto blocks, uncommitted_blocks(id, [this](const Request& r) { return send(r); }, name));
  uint64_t next = 0;
  if (!blocks.empty()) {
    // Continue after the highest counter (ids are "block-<12 digits>").
    auto parsed = util::parse_uint(std::string_view(blocks.back().decoded).substr(6));
    if (!parsed || !util::starts_with(blocks.back().decoded, "block-")) {
      return fail(ErrorCode::corrupt, "upload " + id + " has a block this store did not write");
    }
    next = *parsed + 1;
  }
  return std::unique_ptr<UploadWriter>(new AzureUploadWriter(*this, id, name, next));
}

Result<void>
AzureBlobStore::read_upload(const std::string& id, const ByteSink& sink)
{
  (void)sink;
  REGISTRY_TRY(require_upload(id));
  return fail(ErrorCode::unsupported, "azure: uncommitted blocks cannot be read back; use the saved upload state");
}

Result<void>
AzureBlobStore::save_upload_state(const std::string& id, std::string_view state)
{
  REGISTRY_TRY(upload_blob_name(id));
  // Replace only the marker that exists now (If-Match on its ETag), so a
  // removed upload stays removed. (Azurite ignores If-Match: * on a missing blob.)
  Request head{"HEAD", blob_name("uploads/" + id)};
  REGISTRY_TRY_ASSIGN(auto props, send(head));
  if (props.status == 404) {
    return fail(ErrorCode::not_found, "upload " + id + " does not exist");
  }
  if (!props.ok()) {
    return azure_failure(props, "save state of upload " + id);
  }
  Request put{"PUT",
              blob_name("uploads/" + id),
              {},
              {{"x-ms-blob-type", "BlockBlob"}, {"If-Match", props.header("ETag")}},
              "S" + std::string(state),
              "application/octet-stream"};
  put.idempotent = false; // a retry after a lost answer would see 412
  REGISTRY_TRY_ASSIGN(auto res, send(put));
  if (res.status == 404 || res.status == 412) {
    return fail(ErrorCode::not_found, "upload " + id + " does not exist");
  }
  if (!res.ok()) {
    return azure_failure(res, "save state of upload " + id);
  }
  return ok();
}

Result<std::optional<std::string>>
AzureBlobStore::load_upload_state(const std::string& id)
{
  REGISTRY_TRY(upload_blob_name(id));
  Request get{"GET", blob_name("uploads/" + id), {}, {}, {}, {}};
  REGISTRY_TRY_ASSIGN(auto res, send(get));
  if (res.status == 404) {
    return fail(ErrorCode::not_found, "upload " + id + " does not exist");
  }
  if (!res.ok()) {
    return azure_failure(res, "load state of upload " + id);
  }
  if (res.body.empty() || res.body.front() != 'S') {
    return std::optional<std::string>();
  }
  return std::optional<std::string>(res.body.substr(1));
}

Result<void>
AzureBlobStore::sync_upload(const std::string& id)
{
  // Put Block is durable when it answers 201; nothing to flush.
  return require_upload(id);
}

Result<std::string>
AzureBlobStore::commit_upload(const std::string& id, const oci::Digest& digest)
{
  (void)digest;
  REGISTRY_TRY(require_upload(id));
  REGISTRY_TRY_ASSIGN(std::string name, upload_blob_name(id));
  REGISTRY_TRY_ASSIGN(auto blocks, uncommitted_blocks(id, [this](const Request& r) { return send(r); }, name));
  std::string xml = "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>";
  for (const auto& b : blocks) {
    // <Latest>: the uncommitted block, or the committed one of the same id when
    // a retry follows a commit whose answer was lost, so a retry is harmless.
    xml += "<Latest>" + b.id + "</Latest>";
  }
  xml += "</BlockList>";
  Request put{"PUT", name, {{"comp", "blocklist"}}, {}, xml, "application/xml"};
  REGISTRY_TRY_ASSIGN(auto res, send(put));
  if (res.status != 201) {
    return azure_failure(res, "commit upload " + id);
  }
  // The blob is durable now; the marker only says "in progress".
  Request del{"DELETE", blob_name("uploads/" + id), {}, {}, {}, {}};
  if (auto removed = send(del); !removed || (!removed->ok() && removed->status != 404)) {
    util::log_warn("azure: upload " + id + " committed but its marker was not removed");
  }
  return "blobs/" + id;
}

Result<void>
AzureBlobStore::remove_upload(const std::string& id)
{
  REGISTRY_TRY_ASSIGN(std::string name, upload_blob_name(id));
  // A committed blob belongs to the metadata (or to gc) now: keep it.
  Request head{"HEAD", name, {}, {}, {}, {}};
  REGISTRY_TRY_ASSIGN(auto props, send(head));
  if (props.status == 404) {
    // Drop uncommitted blocks: committing an empty list discards them (only if
    // nothing was committed meanwhile), then delete that empty blob.
    std::string empty = "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList></BlockList>";
    Request drop{"PUT", name, {{"comp", "blocklist"}}, {{"If-None-Match", "*"}}, empty, "application/xml"};
    drop.idempotent = false;
    REGISTRY_TRY_ASSIGN(auto dropped, send(drop));
    if (dropped.status == 201) {
      Request del{"DELETE", name, {}, {{"If-Match", dropped.header("ETag")}}, {}, {}};
      REGISTRY_TRY_ASSIGN(auto deleted, send(del));
      if (!deleted.ok() && deleted.status != 404 && deleted.status != 412) {
        return azure_failure(deleted, "remove upload " + id);
      }
    } else if (dropped.status != 409 && dropped.status != 412) {
      return azure_failure(dropped, "remove upload " + id);
    }
  } else if (!props.ok()) {
    return azure_failure(props, "remove upload " + id);
  }
  Request del{"DELETE", blob_name("uploads/" + id), {}, {}, {}, {}};
  REGISTRY_TRY_ASSIGN(auto res, send(del));
  if (!res.ok() && res.status != 404) {
    return azure_failure(res, "remove upload " + id);
  }
  return ok();
}

Result<std::vector<ObjectInfo>>
AzureBlobStore::list_uploads()
{
  std::vector<ObjectInfo> uploads;
  std::string prefix = blob_name("uploads/");
  REGISTRY_TRY(list_all(prefix, false, [&](const std::string& name, uint64_t, int64_t modified, bool) {
    std::string id = name.substr(prefix.size());
    if (util::is_uuid(id)) {
      uploads.push_back(ObjectInfo{id, 0, modified});
    }
    return true;
  }));
  for (auto& upload : uploads) {
    REGISTRY_TRY_ASSIGN(std::string name, upload_blob_name(upload.key));
    REGISTRY_TRY_ASSIGN(auto blocks,
                        uncommitted_blocks(upload.key, [this](const Request& r) { return send(r); }, name));
    for (const auto& b : blocks) {
      upload.size += b.size;
    }
  }
  return uploads;
}

// --- blobs ---

Result<std::string>
AzureBlobStore::put_blob(const oci::Digest& digest, std::string_view bytes)
{
  std::string key = "blobs/" + std::string(digest.algorithm()) + "-" + std::string(digest.hex());
  REGISTRY_TRY_ASSIGN(std::string name, key_blob_name(key));
  Request put{"PUT", name, {}, {{"x-ms-blob-type", "BlockBlob"}}, std::string(bytes), "application/octet-stream"};
  REGISTRY_TRY_ASSIGN(auto res, send(put));
  if (res.status != 201) {
    return azure_failure(res, "store blob " + digest.str());
  }
  return key;
}

Result<ObjectInfo>
AzureBlobStore::head_and_restore(const std::string& key, std::string* etag)
{
  REGISTRY_TRY_ASSIGN(std::string name, key_blob_name(key));
  Request head{"HEAD", name, {}, {}, {}, {}};
  REGISTRY_TRY_ASSIGN(auto res, send(head));
  if (res.status == 404) {
    return fail(ErrorCode::not_found, "blob " + key + " does not exist");
  }
  if (!res.ok()) {
    return azure_failure(res, "blob " + key);
  }
  bool restored = false;
  if (!res.header(k_quarantine_meta).empty()) {
    // Left in quarantine by a crash while its row survived: bring it back.
    REGISTRY_TRY(restore_blob(key));
    restored = true;
  }
  if (etag) {
    *etag = restored ? std::string() : res.header("ETag"); // restoring changed the ETag
  }
  ObjectInfo info;
  info.key = key;
  info.size = util::parse_uint(res.header("Content-Length")).value_or(0);
  info.modified = parse_http_date(res.header("Last-Modified"));
  return info;
}

// Streams a blob with one ranged GET kept open while reads stay sequential: a
// background thread receives into a bounded buffer; a read elsewhere restarts it.
Result<std::unique_ptr<BlobReader>>
AzureBlobStore::open_blob(const std::string& key)
{
  std::string etag;
  REGISTRY_TRY_ASSIGN(ObjectInfo info, head_and_restore(key, &etag));
  REGISTRY_TRY_ASSIGN(std::string name, key_blob_name(key));
  // No If-Match pinning: a key is either one upload's own blob or named by its
  // digest, so a blob written again under a key holds the same bytes, and a
  // read that restarts after such a rewrite must not fail.
  (void)etag;
  uint64_t size = info.size;
  // The connection is kept from one GET of the reader to the next, and dropped
  // when one fails (its state is then unknown).
  auto client = std::make_shared<std::unique_ptr<httplib::Client>>();
  RangeFetch fetch = [this, name, size, client](uint64_t offset, const RangeSink& sink) -> Result<void> {
    if (!*client) {
      *client = make_client();
    }
    // An explicit first-last range: Azurite mishandles suffix ranges.
    Request req{"GET", name, {}, {}, {}, {}};
    req.headers.emplace_back("x-ms-range", "bytes=" + std::to_string(offset) + "-" + std::to_string(size - 1));
    req.receiver = sink;
    auto res = send_once(**client, req);
    if (!res) {
      client->reset();
      return fail(res.take_error());
    }
    if (!res->ok()) {
      return azure_failure(*res, "read blob " + name);
    }
    return ok();
  };
  return std::unique_ptr<BlobReader>(
    std::make_unique<StreamingBlobReader>(size, "azure: blob " + name, std::move(fetch)));
}

Result<ObjectInfo>
AzureBlobStore::stat_blob(const std::string& key)
{
  return head_and_restore(key, nullptr);
}

Result<void>
AzureBlobStore::remove_blob(const std::string& key)
{
  REGISTRY_TRY_ASSIGN(std::string name, key_blob_name(key));
  Request del{"DELETE", name, {}, {}, {}, {}};
  REGISTRY_TRY_ASSIGN(auto res, send(del));
  if (!res.ok() && res.status != 404) {
    return azure_failure(res, "remove blob " + key);
  }
  return ok();
}

Result<void>
AzureBlobStore::quarantine_blob(const std::string& key)
{
  REGISTRY_TRY_ASSIGN(std::string name, key_blob_name(key));
  std::string marker = blob_name("quarantine/" + key.substr(6));
  // Marker first: a crash after it leaves an unflagged blob that purge keeps.
  Request put{"PUT", marker, {}, {{"x-ms-blob-type", "BlockBlob"}}, {}, {}};
  REGISTRY_TRY_ASSIGN(auto written, send(put));
  if (written.status != 201) {
    return azure_failure(written, "quarantine blob " + key);
  }
  Request flag{"PUT", name, {{"comp", "metadata"}}, {{k_quarantine_meta, "1"}}, {}, {}};
  REGISTRY_TRY_ASSIGN(auto res, send(flag));
  if (res.status == 404) {
    Request del{"DELETE", marker, {}, {}, {}, {}};
    (void)send(del);
    return ok();
  }
  if (!res.ok()) {
    return azure_failure(res, "quarantine blob " + key);
  }
  return ok();
}

Result<void>
AzureBlobStore::restore_blob(const std::string& key)
{
  REGISTRY_TRY_ASSIGN(std::string name, key_blob_name(key));
  Request head{"HEAD", name, {}, {}, {}, {}};
  REGISTRY_TRY_ASSIGN(auto props, send(head));
  if (props.ok() && !props.header(k_quarantine_meta).empty()) {
    // Set Blob Metadata without x-ms-meta- headers clears the flag. If-Match: a
    // blob written again meanwhile carries no flag anyway.
    Request clear{"PUT", name, {{"comp", "metadata"}}, {{"If-Match", props.header("ETag")}}, {}, {}};
    REGISTRY_TRY_ASSIGN(auto res, send(clear));
    if (!res.ok() && res.status != 404 && res.status != 412) {
      return azure_failure(res, "restore blob " + key);
    }
  } else if (!props.ok() && props.status != 404) {
    return azure_failure(props, "restore blob " + key);
  }
  Request del{"DELETE", blob_name("quarantine/" + key.substr(6)), {}, {}, {}, {}};
  REGISTRY_TRY_ASSIGN(auto res, send(del));
  if (!res.ok() && res.status != 404) {
    return azure_failure(res, "restore blob " + key);
  }
  return ok();
}

Result<void>
AzureBlobStore::purge_quarantined(const std::string& key)
{
  REGISTRY_TRY_ASSIGN(std::string name, key_blob_name(key));
  Request head{"HEAD", name, {}, {}, {}, {}};
  REGISTRY_TRY_ASSIGN(auto props, send(head));
  if (props.ok() && !props.header(k_quarantine_meta).empty()) {
    // Only the flagged version: bytes written again under the key survive.
    Request del{"DELETE", name, {}, {{"If-Match", props.header("ETag")}}, {}, {}};
    REGISTRY_TRY_ASSIGN(auto res, send(del));
    if (!res.ok() && res.status != 404 && res.status != 412) {
      return azure_failure(res, "purge blob " + key);
    }
  } else if (!props.ok() && props.status != 404) {
    return azure_failure(props, "purge blob " + key);
  }
  Request del{"DELETE", blob_name("quarantine/" + key.substr(6)), {}, {}, {}, {}};
  REGISTRY_TRY_ASSIGN(auto res, send(del));
  if (!res.ok() && res.status != 404) {
    return azure_failure(res, "purge blob " + key);
  }
  return ok();
}

Result<std::vector<std::string>>
AzureBlobStore::list_quarantined()
{
  std::vector<std::string> keys;
  std::string prefix = blob_name("quarantine/");
  REGISTRY_TRY(list_all(prefix, false, [&](const std::string& name, uint64_t, int64_t, bool) {
    keys.push_back("blobs/" + name.substr(prefix.size()));
    return true;
  }));
  return keys;
}

Result<void>
AzureBlobStore::list_blobs(const std::function<bool(const ObjectInfo&)>& visit)
{
  std::string prefix = blob_name("blobs/");
  return list_all(prefix, true, [&](const std::string& name, uint64_t size, int64_t modified, bool quarantined) {
    if (quarantined) {
      return true;
    }
    return visit(ObjectInfo{"blobs/" + name.substr(prefix.size()), size, modified});
  });
}

Result<AzureBlobStore::Listing>
AzureBlobStore::list_page(const std::string& prefix, const std::string& marker, bool metadata)
{
  Request req{"GET", "", {{"restype", "container"}, {"comp", "list"}, {"prefix", prefix},
                          {"maxresults", std::to_string(m_options.list_page_size)}}, {}, {}, {}};
  if (!marker.empty()) {
    req.query.emplace_back("marker", marker);
  }
  if (metadata) {
    req.query.emplace_back("include", "metadata");
  }
  REGISTRY_TRY_ASSIGN(auto res, send(req));
  if (!res.ok()) {
    return azure_failure(res, "list " + prefix);
  }
  Listing listing;
  for_each_element(res.body, "Blob", [&](std::string_view blob) {
    Listing::Item item;
    item.name = xml_element(blob, "Name").value_or("");
    item.size = util::parse_uint(xml_element(blob, "Content-Length").value_or("")).value_or(0);
    item.modified = parse_http_date(xml_element(blob, "Last-Modified").value_or(""));
    item.quarantined = blob.find("<registryquarantined>") != std::string_view::npos;
    if (!item.name.empty()) {
      listing.items.push_back(std::move(item));
    }
  });
  listing.next_marker = xml_element(res.body, "NextMarker").value_or("");
  return listing;
}

Result<void>
AzureBlobStore::list_all(const std::string& prefix, bool metadata,
                         const std::function<bool(const std::string&, uint64_t, int64_t, bool)>& visit)
{
  std::string marker;
  do {
    REGISTRY_TRY_ASSIGN(Listing page, list_page(prefix, marker, metadata));
    for (const auto& item : page.items) {
      if (!visit(item.name, item.size, item.modified, item.quarantined)) {
        return ok();
      }
    }
    marker = page.next_marker;
  } while (!marker.empty());
  return ok();
}

} // namespace registry::storage
