// `registryctl repo list`, `tag list`, `digest show`, `image delete`, `upload list|purge`

#include "cli/commands/commands.hpp"
#include "common/oci/reference.hpp"
#include "common/util/strings.hpp"

#include <iostream>

namespace registry::cli {

namespace {

// "pushed", or "cache:HOST" for content a connector fetched (the whole URL is
// in the JSON output).
std::string
source_of(const std::string& origin)
{
  if (origin.empty()) {
    return "pushed";
  }
  std::string host = origin.substr(origin.find("://") == std::string::npos ? 0 : origin.find("://") + 3);
  return "cache:" + host.substr(0, host.find('/'));
}

std::pair<std::string, std::string>
split_image(const std::string& text)
{
  auto ref = oci::parse_image_reference(text);
  if (!ref) {
    auto error = ref.take_error();
    error.message = "invalid image reference '" + text
                    + "' (expected FEED/REPO:TAG or FEED/REPO@DIGEST): " + error.message;
    throw CommandError(std::move(error));
  }
  return {ref->repository.full(), ref->reference.str()};
}

nlohmann::json
descriptor_json(const oci::Descriptor& d)
{
  nlohmann::json j = {{"mediaType", d.media_type}, {"digest", d.digest.str()}, {"size", d.size}};
  if (d.platform) {
    j["platform"] = d.platform->str();
  }
  if (!d.artifact_type.empty()) {
    j["artifactType"] = d.artifact_type;
  }
  return j;
}

} // namespace

void
add_repo_commands(CLI::App& app, AppContext& ctx)
{
  auto* repo = app.add_subcommand("repo", "Inspect repositories");
  repo->require_subcommand(1);
  auto feed = std::make_shared<std::string>();
  auto* list = repo->add_subcommand("list", "List repositories, optionally of one feed");
  list->add_option("feed", *feed, "Feed name")->type_name("FEED");
  list->callback([&ctx, feed] {
    if (!feed->empty()) {
      unwrap(ctx.registry().get_feed(*feed));
    }
    auto repos = unwrap(ctx.registry().metadata().list_repositories(*feed));
    nlohmann::json doc = nlohmann::json::array();
    std::vector<std::vector<std::string>> rows;
    for (const auto& r : repos) {
      doc.push_back({{"name", r.name},
                     {"tags", r.tag_count},
                     {"manifests", r.manifest_count},
                     {"updated_at", util::format_time(r.updated_at)}});
      rows.push_back({r.name, std::to_string(r.tag_count), std::to_string(r.manifest_count),
                      util::format_time(r.updated_at)});
    }
    ctx.print(doc, [&] { print_table({"REPOSITORY", "TAGS", "MANIFESTS", "UPDATED"}, rows); });
  });
}

void
add_tag_commands(CLI::App& app, AppContext& ctx)
{
  auto* tag = app.add_subcommand("tag", "Inspect tags");
  tag->require_subcommand(1);
  auto repo = std::make_shared<std::string>();
  auto* list = tag->add_subcommand("list", "List the tags of a repository");
  list->add_option("repository", *repo, "FEED/REPO")->required()->type_name("REPOSITORY");
  list->callback([&ctx, repo] {
    auto page = unwrap(ctx.registry().list_tags(*repo, "", std::numeric_limits<int64_t>::max() - 1));
    nlohmann::json doc = nlohmann::json::array();
    std::vector<std::vector<std::string>> rows;
    for (const auto& t : page.tags) {
      nlohmann::json entry = {{"name", t.name}, {"digest", t.digest}, {"updated_at", util::format_time(t.updated_at)}};
      if (!t.origin.empty()) {
        entry["cached_from"] = t.origin;
      }
      doc.push_back(entry);
      rows.push_back({t.name, short_digest(t.digest), util::format_time(t.updated_at), source_of(t.origin)});
    }
    ctx.print(doc, [&] { print_table({"TAG", "DIGEST", "UPDATED", "SOURCE"}, rows); });
  });
}

void
add_digest_commands(CLI::App& app, AppContext& ctx)
{
  auto* digest = app.add_subcommand("digest", "Inspect manifests by tag or digest");
  digest->require_subcommand(1);
  auto image = std::make_shared<std::string>();
  auto* show = digest->add_subcommand("show", "Show a manifest: digest, type, size, platforms, layers");
  show->add_option("image", *image, "FEED/REPO:TAG or FEED/REPO@DIGEST")->required()->type_name("IMAGE");
  show->callback([&ctx, image] {
    auto [repo, ref] = split_image(*image);
    auto details = unwrap(ctx.registry().describe_image(repo, ref));
    const auto& m = details.parsed;
    nlohmann::json doc = {{"repository", details.repository},
                          {"digest", details.manifest.digest.str()},
                          {"mediaType", details.manifest.media_type},
                          {"size", details.manifest.size},
                          {"tags", details.tags}};
    if (!details.manifest.origin.empty()) {
      doc["cached_from"] = details.manifest.origin;
    }
    if (!m.artifact_type.empty()) {
      doc["artifactType"] = m.artifact_type;
    }
    if (m.config) {
      doc["config"] = descriptor_json(*m.config);
    }
    if (m.subject) {
      doc["subject"] = descriptor_json(*m.subject);
    }
    nlohmann::json layers = nlohmann::json::array();
    uint64_t total = 0;
    for (const auto& l : m.layers) {
      layers.push_back(descriptor_json(l));
      total += l.size;
    }
    nlohmann::json manifests = nlohmann::json::array();
    for (const auto& c : m.manifests) {
      manifests.push_back(descriptor_json(c));
    }
    if (m.is_index) {
      doc["manifests"] = manifests;
    } else {
      doc["layers"] = layers;
      doc["totalLayerSize"] = total;
    }
    ctx.print(doc, [&] {
      std::cout << "Repository: " << details.repository << "\n"
                << "Digest:     " << details.manifest.digest.str() << "\n"
                << "Media type: " << details.manifest.media_type << "\n"
                << "Size:       " << details.manifest.size << " bytes\n"
                << "Source:     "
                << (details.manifest.origin.empty() ? "pushed" : "cached from " + details.manifest.origin) << "\n"
                << "Tags:       " << (details.tags.empty() ? "(none)" : "") ;
      for (size_t i = 0; i < details.tags.size(); ++i) {
        std::cout << (i ? ", " : "") << details.tags[i];
      }
      std::cout << "\n";
      if (!m.artifact_type.empty()) {
        std::cout << "Artifact:   " << m.artifact_type << "\n";
      }
      if (m.subject) {
        std::cout << "Subject:    " << m.subject->digest.str() << "\n";
      }
      std::cout << "\n";
      std::vector<std::vector<std::string>> rows;
      if (m.is_index) {
        for (const auto& c : m.manifests) {
          rows.push_back({c.platform ? c.platform->str() : "-", short_digest(c.digest.str()), util::human_size(c.size)});
        }
        print_table({"PLATFORM", "DIGEST", "SIZE"}, rows);
      } else {
        if (m.config) {
          rows.push_back({"config", short_digest(m.config->digest.str()), util::human_size(m.config->size)});
        }
        for (size_t i = 0; i < m.layers.size(); ++i) {
          rows.push_back({"layer " + std::to_string(i + 1), short_digest(m.layers[i].digest.str()),
                          util::human_size(m.layers[i].size)});
        }
        print_table({"PART", "DIGEST", "SIZE"}, rows);
        std::cout << "\nTotal layer size: " << util::human_size(total) << "\n";
      }
    });
  });
}

void
add_image_commands(CLI::App& app, AppContext& ctx)
{
  auto* image_cmd = app.add_subcommand("image", "Delete images");
  image_cmd->require_subcommand(1);
  auto image = std::make_shared<std::string>();
  auto* remove = image_cmd->add_subcommand(
    "delete", "Delete a manifest (a tag is resolved to its digest; every tag on it goes)");
  remove->add_option("image", *image, "FEED/REPO:TAG or FEED/REPO@DIGEST")->required()->type_name("IMAGE");
  remove->callback([&ctx, image] {
    auto [repo, ref] = split_image(*image);
    std::string actor = ctx.actor();
    auto result = unwrap(ctx.registry().delete_image(repo, ref, &actor));
    ctx.print({{"repository", repo}, {"digest", result.digest.str()}, {"removed_tags", result.removed_tags}},
              [&] {
                std::cout << "deleted " << repo << "@" << result.digest.str();
                if (!result.removed_tags.empty()) {
                  std::cout << " (tags:";
                  for (const auto& t : result.removed_tags) {
                    std::cout << " " << t;
                  }
                  std::cout << ")";
                }
                std::cout << "\n";
              });
  });
}

void
add_upload_commands(CLI::App& app, AppContext& ctx)
{
  auto* upload = app.add_subcommand("upload", "Inspect and purge in-progress blob uploads");
  upload->require_subcommand(1);
  auto* list = upload->add_subcommand("list", "List upload sessions");
  list->callback([&ctx] {
    auto uploads = unwrap(ctx.registry().metadata().list_uploads());
    nlohmann::json doc = nlohmann::json::array();
    std::vector<std::vector<std::string>> rows;
    for (const auto& u : uploads) {
      doc.push_back({{"id", u.id}, {"repository", u.repository_name},
                     {"started_at", util::format_time(u.started_at)},
                     {"updated_at", util::format_time(u.updated_at)}});
      rows.push_back({u.id, u.repository_name, util::format_time(u.updated_at)});
    }
    ctx.print(doc, [&] { print_table({"UPLOAD", "REPOSITORY", "LAST ACTIVITY"}, rows); });
  });
  auto older = std::make_shared<std::string>("24h");
  auto* purge = upload->add_subcommand("purge", "Remove uploads idle for longer than --older-than");
  purge->add_option("--older-than", *older, "Idle time, e.g. 30m, 24h, 7d")
    ->type_name("DURATION")
    ->envname("REGISTRYCTL_UPLOAD_EXPIRY")
    ->capture_default_str();
  purge->callback([&ctx, older] {
    int64_t seconds = duration_flag(*older, "--older-than");
    auto& registry = ctx.registry();
    size_t purged = unwrap(registry.purge_uploads(registry.now() - seconds));
    ctx.print({{"purged", purged}}, [&] { std::cout << "purged " << purged << " uploads\n"; });
  });
}

} // namespace registry::cli
