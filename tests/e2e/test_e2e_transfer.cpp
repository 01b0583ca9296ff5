// `registryctl export` / `import` with the real binary: round trips between
// feeds, rejected archives, and interoperability with skopeo and umoci (an
// exported archive is a layout they read; a layout they write imports).

#include "common/archive/tar.hpp"
#include "common/util/file.hpp"
#include "common/util/stream.hpp"
#include "tests/e2e/fixture.hpp"

#include <cstdlib>
#include <cstring>
#include <sstream>
#include <unistd.h>

using namespace registry::test;
namespace fs = std::filesystem;
namespace archive = registry::archive;

namespace {

// Whether `tool` is an executable on PATH.
bool
tool_available(const std::string& tool)
{
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (!dir.empty() && ::access((fs::path(dir) / tool).c_str(), X_OK) == 0) {
      return true;
    }
  }
  return false;
}

CommandResult
sh(const std::string& script, const std::string& input = {})
{
  return run_command("sh", {"-c", script}, 300, input);
}

CommandResult
skopeo(std::vector<std::string> args)
{
  args.insert(args.begin(), "--insecure-policy");
  return run_command("skopeo", args, 300);
}

std::string
manifest_digest(OciClient& c, const std::string& repo, const std::string& ref)
{
  auto res = c.get("/v2/" + repo + "/manifests/" + ref,
                   {{"Accept", std::string(k_oci_manifest) + ", " + k_oci_index}});
  REQUIRE(res);
  REQUIRE_MESSAGE(res->status == 200, repo << ":" << ref << " -> " << res->status);
  CHECK(sha256_digest(res->body) == res->get_header_value("Docker-Content-Digest"));
  return sha256_digest(res->body);
}

std::string
blob_digest(OciClient& c, const std::string& repo, const std::string& digest)
{
  auto res = c.get("/v2/" + repo + "/blobs/" + digest);
  REQUIRE(res);
  REQUIRE_MESSAGE(res->status == 200, repo << " blob " << digest << " -> " << res->status);
  return sha256_digest(res->body);
}

// The digest index.json of the layout in `dir` names first.
std::string
layout_digest(const fs::path& dir)
{
  auto index = registry::util::read_file(dir / "index.json");
  REQUIRE(index);
  return nlohmann::json::parse(*index)["manifests"][0]["digest"];
}

// A JSON blob of the layout in `dir`.
nlohmann::json
layout_blob(const fs::path& dir, const std::string& digest)
{
  auto bytes = registry::util::read_file(dir / "blobs" / "sha256" / digest.substr(7));
  REQUIRE(bytes);
  return nlohmann::json::parse(*bytes);
}

struct Pushed {
  PushedImage app;
  PushedImage amd;
  PushedImage arm;
  std::string index;
  std::string index_digest;
};

// main/app:v1 (three layers, one of 3 MiB) and main/multi:latest (an index
// over two platform images pushed by digest).
Pushed
push_all(OciClient& c)
{
  Pushed p;
  p.app = c.push_image("main/app", "v1",
                       {random_bytes(3 * 1024 * 1024, 11), "layer two\n", "layer three\n"});
  p.amd = c.push_image("main/multi", "amd64-only", {"amd64 layer\n"});
  p.arm = c.push_image("main/multi", "arm64-only", {"arm64 layer\n", "arm extra\n"});
  nlohmann::json index = {{"schemaVersion", 2}, {"mediaType", k_oci_index}};
  index["manifests"] = {
    {{"mediaType", k_oci_manifest}, {"digest", p.amd.digest}, {"size", p.amd.manifest.size()},
     {"platform", {{"os", "linux"}, {"architecture", "amd64"}}}},
    {{"mediaType", k_oci_manifest}, {"digest", p.arm.digest}, {"size", p.arm.manifest.size()},
     {"platform", {{"os", "linux"}, {"architecture", "arm64"}}}}};
  p.index = index.dump();
  p.index_digest = sha256_digest(p.index);
  auto put = c.put_manifest("main/multi", "latest", p.index, k_oci_index);
  REQUIRE(put);
  REQUIRE(put->status == 201);
  // Tags that point into the index are not needed for the test: drop them so
  // the index alone carries its children.
  REQUIRE(c.del("/v2/main/multi/manifests/amd64-only")->status == 202);
  REQUIRE(c.del("/v2/main/multi/manifests/arm64-only")->status == 202);
  return p;
}

