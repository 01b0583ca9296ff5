#pragma once

// Azure Storage request signing, written on OpenSSL (Debian has no Azure SDK):
//   - Shared Key authorization for Blob service requests (version 2009-09-19 and
//     later): an HMAC-SHA256, keyed with the base64-decoded account key, over a
//     fixed list of standard headers, the x-ms- headers and the resource;
//   - service SAS tokens for read-only blob URLs (signed version 2020-12-06,
//     which adds the encryption-scope line to the string to sign).
//
// Everything here is pure (no I/O, no clock): callers pass the time in, which is
// what lets the unit tests check fixed inputs against known signatures.

#include "common/util/base64.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace registry::storage::azure {

// Standard base64 with padding (common/util/base64).
using util::base64_decode;
using util::base64_encode;
// Raw 32-byte HMAC-SHA256 of `data` under `key`.
std::string hmac_sha256(std::string_view key, std::string_view data);

// "Mon, 23 Nov 2026 04:55:00 GMT" (the x-ms-date format).
std::string http_date(int64_t unix_seconds);
// "2026-11-23T04:55:00Z" (the SAS st/se format).
std::string iso8601(int64_t unix_seconds);

// Percent-encodes everything but RFC 3986 unreserved characters; `/` too unless
// `keep_slash`.
std::string percent_encode(std::string_view text, bool keep_slash);

using HeaderList = std::vector<std::pair<std::string, std::string>>;

// What the Shared Key signature covers in one request.
struct RequestToSign {
  std::string method;    // "GET", "PUT", ...
  std::string path;      // the URL path as sent (percent-encoded), starting with '/'
  HeaderList query;      // decoded query parameters, any order
  HeaderList headers;    // every header that will be sent, any case, any order
  uint64_t content_length = 0;
};

// The Blob service string to sign for `request` by `account`:
//   VERB, Content-Encoding, Content-Language, Content-Length (empty when 0),
//   Content-MD5, Content-Type, Date, If-Modified-Since, If-Match, If-None-Match,
//   If-Unmodified-Since, Range — one per line — then the canonicalized x-ms-
//   headers (lowercase names, sorted, "name:value\n") and the canonicalized
//   resource "/<account><path>" followed by "\n<name>:<values>" for each query
//   parameter (lowercase names, sorted; repeated values sorted and joined by ',').
std::string shared_key_string_to_sign(std::string_view account, const RequestToSign& request);

// The Authorization header value "SharedKey <account>:<signature>", with
// `key` the decoded (raw) account key.
std::string shared_key_authorization(std::string_view account, std::string_view key,
                                     const RequestToSign& request);

// A service SAS for one blob.
struct BlobSas {
  std::string account;
  std::string container;
  std::string blob;        // decoded blob name
  std::string permissions; // "r"
  int64_t start = 0;       // unix seconds
  int64_t expiry = 0;      // unix seconds
  std::string protocol;    // "https" or "https,http"; empty to omit
  std::string version = "2020-12-06";
};

// The service SAS string to sign (signed version 2020-12-06 and later): sp, st,
// se, "/blob/<account>/<container>/<blob>", si, sip, spr, sv, sr, snapshot time,
// encryption scope, rscc, rscd, rsce, rscl, rsct — joined by '\n'.
std::string service_sas_string_to_sign(const BlobSas& sas);

// The query string (no leading '?') "sv=..&sr=b&sp=..&st=..&se=..[&spr=..]&sig=..",
// values percent-encoded.
std::string service_sas_query(const BlobSas& sas, std::string_view key);

} // namespace registry::storage::azure
