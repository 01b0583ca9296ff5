// import_archive(): an OCI image layout in a (zstd-compressed) tar stream into
// a feed. See transfer.hpp for the rules.

#include "common/archive/tar.hpp"
#include "common/oci/manifest.hpp"
#include "common/oci/media_types.hpp"
#include "common/oci/reference.hpp"
#include "common/service/transfer.hpp"
#include "common/util/file.hpp"
#include "common/util/zstd.hpp"

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <fcntl.h>
#include <unistd.h>
#include <map>
#include <set>
#include <vector>

namespace registry::service {

namespace fs = std::filesystem;

namespace {

constexpr size_t k_chunk = 1 << 20;
constexpr uint64_t k_max_index_bytes = 64ULL << 20;
constexpr const char* k_ref_name = "org.opencontainers.image.ref.name";

// A temporary directory removed with everything in it when dropped.
class SpoolDir
{
public:
  static Result<SpoolDir>
  create()
  {
    std::error_code ec;
    fs::path base = fs::temp_directory_path(ec);
    if (ec) {
      base = "/tmp";
    }
    std::string pattern = (base / "registryctl-import-XXXXXX").string();
    if (!::mkdtemp(pattern.data())) {
      return fail(ErrorCode::io_error, "cannot create a temporary directory in " + base.string());
    }
    return SpoolDir(pattern);
  }
  SpoolDir(SpoolDir&& other) noexcept : m_path(std::move(other.m_path)) { other.m_path.clear(); }
  SpoolDir& operator=(SpoolDir&&) = delete;
  ~SpoolDir()
  {
    if (!m_path.empty()) {
      std::error_code ec;
      fs::remove_all(m_path, ec);
    }
  }
  fs::path
  file(const std::string& digest) const
  {
    return m_path / digest;
  }
  // Writes a spool file. No fsync: the spool does not outlive the import.
  Result<void>
  write(const std::string& digest, std::string_view bytes) const
  {
    fs::path path = file(digest);
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
      return fail(ErrorCode::io_error, "cannot write " + path.string());
    }
    auto written = util::write_all(fd, bytes.data(), bytes.size());
    ::close(fd);
    return written;
  }

private:
  explicit SpoolDir(fs::path path) : m_path(std::move(path)) {}
  fs::path m_path;
};

// Staged blobs are discarded unless linked (link clears their upload id).
class StagedSet
{
public:
  explicit StagedSet(Registry& registry) : m_registry(registry) {}
  ~StagedSet()
  {
    for (auto& [digest, staged] : blobs) {
      m_registry.discard_staged_blob(staged);
    }
  }
  std::map<std::string, StagedBlob> blobs;
  std::set<std::string> present; // the store had them before the import

private:
  Registry& m_registry;
};

Result<std::string>
read_entry(archive::TarReader& tar, const archive::TarEntry& entry, uint64_t limit)
{
  if (entry.size > limit) {
    return fail(ErrorCode::corrupt, entry.name + " is too large (" + std::to_string(entry.size)
                                      + " bytes)");
  }
  std::string data(static_cast<size_t>(entry.size), '\0');
  size_t done = 0;
  while (done < data.size()) {
    REGISTRY_TRY_ASSIGN(size_t n, tar.read(data.data() + done, data.size() - done));
    done += n;
  }
  return data;
}

struct Target {
  std::string repository; // full name
  std::string tag;        // empty: untagged
  oci::Digest digest;
  std::string media_type;
  uint64_t size = 0;
};

// Where one index.json descriptor goes (see transfer.hpp for the forms).
Result<Target>
resolve_target(const ImportOptions& options, const nlohmann::json& descriptor)
{
  Target target;
  if (!descriptor.is_object() || !descriptor.contains("digest")
      || !descriptor["digest"].is_string()) {
    return fail(ErrorCode::corrupt, "index.json has a descriptor without a digest");
  }
  REGISTRY_TRY_ASSIGN(target.digest, oci::Digest::parse(descriptor["digest"].get<std::string>()));
  if (descriptor.contains("mediaType") && descriptor["mediaType"].is_string()) {
    target.media_type = descriptor["mediaType"].get<std::string>();
  }
  if (descriptor.contains("size") && descriptor["size"].is_number_unsigned()) {
    target.size = descriptor["size"].get<uint64_t>();
  }
  std::string name;
  if (descriptor.contains("annotations") && descriptor["annotations"].is_object()
      && descriptor["annotations"].contains(k_ref_name)
      && descriptor["annotations"][k_ref_name].is_string()) {
    name = descriptor["annotations"][k_ref_name].get<std::string>();
  }
  std::string repo;
  if (name.empty()) {
    if (options.repository.empty()) {
      return fail(ErrorCode::invalid_argument,
                  "index.json entry " + target.digest.str()
                    + " has no org.opencontainers.image.ref.name; pass --repository REPO to "
                      "import it untagged");
    }
  } else if (auto at = name.find('@'); at != std::string::npos) {
    repo = name.substr(0, at);
  } else {
    auto slash = name.rfind('/');
    auto colon = name.rfind(':');
    if (colon != std::string::npos && (slash == std::string::npos || colon > slash)) {
      repo = name.substr(0, colon);
      target.tag = name.substr(colon + 1);
    } else {
      target.tag = name;
    }
  }
  if (!options.repository.empty()) {
    repo = options.repository;
  }
  if (repo.empty()) {
    return fail(ErrorCode::invalid_argument,
                "archive reference '" + name
                  + "' names only a tag; pass --repository REPO to say where it goes");
  }
  if (!target.tag.empty() && !oci::is_valid_tag(target.tag)) {
    return fail(ErrorCode::invalid_argument, "archive reference '" + name + "' has an invalid tag");
  }
  REGISTRY_TRY_ASSIGN(auto full, oci::parse_repository_name(options.feed + "/" + repo));
  target.repository = full.full();
  return target;
}

class Importer
{
public:
  Importer(Registry& registry, const ImportOptions& options, SpoolDir& spool)
    : m_registry(registry),
      m_options(options),
      m_spool(spool),
      m_staged(registry)
  {
  }

