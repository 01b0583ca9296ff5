// A real client: skopeo pushes OCI layouts built here (a single image and a
// two-platform index) to `registryctl serve`, pulls them back and the digests
// match.

#include "common/util/file.hpp"
#include "tests/e2e/fixture.hpp"
#include "tests/support/object_stores.hpp"
#include "tests/support/radosgw.hpp"

#include <cstdlib>
#include <cstring>

using namespace registry::test;
namespace fs = std::filesystem;

namespace {

// A ustar archive holding one regular file.
std::string
tar_with_file(const std::string& name, const std::string& content)
{
  char header[512];
  std::memset(header, 0, sizeof header);
  std::snprintf(header, 100, "%s", name.c_str());
  std::snprintf(header + 100, 8, "%07o", 0644);
  std::snprintf(header + 108, 8, "%07o", 0);
  std::snprintf(header + 116, 8, "%07o", 0);
  std::snprintf(header + 124, 12, "%011o", static_cast<unsigned>(content.size()));
  std::snprintf(header + 136, 12, "%011o", 1700000000U);
  header[156] = '0';
  std::memcpy(header + 257, "ustar", 6);
  std::memcpy(header + 263, "00", 2);
  std::memset(header + 148, ' ', 8);
  unsigned sum = 0;
  for (unsigned char ch : header) {
    sum += ch;
  }
  std::snprintf(header + 148, 8, "%06o", sum);
  header[155] = ' ';
  std::string out(header, sizeof header);
  out += content;
  out.append((512 - content.size() % 512) % 512, '\0');
  out.append(1024, '\0');
  return out;
}

struct Layout {
  fs::path dir;
  void
  add_blob(const std::string& data)
  {
    std::string hex = sha256_digest(data).substr(7);
    REQUIRE(registry::util::write_file_atomic(dir / "blobs" / "sha256" / hex, data));
  }
};

// Writes an image (config + one layer) into `layout`; returns its manifest.
std::string
add_image(Layout& layout, const std::string& arch, const std::string& file_content)
{
  std::string layer = tar_with_file("hello-" + arch + ".txt", file_content);
  nlohmann::json config = {{"architecture", arch},
                           {"os", "linux"},
                           {"rootfs", {{"type", "layers"}, {"diff_ids", {sha256_digest(layer)}}}}};
  std::string config_bytes = config.dump();
  layout.add_blob(layer);
  layout.add_blob(config_bytes);
  std::string manifest = image_manifest(make_blob(config_bytes, k_oci_config), {make_blob(layer)});
  layout.add_blob(manifest);
  return manifest;
}

void
write_index(Layout& layout, const std::string& media_type, const std::string& bytes,
            const std::string& tag)
{
  REQUIRE(registry::util::write_file_atomic(layout.dir / "oci-layout", R"({"imageLayoutVersion":"1.0.0"})"));
  nlohmann::json index = {{"schemaVersion", 2}, {"mediaType", k_oci_index}};
  index["manifests"] = {{{"mediaType", media_type},
                         {"digest", sha256_digest(bytes)},
                         {"size", bytes.size()},
                         {"annotations", {{"org.opencontainers.image.ref.name", tag}}}}};
  REQUIRE(registry::util::write_file_atomic(layout.dir / "index.json", index.dump()));
}

CommandResult
skopeo(std::vector<std::string> args)
{
  args.insert(args.begin(), "--insecure-policy");
  return run_command("skopeo", args, 300);
}

// Pushes a two-layer image, one layer of `big` bytes, to FEED/store-test:v1
// with skopeo, pulls it back into a fresh layout, and checks every blob. The
// content depends on the feed name. Returns the small layer and the big one.
std::pair<Blob, Blob>
skopeo_round_trip(RegistryFixture& f, const std::string& feed, size_t big)
{
  std::string registry = "docker://" + f.server->host_port();
  Layout layout{f.dir / ("push-" + feed)};
  std::string small_layer = tar_with_file("small.txt", "a small file in " + feed + "\n");
  std::string big_layer = tar_with_file("big.bin", random_bytes(big, static_cast<unsigned>(feed.size())));
  nlohmann::json config = {
    {"architecture", "amd64"},
    {"os", "linux"},
    {"rootfs", {{"type", "layers"}, {"diff_ids", {sha256_digest(small_layer), sha256_digest(big_layer)}}}}};
  std::string config_bytes = config.dump();
  for (const auto& blob : {small_layer, big_layer, config_bytes}) {
    layout.add_blob(blob);
  }
  std::string manifest =
    image_manifest(make_blob(config_bytes, k_oci_config), {make_blob(small_layer), make_blob(big_layer)});
  layout.add_blob(manifest);
  write_index(layout, k_oci_manifest, manifest, "v1");
  auto push = skopeo({"copy", "--preserve-digests", "--dest-tls-verify=false",
                      "oci:" + layout.dir.string() + ":v1", registry + "/" + feed + "/store-test:v1"});
  REQUIRE_MESSAGE(push.exit_code == 0, push.err);
  fs::path pulled = f.dir / ("pull-" + feed);
  auto pull = skopeo({"copy", "--preserve-digests", "--src-tls-verify=false",
                      registry + "/" + feed + "/store-test:v1", "oci:" + pulled.string() + ":v1"});
  REQUIRE_MESSAGE(pull.exit_code == 0, pull.err);
  size_t blobs = 0;
  for (const auto& entry : fs::directory_iterator(pulled / "blobs" / "sha256")) {
    auto bytes = registry::util::read_file(entry.path());
    REQUIRE(bytes);
    CHECK(sha256_digest(*bytes) == "sha256:" + entry.path().filename().string());
    ++blobs;
  }
  CHECK(blobs == 4);
  CHECK(fs::file_size(pulled / "blobs" / "sha256" / sha256_digest(big_layer).substr(7)) == big_layer.size());
  return {make_blob(small_layer), make_blob(big_layer)};
}

} // namespace

