// export_archive(): a feed, repository, tag or digest as an OCI image layout
// in a tar stream. See transfer.hpp for the layout and the naming.

#include "common/archive/tar.hpp"
#include "common/oci/media_types.hpp"
#include "common/oci/reference.hpp"
#include "common/service/transfer.hpp"

#include <nlohmann/json.hpp>

#include <limits>
#include <map>
#include <set>
#include <vector>

namespace registry::service {

namespace {

constexpr size_t k_chunk = 1 << 20;
constexpr const char* k_ref_name = "org.opencontainers.image.ref.name";

struct Root {
  std::string repository; // full name
  std::string ref_name;
  ManifestData manifest; // without bytes
};

struct Item {
  std::string repository; // a repository that holds it
  uint64_t size = 0;
};

// What an export writes: the roots named in index.json and, in first-seen
// order, every manifest and blob below them.
struct Plan {
  std::vector<Root> roots;
  std::vector<std::pair<std::string, Item>> manifests;
  std::vector<std::pair<std::string, Item>> blobs;
  std::set<std::string> seen_manifests;
  std::set<std::string> seen_blobs;
  std::set<std::string> algorithms;
};

std::string
repository_path(const std::string& full)
{
  return full.substr(full.find('/') + 1);
}

Result<void>
walk(Registry& registry, Plan& plan, const std::string& repository, const oci::Digest& digest,
     int depth)
{
  if (plan.seen_manifests.count(digest.str())) {
    return ok();
  }
  if (depth > 8) {
    return fail(ErrorCode::manifest_invalid, "indexes nest too deeply", digest.str());
  }
  REGISTRY_TRY_ASSIGN(auto data, registry.get_manifest(repository, digest.str(), true));
  REGISTRY_TRY_ASSIGN(auto parsed, oci::parse_manifest(data.bytes, data.media_type));
  plan.seen_manifests.insert(digest.str());
  plan.algorithms.insert(std::string(digest.algorithm()));
  plan.manifests.push_back({digest.str(), Item{repository, data.size}});
  for (const auto& child : parsed.manifests) {
    REGISTRY_TRY(walk(registry, plan, repository, child.digest, depth + 1));
  }
  for (const auto& blob : parsed.referenced_blobs()) {
    if (plan.seen_blobs.insert(blob.digest.str()).second) {
      plan.algorithms.insert(std::string(blob.digest.algorithm()));
      plan.blobs.push_back({blob.digest.str(), Item{repository, blob.size}});
    }
  }
  return ok();
}

Result<void>
add_tagged_roots(Registry& registry, Plan& plan, const std::string& repository)
{
  REGISTRY_TRY_ASSIGN(auto page,
                      registry.list_tags(repository, "", std::numeric_limits<int64_t>::max() - 1));
  for (const auto& tag : page.tags) {
    REGISTRY_TRY_ASSIGN(auto data, registry.get_manifest(repository, tag.name, false));
    plan.roots.push_back(Root{repository, repository_path(repository) + ":" + tag.name, data});
  }
  return ok();
}

Result<Plan>
make_plan(Registry& registry, const std::string& source)
{
  Plan plan;
  if (source.find_first_of(":@") != std::string::npos) {
    REGISTRY_TRY_ASSIGN(auto ref, oci::parse_image_reference(source));
    std::string repository = ref.repository.full();
    REGISTRY_TRY_ASSIGN(auto data, registry.get_manifest(repository, ref.reference.str(), false));
    std::string ref_name = ref.repository.path
                           + (ref.reference.is_digest() ? "@" + data.digest.str()
                                                        : ":" + ref.reference.tag());
    plan.roots.push_back(Root{repository, ref_name, data});
  } else if (source.find('/') != std::string::npos) {
    REGISTRY_TRY_ASSIGN(auto name, oci::parse_repository_name(source));
    REGISTRY_TRY(registry.get_feed(name.feed));
    REGISTRY_TRY(add_tagged_roots(registry, plan, name.full()));
  } else {
    REGISTRY_TRY(registry.get_feed(source));
    REGISTRY_TRY_ASSIGN(auto repos, registry.metadata().list_repositories(source));
    for (const auto& repo : repos) {
      REGISTRY_TRY(add_tagged_roots(registry, plan, repo.name));
    }
  }
  if (plan.roots.empty()) {
    return fail(ErrorCode::invalid_argument, "nothing to export: '" + source + "' has no tags",
                source);
  }
  for (const auto& root : plan.roots) {
    REGISTRY_TRY(walk(registry, plan, root.repository, root.manifest.digest, 0));
  }
  return plan;
}

std::string
blob_path(const std::string& digest)
{
  auto colon = digest.find(':');
  return "blobs/" + digest.substr(0, colon) + "/" + digest.substr(colon + 1);
}

} // namespace

Result<TransferStats>
export_archive(Registry& registry, const ExportOptions& options, util::OutputStream& out)
{
  REGISTRY_TRY_ASSIGN(auto plan, make_plan(registry, options.source));
  TransferStats stats;
  auto report = [&] {
    if (options.progress) {
      options.progress(stats.bytes, stats.manifests + stats.blobs);
    }
  };

  nlohmann::json index = {{"schemaVersion", 2},
                          {"mediaType", oci::media_type::oci_index},
                          {"manifests", nlohmann::json::array()}};
  for (const auto& root : plan.roots) {
    index["manifests"].push_back({{"mediaType", root.manifest.media_type},
                                  {"digest", root.manifest.digest.str()},
                                  {"size", root.manifest.size},
                                  {"annotations", {{k_ref_name, root.ref_name}}}});
  }

  archive::TarWriter tar(out);
  REGISTRY_TRY(tar.add_file("oci-layout", R"({"imageLayoutVersion":"1.0.0"})"));
  REGISTRY_TRY(tar.add_file("index.json", index.dump()));
  REGISTRY_TRY(tar.add_directory("blobs"));
  for (const auto& algorithm : plan.algorithms) {
    REGISTRY_TRY(tar.add_directory("blobs/" + algorithm));
  }

  for (const auto& [digest, item] : plan.manifests) {
    REGISTRY_TRY_ASSIGN(auto data, registry.get_manifest(item.repository, digest, true));
    REGISTRY_TRY(tar.add_file(blob_path(digest), data.bytes));
    ++stats.manifests;
    stats.bytes += data.bytes.size();
    report();
  }

  std::vector<char> buffer(k_chunk);
  for (const auto& [digest, item] : plan.blobs) {
    REGISTRY_TRY_ASSIGN(auto blob, registry.open_blob(item.repository, digest));
    uint64_t size = blob.reader->size();
    REGISTRY_TRY(tar.begin_file(blob_path(digest), size));
    uint64_t offset = 0;
    while (offset < size) {
      size_t want = static_cast<size_t>(std::min<uint64_t>(buffer.size(), size - offset));
      REGISTRY_TRY_ASSIGN(size_t n, blob.reader->read_at(offset, buffer.data(), want));
      if (n == 0) {
        return fail(ErrorCode::io_error, "blob ended early in the store", digest);
      }
      REGISTRY_TRY(tar.write(buffer.data(), n));
      offset += n;
      stats.bytes += n;
      if (offset % (8 * k_chunk) == 0) {
        report();
      }
    }
    REGISTRY_TRY(tar.end_file());
    ++stats.blobs;
    report();
  }
  REGISTRY_TRY(tar.finish());
  return stats;
}

} // namespace registry::service
