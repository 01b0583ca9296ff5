#include "server/api_error.hpp"

#include "common/util/log.hpp"

#include <httplib.h>
#include <nlohmann/json.hpp>

namespace registry::server {

WireError
to_wire(ErrorCode code)
{
  switch (code) {
  case ErrorCode::blob_unknown:
    return {404, "BLOB_UNKNOWN"};
  case ErrorCode::blob_upload_invalid:
    return {400, "BLOB_UPLOAD_INVALID"};
  case ErrorCode::blob_upload_unknown:
    return {404, "BLOB_UPLOAD_UNKNOWN"};
  case ErrorCode::upload_range_invalid:
    // Distribution's RANGE_INVALID is not a spec code; the spec asks for 416.
    return {416, "BLOB_UPLOAD_INVALID"};
  case ErrorCode::digest_invalid:
    return {400, "DIGEST_INVALID"};
  case ErrorCode::manifest_blob_unknown:
    return {400, "MANIFEST_BLOB_UNKNOWN"};
  case ErrorCode::manifest_invalid:
    return {400, "MANIFEST_INVALID"};
  case ErrorCode::manifest_unknown:
    return {404, "MANIFEST_UNKNOWN"};
  case ErrorCode::name_invalid:
    return {400, "NAME_INVALID"};
  case ErrorCode::name_unknown:
  case ErrorCode::not_found:
    return {404, "NAME_UNKNOWN"};
  case ErrorCode::size_invalid:
    return {400, "SIZE_INVALID"};
  case ErrorCode::unauthorized:
    return {401, "UNAUTHORIZED"};
  case ErrorCode::denied:
    return {403, "DENIED"};
  case ErrorCode::unsupported:
    return {405, "UNSUPPORTED"};
  case ErrorCode::too_many_requests:
    return {429, "TOOMANYREQUESTS"};
  case ErrorCode::invalid_argument:
    // Bad query parameters (n, last) and other malformed requests that have no
    // dedicated spec code: 400 with the generic spec code.
    return {400, "UNSUPPORTED"};
  case ErrorCode::conflict:
    // e.g. deleting a manifest an index still references
    return {409, "DENIED"};
  case ErrorCode::storage_unavailable:
    // Distribution's code for a registry that cannot serve for now.
    return {503, "UNAVAILABLE"};
  case ErrorCode::storage_denied:
    return {403, "DENIED"};
  case ErrorCode::already_exists:
  case ErrorCode::io_error:
  case ErrorCode::corrupt:
  case ErrorCode::internal:
    return {500, "UNKNOWN"};
  }
  return {500, "UNKNOWN"};
}

std::string
error_body(const WireError& wire, const Error& error)
{
  nlohmann::json entry = {{"code", wire.code}, {"message", error.message}};
  if (!error.detail.empty()) {
    entry["detail"] = error.detail;
  } else {
    entry["detail"] = nlohmann::json::object();
  }
  return nlohmann::json{{"errors", nlohmann::json::array({entry})}}.dump(
    -1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void
write_error(httplib::Response& res, const Error& error)
{
  auto wire = to_wire(error.code);
  res.status = wire.status;
  if (error.code == ErrorCode::storage_unavailable || error.code == ErrorCode::storage_denied) {
    // The store's own message names its endpoint, bucket and account: that is
    // for the server log and `registryctl store check`, not for every client.
    util::log_warn("blob store: " + error.message);
    bool down = error.code == ErrorCode::storage_unavailable;
    Error shown{error.code,
                down ? "the registry's storage for this feed is unreachable; try again later"
                     : "the registry's storage for this feed refused the registry's credentials; "
                       "an administrator can run `registryctl store check`",
                {}};
    if (down) {
      res.set_header("Retry-After", "10");
    }
    res.set_content(error_body(wire, shown), "application/json");
    return;
  }
  res.set_content(error_body(wire, error), "application/json");
}

} // namespace registry::server
