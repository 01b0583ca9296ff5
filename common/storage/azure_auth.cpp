#include "common/storage/azure_auth.hpp"

#include "common/util/strings.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <ctime>
#include <map>

namespace registry::storage::azure {

namespace {

// Header values are signed with runs of whitespace folded to one space and the
// ends trimmed.
std::string
fold_whitespace(std::string_view value)
{
  std::string out;
  bool in_space = false;
  for (char c : util::trim(value)) {
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      in_space = true;
      continue;
    }
    if (in_space && !out.empty()) {
      out.push_back(' ');
    }
    in_space = false;
    out.push_back(c);
  }
  return out;
}

std::string
header_value(const HeaderList& headers, std::string_view name)
{
  for (const auto& [key, value] : headers) {
    if (util::to_lower(key) == name) {
      return value;
    }
  }
  return {};
}

std::string
format_time(int64_t unix_seconds, const char* format)
{
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buffer[64];
  size_t n = std::strftime(buffer, sizeof buffer, format, &tm);
  return std::string(buffer, n);
}

} // namespace

std::string
hmac_sha256(std::string_view key, std::string_view data)
{
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest, &length);
  return std::string(reinterpret_cast<const char*>(digest), length);
}

std::string
http_date(int64_t unix_seconds)
{
  return format_time(unix_seconds, "%a, %d %b %Y %H:%M:%S GMT");
}

std::string
iso8601(int64_t unix_seconds)
{
  return format_time(unix_seconds, "%Y-%m-%dT%H:%M:%SZ");
}

std::string
percent_encode(std::string_view text, bool keep_slash)
{
  return util::percent_encode(text, keep_slash ? "/" : "");
}

std::string
shared_key_string_to_sign(std::string_view account, const RequestToSign& request)
{
  std::string s = request.method + "\n";
  for (const char* name : {"content-encoding", "content-language"}) {
    s += header_value(request.headers, name) + "\n";
  }
  s += (request.content_length == 0 ? std::string() : std::to_string(request.content_length)) + "\n";
  for (const char* name : {"content-md5", "content-type", "date", "if-modified-since", "if-match",
                           "if-none-match", "if-unmodified-since", "range"}) {
    s += header_value(request.headers, name) + "\n";
  }

  std::map<std::string, std::string> ms_headers;
  for (const auto& [name, value] : request.headers) {
    std::string lower = util::to_lower(name);
    if (util::starts_with(lower, "x-ms-")) {
      ms_headers[lower] = fold_whitespace(value);
    }
  }
  for (const auto& [name, value] : ms_headers) {
    s += name + ":" + value + "\n";
  }

  s += "/";
  s += account;
  s += request.path;
  std::map<std::string, std::vector<std::string>> params;
  for (const auto& [name, value] : request.query) {
    params[util::to_lower(name)].push_back(value);
  }
  for (auto& [name, values] : params) {
    std::sort(values.begin(), values.end());
    s += "\n" + name + ":" + util::join(values, ",");
  }
  return s;
}

std::string
shared_key_authorization(std::string_view account, std::string_view key, const RequestToSign& request)
{
  std::string signature = base64_encode(hmac_sha256(key, shared_key_string_to_sign(account, request)));
  return "SharedKey " + std::string(account) + ":" + signature;
}

std::string
service_sas_string_to_sign(const BlobSas& sas)
{
  std::string resource = "/blob/" + sas.account + "/" + sas.container + "/" + sas.blob;
  std::vector<std::string> lines = {
    sas.permissions,
    sas.start != 0 ? iso8601(sas.start) : std::string(),
    iso8601(sas.expiry),
    resource,
    "", // signed identifier (stored access policy): not used
    "", // signed IP range: not used
    sas.protocol,
    sas.version,
    "b", // signed resource: a blob
    "",  // snapshot time
    "",  // encryption scope
    "",  // rscc
    "",  // rscd
    "",  // rsce
    "",  // rscl
    "",  // rsct
  };
  return util::join(lines, "\n");
}

std::string
service_sas_query(const BlobSas& sas, std::string_view key)
{
  std::string signature = base64_encode(hmac_sha256(key, service_sas_string_to_sign(sas)));
  std::string q = "sv=" + percent_encode(sas.version, false) + "&sr=b&sp=" + percent_encode(sas.permissions, false);
  if (sas.start != 0) {
    q += "&st=" + percent_encode(iso8601(sas.start), false);
  }
  q += "&se=" + percent_encode(iso8601(sas.expiry), false);
  if (!sas.protocol.empty()) {
    q += "&spr=" + percent_encode(sas.protocol, false);
  }
  q += "&sig=" + percent_encode(signature, false);
  return q;
}

} // namespace registry::storage::azure
