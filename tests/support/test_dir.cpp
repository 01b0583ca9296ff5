#include "tests/support/test_dir.hpp"

#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <random>

namespace registry::test {

TestDir::TestDir()
{
  std::string pattern = (std::filesystem::temp_directory_path() / "registryctl-test-XXXXXX").string();
  char* made = ::mkdtemp(pattern.data());
  REQUIRE(made != nullptr);
  m_path = made;
}

TestDir::~TestDir()
{
  // doctest does not tell a destructor whether the current test failed; keep the
  // directory when REGISTRYCTL_KEEP_TEST_DIRS is set, for debugging.
  if (std::getenv("REGISTRYCTL_KEEP_TEST_DIRS") != nullptr) {
    std::fprintf(stderr, "test data left in %s\n", m_path.c_str());
    return;
  }
  std::error_code ec;
  std::filesystem::remove_all(m_path, ec);
}

std::string
random_bytes(size_t size, unsigned seed)
{
  std::mt19937_64 rng(seed);
  std::string out(size, '\0');
  size_t i = 0;
  while (i + 8 <= size) {
    uint64_t v = rng();
    for (int k = 0; k < 8; ++k) {
      out[i++] = static_cast<char>((v >> (8 * k)) & 0xff);
    }
  }
  while (i < size) {
    out[i++] = static_cast<char>(rng() & 0xff);
  }
  return out;
}

} // namespace registry::test
