#pragma once

// The error vocabulary shared by every layer. Lower layers (drivers, util) use the
// generic kinds (not_found, io_error, invalid_argument); stores and services
// translate them to the domain codes named after the OCI distribution-spec codes.
// The server maps codes to HTTP (server/api_error.cpp), the CLI to exit statuses
// (cli/exit_codes.hpp).

#include <string>

namespace registry {

enum class ErrorCode {
  // OCI distribution-spec vocabulary
  blob_unknown,
  blob_upload_invalid,
  blob_upload_unknown,
  upload_range_invalid, // wire: 416 BLOB_UPLOAD_INVALID
  digest_invalid,
  manifest_blob_unknown,
  manifest_invalid,
  manifest_unknown,
  name_invalid,
  name_unknown,
  size_invalid,
  unauthorized,
  denied,
  unsupported,
  too_many_requests,
  // generic kinds
  invalid_argument, // bad user input that has no more specific code
  not_found,        // a path or row that does not exist (lower layers only)
  already_exists,
  conflict, // a state that forbids the operation (e.g. manifest still referenced)
  io_error,
  corrupt,
  // a blob store (S3, Azure) that cannot be reached or fails: the message names
  // the endpoint and step for logs and `store check`; clients get 503
  storage_unavailable,
  // a blob store that refuses the registry's credentials or permissions: a
  // configuration fault that retrying cannot mend; clients get 403
  storage_denied,
  internal,
};

// Stable snake_case name of `code`, used in logs and the CLI's JSON errors.
const char* to_string(ErrorCode code);

struct Error {
  ErrorCode code = ErrorCode::internal;
  std::string message; // safe to show to clients
  std::string detail;  // optional machine-useful text (a digest, a name)
};

inline Error
make_error(ErrorCode code, std::string message, std::string detail = {})
{
  return Error{code, std::move(message), std::move(detail)};
}

} // namespace registry
