#pragma once

// The only ErrorCode -> (HTTP status, OCI error code) table, and the writer of the
// spec's error envelope {"errors":[{"code","message","detail"}]}.

#include "common/error.hpp"

#include <string>

namespace httplib {
struct Response;
}

namespace registry::server {

struct WireError {
  int status;
  const char* code; // one of the distribution-spec codes
};

WireError to_wire(ErrorCode code);

// The JSON envelope for `error`.
std::string error_body(const WireError& wire, const Error& error);

// Sets status, Content-Type and the envelope on `res`. HEAD responses get the
// status and headers only (httplib drops the body of HEAD responses itself).
void write_error(httplib::Response& res, const Error& error);

} // namespace registry::server