TEST_SUITE("e2e")
{
  TEST_CASE("skopeo copies images in and out")
  {
    auto version = run_command("skopeo", {"--version"});
    REQUIRE_MESSAGE(version.exit_code == 0, "skopeo is required (apt-get install skopeo)");
    RegistryFixture f;
    std::string registry = "docker://" + f.server->host_port();

    SUBCASE("a single image")
    {
      Layout layout{f.dir / "layout"};
      std::string manifest = add_image(layout, "amd64", "hello from registryctl\n");
      write_index(layout, k_oci_manifest, manifest, "v1");
      auto push = skopeo({"copy", "--preserve-digests", "--dest-tls-verify=false", "oci:" + layout.dir.string() + ":v1",
                          registry + "/main/hello:v1"});
      REQUIRE_MESSAGE(push.exit_code == 0, push.err);
      auto inspect = skopeo({"inspect", "--tls-verify=false", "--raw", registry + "/main/hello:v1"});
      REQUIRE_MESSAGE(inspect.exit_code == 0, inspect.err);
      CHECK(inspect.out == manifest);
      auto pull = skopeo({"copy", "--preserve-digests", "--src-tls-verify=false", registry + "/main/hello:v1",
                          "oci:" + (f.dir / "pulled").string() + ":v1"});
      REQUIRE_MESSAGE(pull.exit_code == 0, pull.err);
      auto pulled_index = nlohmann::json::parse(*registry::util::read_file(f.dir / "pulled" / "index.json"));
      CHECK(pulled_index["manifests"][0]["digest"] == sha256_digest(manifest));
      // Every blob arrived with its content intact.
      for (const auto& entry : fs::directory_iterator(f.dir / "pulled" / "blobs" / "sha256")) {
        auto bytes = registry::util::read_file(entry.path());
        REQUIRE(bytes);
        CHECK(sha256_digest(*bytes) == "sha256:" + entry.path().filename().string());
      }
      auto tags = run_cli(f.data, {"tag", "list", "main/hello", "-o", "json"});
      CHECK(nlohmann::json::parse(tags.out)[0]["digest"] == sha256_digest(manifest));
    }

    SUBCASE("a multi-arch index with --all")
    {
      Layout layout{f.dir / "multi"};
      std::string amd = add_image(layout, "amd64", "amd64 content\n");
      std::string arm = add_image(layout, "arm64", "arm64 content\n");
      nlohmann::json index = {{"schemaVersion", 2}, {"mediaType", k_oci_index}};
      index["manifests"] = {
        {{"mediaType", k_oci_manifest}, {"digest", sha256_digest(amd)}, {"size", amd.size()},
         {"platform", {{"os", "linux"}, {"architecture", "amd64"}}}},
        {{"mediaType", k_oci_manifest}, {"digest", sha256_digest(arm)}, {"size", arm.size()},
         {"platform", {{"os", "linux"}, {"architecture", "arm64"}}}}};
      std::string index_bytes = index.dump();
      layout.add_blob(index_bytes);
      write_index(layout, k_oci_index, index_bytes, "multi");
      auto push = skopeo({"copy", "--all", "--preserve-digests", "--dest-tls-verify=false",
                          "oci:" + layout.dir.string() + ":multi", registry + "/main/multi:latest"});
      REQUIRE_MESSAGE(push.exit_code == 0, push.err);
      auto raw = skopeo({"inspect", "--tls-verify=false", "--raw", registry + "/main/multi:latest"});
      REQUIRE(raw.exit_code == 0);
      CHECK(sha256_digest(raw.out) == sha256_digest(index_bytes));
      auto pull = skopeo({"copy", "--all", "--preserve-digests", "--src-tls-verify=false", registry + "/main/multi:latest",
                          "oci:" + (f.dir / "multi-pulled").string() + ":latest"});
      REQUIRE_MESSAGE(pull.exit_code == 0, pull.err);
      CHECK(fs::exists(f.dir / "multi-pulled" / "blobs" / "sha256" / sha256_digest(arm).substr(7)));
      auto show = run_cli(f.data, {"digest", "show", "main/multi:latest", "-o", "json"});
      auto j = nlohmann::json::parse(show.out);
      REQUIRE(j["manifests"].size() == 2);
      CHECK(j["manifests"][1]["platform"] == "linux/arm64");
    }
  }
}

