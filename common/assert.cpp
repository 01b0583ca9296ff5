#include "common/assert.hpp"

#include <cstdio>
#include <cstdlib>

namespace registry::detail {

void
assertion_failed(const char* expr, const char* file, int line)
{
  std::fprintf(stderr, "registryctl: assertion failed: %s at %s:%d\n", expr, file, line);
  std::abort();
}

} // namespace registry::detail
