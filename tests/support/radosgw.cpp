#include "tests/support/radosgw.hpp"

#include "tests/support/child_process.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <unistd.h>

namespace registry::test {

namespace {

namespace fs = std::filesystem;

class SharedRadosgw
{
public:
  SharedRadosgw()
  {
    std::string pattern = (fs::temp_directory_path() / "registryctl-radosgw-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
      m_error = "cannot create a directory for radosgw";
      return;
    }
    m_dir = pattern;
    auto started_at = std::chrono::steady_clock::now();
    auto result = run_command(REGISTRY_RADOSGW_SCRIPT, {"start", m_dir.string(), std::to_string(::getpid())}, 180);
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_at).count();
    if (result.exit_code != 0) {
      m_error = "radosgw did not start (exit " + std::to_string(result.exit_code) + "): " + result.err;
      return;
    }
    std::map<std::string, std::string> values;
    std::istringstream lines(result.out);
    std::string line;
    while (std::getline(lines, line)) {
      auto eq = line.find('=');
      if (eq != std::string::npos) {
        values[line.substr(0, eq)] = line.substr(eq + 1);
      }
    }
    m_endpoint = {values["endpoint"],          values["region"],        values["bucket"],
                  values["access_key_id"],     values["secret_access_key"], values["ipv6_endpoint"],
                  values["tls_endpoint"],      values["ca_file"]};
    if (m_endpoint.endpoint.empty()) {
      m_error = "radosgw.sh printed no endpoint: " + result.out;
      return;
    }
    std::fprintf(stderr, "radosgw: %s started in %.1f s (data in %s)\n", m_endpoint.endpoint.c_str(), seconds,
                 m_dir.c_str());
  }

  ~SharedRadosgw()
  {
    if (m_dir.empty()) {
      return;
    }
    auto started_at = std::chrono::steady_clock::now();
    (void)run_command(REGISTRY_RADOSGW_SCRIPT, {"stop", m_dir.string()}, 60);
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_at).count();
    std::fprintf(stderr, "radosgw: stopped in %.1f s\n", seconds);
    if (std::getenv("REGISTRYCTL_KEEP_TEST_DIRS") == nullptr) {
      std::error_code ec;
      fs::remove_all(m_dir, ec);
    }
  }

  SharedRadosgw(const SharedRadosgw&) = delete;
  SharedRadosgw& operator=(const SharedRadosgw&) = delete;

  fs::path m_dir;
  std::string m_error;
  RadosgwEndpoint m_endpoint;
};

} // namespace

const RadosgwEndpoint&
radosgw()
{
  // A function-local static: started on first use, stopped at exit.
  static SharedRadosgw server;
  REQUIRE_MESSAGE(server.m_error.empty(), server.m_error);
  return server.m_endpoint;
}

} // namespace registry::test
