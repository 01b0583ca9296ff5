#pragma once

// A fresh temporary directory per test case, removed when the test passes and
// kept (with its path printed) when it fails.

#include <filesystem>
#include <string>

namespace registry::test {

class TestDir
{
public:
  TestDir();
  ~TestDir();
  TestDir(const TestDir&) = delete;
  TestDir& operator=(const TestDir&) = delete;

  const std::filesystem::path&
  path() const
  {
    return m_path;
  }
  std::filesystem::path
  operator/(const std::string& name) const
  {
    return m_path / name;
  }

private:
  std::filesystem::path m_path;
};

// Random bytes of `size` (not cryptographic; reproducible per seed).
std::string random_bytes(size_t size, unsigned seed = 1);

} // namespace registry::test