namespace {

// The same checks for every object store: a feed on store "obj" (redirects)
// and one on "objproxy" (--proxy), both added with `store_args`, whose secrets
// the caller has put in the environment; a store "wrong" whose secret is wrong.
// `location` is how a redirect for store "obj" starts; `signature` a query
// parameter it must carry.
void
check_object_store_feeds(const std::vector<std::string>& store_args, const std::string& location,
                         const std::string& signature)
{
  RegistryFixture f;
  auto add = [&](const std::string& name, std::vector<std::string> extra) {
    std::vector<std::string> args = {"store", "add", name};
    args.insert(args.end(), store_args.begin(), store_args.end());
    args.insert(args.end(), extra.begin(), extra.end());
    return run_cli(f.data, args);
  };
  auto added = add("obj", {"--prefix", "redirect"});
  REQUIRE_MESSAGE(added.exit_code == 0, added.err);
  auto added_proxy = add("objproxy", {"--prefix", "proxy", "--proxy"});
  REQUIRE_MESSAGE(added_proxy.exit_code == 0, added_proxy.err);
  auto wrong = add("wrong", {});
  CHECK(wrong.exit_code == 1);
  CHECK(wrong.err.find("failed its check") != std::string::npos);
  CHECK(wrong.err.find("authentication") != std::string::npos);
  CHECK(run_cli(f.data, {"store", "check", "obj"}).out == "store obj: ok\n");
  REQUIRE(run_cli(f.data, {"feed", "create", "cloud", "--store", "obj"}).exit_code == 0);
  REQUIRE(run_cli(f.data, {"feed", "create", "cloudp", "--store", "objproxy"}).exit_code == 0);

  // 20 MiB: more than one 16 MiB multipart part or block.
  auto [small_layer, layer] = skopeo_round_trip(f, "cloud", 20 << 20);
  Blob proxied_layer = skopeo_round_trip(f, "cloudp", 20 << 20).first;

  // The small layer (its PATCH under the small-blob limit) is kept in the
  // database and served from there; the big one is in the store, redirected.
  auto direct = f.c().get("/v2/cloud/store-test/blobs/" + small_layer.digest);
  REQUIRE(direct);
  CHECK(direct->status == 200);
  CHECK(direct->body == small_layer.data);
  auto redirected = f.c().get("/v2/cloud/store-test/blobs/" + layer.digest);
  REQUIRE(redirected);
  REQUIRE(redirected->status == 307);
  std::string target = redirected->get_header_value("Location");
  CHECK(target.rfind(location, 0) == 0);
  CHECK(target.find(signature + "=") != std::string::npos);
  // Where a redirect points, fetched straight from the store.
  auto fetch_location = [](const std::string& url) {
    std::string origin = url.substr(0, url.find('/', url.find("://") + 3));
    return httplib::Client(origin).Get(url.substr(origin.size()));
  };
  auto fetched = fetch_location(target);
  REQUIRE(fetched);
  CHECK(fetched->status == 200);
  CHECK(fetched->body == layer.data);
  auto head = f.c().head("/v2/cloud/store-test/blobs/" + layer.digest);
  REQUIRE(head);
  CHECK(head->status == 200);
  CHECK(head->get_header_value("Content-Length") == std::to_string(layer.data.size()));
  auto proxied = f.c().get("/v2/cloudp/store-test/blobs/" + proxied_layer.digest);
  REQUIRE(proxied);
  CHECK(proxied->status == 200);
  CHECK(proxied->body == proxied_layer.data);

  // An upload the client abandoned after a whole multipart part or block.
  auto started = f.c().post("/v2/cloud/abandoned/blobs/uploads/");
  REQUIRE(started);
  REQUIRE(started->status == 202);
  auto patched = f.c().patch(started->get_header_value("Location"), random_bytes(17 << 20, 9));
  REQUIRE(patched);
  REQUIRE(patched->status == 202);
  std::string abandoned = patched->get_header_value("Location");

  // gc removes blobs from the bucket or container as from a directory, and
  // aborts the abandoned upload there.
  REQUIRE(run_cli(f.data, {"feed", "delete", "cloudp"}).exit_code == 0);
  auto gc_run = run_cli(f.data, {"-o", "json", "gc", "--grace", "0", "--upload-expiry", "0"});
  INFO(gc_run.out, gc_run.err);
  auto gc = nlohmann::json::parse(gc_run.out);
  CHECK(gc["blobs_removed"] == 3); // two layers and the config; manifests live in the database
  CHECK(gc["uploads_purged"] == 1);
  expect_error(f.c().get(abandoned), 404, "BLOB_UPLOAD_UNKNOWN");
  // Nothing of it is left on local disk either (S3 spools part tails there).
  CHECK((!fs::exists(f.data / "spool" / "obj") || fs::is_empty(f.data / "spool" / "obj")));
  CHECK(run_cli(f.data, {"store", "delete", "objproxy"}).exit_code == 0);
  auto fsck = run_cli(f.data, {"fsck"});
  CHECK_MESSAGE(fsck.exit_code == 0, fsck.out, fsck.err);

  // A feed on the object store pulling through a connector whose upstream
  // (this server's feed "cloud") redirects blob GETs to the store's signed
  // URLs: the connector follows them as given. The first GET streams the layer
  // from the fetch's spool, as the store cannot read an unfinished upload (a
  // 307 would mean it waited for the whole fetch); later ones are redirected.
  // Three layers: three signatures, each likely to hold a '+' or '/' that
  // must reach the store still encoded.
  auto upstream_image = f.c().push_image("cloud/upstream", "v1",
                                         {random_bytes(20 << 20, 5), random_bytes(1 << 20, 6), random_bytes(4096, 7)});
  REQUIRE(run_cli(f.data, {"feed", "create", "cloudhub", "--store", "obj"}).exit_code == 0);
  REQUIRE(run_cli(f.data, {"connector", "add", "cloudhub", "http://" + f.server->host_port()}).exit_code == 0);
  // (A small blob is cached before its first GET is answered, and redirected.)
  auto get_following = [&](const std::string& path) {
    auto res = f.c().get(path);
    REQUIRE(res);
    if (res->status != 307) {
      return res;
    }
    return fetch_location(res->get_header_value("Location"));
  };
  for (const Blob& small : {upstream_image.layers[1], upstream_image.layers[2], upstream_image.config}) {
    auto got = get_following("/v2/cloudhub/cloud/upstream/blobs/" + small.digest);
    REQUIRE(got);
    CHECK_MESSAGE(got->status == 200, got->body);
    CHECK(got->body == small.data);
  }
  const Blob& big = upstream_image.layers[0];
  std::string cached_path = "/v2/cloudhub/cloud/upstream/blobs/" + big.digest;
  auto streamed = f.c().get(cached_path);
  REQUIRE(streamed);
  CHECK_MESSAGE(streamed->status == 200, streamed->body);
  CHECK(streamed->body == big.data);
  auto cached = f.c().get(cached_path);
  REQUIRE(cached);
  CHECK(cached->status == 307);
  CHECK(cached->get_header_value("Location").rfind(location, 0) == 0);
}

} // namespace

