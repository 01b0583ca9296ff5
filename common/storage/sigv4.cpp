#include "common/storage/sigv4.hpp"

#include "common/util/strings.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <algorithm>
#include <ctime>
#include <map>

namespace registry::storage::sigv4 {

namespace {

constexpr const char* k_algorithm = "AWS4-HMAC-SHA256";

std::string
lower(std::string_view text)
{
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// Trims both ends and collapses inner runs of spaces into one, as SigV4 asks.
std::string
normalize_value(std::string_view value)
{
  std::string out;
  bool in_space = false;
  for (char c : value) {
    if (c == ' ' || c == '\t') {
      in_space = !out.empty();
      continue;
    }
    if (in_space) {
      out.push_back(' ');
      in_space = false;
    }
    out.push_back(c);
  }
  return out;
}

std::string
scope_of(const std::string& date, const std::string& region, const std::string& service)
{
  return date + "/" + region + "/" + service + "/aws4_request";
}

} // namespace

std::string
uri_encode(std::string_view text, bool encode_slash)
{
  return util::percent_encode(text, encode_slash ? "" : "/");
}

std::string
encode_path(std::string_view path)
{
  if (path.empty()) {
    return "/";
  }
  // Encoding with '/' kept encodes every segment on its own.
  return uri_encode(path, false);
}

std::string
canonical_query(const Pairs& query)
{
  std::vector<std::pair<std::string, std::string>> encoded;
  encoded.reserve(query.size());
  for (const auto& [name, value] : query) {
    encoded.emplace_back(uri_encode(name, true), uri_encode(value, true));
  }
  std::sort(encoded.begin(), encoded.end());
  std::string out;
  for (const auto& [name, value] : encoded) {
    if (!out.empty()) {
      out.push_back('&');
    }
    out += name;
    out.push_back('=');
    out += value;
  }
  return out;
}

std::string
amz_date(std::chrono::system_clock::time_point time)
{
  std::time_t t = std::chrono::system_clock::to_time_t(time);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buffer[32];
  std::strftime(buffer, sizeof(buffer), "%Y%m%dT%H%M%SZ", &tm);
  return buffer;
}

std::string
hex(std::string_view bytes)
{
  static constexpr char k_hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(k_hex[c >> 4]);
    out.push_back(k_hex[c & 0xf]);
  }
  return out;
}

std::string
sha256_hex(std::string_view data)
{
  unsigned char digest[SHA256_DIGEST_LENGTH];
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr);
  return hex(std::string_view(reinterpret_cast<const char*>(digest), length));
}

std::string
hmac_sha256(std::string_view key, std::string_view data)
{
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), out, &length);
  return std::string(reinterpret_cast<const char*>(out), length);
}

std::string
canonical_request(const Request& request, std::string& signed_headers)
{
  std::map<std::string, std::string> headers;
  for (const auto& [name, value] : request.headers) {
    std::string key = lower(name);
    std::string normalized = normalize_value(value);
    auto [it, inserted] = headers.emplace(key, normalized);
    if (!inserted) {
      it->second += "," + normalized;
    }
  }
  std::string canonical_headers;
  signed_headers.clear();
  for (const auto& [name, value] : headers) {
    canonical_headers += name + ":" + value + "\n";
    if (!signed_headers.empty()) {
      signed_headers.push_back(';');
    }
    signed_headers += name;
  }
  return request.method + "\n" + encode_path(request.path) + "\n" + canonical_query(request.query) + "\n"
         + canonical_headers + "\n" + signed_headers + "\n" + request.payload_hash;
}

std::string
string_to_sign(const std::string& amz_date_value, const std::string& scope, const std::string& canonical)
{
  return std::string(k_algorithm) + "\n" + amz_date_value + "\n" + scope + "\n" + sha256_hex(canonical);
}

std::string
signing_key(const std::string& secret, const std::string& date, const std::string& region,
            const std::string& service)
{
  std::string key = hmac_sha256("AWS4" + secret, date);
  key = hmac_sha256(key, region);
  key = hmac_sha256(key, service);
  return hmac_sha256(key, "aws4_request");
}

void
sign_headers(Request& request, const Credentials& credentials, const std::string& region,
             std::chrono::system_clock::time_point now, const std::string& service)
{
  std::string date_time = amz_date(now);
  std::string date = date_time.substr(0, 8);
  request.headers.emplace_back("x-amz-date", date_time);
  request.headers.emplace_back("x-amz-content-sha256", request.payload_hash);
  if (!credentials.session_token.empty()) {
    request.headers.emplace_back("x-amz-security-token", credentials.session_token);
  }
  std::string signed_headers;
  std::string canonical = canonical_request(request, signed_headers);
  std::string scope = scope_of(date, region, service);
  std::string signature =
    hex(hmac_sha256(signing_key(credentials.secret_access_key, date, region, service),
                    string_to_sign(date_time, scope, canonical)));
  request.headers.emplace_back("Authorization", std::string(k_algorithm) + " Credential="
                                                   + credentials.access_key_id + "/" + scope
                                                   + ",SignedHeaders=" + signed_headers
                                                   + ",Signature=" + signature);
}

std::string
presign_query(const Request& request, const Credentials& credentials, const std::string& region,
              std::chrono::system_clock::time_point now, std::chrono::seconds expires,
              const std::string& service)
{
  std::string date_time = amz_date(now);
  std::string date = date_time.substr(0, 8);
  std::string scope = scope_of(date, region, service);

  Request signed_request;
  signed_request.method = request.method;
  signed_request.path = request.path;
  signed_request.payload_hash = k_unsigned_payload;
  for (const auto& [name, value] : request.headers) {
    if (lower(name) == "host") {
      signed_request.headers.emplace_back("host", value);
    }
  }
  signed_request.query = request.query;
  signed_request.query.emplace_back("X-Amz-Algorithm", k_algorithm);
  signed_request.query.emplace_back("X-Amz-Credential", credentials.access_key_id + "/" + scope);
  signed_request.query.emplace_back("X-Amz-Date", date_time);
  signed_request.query.emplace_back("X-Amz-Expires", std::to_string(expires.count()));
  if (!credentials.session_token.empty()) {
    signed_request.query.emplace_back("X-Amz-Security-Token", credentials.session_token);
  }
  signed_request.query.emplace_back("X-Amz-SignedHeaders", "host");

  std::string signed_headers;
  std::string canonical = canonical_request(signed_request, signed_headers);
  std::string signature =
    hex(hmac_sha256(signing_key(credentials.secret_access_key, date, region, service),
                    string_to_sign(date_time, scope, canonical)));
  return canonical_query(signed_request.query) + "&X-Amz-Signature=" + signature;
}

} // namespace registry::storage::sigv4
