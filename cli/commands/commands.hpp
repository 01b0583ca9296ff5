#pragma once

#include "cli/app_context.hpp"

#include <CLI/CLI.hpp>

namespace registry::cli {

void add_serve_command(CLI::App& app, AppContext& ctx);
void add_feed_commands(CLI::App& app, AppContext& ctx);
void add_repo_commands(CLI::App& app, AppContext& ctx);
void add_tag_commands(CLI::App& app, AppContext& ctx);
void add_digest_commands(CLI::App& app, AppContext& ctx);
void add_image_commands(CLI::App& app, AppContext& ctx);
void add_upload_commands(CLI::App& app, AppContext& ctx);
void add_gc_commands(CLI::App& app, AppContext& ctx);
void add_user_commands(CLI::App& app, AppContext& ctx);
void add_privilege_commands(CLI::App& app, AppContext& ctx);
void add_key_commands(CLI::App& app, AppContext& ctx);
void add_events_command(CLI::App& app, AppContext& ctx);
void add_connector_commands(CLI::App& app, AppContext& ctx);
void add_store_commands(CLI::App& app, AppContext& ctx);
void add_transfer_commands(CLI::App& app, AppContext& ctx);
void add_status_command(CLI::App& app, AppContext& ctx);
void add_completion_commands(CLI::App& app, AppContext& ctx);

} // namespace registry::cli