TEST_SUITE("e2e")
{
  // Run by ctest's e2e-azure test, inside tests/support/azurite/run-with-azurite.sh.
  TEST_CASE("object stores (azure): feeds on Azure Blob, with and without redirects")
  {
    const char* endpoint = azurite_endpoint();
    REQUIRE_MESSAGE(endpoint != nullptr, "run this case through tests/support/azurite/run-with-azurite.sh");
    const std::string container = "e2e" + std::to_string(std::rand() % 100000);
    create_azurite_container(container);
    // Secrets reach the CLI and the server through the environment only.
    ::setenv("REGISTRYCTL_STORE_OBJ_ACCOUNT_KEY", k_azurite_key, 1);
    ::setenv("REGISTRYCTL_STORE_OBJPROXY_ACCOUNT_KEY", k_azurite_key, 1);
    ::setenv("REGISTRYCTL_STORE_WRONG_ACCOUNT_KEY", "d3Jvbmcga2V5", 1);
    check_object_store_feeds({"--type", "azure", "--endpoint", endpoint, "--account", k_azurite_account,
                              "--container", container},
                             std::string(endpoint) + "/" + container + "/redirect/", "sig");
  }

  // Run by ctest's e2e-s3 test; radosgw starts on first use.
  TEST_CASE("object stores (s3): feeds on S3 (Ceph radosgw), with and without redirects")
  {
    const auto& s3 = radosgw();
    ::setenv("REGISTRYCTL_STORE_OBJ_ACCESS_KEY_ID", s3.access_key_id.c_str(), 1);
    ::setenv("REGISTRYCTL_STORE_OBJ_SECRET_ACCESS_KEY", s3.secret_access_key.c_str(), 1);
    // The proxy store takes the provider's usual variables.
    ::setenv("AWS_ACCESS_KEY_ID", s3.access_key_id.c_str(), 1);
    ::setenv("AWS_SECRET_ACCESS_KEY", s3.secret_access_key.c_str(), 1);
    ::setenv("REGISTRYCTL_STORE_WRONG_SECRET_ACCESS_KEY", "not the secret", 1);
    check_object_store_feeds({"--type", "s3", "--endpoint", s3.endpoint, "--region", s3.region, "--bucket",
                              s3.bucket, "--addressing", "path"},
                             s3.endpoint + "/" + s3.bucket + "/redirect/", "X-Amz-Signature");
  }
}
