#pragma once

// Global options and lazily opened shared state for CLI commands.

#include "common/error.hpp"
#include "common/service/registry.hpp"

#include <nlohmann/json.hpp>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace registry::cli {

enum class OutputFormat { table, json };

// Thrown by commands to end with an error; run_cli prints it and exits with the
// code for its ErrorCode.
class CommandError : public std::runtime_error
{
public:
  explicit CommandError(Error error)
    : std::runtime_error(error.message),
      m_error(std::move(error))
  {
  }
  const Error&
  error() const
  {
    return m_error;
  }

private:
  Error m_error;
};

// Returns the value of `result` or throws CommandError.
template<typename T>
T
unwrap(Result<T> result)
{
  if (!result) {
    throw CommandError(result.take_error());
  }
  return std::move(result).value();
}

inline void
unwrap(Result<void> result)
{
  if (!result) {
    throw CommandError(result.take_error());
  }
}

struct AppContext {
  std::string data_dir = "./registry-data";
  std::string output = "table";
  bool quiet = false;
  int exit_status = 0; // set by commands that report a failure themselves

  OutputFormat
  format() const
  {
    return output == "json" ? OutputFormat::json : OutputFormat::table;
  }

  // Opens the data directory on first use.
  service::Registry& registry();

  // Who the audit trail names for this command: "cli:<OS user>".
  std::string actor() const;
  // Records an admin change in the audit trail, as actor().
  void audit(const std::string& kind, const std::string& feed, const std::string& subject,
             const std::string& detail = {});

  // Prints `doc` as JSON (json mode) or calls `table()` to print it for humans.
  void print(const nlohmann::json& doc, const std::function<void()>& table) const;

private:
  std::unique_ptr<service::Registry> m_registry;
};

// A digest as tables show it: the algorithm and 12 hex digits, as docker
// shows image ids, so tables fit 80 columns. JSON and --quiet keep it whole.
std::string short_digest(const std::string& digest);

// The seconds a DURATION flag value names (90s, 30m, 1h, 7d, or plain seconds).
// Throws CommandError (invalid_argument, naming `flag`) when `text` is not one.
int64_t duration_flag(const std::string& text, const char* flag);

// A secret read from stdin (one line; without echo on a terminal).
std::string read_password();

// Prints rows as aligned columns under `headers`.
void print_table(const std::vector<std::string>& headers,
                 const std::vector<std::vector<std::string>>& rows);

} // namespace registry::cli
