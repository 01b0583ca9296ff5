// doctest runner for unit_tests. Every test that touches files makes its own
// registry::test::TestDir, so nothing here changes the working directory.
// Library logging is limited to errors so that expected failure paths stay quiet;
// pass --verbose-log to see everything.

#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "common/util/log.hpp"

#include <cstring>

int
main(int argc, char** argv)
{
  registry::util::set_log_level(registry::util::LogLevel::error);
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--verbose-log") == 0) {
      registry::util::set_log_level(registry::util::LogLevel::debug);
    }
  }
  doctest::Context context(argc, argv);
  return context.run();
}