// An OCI layout in a tar built by hand, for the bad-input cases.
class LayoutTar
{
public:
  LayoutTar() : m_writer(m_out) {}
  void
  file(const std::string& name, const std::string& data)
  {
    REQUIRE(m_writer.add_file(name, data));
  }
  void
  blob(const std::string& data)
  {
    file("blobs/sha256/" + sha256_digest(data).substr(7), data);
  }
  void
  index(const std::string& manifest, const std::string& ref_name)
  {
    file("oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
    nlohmann::json doc = {{"schemaVersion", 2}, {"mediaType", k_oci_index}};
    doc["manifests"] = {{{"mediaType", k_oci_manifest},
                         {"digest", sha256_digest(manifest)},
                         {"size", manifest.size()},
                         {"annotations", {{"org.opencontainers.image.ref.name", ref_name}}}}};
    file("index.json", doc.dump());
  }
  std::string
  finish()
  {
    REQUIRE(m_writer.finish());
    return m_out.bytes;
  }

private:
  struct Out : registry::util::OutputStream {
    registry::Result<void>
    write(const char* data, size_t size) override
    {
      bytes.append(data, size);
      return registry::ok();
    }
    registry::Result<void>
    finish() override
    {
      return registry::ok();
    }
    std::string bytes;
  } m_out;
  archive::TarWriter m_writer;
};

void
write_bytes(const fs::path& path, const std::string& bytes)
{
  REQUIRE(registry::util::write_file_atomic(path, bytes));
}

// Exit non-zero with exactly one line on stderr that contains `needle`.
void
expect_rejected(const CommandResult& r, const std::string& needle)
{
  CHECK_MESSAGE(r.exit_code != 0, r.out);
  CHECK_MESSAGE(r.err.find(needle) != std::string::npos, r.err);
  CHECK_MESSAGE(std::count(r.err.begin(), r.err.end(), '\n') == 1, r.err);
}

} // namespace

