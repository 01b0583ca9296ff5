#pragma once

#include "common/error.hpp"

namespace registry::cli {

// Exit statuses, documented in man/registryctl.1.
inline constexpr int k_exit_ok = 0;
inline constexpr int k_exit_failure = 1;   // runtime failure (I/O, internal, invalid data)
inline constexpr int k_exit_usage = 2;     // bad command line or argument
inline constexpr int k_exit_not_found = 3; // feed, repository, tag or digest unknown
inline constexpr int k_exit_conflict = 4;  // already exists, still referenced

inline int
exit_code_for(ErrorCode code)
{
  switch (code) {
  case ErrorCode::name_unknown:
  case ErrorCode::manifest_unknown:
  case ErrorCode::blob_unknown:
  case ErrorCode::blob_upload_unknown:
  case ErrorCode::not_found:
    return k_exit_not_found;
  case ErrorCode::already_exists:
  case ErrorCode::conflict:
    return k_exit_conflict;
  case ErrorCode::name_invalid:
  case ErrorCode::digest_invalid:
  case ErrorCode::invalid_argument:
    return k_exit_usage;
  default:
    return k_exit_failure;
  }
}

} // namespace registry::cli
