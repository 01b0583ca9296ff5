// The S3 driver: the SigV4 signer against AWS's published examples, settings
// validation, and the driver's behaviour against a real Ceph radosgw started
// once for this binary (tests/support/radosgw.sh).

#include "common/storage/s3_blob_store.hpp"
#include "common/storage/sigv4.hpp"
#include "common/storage/store_factory.hpp"

#include "common/oci/digest.hpp"
#include "common/util/uuid.hpp"
#include "tests/support/radosgw.hpp"
#include "tests/support/test_dir.hpp"
#include "tests/unit/storage_contract.hpp"
#include "tests/unit/unit_helpers.hpp"

#include <doctest/doctest.h>
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <thread>

using registry::ErrorCode;
using registry::oci::Digest;
using registry::storage::ObjectInfo;
using registry::storage::S3BlobStore;
using registry::storage::S3Options;
using registry::test::code_of;
using registry::test::random_bytes;
using registry::test::TestDir;
namespace sigv4 = registry::storage::sigv4;
namespace util = registry::util;

namespace {

constexpr uint64_t k_mib = 1 << 20;

std::chrono::system_clock::time_point
may_24_2013()
{
  return std::chrono::system_clock::from_time_t(1369353600); // 2013-05-24T00:00:00Z
}

sigv4::Credentials
example_credentials()
{
  return {"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ""};
}

// Options for the shared radosgw, in a fresh prefix so test cases do not see
// each other's objects.
S3Options
radosgw_options(const TestDir& dir)
{
  const auto& server = registry::test::radosgw();
  S3Options options;
  options.endpoint = server.endpoint;
  options.region = server.region;
  options.bucket = server.bucket;
  options.prefix = "t/" + util::random_uuid();
  options.access_key_id = server.access_key_id;
  options.secret_access_key = server.secret_access_key;
  options.spool_dir = dir / "spool";
  options.part_size = 5 * k_mib; // the S3 minimum, to get several parts cheaply
  return options;
}

std::unique_ptr<S3BlobStore>
open_store(const S3Options& options)
{
  auto store = S3BlobStore::open(options);
  REQUIRE_OK(store);
  return std::move(store).value();
}

void
append(S3BlobStore& store, const std::string& id, std::string_view data, size_t chunk)
{
  auto writer = store.append_upload(id);
  REQUIRE_OK(writer);
  for (size_t at = 0; at < data.size(); at += chunk) {
    size_t n = std::min(chunk, data.size() - at);
    auto written = (*writer)->write(data.data() + at, n);
    REQUIRE_OK(written);
  }
  auto closed = (*writer)->close();
  REQUIRE_OK(closed);
}

std::string
read_all(S3BlobStore& store, const std::string& key, size_t chunk = 64 << 10)
{
  auto reader = store.open_blob(key);
  REQUIRE_OK(reader);
  std::string out((*reader)->size(), '\0');
  size_t done = 0;
  while (done < out.size()) {
    auto n = (*reader)->read_at(done, out.data() + done, std::min(chunk, out.size() - done));
    REQUIRE_OK(n);
    REQUIRE(*n > 0);
    done += *n;
  }
  return out;
}

uint64_t
size_of(S3BlobStore& store, const std::string& id)
{
  auto size = store.upload_size(id);
  REQUIRE_OK(size);
  return *size;
}

std::string
commit(S3BlobStore& store, const std::string& id, std::string_view data)
{
  auto synced = store.sync_upload(id);
  REQUIRE_OK(synced);
  auto key = store.commit_upload(id, Digest::of(data));
  REQUIRE_OK(key);
  return *key;
}

// GET `url` (absolute) with a fresh client.
httplib::Result
fetch(const std::string& url)
{
  size_t path_start = url.find('/', url.find("://") + 3);
  httplib::Client client(url.substr(0, path_start));
  client.set_url_encode(false);
  return client.Get(url.substr(path_start));
}

} // namespace

TEST_CASE("sigv4::sign_headers matches the AWS GET object example")
{
  // The published S3 example: GET /test.txt with Range, empty payload.
  sigv4::Request request;
  request.method = "GET";
  request.path = "/test.txt";
  request.headers = {{"Host", "examplebucket.s3.amazonaws.com"}, {"Range", "bytes=0-9"}};
  request.payload_hash = sigv4::k_empty_sha256;
  sigv4::sign_headers(request, example_credentials(), "us-east-1", may_24_2013());
  std::string authorization;
  for (const auto& [name, value] : request.headers) {
    if (name == "Authorization") {
      authorization = value;
    }
  }
  CHECK(authorization
        == "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
           "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
           "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");

  // The canonical request covers every header but Authorization itself.
  std::erase_if(request.headers, [](const auto& header) { return header.first == "Authorization"; });
  std::string signed_headers;
  std::string canonical = sigv4::canonical_request(request, signed_headers);
  CHECK(signed_headers == "host;range;x-amz-content-sha256;x-amz-date");
  CHECK(canonical.find("GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n") == 0);
}

TEST_CASE("sigv4::presign_query matches the AWS presigned URL example")
{
  sigv4::Request request;
  request.method = "GET";
  request.path = "/test.txt";
  request.headers = {{"host", "examplebucket.s3.amazonaws.com"}};
  std::string query =
    sigv4::presign_query(request, example_credentials(), "us-east-1", may_24_2013(), std::chrono::seconds(86400));
  CHECK(query
        == "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2F"
           "aws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
           "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
}

TEST_CASE("sigv4 encoding rules")
{
  CHECK(sigv4::uri_encode("a b+c/d~e_f-g.h", true) == "a%20b%2Bc%2Fd~e_f-g.h");
  // Paths keep '/' and are encoded once: '%' itself is encoded, not trusted.
  CHECK(sigv4::encode_path("/bucket/dir/a b%2F=c") == "/bucket/dir/a%20b%252F%3Dc");
  CHECK(sigv4::encode_path("") == "/");
  // Sorted by name; empty values keep their '='.
  CHECK(sigv4::canonical_query({{"uploads", ""}, {"prefix", "a/b"}, {"list-type", "2"}})
        == "list-type=2&prefix=a%2Fb&uploads=");
  CHECK(sigv4::amz_date(may_24_2013()) == "20130524T000000Z");
  CHECK(sigv4::hex(sigv4::signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215", "us-east-1", "iam"))
        == "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
}

TEST_CASE("sigv4::sign_headers adds the session token and signs it")
{
  sigv4::Request request;
  request.method = "PUT";
  request.path = "/b/k";
  request.headers = {{"host", "h"}};
  auto credentials = example_credentials();
  credentials.session_token = "TOKEN";
  sigv4::sign_headers(request, credentials, "us-east-1", may_24_2013());
  bool has_token = false;
  std::string authorization;
  for (const auto& [name, value] : request.headers) {
    has_token |= name == "x-amz-security-token" && value == "TOKEN";
    if (name == "Authorization") {
      authorization = value;
    }
  }
  CHECK(has_token);
  CHECK(authorization.find("SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token,") != std::string::npos);
}

TEST_CASE("S3Options::from_settings")
{
  std::map<std::string, std::string> good = {
    {"endpoint", "https://s3.example.test"}, {"region", "eu-west-1"}, {"bucket", "my-bucket"},
    {"prefix", "registry/one/"},              {"addressing", "virtual"}, {"access_key_id", "AK"},
    {"secret_access_key", "SK"},              {"session_token", "T"},    {"redirect", "false"},
    {"spool_dir", "/var/tmp/spool"}};

  SUBCASE("valid settings")
  {
    auto options = S3Options::from_settings(good);
    REQUIRE_OK(options);
    CHECK(options->endpoint == "https://s3.example.test");
    CHECK(options->region == "eu-west-1");
    CHECK(options->prefix == "registry/one");
    CHECK(options->addressing == S3Options::Addressing::virtual_host);
    CHECK_FALSE(options->redirect);
    CHECK(options->session_token == "T");
  }
  SUBCASE("defaults")
  {
    auto options = S3Options::from_settings({{"endpoint", "http://127.0.0.1:7480"}, {"bucket", "abc"},
                                             {"access_key_id", "a"}, {"secret_access_key", "b"},
                                             {"spool_dir", "/tmp/x"}});
    REQUIRE_OK(options);
    CHECK(options->region == "us-east-1");
    CHECK(options->addressing == S3Options::Addressing::path);
    CHECK(options->redirect);
    CHECK(options->prefix.empty());
  }
  SUBCASE("one clear clause per bad value")
  {
    auto bad = good;
    bad["endpoint"] = "ftp://x";
    bad["bucket"] = "Bad_Bucket";
    bad["addressing"] = "dns";
    bad["redirect"] = "maybe";
    bad["prefix"] = "/abs";
    bad["region"] = "EU WEST";
    bad["spool_dir"] = "relative";
    bad["colour"] = "blue";
    bad.erase("secret_access_key");
    auto options = S3Options::from_settings(bad);
    REQUIRE(code_of(options) == ErrorCode::invalid_argument);
    const std::string& message = options.error().message;
    for (const char* needle : {"endpoint 'ftp://x' must start with http:// or https://", "bucket 'Bad_Bucket'",
                               "addressing 'dns' must be 'path' or 'virtual'", "redirect 'maybe'", "prefix '/abs'",
                               "region 'EU WEST'", "spool_dir 'relative' must be an absolute path",
                               "unknown setting 'colour'", "secret_access_key is required"}) {
      CHECK_MESSAGE(message.find(needle) != std::string::npos, needle, " not in: ", message);
    }
  }
  SUBCASE("endpoint shapes")
  {
    for (const char* endpoint : {"http://h/path", "http://h:0", "http://h:99999", "https://", "h:80"}) {
      auto bad = good;
      bad["endpoint"] = endpoint;
      CHECK_MESSAGE(code_of(S3Options::from_settings(bad)) == ErrorCode::invalid_argument, endpoint);
    }
    auto missing_ca = good;
    missing_ca["ca_file"] = "/nonexistent/ca.pem";
    auto options = S3Options::from_settings(missing_ca);
    REQUIRE(code_of(options) == ErrorCode::invalid_argument);
    CHECK(options.error().message.find("ca_file '/nonexistent/ca.pem'") != std::string::npos);
  }
}

TEST_CASE("open_store: an S3 store under a relative data directory spools to an absolute path")
{
  TestDir dir;
  std::filesystem::path relative = std::filesystem::relative(dir.path(), std::filesystem::current_path());
  REQUIRE(relative.is_relative());
  registry::metadata::StoreRow row{1, "relstore", "s3",
                                   R"({"endpoint":"http://127.0.0.1:9","bucket":"bucket","region":"us-east-1"})"};
  ::setenv("REGISTRYCTL_STORE_RELSTORE_ACCESS_KEY_ID", "AK", 1);
  ::setenv("REGISTRYCTL_STORE_RELSTORE_SECRET_ACCESS_KEY", "SK", 1);
  auto store = registry::storage::open_store(row, relative);
  REQUIRE_OK(store);
  CHECK(std::filesystem::is_directory(dir / "spool" / "relstore"));
}

TEST_CASE("S3BlobStore::part_size_for grows so 10,000 parts hold large layers")
{
  uint64_t base = 16 * k_mib;
  CHECK(S3BlobStore::part_size_for(base, 1) == base);
  CHECK(S3BlobStore::part_size_for(base, 2000) == base);
  CHECK(S3BlobStore::part_size_for(base, 2001) == 2 * base);
  CHECK(S3BlobStore::part_size_for(base, 10000) == 16 * base);
  uint64_t total = 0;
  for (int part = 1; part <= 10000; ++part) {
    total += S3BlobStore::part_size_for(base, part);
  }
  CHECK(total > 900ULL * 1024 * k_mib);
}

TEST_CASE("S3BlobStore retries 5xx on idempotent calls and maps S3 error codes")
{
  // A loopback stand-in for S3 that answers SlowDown twice, then succeeds.
  httplib::Server server;
  std::atomic<int> puts{0};
  std::atomic<int> gets{0};
  server.Put(".*", [&](const httplib::Request&, httplib::Response& res) {
    if (++puts <= 2) {
      res.status = 503;
      res.set_content("<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>",
                      "application/xml");
      return;
    }
    res.status = 200;
  });
  server.Get(".*", [&](const httplib::Request&, httplib::Response& res) {
    ++gets;
    res.status = 500;
    res.set_content("<Error><Code>InternalError</Code><Message>boom</Message></Error>", "application/xml");
  });
  server.Delete(".*", [&](const httplib::Request&, httplib::Response& res) {
    res.status = 403;
    res.set_content("<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>", "application/xml");
  });
  int port = server.bind_to_any_port("127.0.0.1");
  REQUIRE(port > 0);
  std::thread thread([&] { server.listen_after_bind(); });
  while (!server.is_running()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }

  TestDir dir;
  S3Options options;
  options.endpoint = "http://127.0.0.1:" + std::to_string(port);
  options.bucket = "fake-bucket";
  options.access_key_id = "AK";
  options.secret_access_key = "SK";
  options.spool_dir = dir / "spool";
  auto store = open_store(options);

  auto key = store->put_blob(Digest::of("x"), "x");
  CHECK_OK(key);
  CHECK(puts == 3);

  auto missing = store->load_upload_state(util::random_uuid());
  REQUIRE(code_of(missing) == ErrorCode::storage_unavailable);
  CHECK(missing.error().message.find("InternalError") != std::string::npos);
  CHECK(gets == 4); // first try and three retries

  auto denied = store->remove_blob("blobs/sha256/" + std::string(64, 'b'));
  REQUIRE(code_of(denied) == ErrorCode::storage_denied);
  CHECK_MESSAGE(denied.error().message.find("AccessDenied (Access Denied)") != std::string::npos,
                denied.error().message);

  server.stop();
  thread.join();
}

// --- against radosgw ---

TEST_CASE("S3BlobStore contract")
{
  // Every call gets a fresh prefix in the shared bucket and its own spool.
  TestDir dir;
  registry::test::run_blob_store_contract([&]() -> std::unique_ptr<registry::storage::BlobStore> {
    auto options = radosgw_options(dir);
    options.spool_dir = dir / ("spool-" + util::random_uuid());
    options.list_page_size = 3; // several pages in the listing subcases
    return open_store(options);
  });
}

TEST_CASE("S3BlobStore: uploads in many small chunks and big chunks commit in place")
{
  TestDir dir;
  auto options = radosgw_options(dir);
  auto store = open_store(options);

  SUBCASE("small chunks across several PATCH-like writers")
  {
    std::string data = random_bytes(12 * k_mib + 12345, 7);
    std::string id = util::random_uuid();
    REQUIRE_OK(store->create_upload(id));
    CHECK(size_of(*store, id) == 0);
    size_t step = 3 * k_mib + 1;
    for (size_t at = 0; at < data.size(); at += step) {
      append(*store, id, std::string_view(data).substr(at, std::min(step, data.size() - at)), 64 << 10);
      CHECK(size_of(*store, id) == std::min(at + step, data.size()));
    }
    std::string key = commit(*store, id, data);
    CHECK(key == "blobs/" + id); // completed where it was uploaded: no copy
    CHECK(read_all(*store, key) == data);
    auto info = store->stat_blob(key);
    REQUIRE_OK(info);
    CHECK(info->size == data.size());
    // The upload is gone; its spool too.
    CHECK(code_of(store->upload_size(id)) == ErrorCode::not_found);
    CHECK(std::filesystem::is_empty(options.spool_dir));
  }
  SUBCASE("one big write")
  {
    std::string data = random_bytes(11 * k_mib, 8);
    std::string id = util::random_uuid();
    REQUIRE_OK(store->create_upload(id));
    append(*store, id, data, data.size());
    CHECK(size_of(*store, id) == data.size());
    std::string key = commit(*store, id, data);
    CHECK(read_all(*store, key, 1 << 20) == data);
  }
  SUBCASE("commit without sync_upload sends the tail itself, and a repeated commit answers the same key")
  {
    std::string data = random_bytes(100000, 9);
    std::string id = util::random_uuid();
    REQUIRE_OK(store->create_upload(id));
    append(*store, id, data, 1000);
    auto key = store->commit_upload(id, Digest::of(data));
    REQUIRE_OK(key);
    CHECK(read_all(*store, *key) == data);
    auto again = store->commit_upload(id, Digest::of(data));
    REQUIRE_OK(again);
    CHECK(*again == *key);
  }
}

TEST_CASE("S3BlobStore: an upload continues in a new store instance (server restart)")
{
  TestDir dir;
  auto options = radosgw_options(dir);
  std::string data = random_bytes(13 * k_mib + 7, 11);
  std::string id = util::random_uuid();
  {
    auto first = open_store(options);
    REQUIRE_OK(first->create_upload(id));
    append(*first, id, std::string_view(data).substr(0, 7 * k_mib), 256 << 10); // one part + 2 MiB spooled
    REQUIRE_OK(first->save_upload_state(id, "hash-state-at-7MiB"));
  }
  auto second = open_store(options);
  CHECK(size_of(*second, id) == 7 * k_mib);
  auto state = second->load_upload_state(id);
  REQUIRE_OK(state);
  REQUIRE(state->has_value());
  CHECK(**state == "hash-state-at-7MiB");
  append(*second, id, std::string_view(data).substr(7 * k_mib), 100000);
  CHECK(size_of(*second, id) == data.size());
  auto listed = second->list_uploads();
  REQUIRE_OK(listed);
  REQUIRE(listed->size() == 1);
  CHECK((*listed)[0].key == id);
  CHECK((*listed)[0].size == data.size());
  std::string key = commit(*second, id, data);
  CHECK(read_all(*second, key) == data);
  auto after = second->load_upload_state(id);
  REQUIRE_OK(after);
  CHECK_FALSE(after->has_value());
}

TEST_CASE("S3BlobStore: spool files after a crash, and a server without the spool")
{
  TestDir dir;
  auto options = radosgw_options(dir);
  auto store = open_store(options);
  std::string data = random_bytes(5 * k_mib + 1000, 13);
  std::string id = util::random_uuid();
  REQUIRE_OK(store->create_upload(id));
  append(*store, id, data, 1 << 20); // part 1 sent, 1000 bytes in spool 2
  CHECK(size_of(*store, id) == data.size());

  SUBCASE("a crash after a part was sent but before its spool was removed")
  {
    // Put a stale spool for part 1 back: ListParts says part 1 is in S3, so it
    // must not count, and the next writer removes it.
    auto stale = options.spool_dir / (id + ".1");
    {
      std::ofstream out(stale, std::ios::binary);
      out << std::string(5 * k_mib, 'x');
    }
    CHECK(size_of(*store, id) == data.size());
    append(*store, id, "tail", 4);
    CHECK_FALSE(std::filesystem::exists(stale));
    std::string key = commit(*store, id, data + "tail");
    CHECK(read_all(*store, key) == data + "tail");
  }
  SUBCASE("another server without this spool directory sees only the sent parts")
  {
    auto other_options = options;
    other_options.spool_dir = dir / "other-spool";
    auto other = open_store(other_options);
    CHECK(size_of(*other, id) == 5 * k_mib);
    REQUIRE_OK(other->remove_upload(id));
    CHECK(code_of(store->upload_size(id)) == ErrorCode::not_found);
  }
}

TEST_CASE("S3BlobStore: zero-byte blobs, put_blob, ranged reads and errors")
{
  TestDir dir;
  auto store = open_store(radosgw_options(dir));

  SUBCASE("zero bytes")
  {
    std::string id = util::random_uuid();
    REQUIRE_OK(store->create_upload(id));
    std::string key = commit(*store, id, "");
    auto info = store->stat_blob(key);
    REQUIRE_OK(info);
    CHECK(info->size == 0);
    auto reader = store->open_blob(key);
    REQUIRE_OK(reader);
    CHECK((*reader)->size() == 0);
    char byte = 0;
    auto n = (*reader)->read_at(0, &byte, 1);
    REQUIRE_OK(n);
    CHECK(*n == 0);
  }
  SUBCASE("ranged reads: sequential, backwards, past the end")
  {
    std::string data = random_bytes(3 * k_mib + 3, 12);
    auto key = store->put_blob(Digest::of(data), data);
    REQUIRE_OK(key);
    CHECK(*key == "blobs/sha256/" + std::string(Digest::of(data).hex()));
    auto again = store->put_blob(Digest::of(data), data); // idempotent
    REQUIRE_OK(again);
    auto reader = store->open_blob(*key);
    REQUIRE_OK(reader);
    CHECK((*reader)->size() == data.size());
    for (uint64_t offset : {uint64_t{2 * k_mib}, uint64_t{5}, uint64_t{3 * k_mib}, uint64_t{0}}) {
      std::string buffer(1000, '\0');
      auto n = (*reader)->read_at(offset, buffer.data(), buffer.size());
      REQUIRE_OK(n);
      REQUIRE(*n > 0);
      CHECK(buffer.substr(0, *n) == data.substr(offset, *n));
    }
    std::string buffer(10, '\0');
    auto end = (*reader)->read_at(data.size(), buffer.data(), buffer.size());
    REQUIRE_OK(end);
    CHECK(*end == 0);
    CHECK(read_all(*store, *key, 4096) == data);
  }
  SUBCASE("errors")
  {
    CHECK(code_of(store->open_blob("blobs/sha256/" + std::string(64, 'a'))) == ErrorCode::not_found);
    CHECK(code_of(store->stat_blob("blobs/" + util::random_uuid())) == ErrorCode::not_found);
    CHECK(code_of(store->open_blob("../etc/passwd")) == ErrorCode::invalid_argument);
    CHECK(code_of(store->upload_size(util::random_uuid())) == ErrorCode::not_found);
    CHECK(code_of(store->append_upload(util::random_uuid())) == ErrorCode::not_found);
    CHECK(code_of(store->commit_upload(util::random_uuid(), Digest::of("x"))) == ErrorCode::not_found);
    CHECK(code_of(store->read_upload("x", [](const char*, size_t) { return true; })) == ErrorCode::unsupported);
    CHECK_FALSE(store->can_read_uploads());
    std::string id = util::random_uuid();
    REQUIRE_OK(store->create_upload(id));
    CHECK(code_of(store->create_upload(id)) == ErrorCode::already_exists);
    REQUIRE_OK(store->remove_upload(id));
    CHECK(code_of(store->upload_size(id)) == ErrorCode::not_found);
    REQUIRE_OK(store->remove_upload(id)); // absent is fine
    REQUIRE_OK(store->remove_blob("blobs/" + util::random_uuid()));
  }
}

TEST_CASE("S3BlobStore: listings page through continuation tokens")
{
  TestDir dir;
  auto options = radosgw_options(dir);
  options.list_page_size = 2;
  auto store = open_store(options);
  std::vector<std::string> keys;
  for (int i = 0; i < 5; ++i) {
    std::string data = "blob " + std::to_string(i);
    auto key = store->put_blob(Digest::of(data), data);
    REQUIRE_OK(key);
    keys.push_back(*key);
  }
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    ids.push_back(util::random_uuid());
    REQUIRE_OK(store->create_upload(ids.back()));
    REQUIRE_OK(store->save_upload_state(ids.back(), "s"));
  }
  std::vector<std::string> seen;
  REQUIRE_OK(store->list_blobs([&](const ObjectInfo& info) {
    seen.push_back(info.key);
    CHECK(info.modified > 0);
    return true;
  }));
  std::sort(keys.begin(), keys.end());
  std::sort(seen.begin(), seen.end());
  CHECK(seen == keys);

  int visited = 0;
  REQUIRE_OK(store->list_blobs([&](const ObjectInfo&) { return ++visited < 3; }));
  CHECK(visited == 3);

  auto uploads = store->list_uploads();
  REQUIRE_OK(uploads);
  std::vector<std::string> upload_ids;
  for (const auto& upload : *uploads) {
    upload_ids.push_back(upload.key);
  }
  std::sort(ids.begin(), ids.end());
  CHECK(upload_ids == ids);
  for (const auto& id : ids) {
    REQUIRE_OK(store->remove_upload(id));
  }
  uploads = store->list_uploads();
  REQUIRE_OK(uploads);
  CHECK(uploads->empty());
}

TEST_CASE("S3BlobStore: quarantine, restore and purge move no bytes")
{
  TestDir dir;
  auto store = open_store(radosgw_options(dir));
  std::string data = "quarantined bytes";
  auto key = store->put_blob(Digest::of(data), data);
  REQUIRE_OK(key);

  REQUIRE_OK(store->quarantine_blob(*key));
  auto quarantined = store->list_quarantined();
  REQUIRE_OK(quarantined);
  CHECK(*quarantined == std::vector<std::string>{*key});
  CHECK(read_all(*store, *key) == data); // still readable in place

  REQUIRE_OK(store->restore_blob(*key));
  quarantined = store->list_quarantined();
  REQUIRE_OK(quarantined);
  CHECK(quarantined->empty());
  CHECK(read_all(*store, *key) == data);

  // Purging without quarantine first does nothing.
  REQUIRE_OK(store->purge_quarantined(*key));
  CHECK(read_all(*store, *key) == data);

  REQUIRE_OK(store->quarantine_blob(*key));
  REQUIRE_OK(store->purge_quarantined(*key));
  CHECK(code_of(store->stat_blob(*key)) == ErrorCode::not_found);
  quarantined = store->list_quarantined();
  REQUIRE_OK(quarantined);
  CHECK(quarantined->empty());

  REQUIRE_OK(store->quarantine_blob(*key)); // absent: not an error
  REQUIRE_OK(store->restore_blob(*key));
  REQUIRE_OK(store->purge_quarantined(*key));
}

TEST_CASE("S3BlobStore::check names the failing step")
{
  TestDir dir;
  auto options = radosgw_options(dir);
  REQUIRE_OK(open_store(options)->check());

  auto message_of = [&](const S3Options& changed) {
    auto result = open_store(changed)->check();
    REQUIRE(code_of(result) == ErrorCode::io_error);
    return result.error().message;
  };
  auto wrong_secret = options;
  wrong_secret.secret_access_key = "not-the-secret";
  std::string message = message_of(wrong_secret);
  CHECK_MESSAGE(message.find("authentication failed") != std::string::npos, message);
  CHECK_MESSAGE(message.find("SignatureDoesNotMatch") != std::string::npos, message);

  auto wrong_key = options;
  wrong_key.access_key_id = "NOSUCHKEY";
  message = message_of(wrong_key);
  CHECK_MESSAGE(message.find("InvalidAccessKeyId") != std::string::npos, message);

  auto no_bucket = options;
  no_bucket.bucket = "no-such-bucket-here";
  message = message_of(no_bucket);
  CHECK_MESSAGE(message.find("does not exist") != std::string::npos, message);

  auto closed_port = options;
  closed_port.endpoint = "http://127.0.0.1:1";
  message = message_of(closed_port);
  CHECK_MESSAGE(message.find("connect") != std::string::npos, message);

  auto bad_host = options;
  bad_host.endpoint = "http://no-such-host.invalid:7480";
  message = message_of(bad_host);
  CHECK_MESSAGE(message.find("DNS resolution") != std::string::npos, message);
}

TEST_CASE("S3BlobStore::redirect_url gives presigned GET URLs that radosgw verifies")
{
  TestDir dir;
  auto options = radosgw_options(dir);
  auto store = open_store(options);
  std::string data = random_bytes(300000, 21);
  std::string id = util::random_uuid();
  REQUIRE_OK(store->create_upload(id));
  append(*store, id, data, 10000);
  std::string key = commit(*store, id, data);

  auto url = store->redirect_url(key, std::chrono::seconds(300));
  REQUIRE_OK(url);
  REQUIRE(url->has_value());
  auto got = fetch(**url);
  REQUIRE(got);
  CHECK(got->status == 200);
  CHECK(got->body == data);

  SUBCASE("tampered signature")
  {
    std::string tampered = **url;
    char& last = tampered.back();
    last = last == '0' ? '1' : '0';
    auto res = fetch(tampered);
    REQUIRE(res);
    CHECK(res->status == 403);
  }
  SUBCASE("tampered key")
  {
    std::string other = **url;
    other.replace(other.find(id), 1, other[other.find(id)] == 'a' ? "b" : "a");
    auto res = fetch(other);
    REQUIRE(res);
    CHECK(res->status == 403);
  }
  SUBCASE("expired")
  {
    auto short_lived = store->redirect_url(key, std::chrono::seconds(1));
    REQUIRE_OK(short_lived);
    std::this_thread::sleep_for(std::chrono::milliseconds(2100));
    auto res = fetch(**short_lived);
    REQUIRE(res);
    CHECK(res->status == 403);
  }
  SUBCASE("redirect off")
  {
    options.redirect = false;
    auto none = open_store(options)->redirect_url(key, std::chrono::seconds(60));
    REQUIRE_OK(none);
    CHECK_FALSE(none->has_value());
  }
}

TEST_CASE("S3BlobStore: virtual-host addressing")
{
  // radosgw.sh sets "rgw dns name = s3.localhost": requests to
  // <bucket>.s3.localhost name the bucket in the Host header. The name does not
  // resolve here, so the client connects to 127.0.0.1 (like curl --resolve).
  TestDir dir;
  auto options = radosgw_options(dir);
  std::string port = options.endpoint.substr(options.endpoint.rfind(':') + 1);
  options.endpoint = "http://s3.localhost:" + port;
  options.addressing = S3Options::Addressing::virtual_host;
  options.connect_address = "127.0.0.1";
  auto store = open_store(options);
  REQUIRE_OK(store->check());
  std::string data = random_bytes(6 * k_mib, 31);
  std::string id = util::random_uuid();
  REQUIRE_OK(store->create_upload(id));
  append(*store, id, data, 1 << 20);
  std::string key = commit(*store, id, data);
  CHECK(read_all(*store, key) == data);
  int count = 0;
  REQUIRE_OK(store->list_blobs([&](const ObjectInfo&) { return ++count > 0; }));
  CHECK(count == 1);
  auto url = store->redirect_url(key, std::chrono::seconds(60));
  REQUIRE_OK(url);
  REQUIRE(url->has_value());
  CHECK(url->value().rfind("http://" + options.bucket + ".s3.localhost:" + port + "/", 0) == 0);
}

TEST_CASE("S3BlobStore: TLS endpoints with a CA file, and IPv6 endpoints")
{
  TestDir dir;
  const auto& server = registry::test::radosgw();
  auto base = radosgw_options(dir);
  // Upload in parts, read back, and fetch a presigned URL, all on `options`.
  auto round_trip = [&](const S3Options& options, const std::string& url_prefix) {
    auto store = open_store(options);
    REQUIRE_OK(store->check());
    std::string data = random_bytes(6 * k_mib, 41);
    std::string id = util::random_uuid();
    REQUIRE_OK(store->create_upload(id));
    append(*store, id, data, 1 << 20);
    std::string key = commit(*store, id, data);
    CHECK(read_all(*store, key) == data);
    auto url = store->redirect_url(key, std::chrono::seconds(60));
    REQUIRE_OK(url);
    REQUIRE(url->has_value());
    CHECK(url->value().rfind(url_prefix, 0) == 0);
    REQUIRE_OK(store->remove_blob(key));
    return **url;
  };

  SUBCASE("https with the gateway's certificate in ca_file")
  {
    auto options = base;
    options.endpoint = server.tls_endpoint;
    options.ca_file = server.ca_file;
    std::string url = round_trip(options, server.tls_endpoint + "/");
    size_t path_start = url.find('/', url.find("://") + 3);
    httplib::SSLClient client("127.0.0.1", std::stoi(server.tls_endpoint.substr(server.tls_endpoint.rfind(':') + 1)));
    client.set_ca_cert_path(server.ca_file);
    client.enable_server_certificate_verification(true);
    auto res = client.Get(url.substr(path_start));
    REQUIRE(res);
    CHECK(res->status == 404); // removed above: the signature was accepted

    auto untrusted = base;
    untrusted.endpoint = server.tls_endpoint; // system CAs do not know the certificate
    auto checked = open_store(untrusted)->check();
    REQUIRE(!checked);
    CHECK_MESSAGE(checked.error().message.find("TLS") != std::string::npos, checked.error().message);
  }
  SUBCASE("http://[::1]:PORT")
  {
    auto options = base;
    options.endpoint = server.ipv6_endpoint;
    std::string url = round_trip(options, server.ipv6_endpoint + "/");
    auto res = fetch(url);
    REQUIRE(res);
    CHECK(res->status == 404);
  }
  SUBCASE("endpoint syntax")
  {
    auto settings = [](const std::string& endpoint) {
      return S3Options::from_settings({{"endpoint", endpoint}, {"bucket", "abc"}, {"access_key_id", "a"},
                                       {"secret_access_key", "b"}, {"spool_dir", "/tmp/x"}});
    };
    CHECK_OK(settings("http://[::1]:7480"));
    CHECK_OK(settings("https://[2001:db8::5]"));
    CHECK(code_of(settings("http://::1:7480")) == ErrorCode::invalid_argument);
    CHECK(code_of(settings("http://[::1")) == ErrorCode::invalid_argument);
    CHECK(code_of(settings("http://[::1]7480")) == ErrorCode::invalid_argument);
    CHECK(code_of(settings("http://[::1]:")) == ErrorCode::invalid_argument);
    CHECK(code_of(settings("http://[]:80")) == ErrorCode::invalid_argument);
  }
}

TEST_CASE("S3BlobStore: many threads at once")
{
  TestDir dir;
  auto store = open_store(radosgw_options(dir));
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t]() {
      for (int i = 0; i < 5; ++i) {
        std::string data = random_bytes(50000 + static_cast<size_t>(t * 1000 + i), static_cast<unsigned>(t * 100 + i));
        auto key = store->put_blob(Digest::of(data), data);
        if (!key) {
          ++failures;
          continue;
        }
        auto reader = store->open_blob(*key);
        if (!reader) {
          ++failures;
          continue;
        }
        std::string back((*reader)->size(), '\0');
        size_t done = 0;
        while (done < back.size()) {
          auto n = (*reader)->read_at(done, back.data() + done, back.size() - done);
          if (!n || *n == 0) {
            break;
          }
          done += *n;
        }
        if (back != data) {
          ++failures;
        }
      }
    });
  }
  for (auto& thread : threads) {
    thread.join();
  }
  CHECK(failures == 0);
}

// Not run by default: `s3_tests -tc='*throughput*' --no-skip`.
TEST_CASE("S3BlobStore: push and pull throughput of a 256 MiB blob" * doctest::skip())
{
  TestDir dir;
  auto options = radosgw_options(dir);
  options.part_size = 16 * k_mib;
  auto store = open_store(options);
  std::string data = random_bytes(256 * k_mib, 99);
  std::string id = util::random_uuid();
  auto t0 = std::chrono::steady_clock::now();
  REQUIRE_OK(store->create_upload(id));
  append(*store, id, data, 1 << 20);
  std::string key = commit(*store, id, data);
  auto t1 = std::chrono::steady_clock::now();
  std::string back = read_all(*store, key, 1 << 20);
  auto t2 = std::chrono::steady_clock::now();
  CHECK(back == data);
  double push = std::chrono::duration<double>(t1 - t0).count();
  double pull = std::chrono::duration<double>(t2 - t1).count();
  MESSAGE("push " << 256.0 / push << " MiB/s (" << push << " s), pull " << 256.0 / pull << " MiB/s (" << pull
                  << " s)");

  // The ceiling of the HTTP client alone: one GET of a presigned URL, bytes dropped.
  auto url = store->redirect_url(key, std::chrono::seconds(300));
  REQUIRE_OK(url);
  std::string full = url->value();
  size_t path_start = full.find('/', full.find("://") + 3);
  httplib::Client client(full.substr(0, path_start));
  client.set_url_encode(false);
  uint64_t received = 0;
  auto t3 = std::chrono::steady_clock::now();
  auto res = client.Get(full.substr(path_start), [&](const char*, size_t n) {
    received += n;
    return true;
  });
  auto t4 = std::chrono::steady_clock::now();
  REQUIRE(res);
  CHECK(received == data.size());
  double raw = std::chrono::duration<double>(t4 - t3).count();
  MESSAGE("plain httplib GET " << 256.0 / raw << " MiB/s (" << raw << " s)");
}