TEST_SUITE("e2e")
{
  TEST_CASE("export a feed and import it into another feed")
  {
    RegistryFixture f;
    auto p = push_all(f.c());
    fs::path archive_file = f.dir / "main.tar.zst";

    auto ex = run_cli(f.data, {"--output", "json", "export", "main", "-o", archive_file.string()});
    REQUIRE_MESSAGE(ex.exit_code == 0, ex.err);
    CHECK(ex.err.empty()); // no progress line when stderr is not a terminal
    auto summary = nlohmann::json::parse(ex.out);
    CHECK(summary["manifests"] == 4); // app, index, two platform images
    CHECK(summary["blobs"] == 7); // one config shared by the three images, six layers
    auto head = registry::util::read_file(archive_file);
    REQUIRE(head);
    CHECK(static_cast<unsigned char>((*head)[0]) == 0x28); // zstd magic
    for (const auto& entry : fs::directory_iterator(f.dir.path())) {
      CHECK_MESSAGE(entry.path().filename().string().find(".tmp-") == std::string::npos,
                    entry.path());
    }

    auto im = run_cli(f.data, {"import", archive_file.string(), "--feed", "other", "--output", "json"});
    REQUIRE_MESSAGE(im.exit_code == 0, im.err);
    auto imported = nlohmann::json::parse(im.out);
    CHECK(imported["manifests"] == 4);
    CHECK(imported["skipped"] == imported["blobs"]); // same store: every blob was there

    // Everything pulls from the new feed with the same digests.
    CHECK(manifest_digest(f.c(), "other/app", "v1") == p.app.digest);
    for (const auto& layer : p.app.layers) {
      CHECK(blob_digest(f.c(), "other/app", layer.digest) == layer.digest);
    }
    CHECK(blob_digest(f.c(), "other/app", p.app.config.digest) == p.app.config.digest);
    CHECK(manifest_digest(f.c(), "other/multi", "latest") == p.index_digest);
    CHECK(manifest_digest(f.c(), "other/multi", p.arm.digest) == p.arm.digest);
    CHECK(blob_digest(f.c(), "other/multi", p.arm.layers[1].digest) == p.arm.layers[1].digest);

    SUBCASE("into a fresh data directory, through standard output and input")
    {
      auto one = run_cli(f.data, {"export", "main/app:v1", "-o", "-"});
      REQUIRE_MESSAGE(one.exit_code == 0, one.err);
      CHECK(one.err.find("exported main/app:v1") != std::string::npos);
      fs::path fresh = f.dir / "fresh";
      REQUIRE(run_cli(fresh, {"feed", "create", "copy"}).exit_code == 0);
      auto in = run_cli(fresh, {"--output", "json", "import", "-", "--feed", "copy"}, one.out);
      REQUIRE_MESSAGE(in.exit_code == 0, in.err);
      auto doc = nlohmann::json::parse(in.out);
      CHECK(doc["manifests"] == 1);
      CHECK(doc["blobs"] == 4);
      CHECK(doc["skipped"] == 0);
      auto show = run_cli(fresh, {"--output", "json", "digest", "show", "copy/app:v1"});
      REQUIRE(show.exit_code == 0);
      CHECK(nlohmann::json::parse(show.out)["digest"] == p.app.digest);
      // Again: nothing new to store, the tag is rewritten to the same digest.
      auto again = run_cli(fresh, {"--output", "json", "import", "-", "--feed", "copy"}, one.out);
      REQUIRE_MESSAGE(again.exit_code == 0, again.err);
      CHECK(nlohmann::json::parse(again.out)["skipped"] == 4);
    }
    SUBCASE("a repository export with --repository renames on import")
    {
      auto repo = run_cli(f.data, {"export", "main/multi", "-o", (f.dir / "multi.tar.zst").string()});
      REQUIRE_MESSAGE(repo.exit_code == 0, repo.err);
      auto in = run_cli(f.data, {"import", (f.dir / "multi.tar.zst").string(), "--feed", "other",
                                 "--repository", "renamed/multi"});
      REQUIRE_MESSAGE(in.exit_code == 0, in.err);
      CHECK(in.out.find("imported 3 manifests") != std::string::npos);
      CHECK(manifest_digest(f.c(), "other/renamed/multi", "latest") == p.index_digest);
    }
    SUBCASE("an uncompressed tar imports too")
    {
      auto d = sh("zstd -q -d -c " + archive_file.string() + " > " + (f.dir / "main.tar").string());
      REQUIRE_MESSAGE(d.exit_code == 0, d.err);
      REQUIRE(run_cli(f.data, {"feed", "create", "plain"}).exit_code == 0);
      auto in = run_cli(f.data, {"import", (f.dir / "main.tar").string(), "--feed", "plain"});
      REQUIRE_MESSAGE(in.exit_code == 0, in.err);
      CHECK(manifest_digest(f.c(), "plain/multi", "latest") == p.index_digest);
    }
  }

  TEST_CASE("import rejects bad archives and imports nothing of them")
  {
    RegistryFixture f;
    auto p = push_all(f.c());
    fs::path good = f.dir / "good.tar.zst";
    REQUIRE(run_cli(f.data, {"export", "main/app:v1", "-o", good.string()}).exit_code == 0);
    auto bytes = registry::util::read_file(good);
    REQUIRE(bytes);
    REQUIRE(run_cli(f.data, {"feed", "create", "target"}).exit_code == 0);
    auto nothing_imported = [&] {
      auto tags = run_cli(f.data, {"tag", "list", "target/app"});
      CHECK_MESSAGE(tags.exit_code == 3, tags.out);
    };
    std::string config = R"({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}})";
    std::string layer = "layer bytes\n";
    std::string manifest = image_manifest(make_blob(config, k_oci_config), {make_blob(layer)});

    SUBCASE("truncated archive")
    {
      write_bytes(f.dir / "cut.tar.zst", bytes->substr(0, bytes->size() * 2 / 3));
      expect_rejected(run_cli(f.data, {"import", (f.dir / "cut.tar.zst").string(), "--feed", "target"}),
                      "truncated");
    }
    SUBCASE("corrupt zstd data")
    {
      // Damage in compressed blocks breaks the zstd stream.
      std::string damaged = *bytes;
      for (size_t i = 12; i < 60; ++i) {
        damaged[i] = static_cast<char>(damaged[i] ^ 0x33);
      }
      write_bytes(f.dir / "bad.tar.zst", damaged);
      expect_rejected(run_cli(f.data, {"import", (f.dir / "bad.tar.zst").string(), "--feed", "target"}),
                      "corrupt");
    }
    SUBCASE("damage inside a stored (incompressible) layer")
    {
      // zstd keeps random data as raw blocks: the layer's digest catches it
      // before the frame checksum would.
      std::string damaged = *bytes;
      for (size_t i = damaged.size() / 2; i < damaged.size() / 2 + 64; ++i) {
        damaged[i] = static_cast<char>(damaged[i] ^ 0x33);
      }
      write_bytes(f.dir / "bad.tar.zst", damaged);
      expect_rejected(run_cli(f.data, {"import", (f.dir / "bad.tar.zst").string(), "--feed", "target"}),
                      "digest mismatch");
    }
    SUBCASE("a tampered blob")
    {
      LayoutTar t;
      t.index(manifest, "app:v1");
      t.blob(manifest);
      t.blob(config);
      t.file("blobs/sha256/" + sha256_digest(layer).substr(7), "layer bytez\n");
      write_bytes(f.dir / "tampered.tar", t.finish());
      expect_rejected(run_cli(f.data, {"import", (f.dir / "tampered.tar").string(), "--feed", "target"}),
                      "digest mismatch");
    }
    SUBCASE("a blob the manifest needs is missing")
    {
      LayoutTar t;
      t.index(manifest, "app:v1");
      t.blob(manifest);
      t.blob(config);
      write_bytes(f.dir / "missing.tar", t.finish());
      expect_rejected(run_cli(f.data, {"import", (f.dir / "missing.tar").string(), "--feed", "target"}),
                      "missing from the archive");
    }
    SUBCASE("path traversal in a tar name")
    {
      // TarWriter refuses such names, so patch one into a valid header.
      LayoutTar t;
      t.index(manifest, "app:v1");
      t.file("blobs/sha256/xx-placeholder-name", "x");
      std::string tar = t.finish();
      auto at = tar.find("blobs/sha256/xx-placeholder-name");
      REQUIRE(at != std::string::npos);
      std::memcpy(tar.data() + at, "../../../../../etc/evil-file-xx", 31);
      // Fix the header checksum.
      size_t header = at - at % 512;
      std::memset(tar.data() + header + 148, ' ', 8);
      unsigned sum = 0;
      for (size_t i = 0; i < 512; ++i) {
        sum += static_cast<unsigned char>(tar[header + i]);
      }
      std::snprintf(tar.data() + header + 148, 8, "%06o", sum);
      write_bytes(f.dir / "evil.tar", tar);
      expect_rejected(run_cli(f.data, {"import", (f.dir / "evil.tar").string(), "--feed", "target"}),
                      "unsafe path");
    }
    SUBCASE("a bare tag without --repository")
    {
      LayoutTar t;
      t.index(manifest, "v1");
      t.blob(manifest);
      t.blob(config);
      t.blob(layer);
      write_bytes(f.dir / "bare.tar", t.finish());
      expect_rejected(run_cli(f.data, {"import", (f.dir / "bare.tar").string(), "--feed", "target"}),
                      "--repository");
      auto ok = run_cli(f.data, {"import", (f.dir / "bare.tar").string(), "--feed", "target",
                                 "--repository", "named"});
      CHECK_MESSAGE(ok.exit_code == 0, ok.err);
      CHECK(manifest_digest(f.c(), "target/named", "v1") == sha256_digest(manifest));
    }
    SUBCASE("a gzip archive is refused by name")
    {
      auto gz = sh("printf 'not a layout' | gzip -c > " + (f.dir / "x.tar.gz").string());
      REQUIRE(gz.exit_code == 0);
      expect_rejected(run_cli(f.data, {"import", (f.dir / "x.tar.gz").string(), "--feed", "target"}),
                      "gzip");
    }
    SUBCASE("not an archive at all")
    {
      write_bytes(f.dir / "junk", std::string(4096, 'j'));
      expect_rejected(run_cli(f.data, {"import", (f.dir / "junk").string(), "--feed", "target"}),
                      "tar");
    }
    nothing_imported();
    // No staged upload leaks into the session list.
    auto uploads = run_cli(f.data, {"--output", "json", "upload", "list"});
    CHECK(nlohmann::json::parse(uploads.out).empty());
  }

  TEST_CASE("exported archives are read by skopeo and umoci")
  {
    if (!tool_available("skopeo") || !tool_available("zstd")) {
      MESSAGE("skopeo or zstd is not installed: skipped (scripts/install-deps.sh --test)");
      return;
    }
    RegistryFixture f;
    auto p = push_all(f.c());
    fs::path zst = f.dir / "main.tar.zst";
    fs::path tar = f.dir / "main.tar";
    REQUIRE(run_cli(f.data, {"export", "main", "-o", zst.string()}).exit_code == 0);
    auto d = sh("zstd -q -d -c " + zst.string() + " > " + tar.string());
    REQUIRE_MESSAGE(d.exit_code == 0, d.err);

    // skopeo looks images up by ref.name, which is REPO:TAG.
    auto inspect = skopeo({"inspect", "--raw", "oci-archive:" + tar.string() + ":app:v1"});
    REQUIRE_MESSAGE(inspect.exit_code == 0, inspect.err);
    CHECK(sha256_digest(inspect.out) == p.app.digest);
    auto copy = skopeo({"copy", "--preserve-digests", "oci-archive:" + tar.string() + ":app:v1",
                        "dir:" + (f.dir / "app-dir").string()});
    REQUIRE_MESSAGE(copy.exit_code == 0, copy.err);
    auto copied = registry::util::read_file(f.dir / "app-dir" / "manifest.json");
    REQUIRE(copied);
    CHECK(sha256_digest(*copied) == p.app.digest);
    auto all = skopeo({"copy", "--all", "--preserve-digests",
                       "oci-archive:" + tar.string() + ":multi:latest",
                       "oci:" + (f.dir / "multi-oci").string() + ":latest"});
    REQUIRE_MESSAGE(all.exit_code == 0, all.err);
    CHECK(fs::exists(f.dir / "multi-oci" / "blobs" / "sha256" / p.arm.layers[1].digest.substr(7)));

    if (!tool_available("umoci")) {
      MESSAGE("umoci is not installed: its part is skipped (scripts/install-deps.sh --test)");
      return;
    }
    fs::path layout = f.dir / "layout";
    fs::create_directories(layout);
    auto untar = sh("tar -C " + layout.string() + " -xf " + tar.string());
    REQUIRE_MESSAGE(untar.exit_code == 0, untar.err);
    auto ls = run_command("umoci", {"ls", "--layout", layout.string()});
    REQUIRE_MESSAGE(ls.exit_code == 0, ls.err);
    CHECK(ls.out.find("app:v1") != std::string::npos);
    CHECK(ls.out.find("multi:latest") != std::string::npos);
    auto stat = run_command("umoci", {"stat", "--image", layout.string() + ":app:v1"});
    CHECK_MESSAGE(stat.exit_code == 0, stat.err);
  }

  TEST_CASE("layouts written by skopeo import")
  {
    if (!tool_available("skopeo") || !tool_available("zstd")) {
      MESSAGE("skopeo or zstd is not installed: skipped (scripts/install-deps.sh --test)");
      return;
    }
    RegistryFixture f;
    auto p = push_all(f.c());
    std::string registry = "docker://" + f.server->host_port();

    // Pulled from the running registry into an oci: layout named by a bare tag.
    fs::path single = f.dir / "single";
    auto pull = skopeo({"copy", "--src-tls-verify=false", registry + "/main/app:v1",
                        "oci:" + single.string() + ":pulled"});
    REQUIRE_MESSAGE(pull.exit_code == 0, pull.err);
    fs::path single_zst = f.dir / "single.tar.zst";
    auto pack = sh("tar -C " + single.string() + " -cf - . | zstd -q -o " + single_zst.string());
    REQUIRE_MESSAGE(pack.exit_code == 0, pack.err);
    expect_rejected(run_cli(f.data, {"import", single_zst.string(), "--feed", "other"}),
                    "--repository");
    auto in = run_cli(f.data, {"import", single_zst.string(), "--feed", "other", "--repository", "from-skopeo"});
    REQUIRE_MESSAGE(in.exit_code == 0, in.err);
    // skopeo gzips uncompressed layers on the way into oci:, so its manifest is
    // a new one: compare with what it wrote.
    CHECK(manifest_digest(f.c(), "other/from-skopeo", "pulled") == layout_digest(single));
    auto single_manifest = layout_blob(single, layout_digest(single));
    for (const auto& layer : single_manifest["layers"]) {
      std::string digest = layer["digest"];
      CHECK(blob_digest(f.c(), "other/from-skopeo", digest) == digest);
    }

    // A multi-arch index copied with --all.
    fs::path multi = f.dir / "multi";
    auto pull_all = skopeo({"copy", "--all", "--src-tls-verify=false", registry + "/main/multi:latest",
                            "oci:" + multi.string() + ":stable"});
    REQUIRE_MESSAGE(pull_all.exit_code == 0, pull_all.err);
    fs::path multi_zst = f.dir / "multi.tar.zst";
    REQUIRE(sh("tar -C " + multi.string() + " -cf - . | zstd -q -o " + multi_zst.string()).exit_code == 0);
    auto in_all = run_cli(f.data, {"import", multi_zst.string(), "--feed", "other", "--repository", "multi-copy"});
    REQUIRE_MESSAGE(in_all.exit_code == 0, in_all.err);
    CHECK(manifest_digest(f.c(), "other/multi-copy", "stable") == layout_digest(multi));
    auto multi_index = layout_blob(multi, layout_digest(multi));
    REQUIRE(multi_index["manifests"].size() == 2);
    for (const auto& child : multi_index["manifests"]) {
      std::string digest = child["digest"];
      CHECK(manifest_digest(f.c(), "other/multi-copy", digest) == digest);
    }

    // And skopeo's dir: format converted to oci: from an archive we exported.
    fs::path exported = f.dir / "app.tar";
    auto ex = run_cli(f.data, {"export", "main/app:v1", "-o", "-"});
    REQUIRE(ex.exit_code == 0);
    REQUIRE(sh("zstd -q -d -c > " + exported.string(), ex.out).exit_code == 0);
    auto to_dir = skopeo({"copy", "oci-archive:" + exported.string() + ":app:v1",
                          "dir:" + (f.dir / "app-dir").string()});
    REQUIRE_MESSAGE(to_dir.exit_code == 0, to_dir.err);
    auto to_oci = skopeo({"copy", "dir:" + (f.dir / "app-dir").string(),
                          "oci:" + (f.dir / "app-oci").string() + ":from-dir"});
    REQUIRE_MESSAGE(to_oci.exit_code == 0, to_oci.err);
    fs::path app_zst = f.dir / "app-oci.tar.zst";
    REQUIRE(sh("tar -C " + (f.dir / "app-oci").string() + " -cf - . | zstd -q -o " + app_zst.string()).exit_code == 0);
    auto in_dir = run_cli(f.data, {"import", app_zst.string(), "--feed", "other", "--repository", "via-dir"});
    REQUIRE_MESSAGE(in_dir.exit_code == 0, in_dir.err);
    auto index = nlohmann::json::parse(*registry::util::read_file(f.dir / "app-oci" / "index.json"));
    CHECK(manifest_digest(f.c(), "other/via-dir", "from-dir") == index["manifests"][0]["digest"]);
  }
}
