#include "cli/run_cli.hpp"

#include "cli/app_context.hpp"
#include "cli/commands/commands.hpp"
#include "cli/config_file.hpp"
#include "cli/exit_codes.hpp"
#include "common/util/log.hpp"
#include "common/version.hpp"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <iostream>

namespace registry::cli {

int
run_cli(int argc, char** argv)
{
  AppContext ctx;
  CLI::App app{"registryctl: a private Docker/OCI registry with many feeds, and its admin tool",
               "registryctl"};
  app.set_version_flag("--version", std::string("registryctl ") + k_version);
  app.require_subcommand(1);
  app.fallthrough();
  app.add_option("--data", ctx.data_dir, "Data directory (database and default store)")
    ->type_name("DIR")
    ->envname("REGISTRYCTL_DATA")
    ->capture_default_str();
  app.add_flag("--quiet,-q", ctx.quiet,
               "Print only what a script needs: names, digests, ids or a new key, one per line");
  app.add_option("--output,-o", ctx.output, "Output format")
    ->check(CLI::IsMember({"table", "json"}))
    ->envname("REGISTRYCTL_OUTPUT")
    ->capture_default_str();
  add_config_option(app);

  add_serve_command(app, ctx);
  add_feed_commands(app, ctx);
  add_repo_commands(app, ctx);
  add_tag_commands(app, ctx);
  add_digest_commands(app, ctx);
  add_image_commands(app, ctx);
  add_upload_commands(app, ctx);
  add_gc_commands(app, ctx);
  add_user_commands(app, ctx);
  add_privilege_commands(app, ctx);
  add_key_commands(app, ctx);
  add_events_command(app, ctx);
  add_connector_commands(app, ctx);
  add_store_commands(app, ctx);
  add_transfer_commands(app, ctx);
  add_status_command(app, ctx);
  add_completion_commands(app, ctx);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return k_exit_usage;
  } catch (const CommandError& e) {
    const Error& error = e.error();
    if (ctx.format() == OutputFormat::json) {
      nlohmann::json doc = {
        {"error", {{"code", to_string(error.code)}, {"message", error.message}}}};
      if (!error.detail.empty()) {
        doc["error"]["detail"] = error.detail;
      }
      std::cout << doc.dump(2) << "\n";
    }
    std::cerr << "registryctl: error: " << error.message;
    if (!error.detail.empty() && error.message.find(error.detail) == std::string::npos) {
      std::cerr << " (" << error.detail << ")";
    }
    std::cerr << "\n";
    return exit_code_for(error.code);
  } catch (const std::exception& e) {
    std::cerr << "registryctl: error: " << e.what() << "\n";
    return k_exit_failure;
  }
  return ctx.exit_status;
}

} // namespace registry::cli
