#pragma once

namespace registry::cli {

// Parses `argv`, runs the command and returns the process exit status
// (cli/exit_codes.hpp).
int run_cli(int argc, char** argv);

} // namespace registry::cli
