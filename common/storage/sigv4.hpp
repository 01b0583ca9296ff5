#pragma once

// AWS Signature Version 4 for S3, on OpenSSL: header signing (the Authorization
// header) and presigned URLs (query-string authentication).
//
// Paths are given unencoded ("/bucket/a b/c"); each segment is URI-encoded once
// with S3's rules (unreserved characters kept, '/' between segments kept, no
// double encoding). The caller must send exactly encode_path(path) and
// canonical_query(query) on the wire, so the server computes the same canonical
// request.

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace registry::storage::sigv4 {

using Pairs = std::vector<std::pair<std::string, std::string>>;

struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token; // empty unless temporary credentials
};

// The payload hash for bodies that are streamed and not hashed up front.
inline constexpr const char* k_unsigned_payload = "UNSIGNED-PAYLOAD";
// SHA-256 of the empty string.
inline constexpr const char* k_empty_sha256 =
  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

struct Request {
  std::string method;   // "GET", "PUT", ...
  std::string path;     // unencoded absolute path
  Pairs query;          // unencoded names and values
  Pairs headers;        // must include "host"; names in any case
  std::string payload_hash = k_unsigned_payload; // hex SHA-256 or UNSIGNED-PAYLOAD
};

// Percent-encodes everything but A-Z a-z 0-9 - . _ ~ (and '/' unless
// `encode_slash`), with upper-case hex.
std::string uri_encode(std::string_view text, bool encode_slash);
// The path with each segment encoded; "/" for an empty path.
std::string encode_path(std::string_view path);
// name=value pairs, encoded, sorted by encoded name then value, joined by '&'.
std::string canonical_query(const Pairs& query);
// "20130524T000000Z" in UTC.
std::string amz_date(std::chrono::system_clock::time_point time);

std::string sha256_hex(std::string_view data);
std::string hmac_sha256(std::string_view key, std::string_view data); // raw bytes
std::string hex(std::string_view bytes);

// The canonical request, and through `signed_headers` the ';'-joined lower-case
// names of the headers it covers (all headers of `request`).
std::string canonical_request(const Request& request, std::string& signed_headers);
// "AWS4-HMAC-SHA256\n<amz date>\n<scope>\n<hex sha256 of canonical request>".
std::string string_to_sign(const std::string& amz_date_value, const std::string& scope,
                           const std::string& canonical);
// The derived signing key (raw bytes) for a date (YYYYMMDD), region and service.
std::string signing_key(const std::string& secret, const std::string& date, const std::string& region,
                        const std::string& service);

// Adds x-amz-date, x-amz-content-sha256 (request.payload_hash), x-amz-security-token
// (when the credentials carry one) and Authorization to request.headers.
void sign_headers(Request& request, const Credentials& credentials, const std::string& region,
                  std::chrono::system_clock::time_point now, const std::string& service = "s3");

// The encoded query string of a presigned URL for `request` (method, path, host
// header, extra query parameters), valid `expires` from `now`: the caller appends
// it after '?' to scheme://host + encode_path(path). Only "host" is signed; the
// payload is UNSIGNED-PAYLOAD.
std::string presign_query(const Request& request, const Credentials& credentials, const std::string& region,
                          std::chrono::system_clock::time_point now, std::chrono::seconds expires,
                          const std::string& service = "s3");

} // namespace registry::storage::sigv4