  Result<TransferStats>
  run(util::InputStream& raw)
  {
    // zstd or plain tar, by magic number.
    std::string prefix(4, '\0');
    REGISTRY_TRY_ASSIGN(size_t got, util::read_full(raw, prefix.data(), prefix.size()));
    prefix.resize(got);
    if (got == 0) {
      return fail(ErrorCode::corrupt, "the archive is empty");
    }
    if (got >= 2 && static_cast<unsigned char>(prefix[0]) == 0x1f
        && static_cast<unsigned char>(prefix[1]) == 0x8b) {
      return fail(ErrorCode::invalid_argument,
                  "gzip-compressed archives are not supported: decompress it first, or "
                  "recompress it with zstd");
    }
    util::PrefixedInputStream prefixed(prefix, raw);
    std::unique_ptr<util::ZstdInputStream> zstd;
    util::InputStream* stream = &prefixed;
    if (util::is_zstd_magic(prefix)) {
      REGISTRY_TRY_ASSIGN(zstd, util::ZstdInputStream::create(prefixed));
      stream = zstd.get();
    }
    REGISTRY_TRY(read_archive(*stream));
    REGISTRY_TRY(plan());
    REGISTRY_TRY(apply());
    return m_stats;
  }

private:
  void
  report()
  {
    if (m_options.progress) {
      m_options.progress(m_stats.bytes, m_objects);
    }
  }

  Result<void>
  read_archive(util::InputStream& stream)
  {
    archive::TarReader tar(stream);
    while (true) {
      REGISTRY_TRY_ASSIGN(auto entry, tar.next());
      if (!entry) {
        break;
      }
      if (entry->type != archive::TarEntryType::file) {
        continue;
      }
      if (entry->name == "oci-layout") {
        REGISTRY_TRY_ASSIGN(auto text, read_entry(tar, *entry, 64 * 1024));
        auto doc = nlohmann::json::parse(text, nullptr, false);
        if (doc.is_discarded() || !doc.is_object() || !doc.contains("imageLayoutVersion")) {
          return fail(ErrorCode::corrupt, "oci-layout is not a valid image layout marker");
        }
        m_layout_seen = true;
      } else if (entry->name == "index.json") {
        REGISTRY_TRY_ASSIGN(m_index, read_entry(tar, *entry, k_max_index_bytes));
        m_index_seen = true;
      } else if (entry->name.rfind("blobs/", 0) == 0) {
        REGISTRY_TRY(read_blob(tar, *entry));
      }
      // Anything else (e.g. a README) is not part of the layout: ignored.
    }
    // Read what follows the end-of-archive marker (padding), so that a
    // compressed stream is checked to its very end.
    std::vector<char> rest(64 * 1024);
    while (true) {
      REGISTRY_TRY_ASSIGN(size_t n, stream.read(rest.data(), rest.size()));
      if (n == 0) {
        break;
      }
    }
    if (!m_layout_seen) {
      return fail(ErrorCode::corrupt, "not an OCI image layout: the archive has no oci-layout file");
    }
    if (!m_index_seen) {
      return fail(ErrorCode::corrupt, "not an OCI image layout: the archive has no index.json");
    }
    return ok();
  }

