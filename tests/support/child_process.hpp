#pragma once

// Runs the real registryctl binary: one-shot CLI commands with captured output,
// and `registryctl serve` on a free loopback port for end-to-end tests.

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include <netinet/in.h>
#include <sys/types.h>

namespace registry::test {

// The registryctl binary under test: $REGISTRYCTL_BIN.
std::string registryctl_bin();

struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs `program` with `args` (standard input: `input`), waits (at most `timeout_seconds`, then kills it)
// and returns its exit status and output.
CommandResult run_command(const std::string& program, const std::vector<std::string>& args,
                          int timeout_seconds = 120, const std::string& input = {});

// Starts `program`, lets it run for `run_for`, then kills it with SIGKILL (a
// crash at an arbitrary instant). Returns its exit status (137 when killed).
int run_and_kill(const std::string& program, const std::vector<std::string>& args,
                 std::chrono::milliseconds run_for);

// Runs registryctl with `--data <data_dir>` followed by `args`.
CommandResult run_cli(const std::filesystem::path& data_dir, const std::vector<std::string>& args,
                      const std::string& input = {});

// 127.0.0.1:`port` as a socket address.
sockaddr_in loopback_address(int port);

// A port on 127.0.0.1 that was free a moment ago (for servers that cannot
// report the port they bound, like nginx).
int free_loopback_port();

// Another program running beside the test (nginx, ...). The constructor waits
// (bounded) until 127.0.0.1:`port` accepts connections; the destructor sends
// SIGTERM, then SIGKILL.
class BackgroundProcess
{
public:
  BackgroundProcess(const std::string& program, const std::vector<std::string>& args, int port);
  ~BackgroundProcess();
  BackgroundProcess(const BackgroundProcess&) = delete;
  BackgroundProcess& operator=(const BackgroundProcess&) = delete;
  // Its standard error so far.
  std::string log() const;

private:
  pid_t m_pid = -1;
  std::filesystem::path m_log;
};

// `registryctl serve` on 127.0.0.1 with an ephemeral port. The constructor waits
// (bounded) for the ready file; the destructor sends SIGTERM, then SIGKILL.
class ServerProcess
{
public:
  explicit ServerProcess(const std::filesystem::path& data_dir,
                         const std::vector<std::string>& extra_args = {});
  // `registryctl` with exactly `args` (e.g. {"serve"} configured by a file or
  // the environment, which must name `ready_file`); its log goes to `log`.
  ServerProcess(const std::vector<std::string>& args, const std::filesystem::path& ready_file,
                const std::filesystem::path& log);
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  int
  port() const
  {
    return m_port;
  }
  std::string
  host_port() const
  {
    return "127.0.0.1:" + std::to_string(m_port);
  }
  // Stops the server with SIGTERM and returns its exit status.
  int stop();
  // Kills the server with SIGKILL (a crash).
  void crash();
  // The server's stderr so far (access log).
  std::string log() const;

private:
  void start(const std::vector<std::string>& args, const std::filesystem::path& ready_file);

  pid_t m_pid = -1;
  int m_port = 0;
  std::filesystem::path m_log;
  bool m_owns_log = true;
};

} // namespace registry::test
