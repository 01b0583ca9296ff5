#pragma once

// REGISTRY_ASSERT: always on. A violated invariant is a bug; the process aborts
// with the location rather than continuing with corrupt state.

namespace registry::detail {
[[noreturn]] void assertion_failed(const char* expr, const char* file, int line);
} // namespace registry::detail

#define REGISTRY_ASSERT(cond)                                                  \
  do {                                                                         \
    if (!(cond)) {                                                             \
      ::registry::detail::assertion_failed(#cond, __FILE__, __LINE__);         \
    }                                                                          \
  } while (false)
