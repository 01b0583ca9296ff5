#include "common/service/garbage_collector.hpp"

#include "common/oci/media_types.hpp"
#include "common/storage/fs_blob_store.hpp"
#include "common/util/clock.hpp"
#include "common/util/uuid.hpp"
#include "tests/support/test_dir.hpp"
#include "tests/unit/unit_helpers.hpp"

#include <SQLiteCpp/SQLiteCpp.h>
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <unistd.h>
#include <vector>

using registry::ErrorCode;
using registry::oci::Digest;
using registry::service::FsckOptions;
using registry::service::FsckProblem;
using registry::service::FsckReport;
using registry::service::GcOptions;
using registry::service::GcReport;
using registry::service::Registry;
using registry::storage::FsBlobStore;
using registry::test::code_of;
using registry::test::source_of;
using registry::test::TestDir;
using nlohmann::json;
namespace fs = std::filesystem;
namespace mt = registry::oci::media_type;
namespace util = registry::util;

namespace {

constexpr int64_t k_start = 1'700'000'000;
constexpr int64_t k_hour = 3600;
constexpr int64_t k_day = 86400;

std::string
digest_of(const std::string& bytes)
{
  return Digest::of(bytes).str();
}

std::vector<std::string>
sorted(std::vector<std::string> v)
{
  std::sort(v.begin(), v.end());
  return v;
}

size_t
count_files(const fs::path& dir)
{
  size_t n = 0;
  if (!fs::exists(dir)) {
    return 0;
  }
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (entry.is_regular_file()) {
      ++n;
    }
  }
  return n;
}

// Sets a file's modification time to `unix_seconds` (the stores judge the age
// of files without a row by it).
void
set_mtime(const fs::path& path, int64_t unix_seconds)
{
  std::error_code ec;
  auto sys = std::chrono::sys_seconds(std::chrono::seconds(unix_seconds));
  fs::last_write_time(path, std::chrono::file_clock::from_sys(sys), ec);
  REQUIRE_MESSAGE(!ec, ec.message());
}

void
write_file(const fs::path& path, const std::string& bytes)
{
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
  out.close();
  REQUIRE(out.good());
}

GcOptions
gc_options(int64_t grace, int64_t upload_expiry = k_day)
{
  GcOptions options;
  options.grace = grace;
  options.upload_expiry = upload_expiry;
  return options;
}

GcOptions
gc_untagged(int64_t grace, int64_t untagged_older_than)
{
  GcOptions options = gc_options(grace);
  options.untagged_older_than = untagged_older_than;
  return options;
}

// The bytes of an image: a config, one layer and the OCI manifest over them.
struct Image {
  std::string config;
  std::string layer;
  std::string manifest;

  uint64_t
  blob_bytes() const
  {
    return config.size() + layer.size();
  }
  std::vector<std::string>
  blob_digests() const
  {
    return {digest_of(config), digest_of(layer)};
  }
};

// A registry on a fresh data directory with feeds "team" and "other" (both on
// the default store, id 1) and a manual clock at k_start.
struct Fixture {
  TestDir dir;
  fs::path data = dir / "data";
  std::shared_ptr<util::ManualClock> clock = std::make_shared<util::ManualClock>(k_start);
  std::unique_ptr<Registry> reg;

  Fixture()
  {
    auto opened = Registry::open(data, clock);
    REQUIRE_OK(opened);
    reg = std::move(opened).value();
    // These cases look at the store's files: every blob goes there. The small
    // blobs the database keeps have cases of their own.
    reg->set_small_blob_limit(0);
    REQUIRE_OK(reg->create_feed("team", "", "pull"));
    REQUIRE_OK(reg->create_feed("other", "", "none"));
  }

  registry::storage::BlobStore&
  store()
  {
    auto found = reg->store(1);
    REQUIRE_OK(found);
    return **found;
  }
  static std::string
  key_of(const std::string& digest)
  {
    return FsBlobStore::key_for(*Digest::parse(digest));
  }
  fs::path
  blob_file(const std::string& digest) const
  {
    return data / "store" / key_of(digest);
  }
  fs::path
  blobs_dir() const
  {
    return data / "store" / "blobs";
  }
  fs::path
  upload_file(const std::string& id) const
  {
    return data / "store" / "uploads" / id;
  }
  fs::path
  quarantine_dir() const
  {
    return data / "store" / "quarantine";
  }

  // Pushes `bytes` monolithically into `repository`; returns the digest.
  std::string
  push(const std::string& repository, const std::string& bytes)
  {
    std::string digest = digest_of(bytes);
    auto pushed = reg->push_blob(repository, digest, source_of(bytes));
    REQUIRE_OK(pushed);
    REQUIRE(pushed->size == bytes.size());
    return digest;
  }

  // The whole blob as served to `repository` (open_blob does not touch it).
  std::string
  read(const std::string& repository, const std::string& digest)
  {
    auto blob = reg->open_blob(repository, digest);
    REQUIRE_OK(blob);
    std::string out(blob->info.size, '\0');
    size_t done = 0;
    while (done < out.size()) {
      auto n = blob->reader->read_at(done, out.data() + done, out.size() - done);
      REQUIRE_OK(n);
      REQUIRE(*n > 0);
      done += *n;
    }
    return out;
  }

  // The blob row of `digest` in the default store, read without touching it.
  std::optional<registry::metadata::BlobRow>
  row(const std::string& digest)
  {
    auto found = reg->metadata().find_blob(1, digest);
    REQUIRE_OK(found);
    return *found;
  }
  bool
  has_row(const std::string& digest)
  {
    return row(digest).has_value();
  }
  // Row and bytes are both there (or both gone: the caller checks false).
  bool
  stored(const std::string& digest)
  {
    bool with_row = has_row(digest);
    bool with_bytes = fs::exists(blob_file(digest));
    CHECK_MESSAGE(with_row == with_bytes, digest << ": row " << with_row << ", bytes "
                                                 << with_bytes);
    return with_row && with_bytes;
  }

  // Pushes the config and layer of an image named `name` into `repository`.
  Image
  image(const std::string& repository, const std::string& name, unsigned seed)
  {
    Image img;
    img.config = R"({"name":")" + name + R"("})";
    img.layer = registry::test::random_bytes(1000 + 100 * seed, seed);
    push(repository, img.config);
    push(repository, img.layer);
    img.manifest = registry::test::oci_manifest_json(img.config, {img.layer}).dump();
    return img;
  }

  // put_manifest that must succeed; returns the digest.
  std::string
  put(const std::string& repository, const std::string& reference, const std::string& bytes,
      std::string_view content_type = mt::oci_manifest)
  {
    auto result = reg->put_manifest(repository, reference, content_type, bytes);
    REQUIRE_OK(result);
    return result->digest.str();
  }
  bool
  has_manifest(const std::string& repository, const std::string& reference)
  {
    auto got = reg->get_manifest(repository, reference, false);
    if (!got) {
      CHECK(code_of(got) == ErrorCode::manifest_unknown);
    }
    return got.has_value();
  }

  // Starts an upload in `repository` and appends `bytes`; returns its id.
  std::string
  upload(const std::string& repository, const std::string& bytes)
  {
    auto started = reg->start_upload(repository);
    REQUIRE_OK(started);
    auto appended = reg->append_upload(repository, started->id, 0, source_of(bytes));
    REQUIRE_OK(appended);
    REQUIRE(appended->offset == bytes.size());
    return started->id;
  }
  bool
  has_upload_row(const std::string& id)
  {
    auto found = reg->metadata().find_upload(id);
    REQUIRE_OK(found);
    return found->has_value();
  }