  Result<void>
  read_blob(archive::TarReader& tar, const archive::TarEntry& entry)
  {
    std::string rest = entry.name.substr(6);
    auto slash = rest.find('/');
    if (slash == std::string::npos) {
      return fail(ErrorCode::corrupt, "unexpected file in the archive: " + entry.name);
    }
    auto digest = oci::Digest::parse(rest.substr(0, slash) + ":" + rest.substr(slash + 1));
    if (!digest) {
      return fail(ErrorCode::digest_invalid, "invalid blob name in the archive: " + entry.name);
    }
    if (m_staged.blobs.count(digest->str())) {
      return ok(); // a duplicate entry: the first one was verified
    }
    bool small = entry.size <= oci::k_max_manifest_bytes;
    std::string copy;
    Error read_error;
    ByteSource body = [&](const storage::ByteSink& sink) {
      std::vector<char> buffer(static_cast<size_t>(std::min<uint64_t>(k_chunk, entry.size + 1)));
      while (true) {
        auto n = tar.read(buffer.data(), buffer.size());
        if (!n) {
          read_error = n.take_error();
          return false;
        }
        if (*n == 0) {
          return true;
        }
        if (small) {
          copy.append(buffer.data(), *n);
        }
        m_stats.bytes += *n;
        if (!sink(buffer.data(), *n)) {
          return false;
        }
        if (m_stats.bytes % (8 * k_chunk) < *n) {
          report();
        }
      }
    };
    auto staged = m_registry.stage_blob(m_options.feed, *digest, body, &read_error);
    if (!staged) {
      auto error = staged.take_error();
      if (error.code == ErrorCode::digest_invalid) {
        error.message = "digest mismatch: " + entry.name + " does not hash to its name";
      }
      return fail(std::move(error));
    }
    if (staged->existed) {
      m_staged.present.insert(digest->str());
    }
    if (small) {
      REGISTRY_TRY(m_spool.write(digest->str(), copy));
    }
    m_staged.blobs.emplace(digest->str(), std::move(staged).value());
    ++m_objects;
    report();
    return ok();
  }

  Result<std::string>
  manifest_bytes(const oci::Digest& digest)
  {
    if (!m_staged.blobs.count(digest.str())) {
      return fail(ErrorCode::manifest_blob_unknown,
                  "manifest " + digest.str() + " is missing from the archive", digest.str());
    }
    auto bytes = util::read_file(m_spool.file(digest.str()));
    if (!bytes) {
      return fail(ErrorCode::manifest_invalid,
                  "blob " + digest.str() + " is too large to be a manifest", digest.str());
    }
    return bytes;
  }

  // Checks a manifest tree before anything is applied.
  Result<void>
  check(const oci::Digest& digest, const std::string& media_type, uint64_t size, int depth)
  {
    if (depth > 8) {
      return fail(ErrorCode::manifest_invalid, "indexes nest too deeply", digest.str());
    }
    REGISTRY_TRY_ASSIGN(auto bytes, manifest_bytes(digest));
    if (size != 0 && bytes.size() != size) {
      return fail(ErrorCode::corrupt,
                  "manifest " + digest.str() + " has " + std::to_string(bytes.size())
                    + " bytes but its descriptor says " + std::to_string(size));
    }
    if (!m_checked.insert(digest.str()).second) {
      return ok();
    }
    auto parsed = oci::parse_manifest(bytes, media_type);
    if (!parsed) {
      auto error = parsed.take_error();
      error.message = "manifest " + digest.str() + ": " + error.message;
      return fail(std::move(error));
    }
    for (const auto& child : parsed->manifests) {
      REGISTRY_TRY(check(child.digest, child.media_type, child.size, depth + 1));
    }
    for (const auto& blob : parsed->referenced_blobs()) {
      auto it = m_staged.blobs.find(blob.digest.str());
      if (it == m_staged.blobs.end()) {
        return fail(ErrorCode::manifest_blob_unknown,
                    "manifest " + digest.str() + " references blob " + blob.digest.str()
                      + " which is missing from the archive",
                    blob.digest.str());
      }
      if (it->second.size != blob.size) {
        return fail(ErrorCode::corrupt, "blob " + blob.digest.str() + " has "
                                          + std::to_string(it->second.size)
                                          + " bytes but manifest " + digest.str() + " says "
                                          + std::to_string(blob.size));
      }
    }
    return ok();
  }

