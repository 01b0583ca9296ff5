#include "common/error.hpp"

namespace registry {

const char*
to_string(ErrorCode code)
{
  switch (code) {
  case ErrorCode::blob_unknown:
    return "blob_unknown";
  case ErrorCode::blob_upload_invalid:
    return "blob_upload_invalid";
  case ErrorCode::blob_upload_unknown:
    return "blob_upload_unknown";
  case ErrorCode::upload_range_invalid:
    return "upload_range_invalid";
  case ErrorCode::digest_invalid:
    return "digest_invalid";
  case ErrorCode::manifest_blob_unknown:
    return "manifest_blob_unknown";
  case ErrorCode::manifest_invalid:
    return "manifest_invalid";
  case ErrorCode::manifest_unknown:
    return "manifest_unknown";
  case ErrorCode::name_invalid:
    return "name_invalid";
  case ErrorCode::name_unknown:
    return "name_unknown";
  case ErrorCode::size_invalid:
    return "size_invalid";
  case ErrorCode::unauthorized:
    return "unauthorized";
  case ErrorCode::denied:
    return "denied";
  case ErrorCode::unsupported:
    return "unsupported";
  case ErrorCode::too_many_requests:
    return "too_many_requests";
  case ErrorCode::invalid_argument:
    return "invalid_argument";
  case ErrorCode::not_found:
    return "not_found";
  case ErrorCode::already_exists:
    return "already_exists";
  case ErrorCode::conflict:
    return "conflict";
  case ErrorCode::io_error:
    return "io_error";
  case ErrorCode::corrupt:
    return "corrupt";
  case ErrorCode::storage_unavailable:
    return "storage_unavailable";
  case ErrorCode::storage_denied:
    return "storage_denied";
  case ErrorCode::internal:
    return "internal";
  }
  return "internal";
}

} // namespace registry
