#include "tests/support/child_process.hpp"

#include "common/util/file.hpp"
#include "common/util/uuid.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <spawn.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

extern char** environ;

namespace registry::test {

namespace fs = std::filesystem;

namespace {

pid_t
spawn(const std::string& program, const std::vector<std::string>& args, const fs::path& out,
      const fs::path& err, const fs::path& in = "/dev/null")
{
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, in.c_str(), O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(program.c_str()));
  for (const auto& a : args) {
    argv.push_back(const_cast<char*>(a.c_str()));
  }
  argv.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, program.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  return rc == 0 ? pid : -1;
}

// Waits for `pid` at most `timeout`; kills it after. Returns the exit status
// (128 + signal when killed).
int
wait_for(pid_t pid, std::chrono::milliseconds timeout)
{
  auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  for (;;) {
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      break;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (WIFEXITED(status)) {
    return WEXITSTATUS(status);
  }
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

std::string
slurp(const fs::path& path)
{
  auto r = util::read_file(path);
  return r ? *r : std::string();
}

fs::path
scratch_file(const std::string& tag)
{
  return fs::temp_directory_path() / ("registryctl-" + tag + "-" + util::random_uuid());
}

} // namespace

std::string
registryctl_bin()
{
  const char* bin = std::getenv("REGISTRYCTL_BIN");
  REQUIRE_MESSAGE(bin != nullptr, "REGISTRYCTL_BIN must name the registryctl binary");
  return bin;
}

CommandResult
run_command(const std::string& program, const std::vector<std::string>& args, int timeout_seconds,
            const std::string& input)
{
  fs::path out = scratch_file("out");
  fs::path err = scratch_file("err");
  fs::path in = "/dev/null";
  if (!input.empty()) {
    in = scratch_file("in");
    REQUIRE(util::write_file_atomic(in, input));
  }
  pid_t pid = spawn(program, args, out, err, in);
  CommandResult result;
  if (pid > 0) {
    result.exit_code = wait_for(pid, std::chrono::seconds(timeout_seconds));
  }
  result.out = slurp(out);
  result.err = slurp(err);
  std::error_code ec;
  fs::remove(out, ec);
  fs::remove(err, ec);
  if (!input.empty()) {
    fs::remove(in, ec);
  }
  return result;
}

int
run_and_kill(const std::string& program, const std::vector<std::string>& args,
             std::chrono::milliseconds run_for)
{
  pid_t pid = spawn(program, args, "/dev/null", "/dev/null");
  REQUIRE(pid > 0);
  return wait_for(pid, run_for);
}

CommandResult
run_cli(const fs::path& data_dir, const std::vector<std::string>& args, const std::string& input)
{
  std::vector<std::string> full = {"--data", data_dir.string()};
  full.insert(full.end(), args.begin(), args.end());
  return run_command(registryctl_bin(), full, 120, input);
}

sockaddr_in
loopback_address(int port)
{
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

namespace {

bool
accepts_connections(int port)
{
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) {
    return false;
  }
  sockaddr_in addr = loopback_address(port);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

} // namespace

int
free_loopback_port()
{
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr = loopback_address(0);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  ::close(fd);
  return ntohs(addr.sin_port);
}

BackgroundProcess::BackgroundProcess(const std::string& program, const std::vector<std::string>& args,
                                     int port)
{
  m_log = scratch_file("background-log");
  m_pid = spawn(program, args, "/dev/null", m_log);
  REQUIRE_MESSAGE(m_pid > 0, "cannot start " << program);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!accepts_connections(port)) {
    int status = 0;
    if (::waitpid(m_pid, &status, WNOHANG) == m_pid) {
      m_pid = -1;
      FAIL(program << " exited early: " << slurp(m_log));
    }
    REQUIRE_MESSAGE(std::chrono::steady_clock::now() < deadline,
                    program << " did not listen on port " << port << ": " << slurp(m_log));
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

BackgroundProcess::~BackgroundProcess()
{
  if (m_pid > 0) {
    ::kill(m_pid, SIGTERM);
    wait_for(m_pid, std::chrono::seconds(10));
  }
  std::error_code ec;
  fs::remove(m_log, ec);
}

std::string
BackgroundProcess::log() const
{
  return slurp(m_log);
}

ServerProcess::ServerProcess(const fs::path& data_dir, const std::vector<std::string>& extra_args)
{
  fs::path ready = data_dir.parent_path() / ("ready-" + util::random_uuid());
  m_log = data_dir.parent_path() / ("server-" + util::random_uuid() + ".log");
  std::vector<std::string> args = {"--data", data_dir.string(), "serve", "--listen",
                                   "127.0.0.1:0", "--ready-file", ready.string()};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  start(args, ready);
}

ServerProcess::ServerProcess(const std::vector<std::string>& args, const fs::path& ready_file,
                             const fs::path& log)
  : m_log(log),
    m_owns_log(false)
{
  start(args, ready_file);
}

void
ServerProcess::start(const std::vector<std::string>& args, const fs::path& ready)
{
  m_pid = spawn(registryctl_bin(), args, "/dev/null", m_log);
  REQUIRE(m_pid > 0);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    auto text = util::read_file(ready);
    if (text && !text->empty()) {
      m_port = std::atoi(text->substr(text->rfind(':') + 1).c_str());
      break;
    }
    int status = 0;
    if (::waitpid(m_pid, &status, WNOHANG) == m_pid) {
      m_pid = -1;
      FAIL("registryctl serve exited early: " << slurp(m_log));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::error_code ec;
  fs::remove(ready, ec);
  REQUIRE_MESSAGE(m_port > 0, "registryctl serve did not become ready: " << slurp(m_log));
}

int
ServerProcess::stop()
{
  if (m_pid <= 0) {
    return -1;
  }
  ::kill(m_pid, SIGTERM);
  int status = wait_for(m_pid, std::chrono::seconds(10));
  m_pid = -1;
  return status;
}

void
ServerProcess::crash()
{
  if (m_pid > 0) {
    ::kill(m_pid, SIGKILL);
    wait_for(m_pid, std::chrono::seconds(10));
    m_pid = -1;
  }
}

ServerProcess::~ServerProcess()
{
  stop();
  if (m_owns_log) {
    std::error_code ec;
    fs::remove(m_log, ec);
  }
}

std::string
ServerProcess::log() const
{
  return slurp(m_log);
}

} // namespace registry::test
