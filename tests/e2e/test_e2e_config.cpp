// Options from a config file and from REGISTRYCTL_* environment variables:
// `serve` configured by each alone is reachable, and the precedence is
// defaults < config file < environment < command line.

#include "tests/e2e/fixture.hpp"

#include "common/util/file.hpp"

#include <cstdlib>
#include <optional>

using namespace registry::test;
namespace fs = std::filesystem;
namespace util = registry::util;

namespace {

std::string
slurp(const fs::path& path)
{
  auto text = util::read_file(path);
  return text ? *text : std::string();
}

void
write_text(const fs::path& path, const std::string& text)
{
  REQUIRE(util::write_file_atomic(path, text));
}

// Sets environment variables for the lifetime of the object (children spawned
// meanwhile inherit them) and restores the previous values.
class ScopedEnv
{
public:
  explicit ScopedEnv(std::vector<std::pair<std::string, std::string>> vars)
  {
    for (auto& [name, value] : vars) {
      const char* old = std::getenv(name.c_str());
      m_saved.emplace_back(name, old ? std::optional<std::string>(old) : std::nullopt);
      ::setenv(name.c_str(), value.c_str(), 1);
    }
  }
  ~ScopedEnv()
  {
    for (auto& [name, value] : m_saved) {
      if (value) {
        ::setenv(name.c_str(), value->c_str(), 1);
      } else {
        ::unsetenv(name.c_str());
      }
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

private:
  std::vector<std::pair<std::string, std::optional<std::string>>> m_saved;
};

} // namespace

TEST_SUITE("e2e")
{
  TEST_CASE("config: serve configured only by a config file")
  {
    TestDir dir;
    fs::path config = dir / "registryctl.toml";
    write_text(config, "data = \"" + (dir / "data").string() + "\"\n\n"
                         "[serve]\n"
                         "listen = \"127.0.0.1:0\"\n"
                         "ready-file = \"" + (dir / "ready").string() + "\"\n"
                         "quiet = true\n"
                         "cleanup-interval = \"0\"\n");
    // Found through REGISTRYCTL_CONFIG: the command line is just `serve`.
    ScopedEnv env({{"REGISTRYCTL_CONFIG", config.string()}});
    ServerProcess server({"serve"}, dir / "ready", dir / "server.log");
    OciClient client(server.port());
    auto health = client.get("/healthz");
    REQUIRE(health);
    CHECK(health->status == 200);
    auto v2 = client.get("/v2/");
    REQUIRE(v2);
    CHECK(v2->status == 200);
    CHECK(fs::exists(dir / "data" / "registry.db"));
    // --quiet from the file: no access log lines for those requests
    CHECK(slurp(dir / "server.log").find("GET /v2/") == std::string::npos);
  }

  TEST_CASE("config: serve configured only by environment variables")
  {
    TestDir dir;
    ScopedEnv env({{"REGISTRYCTL_CONFIG", ""}, // no default config file either
                   {"REGISTRYCTL_DATA", (dir / "data").string()},
                   {"REGISTRYCTL_LISTEN", "127.0.0.1:0"},
                   {"REGISTRYCTL_READY_FILE", (dir / "ready").string()},
                   {"REGISTRYCTL_CLEANUP_INTERVAL", "0"}});
    ServerProcess server({"serve"}, dir / "ready", dir / "server.log");
    OciClient client(server.port());
    auto v2 = client.get("/v2/");
    REQUIRE(v2);
    CHECK(v2->status == 200);
    CHECK(fs::exists(dir / "data" / "registry.db"));
  }

  TEST_CASE("config: precedence and errors")
  {
    TestDir dir;
    fs::path config = dir / "registryctl.toml";
    write_text(config, "data = \"" + (dir / "from-file").string() + "\"\n");
    auto data_dir_of = [&](const std::vector<std::string>& args) {
      auto r = run_command(registryctl_bin(), args);
      REQUIRE_MESSAGE(r.exit_code == 0, r.err);
      return nlohmann::json::parse(r.out)["data_dir"].get<std::string>();
    };
    const std::vector<std::string> status = {"--config", config.string(), "-o", "json", "status"};

    SUBCASE("the file beats the default, the environment the file, a flag the environment")
    {
      CHECK(data_dir_of(status) == (dir / "from-file").string());
      ScopedEnv env({{"REGISTRYCTL_DATA", (dir / "from-env").string()}});
      CHECK(data_dir_of(status) == (dir / "from-env").string());
      auto with_flag = status;
      with_flag.insert(with_flag.begin(), {"--data", (dir / "from-flag").string()});
      CHECK(data_dir_of(with_flag) == (dir / "from-flag").string());
    }

    SUBCASE("an unknown key or section is a usage error naming it")
    {
      write_text(config, "[serve]\nlistn = \"127.0.0.1:0\"\n");
      auto r = run_command(registryctl_bin(), status);
      CHECK(r.exit_code == 2);
      CHECK(r.err.find("serve.listn") != std::string::npos);
      write_text(config, "[nosuchcommand]\nx = 1\n");
      r = run_command(registryctl_bin(), status);
      CHECK(r.exit_code == 2);
      CHECK(r.err.find("nosuchcommand") != std::string::npos);
    }

    SUBCASE("a config file named by REGISTRYCTL_CONFIG must exist")
    {
      ScopedEnv env({{"REGISTRYCTL_CONFIG", (dir / "missing.toml").string()}});
      auto r = run_command(registryctl_bin(), {"-o", "json", "status"});
      CHECK(r.exit_code == 2);
      CHECK(r.err.find("missing.toml") != std::string::npos);
    }

    SUBCASE("the documented example is valid")
    {
      auto r = run_command(registryctl_bin(), {"--config", REGISTRYCTL_SOURCE_DIR "/contrib/registryctl.toml",
                                               "-o", "json", "status"});
      CHECK_MESSAGE(r.exit_code == 0, r.err);
    }
  }
}
