#include "cli/run_cli.hpp"

int
main(int argc, char** argv)
{
  return registry::cli::run_cli(argc, argv);
}