  GcReport
  gc(const GcOptions& options)
  {
    auto report = registry::service::collect_garbage(*reg, options);
    REQUIRE_OK(report);
    return *report;
  }
  FsckReport
  fsck(const FsckOptions& options = {})
  {
    auto report = registry::service::check_integrity(*reg, options);
    REQUIRE_OK(report);
    return *report;
  }
};

// The problems of `report` of one kind.
std::vector<FsckProblem>
problems_of(const FsckReport& report, const std::string& kind)
{
  std::vector<FsckProblem> out;
  for (const auto& p : report.problems) {
    if (p.kind == kind) {
      out.push_back(p);
    }
  }
  return out;
}

} // namespace

TEST_SUITE("service")
{
  TEST_CASE("service::collect_garbage")
  {
    Fixture f;

    SUBCASE("an unreferenced blob older than the grace goes with its bytes, a younger one stays")
    {
      const std::string old_bytes = registry::test::random_bytes(3000, 1);
      const std::string young_bytes = registry::test::random_bytes(2000, 2);
      const std::string old_digest = f.push("team/app", old_bytes);
      f.clock->advance(1800);
      const std::string young_digest = f.push("team/app", young_bytes);
      f.clock->advance(1800);

      GcReport report = f.gc(gc_options(k_hour));
      CHECK_FALSE(report.dry_run);
      CHECK(report.blobs_removed == 1);
      CHECK(report.bytes_freed == old_bytes.size());
      CHECK(report.manifests_removed == 0);
      CHECK(report.uploads_purged == 0);
      CHECK(report.quarantine_recovered == 0);
      CHECK(report.removed_digests == std::vector<std::string>{old_digest});

      CHECK_FALSE(f.has_row(old_digest));
      CHECK_FALSE(fs::exists(f.blob_file(old_digest)));
      CHECK(code_of(f.reg->stat_blob("team/app", old_digest)) == ErrorCode::blob_unknown);
      CHECK(code_of(f.reg->open_blob("team/app", old_digest)) == ErrorCode::blob_unknown);
      CHECK(f.stored(young_digest));
      CHECK(f.read("team/app", young_digest) == young_bytes);
      CHECK(count_files(f.blobs_dir()) == 1);
      CHECK(count_files(f.quarantine_dir()) == 0);
    }

    SUBCASE("at the grace edge a blob last used exactly at now - grace goes, one second later stays")
    {
      const std::string at_edge = f.push("team/app", "at the edge");
      f.clock->advance(1);
      const std::string after_edge = f.push("team/app", "one second later");
      f.clock->advance(k_hour - 1);

      GcReport first = f.gc(gc_options(k_hour));
      CHECK(first.blobs_removed == 1);
      CHECK(first.bytes_freed == std::string("at the edge").size());
      CHECK(first.removed_digests == std::vector<std::string>{at_edge});
      CHECK_FALSE(f.stored(at_edge));
      CHECK(f.stored(after_edge));

      f.clock->advance(1);
      GcReport second = f.gc(gc_options(k_hour));
      CHECK(second.blobs_removed == 1);
      CHECK(second.removed_digests == std::vector<std::string>{after_edge});
      CHECK_FALSE(f.stored(after_edge));
      CHECK(count_files(f.blobs_dir()) == 0);
    }

    SUBCASE("a blob referenced by a manifest stays however old it is")
    {
      Image img = f.image("team/app", "kept", 3);
      f.put("team/app", "v1", img.manifest);
      f.put("team/app", digest_of(img.manifest), img.manifest);
      f.clock->advance(100 * k_day);
      GcReport report = f.gc(gc_options(0));
      CHECK(report.blobs_removed == 0);
      CHECK(report.bytes_freed == 0);
      CHECK(report.removed_digests.empty());
      for (const auto& d : img.blob_digests()) {
        CHECK(f.stored(d));
      }
      CHECK(f.read("team/app", digest_of(img.layer)) == img.layer);
    }

    SUBCASE("a layer shared by repositories of two feeds stays until its last manifest is gone")
    {
      const std::string layer = registry::test::random_bytes(4000, 4);
      const std::string layer_digest = digest_of(layer);
      struct Repo {
        std::string name;
        std::string config;
        std::string manifest_digest;
      };
      std::vector<Repo> repos = {{"team/a", R"({"repo":"a"})", ""},
                                 {"team/b", R"({"repo":"b"})", ""},
                                 {"other/c", R"({"repo":"c"})", ""}};
      for (auto& r : repos) {
        f.push(r.name, r.config);
        f.push(r.name, layer);
        r.manifest_digest
          = f.put(r.name, "v1", registry::test::oci_manifest_json(r.config, {layer}).dump());
      }
      CHECK(count_files(f.blobs_dir()) == 4); // one copy of the layer

      f.clock->advance(2 * k_hour);
      GcReport none = f.gc(gc_options(k_hour));
      CHECK(none.blobs_removed == 0);
      CHECK(count_files(f.blobs_dir()) == 4);

      // the first two manifests go: their configs go, the layer stays
      REQUIRE_OK(f.reg->delete_manifest("team/a", repos[0].manifest_digest));
      GcReport first = f.gc(gc_options(k_hour));
      CHECK(first.blobs_removed == 1);
      CHECK(first.bytes_freed == repos[0].config.size());
      CHECK(first.removed_digests == std::vector<std::string>{digest_of(repos[0].config)});
      REQUIRE_OK(f.reg->delete_manifest("team/b", repos[1].manifest_digest));
      GcReport second = f.gc(gc_options(k_hour));
      CHECK(second.blobs_removed == 1);
      CHECK(second.removed_digests == std::vector<std::string>{digest_of(repos[1].config)});
      CHECK(f.stored(layer_digest));
      CHECK(f.read("other/c", layer_digest) == layer);
      CHECK(f.read("team/a", layer_digest) == layer); // still linked there

      // the last one is pushed again (a use), then deleted: the grace still holds
      f.put("other/c", "v1", registry::test::oci_manifest_json(repos[2].config, {layer}).dump());
      REQUIRE_OK(f.reg->delete_manifest("other/c", repos[2].manifest_digest));
      GcReport within_grace = f.gc(gc_options(k_hour));
      CHECK(within_grace.blobs_removed == 0);
      CHECK(f.stored(layer_digest));

      f.clock->advance(k_hour);
      GcReport last = f.gc(gc_options(k_hour));
      CHECK(last.blobs_removed == 2);
      CHECK(last.bytes_freed == layer.size() + repos[2].config.size());
      CHECK(sorted(last.removed_digests)
            == sorted({layer_digest, digest_of(repos[2].config)}));
      CHECK_FALSE(f.stored(layer_digest));
      for (const auto& r : repos) {
        CHECK(code_of(f.reg->stat_blob(r.name, layer_digest)) == ErrorCode::blob_unknown);
      }
      CHECK(count_files(f.blobs_dir()) == 0);
    }

    SUBCASE("an index keeps its manifests and their blobs; untagged, the chain goes in one run")
    {
      Image amd = f.image("team/app", "amd", 5);
      Image arm = f.image("team/app", "arm", 6);
      const std::string d_amd = f.put("team/app", digest_of(amd.manifest), amd.manifest);
      const std::string d_arm = f.put("team/app", digest_of(arm.manifest), arm.manifest);
      const std::string index = registry::test::oci_index_json({amd.manifest, arm.manifest}).dump();
      const std::string d_index = f.put("team/app", "multi", index, mt::oci_index);
      f.clock->advance(2 * k_hour);

      GcReport kept = f.gc(gc_untagged(k_hour, k_hour));
      CHECK(kept.manifests_removed == 0);
      CHECK(kept.blobs_removed == 0);
      CHECK(f.has_manifest("team/app", d_amd));
      CHECK(f.has_manifest("team/app", d_arm));
      CHECK(f.has_manifest("team/app", d_index));

      auto untagged = f.reg->delete_manifest("team/app", "multi");
      REQUIRE_OK(untagged);
      GcReport report = f.gc(gc_untagged(k_hour, k_hour));
      CHECK(report.manifests_removed == 3);
      CHECK(report.blobs_removed == 4);
      CHECK(report.bytes_freed == amd.blob_bytes() + arm.blob_bytes());
      std::vector<std::string> all = amd.blob_digests();
      for (const auto& d : arm.blob_digests()) {
        all.push_back(d);
      }
      CHECK(sorted(report.removed_digests) == sorted(all));
      CHECK_FALSE(f.has_manifest("team/app", d_index));
      CHECK_FALSE(f.has_manifest("team/app", d_amd));
      CHECK_FALSE(f.has_manifest("team/app", d_arm));
      for (const auto& d : all) {
        CHECK_FALSE(f.stored(d));
      }
      CHECK(count_files(f.blobs_dir()) == 0);
    }

    SUBCASE("without untagged_older_than untagged manifests and their blobs stay")
    {
      Image img = f.image("team/app", "untagged", 7);
      const std::string d = f.put("team/app", digest_of(img.manifest), img.manifest);
      f.clock->advance(100 * k_day);
      GcReport report = f.gc(gc_options(0));
      CHECK(report.manifests_removed == 0);
      CHECK(report.blobs_removed == 0);
      CHECK(f.has_manifest("team/app", d));
    }

    SUBCASE("an untagged manifest goes once older than untagged_older_than, its blobs with it")
    {
      Image img = f.image("team/app", "young", 8);
      const std::string d = f.put("team/app", digest_of(img.manifest), img.manifest);
      f.clock->advance(k_hour - 1);
      GcReport young = f.gc(gc_untagged(0, k_hour));
      CHECK(young.manifests_removed == 0);
      CHECK(young.blobs_removed == 0);
      CHECK(f.has_manifest("team/app", d));

      f.clock->advance(1); // pushed_at == now - untagged_older_than
      GcReport old = f.gc(gc_untagged(0, k_hour));
      CHECK(old.manifests_removed == 1);
      CHECK(old.blobs_removed == 2);
      CHECK(old.bytes_freed == img.blob_bytes());
      CHECK_FALSE(f.has_manifest("team/app", d));
    }

    SUBCASE("children still tagged stay when their untagged index goes")
    {
      Image amd = f.image("team/app", "amd", 5);
      Image arm = f.image("team/app", "arm", 6);
      const std::string d_amd = f.put("team/app", digest_of(amd.manifest), amd.manifest);
      const std::string d_arm = f.put("team/app", "arm", arm.manifest);
      const std::string index = registry::test::oci_index_json({amd.manifest, arm.manifest}).dump();
      const std::string d_index = f.put("team/app", "multi", index, mt::oci_index);
      REQUIRE_OK(f.reg->delete_manifest("team/app", "multi"));
      f.clock->advance(2 * k_hour);

      GcReport report = f.gc(gc_untagged(k_hour, k_hour));
      CHECK(report.manifests_removed == 2);
      CHECK(report.blobs_removed == 2);
      CHECK(report.bytes_freed == amd.blob_bytes());
      CHECK(sorted(report.removed_digests) == sorted(amd.blob_digests()));
      CHECK_FALSE(f.has_manifest("team/app", d_index));
      CHECK_FALSE(f.has_manifest("team/app", d_amd));
      CHECK(f.has_manifest("team/app", "arm"));
      CHECK(f.has_manifest("team/app", d_arm));
      for (const auto& d : arm.blob_digests()) {
        CHECK(f.stored(d));
      }
    }

    SUBCASE("an untagged chain of two indexes and a manifest goes level by level in one run")
    {
      Image img = f.image("team/app", "deep", 9);
      const std::string d_manifest = f.put("team/app", digest_of(img.manifest), img.manifest);
      const std::string inner = registry::test::oci_index_json({img.manifest}).dump();
      const std::string d_inner = f.put("team/app", digest_of(inner), inner, mt::oci_index);
      json outer_json = {{"schemaVersion", 2},
                         {"mediaType", mt::oci_index},
                         {"manifests", {registry::test::descriptor_json(mt::oci_index, inner)}}};
      const std::string outer = outer_json.dump();
      const std::string d_outer = f.put("team/app", "nested", outer, mt::oci_index);
      f.clock->advance(2 * k_hour);

      GcReport kept = f.gc(gc_untagged(k_hour, k_hour));
      CHECK(kept.manifests_removed == 0);
      CHECK(kept.blobs_removed == 0);

      REQUIRE_OK(f.reg->delete_manifest("team/app", "nested"));
      std::vector<std::string> phases;
      GcOptions options = gc_untagged(k_hour, k_hour);
      options.progress = [&](const char* phase, uint64_t, uint64_t) { phases.push_back(phase); };
      GcReport report = f.gc(options);
      CHECK(report.manifests_removed == 3);
      CHECK(report.blobs_removed == 2);
      CHECK(report.bytes_freed == img.blob_bytes());
      CHECK_FALSE(f.has_manifest("team/app", d_outer));
      CHECK_FALSE(f.has_manifest("team/app", d_inner));
      CHECK_FALSE(f.has_manifest("team/app", d_manifest));
      CHECK(std::count(phases.begin(), phases.end(), std::string("manifests")) >= 3);
      CHECK(std::count(phases.begin(), phases.end(), std::string("blobs")) >= 1);
    }

    SUBCASE("a referrer of a live subject stays untagged; once the subject is deleted it goes")
    {
      Image subject = f.image("team/app", "subject", 10);
      const std::string d_subject = f.put("team/app", "latest", subject.manifest);
      const std::string payload = "signature payload";
      f.push("team/app", "{}");
      f.push("team/app", payload);
      json artifact_json
        = {{"schemaVersion", 2},
           {"mediaType", mt::oci_manifest},
           {"artifactType", "application/vnd.example.signature"},
           {"config", registry::test::descriptor_json(mt::oci_empty, "{}")},
           {"layers", {registry::test::descriptor_json("application/octet-stream", payload)}},
           {"subject", registry::test::descriptor_json(mt::oci_manifest, subject.manifest)}};
      const std::string artifact = artifact_json.dump();
      auto put = f.reg->put_manifest("team/app", digest_of(artifact), mt::oci_manifest, artifact);
      REQUIRE_OK(put);
      REQUIRE(put->subject == d_subject);
      const std::string d_artifact = put->digest.str();
      f.clock->advance(2 * k_hour);

      GcReport kept = f.gc(gc_untagged(k_hour, k_hour));
      CHECK(kept.manifests_removed == 0);
      CHECK(kept.blobs_removed == 0);
      CHECK(f.has_manifest("team/app", d_artifact));

      REQUIRE_OK(f.reg->delete_manifest("team/app", d_subject));
      GcReport report = f.gc(gc_untagged(k_hour, k_hour));
      CHECK(report.manifests_removed == 1);
      CHECK(report.blobs_removed == 4);
      CHECK(report.bytes_freed == subject.blob_bytes() + 2 + payload.size());
      CHECK_FALSE(f.has_manifest("team/app", d_artifact));
      CHECK(count_files(f.blobs_dir()) == 0);
    }

    SUBCASE("an untagged subject goes first and its referrer in the next pass")
    {
      Image subject = f.image("team/app", "subject", 11);
      const std::string d_subject = f.put("team/app", digest_of(subject.manifest), subject.manifest);
      f.push("team/app", "{}");
      json artifact_json
        = {{"schemaVersion", 2},
           {"mediaType", mt::oci_manifest},
           {"artifactType", "application/vnd.example.sbom"},
           {"config", registry::test::descriptor_json(mt::oci_empty, "{}")},
           {"layers", json::array()},
           {"subject", registry::test::descriptor_json(mt::oci_manifest, subject.manifest)}};
      const std::string artifact = artifact_json.dump();
      const std::string d_artifact = f.put("team/app", digest_of(artifact), artifact);
      f.clock->advance(2 * k_hour);

      GcReport report = f.gc(gc_untagged(k_hour, k_hour));
      CHECK(report.manifests_removed == 2);
      CHECK(report.blobs_removed == 3);
      CHECK(report.bytes_freed == subject.blob_bytes() + 2);
      CHECK_FALSE(f.has_manifest("team/app", d_subject));
      CHECK_FALSE(f.has_manifest("team/app", d_artifact));
    }

    SUBCASE("a mount refreshes the use time; after the grace the blob goes from both repositories")
    {
      const std::string bytes = registry::test::random_bytes(2500, 12);
      const std::string digest = f.push("team/src", bytes);
      f.clock->advance(3000);
      auto mounted = f.reg->mount_blob("other/dst", "team/src", digest);
      REQUIRE_OK(mounted);
      REQUIRE(mounted->has_value());
      REQUIRE(f.row(digest)->last_touched_at == k_start + 3000);
      f.clock->advance(600); // an hour after the push, 600 s after the mount

      GcReport kept = f.gc(gc_options(k_hour));
      CHECK(kept.blobs_removed == 0);
      CHECK(f.read("team/src", digest) == bytes);
      CHECK(f.read("other/dst", digest) == bytes);

      f.clock->advance(3000); // exactly an hour after the mount
      GcReport report = f.gc(gc_options(k_hour));
      CHECK(report.blobs_removed == 1);
      CHECK(report.bytes_freed == bytes.size());
      CHECK_FALSE(f.stored(digest));
      CHECK(code_of(f.reg->stat_blob("team/src", digest)) == ErrorCode::blob_unknown);
      CHECK(code_of(f.reg->stat_blob("other/dst", digest)) == ErrorCode::blob_unknown);
      auto again = f.reg->mount_blob("team/third", "other/dst", digest);
      REQUIRE_OK(again);
      CHECK_FALSE(again->has_value());
    }

    SUBCASE("stat_blob refreshes the use time, but only when the stamp is over 60 seconds old")
    {
      const std::string quick = f.push("team/app", "checked after 59 seconds");
      const std::string later = f.push("team/app", "checked after 3000 seconds");
      f.clock->advance(59);
      REQUIRE_OK(f.reg->stat_blob("team/app", quick));
      CHECK(f.row(quick)->last_touched_at == k_start); // no write within a minute
      f.clock->advance(3000 - 59);
      REQUIRE_OK(f.reg->stat_blob("team/app", later));
      CHECK(f.row(later)->last_touched_at == k_start + 3000);
      f.clock->advance(600);

      GcReport first = f.gc(gc_options(k_hour));
      CHECK(first.blobs_removed == 1);
      CHECK(first.removed_digests == std::vector<std::string>{quick});
      CHECK(f.stored(later));

      f.clock->advance(3000);
      GcReport second = f.gc(gc_options(k_hour));
      CHECK(second.blobs_removed == 1);
      CHECK(second.removed_digests == std::vector<std::string>{later});
      CHECK(count_files(f.blobs_dir()) == 0);
    }

    SUBCASE("a dry run reports the counts of the real run and removes nothing")
    {
      const std::string a = registry::test::random_bytes(1000, 20);
      const std::string b = registry::test::random_bytes(2000, 21);
      const std::string d_a = f.push("team/app", a);
      const std::string d_b = f.push("other/app", b);
      Image img = f.image("team/app", "tagged", 22);
      f.put("team/app", "v1", img.manifest);
      const std::string stale = f.upload("team/app", "stale");
      const std::string orphan = util::random_uuid();
      REQUIRE_OK(f.store().create_upload(orphan));
      set_mtime(f.upload_file(orphan), k_start);
      f.clock->advance(k_day);
      const std::string young = f.push("team/app", "young");
      const std::string fresh = f.upload("team/app", "fresh");

      GcReport dry = f.gc([] {
        GcOptions o = gc_options(k_hour, k_day);
        o.dry_run = true;
        return o;
      }());
      CHECK(dry.dry_run);
      CHECK(dry.blobs_removed == 2);
      CHECK(dry.bytes_freed == a.size() + b.size());
      CHECK(sorted(dry.removed_digests) == sorted({d_a, d_b}));
      CHECK(dry.uploads_purged == 2);
      CHECK(dry.manifests_removed == 0);
      for (const auto& d : {d_a, d_b, young}) {
        CHECK(f.stored(d));
      }
      CHECK(f.has_upload_row(stale));
      CHECK(fs::exists(f.upload_file(stale)));
      CHECK(fs::exists(f.upload_file(orphan)));
      CHECK(f.has_upload_row(fresh));

      GcReport real = f.gc(gc_options(k_hour, k_day));
      CHECK_FALSE(real.dry_run);
      CHECK(real.blobs_removed == dry.blobs_removed);
      CHECK(real.bytes_freed == dry.bytes_freed);
      CHECK(real.uploads_purged == dry.uploads_purged);
      CHECK(real.manifests_removed == dry.manifests_removed);
      CHECK(sorted(real.removed_digests) == sorted(dry.removed_digests));
      CHECK_FALSE(f.stored(d_a));
      CHECK_FALSE(f.stored(d_b));
      CHECK(f.stored(young));
      CHECK_FALSE(f.has_upload_row(stale));
      CHECK_FALSE(fs::exists(f.upload_file(stale)));
      CHECK_FALSE(fs::exists(f.upload_file(orphan)));
      CHECK(f.has_upload_row(fresh));
    }

    SUBCASE("a dry run over an untagged index chain reports what the real run then removes")
    {
      Image amd = f.image("team/app", "amd", 5);
      Image arm = f.image("team/app", "arm", 6);
      f.put("team/app", digest_of(amd.manifest), amd.manifest);
      f.put("team/app", digest_of(arm.manifest), arm.manifest);
      const std::string index = registry::test::oci_index_json({amd.manifest, arm.manifest}).dump();
      const std::string d_index = f.put("team/app", digest_of(index), index, mt::oci_index);
      f.clock->advance(2 * k_hour);

      GcOptions options = gc_untagged(k_hour, k_hour);
      options.dry_run = true;
      GcReport dry = f.gc(options);
      CHECK(f.has_manifest("team/app", d_index));
      CHECK(count_files(f.blobs_dir()) == 4);
      GcReport real = f.gc(gc_untagged(k_hour, k_hour));
      REQUIRE(real.manifests_removed == 3);
      REQUIRE(real.blobs_removed == 4);
      // What the dry run announces is what the real run does.
      CHECK(dry.manifests_removed == real.manifests_removed);
      CHECK(dry.blobs_removed == real.blobs_removed);
      CHECK(dry.bytes_freed == real.bytes_freed);
    }

    SUBCASE("uploads idle longer than upload_expiry are purged with their files, fresh ones stay")
    {
      const std::string idle = f.upload("team/app", "idle bytes");
      f.clock->advance(50'000);
      const std::string fresh = f.upload("other/app", "fresh");
      f.clock->advance(k_day - 50'000); // idle was last active exactly upload_expiry ago

      GcReport first = f.gc(gc_options(k_hour, k_day));
      CHECK(first.uploads_purged == 1);
      CHECK(first.blobs_removed == 0);
      CHECK_FALSE(f.has_upload_row(idle));
      CHECK_FALSE(fs::exists(f.upload_file(idle)));
      CHECK(code_of(f.reg->upload_status("team/app", idle)) == ErrorCode::blob_upload_unknown);
      auto status = f.reg->upload_status("other/app", fresh);
      REQUIRE_OK(status);
      CHECK(status->offset == 5);
      CHECK(fs::exists(f.upload_file(fresh)));

      // activity keeps it alive: append, then an expiry later minus one second
      REQUIRE_OK(f.reg->append_upload("other/app", fresh, 5, source_of("more")));
      f.clock->advance(k_day - 1);
      GcReport second = f.gc(gc_options(k_hour, k_day));
      CHECK(second.uploads_purged == 0);
      CHECK(f.has_upload_row(fresh));

      f.clock->advance(1);
      GcReport third = f.gc(gc_options(k_hour, k_day));
      CHECK(third.uploads_purged == 1);
      CHECK_FALSE(f.has_upload_row(fresh));
      CHECK(count_files(f.data / "store" / "uploads") == 0);
    }

    SUBCASE("an upload file without a session goes once older than the expiry, by its file time")
    {
      const std::string old_orphan = util::random_uuid();
      const std::string young_orphan = util::random_uuid();
      REQUIRE_OK(f.store().create_upload(old_orphan));
      REQUIRE_OK(f.store().create_upload(young_orphan));
      set_mtime(f.upload_file(old_orphan), k_start - k_day);
      set_mtime(f.upload_file(young_orphan), k_start - k_day + 1);
      // a live session whose file looks old is judged by its row, not its file
      const std::string live = f.upload("team/app", "live");
      set_mtime(f.upload_file(live), k_start - 10 * k_day);

      GcReport report = f.gc(gc_options(k_hour, k_day));
      CHECK(report.uploads_purged == 1);
      CHECK_FALSE(fs::exists(f.upload_file(old_orphan)));
      CHECK(fs::exists(f.upload_file(young_orphan)));
      CHECK(fs::exists(f.upload_file(live)));
      CHECK(f.has_upload_row(live));
    }

    SUBCASE("while another holder has the gc lock it is a conflict; once the lock expires it runs")
    {
      const std::string digest = f.push("team/app", "garbage");
      auto taken = f.reg->metadata().acquire_lock("gc", "someone-else", f.reg->now(), k_hour);
      REQUIRE_OK(taken);
      REQUIRE(*taken);

      f.clock->advance(k_hour - 1);
      auto refused = registry::service::collect_garbage(*f.reg, gc_options(0));
      REQUIRE(code_of(refused) == ErrorCode::conflict);
      CHECK(refused.error().detail == "someone-else");
      GcOptions dry = gc_options(0);
      dry.dry_run = true;
      CHECK(code_of(registry::service::collect_garbage(*f.reg, dry)) == ErrorCode::conflict);
      CHECK(f.stored(digest));

      f.clock->advance(1); // expires_at == now: expired
      GcReport report = f.gc(gc_options(0));
      CHECK(report.blobs_removed == 1);
      CHECK_FALSE(f.stored(digest));

      // the collector released the lock: anyone may take it now
      auto after = f.reg->metadata().acquire_lock("gc", "someone-else", f.reg->now(), 60);
      REQUIRE_OK(after);
      CHECK(*after);
      CHECK(code_of(registry::service::collect_garbage(*f.reg, gc_options(0)))
            == ErrorCode::conflict);
      REQUIRE_OK(f.reg->metadata().release_lock("gc", "someone-else"));
      CHECK_OK(registry::service::collect_garbage(*f.reg, gc_options(0)));
    }

    SUBCASE("a lock left by a collector that no longer runs on this host is taken over at once")
    {
      char host[256] = {};
      REQUIRE(::gethostname(host, sizeof host - 1) == 0);
      const std::string here(host);
      const std::string digest = f.push("team/app", "garbage");
      auto take = [&](const std::string& holder) {
        auto taken = f.reg->metadata().acquire_lock("gc", holder, f.reg->now(), k_hour);
        REQUIRE_OK(taken);
        REQUIRE(*taken);
      };

      // alive here, or on another host: a conflict until the lock expires
      const std::vector<std::string> others = {here + ":" + std::to_string(::getppid()),
                                               "elsewhere.example:12345"};
      for (const std::string& holder : others) {
        INFO(holder);
        take(holder);
        auto refused = registry::service::collect_garbage(*f.reg, gc_options(0));
        REQUIRE(code_of(refused) == ErrorCode::conflict);
        CHECK(refused.error().detail == holder);
        REQUIRE_OK(f.reg->metadata().release_lock("gc", holder));
      }
      CHECK(f.stored(digest));

      // a pid that cannot exist on this host: the lock is stale
      take(here + ":2147483647");
      GcReport report = f.gc(gc_options(0));
      CHECK(report.blobs_removed == 1);
      CHECK_FALSE(f.stored(digest));
      auto free_again = f.reg->metadata().acquire_lock("gc", "someone-else", f.reg->now(), 60);
      REQUIRE_OK(free_again);
      CHECK(*free_again);
    }

    SUBCASE("a quarantined blob whose row exists is restored with its bytes intact")
    {
      Image img = f.image("team/app", "restored", 13);
      f.put("team/app", "v1", img.manifest);
      const std::string layer = digest_of(img.layer);
      REQUIRE_OK(f.store().quarantine_blob(Fixture::key_of(layer)));
      REQUIRE_FALSE(fs::exists(f.blob_file(layer)));
      REQUIRE(count_files(f.quarantine_dir()) == 1);
      f.clock->advance(2 * k_hour);

      GcReport report = f.gc(gc_options(k_hour));
      CHECK(report.quarantine_recovered == 1);
      CHECK(report.blobs_removed == 0);
      CHECK(f.stored(layer));
      CHECK(f.read("team/app", layer) == img.layer);
      CHECK(count_files(f.quarantine_dir()) == 0);
      CHECK(f.fsck().clean());
    }

    SUBCASE("a quarantined blob restored by its row is then collected like any other garbage")
    {
      const std::string bytes = registry::test::random_bytes(700, 14);
      const std::string digest = f.push("team/app", bytes);
      REQUIRE_OK(f.store().quarantine_blob(Fixture::key_of(digest)));
      f.clock->advance(2 * k_hour);

      GcReport report = f.gc(gc_options(k_hour));
      CHECK(report.quarantine_recovered == 1);
      CHECK(report.blobs_removed == 1);
      CHECK(report.bytes_freed == bytes.size());
      CHECK_FALSE(f.stored(digest));
      CHECK(count_files(f.quarantine_dir()) == 0);
      CHECK(count_files(f.blobs_dir()) == 0);
    }

    SUBCASE("a quarantined blob without a row is purged")
    {
      const std::string digest = f.push("team/app", "row deleted by the crashed collector");
      auto row = f.row(digest);
      REQUIRE(row.has_value());
      REQUIRE_OK(f.store().quarantine_blob(row->object_key));
      REQUIRE_OK(f.reg->metadata().delete_blob_row(row->id));
      // and bytes that never had a row
      const std::string stray = "stray bytes";
      auto key = f.store().put_blob(Digest::of(stray), stray);
      REQUIRE_OK(key);
      REQUIRE_OK(f.store().quarantine_blob(*key));
      REQUIRE(count_files(f.quarantine_dir()) == 2);

      GcReport report = f.gc(gc_options(k_hour));
      CHECK(report.quarantine_recovered == 2);
      CHECK(report.blobs_removed == 0);
      CHECK(count_files(f.quarantine_dir()) == 0);
      CHECK(count_files(f.blobs_dir()) == 0);
      CHECK(code_of(f.reg->open_blob("team/app", digest)) == ErrorCode::blob_unknown);
    }

    SUBCASE("a blob pushed again after gc removed it is stored again and readable")
    {
      const std::string bytes = registry::test::random_bytes(1500, 15);
      const std::string digest = f.push("team/app", bytes);
      f.clock->advance(k_hour);
      REQUIRE(f.gc(gc_options(k_hour)).blobs_removed == 1);
      REQUIRE_FALSE(f.stored(digest));

      CHECK(f.push("team/app", bytes) == digest);
      CHECK(f.stored(digest));
      CHECK(f.row(digest)->created_at == k_start + k_hour);
      CHECK(f.read("team/app", digest) == bytes);
      GcReport within_grace = f.gc(gc_options(k_hour));
      CHECK(within_grace.blobs_removed == 0);
      CHECK(f.read("team/app", digest) == bytes);
      const std::string config = "{}";
      f.push("team/app", config);
      f.put("team/app", "v1", registry::test::oci_manifest_json(config, {bytes}).dump());
    }

    SUBCASE("a collection limited to one feed leaves other feeds' blobs and uploads alone")
    {
      CHECK(code_of(registry::service::collect_garbage(*f.reg, [] {
              GcOptions o;
              o.feed = "nofeed";
              return o;
            }())) == ErrorCode::name_unknown);

      const std::string mine = f.push("team/app", "team garbage");
      const std::string theirs = f.push("other/app", "other garbage");
      const std::string my_upload = f.upload("team/app", "team upload");
      const std::string their_upload = f.upload("other/app", "other upload");
      f.clock->advance(k_day);

      GcOptions options = gc_options(k_hour, k_day);
      options.feed = "team";
      GcReport report = f.gc(options);
      CHECK(report.blobs_removed == 1);
      CHECK(report.removed_digests == std::vector<std::string>{mine});
      CHECK(report.uploads_purged == 1);
      CHECK_FALSE(f.stored(mine));
      CHECK(f.stored(theirs));
      CHECK_FALSE(f.has_upload_row(my_upload));
      CHECK(f.has_upload_row(their_upload));
      CHECK(fs::exists(f.upload_file(their_upload)));
    }
  }

  TEST_CASE("service::collect_garbage cache retention")
  {
    Fixture f;
    const std::string k_origin = "https://upstream.invalid";
    auto team = f.reg->get_feed("team");
    REQUIRE_OK(team);
    REQUIRE_OK(f.reg->update_feed("team", std::nullopt, std::nullopt, 7 * k_day));
    // Stores a manifest as a pull-through does (origin set, blobs linked).
    auto cache = [&](const std::string& repository, const std::string& tag, const std::string& bytes,
                     std::string_view media_type = mt::oci_manifest) {
      auto parsed = registry::oci::parse_manifest(bytes, media_type);
      REQUIRE_OK(parsed);
      registry::metadata::NewManifest record;
      record.digest = digest_of(bytes);
      record.media_type = std::string(media_type);
      record.bytes = bytes;
      record.origin = k_origin;
      for (const auto& blob : parsed->referenced_blobs()) {
        record.references.push_back({registry::metadata::ManifestReferenceRecord::Kind::blob, blob.digest.str()});
      }
      for (const auto& child : parsed->manifests) {
        record.references.push_back({registry::metadata::ManifestReferenceRecord::Kind::manifest, child.digest.str()});
      }
      auto feed = f.reg->get_feed(repository.substr(0, repository.find('/')));
      REQUIRE_OK(feed);
      REQUIRE_OK(f.reg->metadata().put_manifest(feed->id, repository, record, tag, f.clock->now()));
      return record.digest;
    };
    // The manifest row, read without counting as a pull.
    auto row = [&](const std::string& repository, const std::string& digest) {
      auto repo = f.reg->metadata().find_repository(repository);
      REQUIRE_OK(repo);
      REQUIRE(repo->has_value());
      auto found = f.reg->metadata().find_manifest((*repo)->id, digest, false);
      REQUIRE_OK(found);
      return *found;
    };
    auto pull = [&](const std::string& repository, const std::string& reference) {
      REQUIRE_OK(f.reg->get_manifest(repository, reference, true));
    };

    SUBCASE("a cached image unpulled past the retention goes with its tag and blobs; others stay")
    {
      Image old_img = f.image("team/app", "old", 40);
      Image pulled_img = f.image("team/app", "pulled", 41);
      Image pushed_img = f.image("team/app", "pushed", 42);
      Image other_img = f.image("other/app", "other", 43);
      const std::string d_old = cache("team/app", "old", old_img.manifest);
      const std::string d_pulled = cache("team/app", "pulled", pulled_img.manifest);
      const std::string d_pushed = f.put("team/app", "v1", pushed_img.manifest);
      const std::string d_other = cache("other/app", "cached", other_img.manifest);
      f.clock->advance(6 * k_day);
      pull("team/app", "pulled");
      f.clock->advance(2 * k_day);

      GcReport report = f.gc(gc_options(k_hour));
      CHECK(report.cached_manifests_expired == 1);
      CHECK(report.cached_tags_expired == 1);
      CHECK(report.expired_manifests == std::vector<std::string>{"team/app@" + d_old});
      CHECK(report.blobs_removed == 2);
      CHECK(sorted(report.removed_digests) == sorted(old_img.blob_digests()));
      CHECK(report.bytes_freed == old_img.blob_bytes());
      CHECK_FALSE(row("team/app", d_old).has_value());
      auto tags = f.reg->list_tags("team/app", "", 100);
      REQUIRE_OK(tags);
      std::vector<std::string> names;
      for (const auto& t : tags->tags) {
        names.push_back(t.name);
      }
      CHECK(sorted(names) == std::vector<std::string>{"pulled", "v1"});
      CHECK(row("team/app", d_pulled).has_value());
      CHECK(row("team/app", d_pushed).has_value());
      CHECK(row("other/app", d_other).has_value());
      for (const auto& d : pulled_img.blob_digests()) {
        CHECK(f.stored(d));
      }

      GcReport second = f.gc(gc_options(k_hour));
      CHECK(second.cached_manifests_expired == 0);
      CHECK(second.blobs_removed == 0);
    }

    SUBCASE("a pull is written at most once per interval: an hour, or a 24th of a short retention")
    {
      Image img = f.image("team/app", "img", 44);
      const std::string d = cache("team/app", "t", img.manifest);
      f.clock->advance(10 * 60);
      pull("team/app", "t");
      CHECK(row("team/app", d)->last_pulled_at == k_start);
      f.clock->advance(k_hour);
      pull("team/app", "t");
      CHECK(row("team/app", d)->last_pulled_at == k_start + 10 * 60 + k_hour);
      CHECK(registry::service::pull_record_interval(0) == k_hour);
      CHECK(registry::service::pull_record_interval(30 * k_day) == k_hour);
      CHECK(registry::service::pull_record_interval(48) == 2);
      REQUIRE_OK(f.reg->update_feed("team", std::nullopt, std::nullopt, 48));
      f.clock->advance(3);
      pull("team/app", d);
      CHECK(row("team/app", d)->last_pulled_at == k_start + 10 * 60 + k_hour + 3);
    }

    SUBCASE("children of a recently pulled index stay; once the index is stale all three go")
    {
      Image amd = f.image("team/app", "amd", 45);
      Image arm = f.image("team/app", "arm", 46);
      const std::string d_amd = cache("team/app", "", amd.manifest);
      const std::string d_arm = cache("team/app", "", arm.manifest);
      const std::string index = registry::test::oci_index_json({amd.manifest, arm.manifest}).dump();
      const std::string d_index = cache("team/app", "multi", index, mt::oci_index);
      f.clock->advance(6 * k_day);
      pull("team/app", "multi");
      f.clock->advance(2 * k_day);

      GcReport kept = f.gc(gc_options(k_hour));
      CHECK(kept.cached_manifests_expired == 0);
      CHECK(kept.blobs_removed == 0);
      CHECK(row("team/app", d_amd).has_value());
      CHECK(row("team/app", d_arm).has_value());

      f.clock->advance(6 * k_day);
      GcReport report = f.gc(gc_options(k_hour));
      CHECK(report.cached_manifests_expired == 3);
      CHECK(report.cached_tags_expired == 1);
      CHECK(report.expired_manifests.front() == "team/app@" + d_index);
      CHECK(report.blobs_removed == 4);
      CHECK_FALSE(row("team/app", d_index).has_value());
      CHECK_FALSE(row("team/app", d_amd).has_value());
      CHECK_FALSE(row("team/app", d_arm).has_value());
    }

    SUBCASE("a cached manifest that a pushed index lists stays however stale")
    {
      Image amd = f.image("team/app", "amd", 47);
      const std::string d_amd = cache("team/app", "", amd.manifest);
      const std::string index = registry::test::oci_index_json({amd.manifest}).dump();
      const std::string d_index = f.put("team/app", "pushed", index, mt::oci_index);
      f.clock->advance(30 * k_day);
      GcReport report = f.gc(gc_options(k_hour));
      CHECK(report.cached_manifests_expired == 0);
      CHECK(report.blobs_removed == 0);
      CHECK(row("team/app", d_amd).has_value());
      CHECK(row("team/app", d_index).has_value());
    }

    SUBCASE("a dry run lists what the real run then expires and changes nothing")
    {
      Image img = f.image("team/app", "img", 48);
      const std::string d = cache("team/app", "t", img.manifest);
      f.clock->advance(8 * k_day);
      GcOptions dry = gc_options(k_hour);
      dry.dry_run = true;
      GcReport plan = f.gc(dry);
      CHECK(plan.cached_manifests_expired == 1);
      CHECK(plan.cached_tags_expired == 1);
      CHECK(plan.expired_manifests == std::vector<std::string>{"team/app@" + d});
      CHECK(row("team/app", d).has_value());
      GcReport real = f.gc(gc_options(k_hour));
      CHECK(real.expired_manifests == plan.expired_manifests);
      CHECK(real.cached_tags_expired == plan.cached_tags_expired);
      CHECK_FALSE(row("team/app", d).has_value());
    }

    SUBCASE("with the retention off nothing cached expires")
    {
      REQUIRE_OK(f.reg->update_feed("team", std::nullopt, std::nullopt, 0));
      Image img = f.image("team/app", "img", 49);
      const std::string d = cache("team/app", "t", img.manifest);
      f.clock->advance(365 * k_day);
      GcReport report = f.gc(gc_options(k_hour));
      CHECK(report.cached_manifests_expired == 0);
      CHECK(report.blobs_removed == 0);
      CHECK(row("team/app", d).has_value());
    }
  }

  TEST_CASE("service::collect_garbage and check_integrity with small blobs in the database")
  {
    Fixture f;
    f.reg->set_small_blob_limit(registry::service::k_small_blob_limit);
    Image img = f.image("team/app", "kept", 1);
    f.put("team/app", "v1", img.manifest);
    const std::string loose_bytes = registry::test::random_bytes(500, 3);
    const std::string loose = f.push("team/app", loose_bytes);
    REQUIRE(f.row(loose)->in_database());
    REQUIRE(count_files(f.blobs_dir()) == 0);
    f.clock->advance(2 * k_hour);

    SUBCASE("gc removes an unreferenced kept blob with its bytes and keeps the referenced")
    {
      const int64_t loose_id = f.row(loose)->id;
      GcReport report = f.gc(gc_options(k_hour));
      CHECK(report.blobs_removed == 1);
      CHECK(report.bytes_freed == loose_bytes.size());
      CHECK(report.removed_digests == std::vector<std::string>{loose});
      CHECK_FALSE(f.has_row(loose));
      auto content = f.reg->metadata().blob_content(loose_id);
      REQUIRE_OK(content);
      CHECK_FALSE(content->has_value());
      CHECK(f.read("team/app", digest_of(img.config)) == img.config);
      CHECK(f.read("team/app", digest_of(img.layer)) == img.layer);
      CHECK(count_files(f.quarantine_dir()) == 0);
      CHECK(f.fsck().clean());
    }

    SUBCASE("a dry run keeps everything")
    {
      GcOptions options = gc_options(k_hour);
      options.dry_run = true;
      GcReport report = f.gc(options);
      CHECK(report.blobs_removed == 1);
      CHECK(f.read("team/app", loose) == loose_bytes);
    }

    SUBCASE("fsck reads kept blobs, verifies them and finds one without its bytes")
    {
      FsckOptions verify;
      verify.verify_content = true;
      FsckReport clean = f.fsck(verify);
      CHECK(clean.blobs_checked == 3);
      CHECK(clean.files_checked == 0);
      CHECK(clean.clean());
      {
        SQLite::Database raw((f.data / "registry.db").string(), SQLite::OPEN_READWRITE);
        raw.exec("DELETE FROM blob_contents WHERE blob_id = " + std::to_string(f.row(loose)->id));
      }
      FsckReport report = f.fsck();
      REQUIRE(report.problems.size() == 1);
      CHECK(report.problems[0].kind == "missing_bytes");
      CHECK(report.problems[0].subject == loose);
      CHECK(code_of(f.reg->open_blob("team/app", loose)) == ErrorCode::io_error);
    }
  }

  TEST_CASE("service::check_integrity")
  {
    Fixture f;
    Image img = f.image("team/app", "checked", 30);
    const std::string d_manifest = f.put("team/app", "v1", img.manifest);
    const std::string loose_bytes = registry::test::random_bytes(900, 31);
    const std::string loose = f.push("other/app", loose_bytes);
    const std::string layer = digest_of(img.layer);
    const std::string live_upload = f.upload("team/app", "in progress");

    SUBCASE("a healthy store is clean, with or without content verification")
    {
      for (bool verify : {false, true}) {
        INFO("verify_content " << verify);
        FsckOptions options;
        options.verify_content = verify;
        FsckReport report = f.fsck(options);
        CHECK(report.blobs_checked == 3);
        CHECK(report.files_checked == 3);
        CHECK(report.problems.empty());
        CHECK(report.clean());
      }
    }

    SUBCASE("a blob whose file is gone is missing_bytes")
    {
      REQUIRE(fs::remove(f.blob_file(layer)));
      FsckReport report = f.fsck();
      CHECK(report.blobs_checked == 3);
      CHECK(report.files_checked == 2);
      REQUIRE(report.problems.size() == 1);
      CHECK(report.problems[0].kind == "missing_bytes");
      CHECK(report.problems[0].subject == layer);
      CHECK_FALSE(report.problems[0].repaired);
      CHECK_FALSE(report.clean());
    }

    SUBCASE("a blob file of the wrong size is size_mismatch")
    {
      write_file(f.blob_file(loose), loose_bytes.substr(0, 100));
      FsckReport report = f.fsck();
      REQUIRE(report.problems.size() == 1);
      CHECK(report.problems[0].kind == "size_mismatch");
      CHECK(report.problems[0].subject == loose);
      CHECK_FALSE(report.clean());
    }

    SUBCASE("a corrupted blob of the right size is digest_mismatch only with verify_content")
    {
      std::string corrupted = img.layer;
      corrupted[corrupted.size() / 2] = static_cast<char>(corrupted[corrupted.size() / 2] ^ 0x5a);
      write_file(f.blob_file(layer), corrupted);
      REQUIRE(fs::file_size(f.blob_file(layer)) == img.layer.size());

      FsckReport quick = f.fsck();
      CHECK(quick.problems.empty());
      CHECK(quick.clean());

      FsckOptions options;
      options.verify_content = true;
      FsckReport verified = f.fsck(options);
      CHECK(verified.blobs_checked == 3);
      REQUIRE(verified.problems.size() == 1);
      CHECK(verified.problems[0].kind == "digest_mismatch");
      CHECK(verified.problems[0].subject == layer);
      CHECK_FALSE(verified.clean());
    }

    SUBCASE("a manifest whose layer row is gone has a dangling_reference, its bytes are an orphan")
    {
      auto row = f.row(layer);
      REQUIRE(row.has_value());
      REQUIRE_OK(f.reg->metadata().delete_blob_row(row->id));
      FsckReport report = f.fsck();
      CHECK(report.blobs_checked == 2);
      CHECK(report.files_checked == 3);
      REQUIRE(report.problems.size() == 2);
      auto dangling = problems_of(report, "dangling_reference");
      REQUIRE(dangling.size() == 1);
      CHECK(dangling[0].subject == "team/app@" + d_manifest);
      CHECK(dangling[0].detail.find(layer) != std::string::npos);
      auto orphans = problems_of(report, "orphan_blob");
      REQUIRE(orphans.size() == 1);
      CHECK(orphans[0].subject == Fixture::key_of(layer));
    }

    SUBCASE("bytes without a row are orphan_blob; repair removes them once older than the grace")
    {
      const std::string stray = registry::test::random_bytes(333, 32);
      auto key = f.store().put_blob(Digest::of(stray), stray);
      REQUIRE_OK(key);
      const fs::path file = f.data / "store" / *key;
      REQUIRE(fs::exists(file));
      set_mtime(file, k_start - k_hour); // exactly at the cutoff

      FsckReport found = f.fsck();
      CHECK(found.blobs_checked == 3);
      CHECK(found.files_checked == 4);
      REQUIRE(found.problems.size() == 1);
      CHECK(found.problems[0].kind == "orphan_blob");
      CHECK(found.problems[0].subject == *key);
      CHECK_FALSE(found.problems[0].repaired);
      CHECK_FALSE(found.clean());
      CHECK(fs::exists(file));

      FsckOptions repair;
      repair.repair = true;
      repair.grace = k_hour;
      FsckReport repaired = f.fsck(repair);
      REQUIRE(repaired.problems.size() == 1);
      CHECK(repaired.problems[0].kind == "orphan_blob");
      CHECK(repaired.problems[0].repaired);
      CHECK(repaired.clean());
      CHECK_FALSE(fs::exists(file));

      FsckReport after = f.fsck();
      CHECK(after.problems.empty());
      CHECK(after.files_checked == 3);
      for (const auto& d : img.blob_digests()) {
        CHECK(f.stored(d));
      }
      CHECK(f.stored(loose));
    }

    SUBCASE("an orphan_blob younger than the grace is reported but not removed by repair")
    {
      const std::string stray = "young stray bytes";
      auto key = f.store().put_blob(Digest::of(stray), stray);
      REQUIRE_OK(key);
      const fs::path file = f.data / "store" / *key;
      set_mtime(file, k_start - k_hour + 1);

      FsckOptions repair;
      repair.repair = true;
      repair.grace = k_hour;
      FsckReport report = f.fsck(repair);
      REQUIRE(report.problems.size() == 1);
      CHECK(report.problems[0].kind == "orphan_blob");
      CHECK_FALSE(report.problems[0].repaired);
      CHECK_FALSE(report.clean());
      CHECK(fs::exists(file));

      // grace 0 with the clock far ahead: now it goes
      f.clock->advance(10 * k_day);
      repair.grace = 0;
      FsckReport later = f.fsck(repair);
      REQUIRE(later.problems.size() == 1);
      CHECK(later.problems[0].repaired);
      CHECK(later.clean());
      CHECK_FALSE(fs::exists(file));
    }

    SUBCASE("an upload file without a session is orphan_upload; repair removes it once old")
    {
      const std::string old_orphan = util::random_uuid();
      const std::string young_orphan = util::random_uuid();
      REQUIRE_OK(f.store().create_upload(old_orphan));
      REQUIRE_OK(f.store().create_upload(young_orphan));
      set_mtime(f.upload_file(old_orphan), k_start - 2 * k_hour);
      set_mtime(f.upload_file(young_orphan), k_start - 10);
      set_mtime(f.upload_file(live_upload), k_start - 2 * k_hour); // has a session

      FsckReport found = f.fsck();
      auto orphans = problems_of(found, "orphan_upload");
      CHECK(found.problems.size() == 2);
      REQUIRE(orphans.size() == 2);
      std::vector<std::string> subjects;
      for (const auto& p : orphans) {
        subjects.push_back(p.subject);
        CHECK_FALSE(p.repaired);
      }
      CHECK(sorted(subjects) == sorted({old_orphan, young_orphan}));

      FsckOptions repair;
      repair.repair = true;
      repair.grace = k_hour;
      FsckReport repaired = f.fsck(repair);
      REQUIRE(repaired.problems.size() == 2);
      for (const auto& p : repaired.problems) {
        CHECK(p.kind == "orphan_upload");
        CHECK(p.repaired == (p.subject == old_orphan));
      }
      CHECK_FALSE(repaired.clean());
      CHECK_FALSE(fs::exists(f.upload_file(old_orphan)));
      CHECK(fs::exists(f.upload_file(young_orphan)));
      CHECK(fs::exists(f.upload_file(live_upload)));
      CHECK(f.has_upload_row(live_upload));
    }
  }
}