  Result<void>
  plan()
  {
    auto index = nlohmann::json::parse(m_index, nullptr, false);
    if (index.is_discarded() || !index.is_object() || !index.contains("manifests")
        || !index["manifests"].is_array()) {
      return fail(ErrorCode::corrupt, "index.json is not a valid image index");
    }
    for (const auto& descriptor : index["manifests"]) {
      REGISTRY_TRY_ASSIGN(auto target, resolve_target(m_options, descriptor));
      REGISTRY_TRY(check(target.digest, target.media_type, target.size, 0));
      m_targets.push_back(std::move(target));
    }
    if (m_targets.empty()) {
      return fail(ErrorCode::invalid_argument, "the archive's index.json names no images");
    }
    return ok();
  }

  Result<void>
  put(const std::string& repository, const oci::Digest& digest, const std::string& media_type,
      const std::string& tag, int depth)
  {
    std::string key = repository + "@" + digest.str();
    bool done = m_applied.count(key) > 0;
    if (done && tag.empty()) {
      return ok();
    }
    REGISTRY_TRY_ASSIGN(auto bytes, manifest_bytes(digest));
    REGISTRY_TRY_ASSIGN(auto parsed, oci::parse_manifest(bytes, media_type));
    if (!done) {
      for (const auto& child : parsed.manifests) {
        REGISTRY_TRY(put(repository, child.digest, child.media_type, "", depth + 1));
      }
      for (const auto& blob : parsed.referenced_blobs()) {
        auto& staged = m_staged.blobs.at(blob.digest.str());
        REGISTRY_TRY(m_registry.link_staged_blob(repository, staged));
        if (m_linked.insert(blob.digest.str()).second) {
          ++m_stats.blobs;
          if (m_staged.present.count(blob.digest.str())) {
            ++m_stats.skipped;
          }
        }
      }
    }
    std::string type = media_type.empty() ? parsed.media_type : media_type;
    auto stored = m_registry.put_manifest(repository, tag.empty() ? digest.str() : tag, type,
                                          std::move(bytes));
    if (!stored) {
      auto error = stored.take_error();
      error.message = "storing " + repository + (tag.empty() ? "@" + digest.str() : ":" + tag)
                      + " failed: " + error.message;
      return fail(std::move(error));
    }
    if (!done) {
      m_applied.insert(key);
      ++m_stats.manifests;
    }
    return ok();
  }

  Result<void>
  apply()
  {
    for (const auto& target : m_targets) {
      REGISTRY_TRY(put(target.repository, target.digest, target.media_type, target.tag, 0));
    }
    return ok();
  }

  Registry& m_registry;
  const ImportOptions& m_options;
  SpoolDir& m_spool;
  StagedSet m_staged;
  TransferStats m_stats;
  uint64_t m_objects = 0;
  bool m_layout_seen = false;
  bool m_index_seen = false;
  std::string m_index;
  std::vector<Target> m_targets;
  std::set<std::string> m_checked;
  std::set<std::string> m_applied;
  std::set<std::string> m_linked;
};

} // namespace

Result<TransferStats>
import_archive(Registry& registry, const ImportOptions& options, util::InputStream& in)
{
  REGISTRY_TRY(registry.get_feed(options.feed));
  if (!options.repository.empty()) {
    REGISTRY_TRY(oci::parse_repository_name(options.feed + "/" + options.repository));
  }
  REGISTRY_TRY_ASSIGN(auto spool, SpoolDir::create());
  Importer importer(registry, options, spool);
  return importer.run(in);
}

} // namespace registry::service
