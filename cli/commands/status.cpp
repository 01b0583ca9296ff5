// `registryctl status`: what is in a data directory, read without changing it.

#include "cli/commands/commands.hpp"
#include "common/metadata/metadata.hpp"
#include "common/util/strings.hpp"

#include <httplib.h>

#include <cstdio>
#include <filesystem>

namespace registry::cli {

namespace fs = std::filesystem;

namespace {

// A probe of a running server: GET /healthz with short timeouts.
nlohmann::json
probe_server(const std::string& url)
{
  nlohmann::json out = {{"url", url}, {"reachable", false}, {"http_status", nullptr}, {"error", nullptr}};
  try {
    std::string base = url;
    while (!base.empty() && base.back() == '/') {
      base.pop_back();
    }
    if (base.find("://") == std::string::npos) {
      base = "http://" + base;
    }
    httplib::Client client(base);
    client.set_connection_timeout(2, 0);
    client.set_read_timeout(5, 0);
    client.set_write_timeout(5, 0);
    auto response = client.Get("/healthz");
    if (response) {
      out["reachable"] = true;
      out["http_status"] = response->status;
    } else {
      out["error"] = httplib::to_string(response.error());
    }
  } catch (const std::exception& e) {
    out["error"] = e.what();
  }
  return out;
}

// `text` shortened in the middle to at most `width` characters.
std::string
elide(const std::string& text, size_t width)
{
  if (text.size() <= width || width < 5) {
    return text;
  }
  size_t head = (width - 3) / 2;
  size_t tail = width - 3 - head;
  return text.substr(0, head) + "..." + text.substr(text.size() - tail);
}

void
run_status(AppContext& ctx, const std::string& server_url)
{
  std::error_code ec;
  fs::path data = fs::absolute(ctx.data_dir, ec);
  if (ec) {
    data = ctx.data_dir;
  }
  data = data.lexically_normal();
  fs::path db_path = data / "registry.db";

  nlohmann::json database = {{"path", db_path.string()},
                             {"exists", false},
                             {"schema_version", nullptr},
                             {"supported_schema_version",
                              metadata::Metadata::current_schema_version()},
                             {"error", nullptr}};
  nlohmann::json doc = {{"data_dir", data.string()},
                        {"data_dir_exists", fs::is_directory(data, ec)},
                        {"database", nullptr},
                        {"feeds", nullptr},
                        {"repositories", nullptr},
                        {"manifests", nullptr},
                        {"tags", nullptr},
                        {"blobs", nullptr},
                        {"blob_bytes", nullptr},
                        {"blobs_in_database", nullptr},
                        {"blob_bytes_in_database", nullptr},
                        {"uploads_in_progress", nullptr},
                        {"token_key", fs::is_regular_file(data / "token-key.pem", ec)},
                        {"server", nullptr}};
  auto opened = metadata::Metadata::open_read_only(db_path);
  if (opened) {
    auto& db = **opened;
    database["exists"] = true;
    database["schema_version"] = db.schema_version();
    if (auto totals = db.totals()) {
      doc["feeds"] = totals->feeds;
      doc["repositories"] = totals->repositories;
      doc["manifests"] = totals->manifests;
      doc["tags"] = totals->tags;
      doc["blobs"] = totals->blobs;
      doc["blob_bytes"] = totals->blob_bytes;
      doc["blobs_in_database"] = totals->blobs_in_database;
      doc["blob_bytes_in_database"] = totals->blob_bytes_in_database;
      doc["uploads_in_progress"] = totals->uploads;
    } else {
      database["error"] = totals.error().message;
    }
  } else if (opened.error().code != ErrorCode::not_found) {
    database["exists"] = fs::exists(db_path, ec);
    database["error"] = opened.error().message;
  }
  doc["database"] = database;
  if (!server_url.empty()) {
    doc["server"] = probe_server(server_url);
  }

  ctx.print(doc, [&] {
    // Label column of 16, values elided to keep every line within 80 columns.
    constexpr size_t k_value_width = 80 - 16;
    auto row = [&](const char* label, const std::string& value) {
      std::printf("%-16s%s\n", label, elide(value, k_value_width).c_str());
    };
    auto count = [&](const char* key) {
      return doc[key].is_null() ? std::string("-") : std::to_string(doc[key].get<int64_t>());
    };
    row("data directory", data.string() + (doc["data_dir_exists"].get<bool>() ? "" : " (missing)"));
    if (!database["exists"].get<bool>()) {
      row("database", "none yet (created by the first command that writes)");
    } else if (!database["error"].is_null()) {
      row("database", "unreadable: " + database["error"].get<std::string>());
    } else {
      int version = database["schema_version"].get<int>();
      int supported = metadata::Metadata::current_schema_version();
      std::string note = version == supported ? ""
                         : version < supported ? " (older: migrated on next write)"
                                               : " (newer than this registryctl)";
      row("database", "registry.db, schema " + std::to_string(version) + note);
    }
    row("feeds", count("feeds"));
    row("repositories", count("repositories"));
    row("manifests", count("manifests"));
    row("tags", count("tags"));
    std::string blobs = count("blobs");
    if (!doc["blob_bytes"].is_null()) {
      blobs += " (" + util::human_size(doc["blob_bytes"].get<uint64_t>()) + ")";
    }
    if (!doc["blobs_in_database"].is_null()) {
      blobs += ", " + count("blobs_in_database") + " small ones in the database ("
               + util::human_size(doc["blob_bytes_in_database"].get<uint64_t>()) + ")";
    }
    row("blobs", blobs);
    row("uploads", count("uploads_in_progress") + " in progress");
    row("token key", doc["token_key"].get<bool>() ? "token-key.pem" : "none yet");
    if (!doc["server"].is_null()) {
      const auto& s = doc["server"];
      std::string state = s["reachable"].get<bool>()
                            ? "reachable (HTTP " + std::to_string(s["http_status"].get<int>()) + ")"
                            : "unreachable: " + s["error"].get<std::string>();
      row("server", s["url"].get<std::string>() + " " + state);
    }
  });
}

} // namespace

void
add_status_command(CLI::App& app, AppContext& ctx)
{
  auto server = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand("status", "Summarise a data directory (read-only) and probe a server");
  cmd->add_option("--server", *server, "Also check that the server at this URL answers /healthz")
    ->type_name("URL")
    ->envname("REGISTRYCTL_SERVER");
  cmd->callback([&ctx, server] { run_status(ctx, *server); });
}

} // namespace registry::cli
