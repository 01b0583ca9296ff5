// The OCI distribution API driven over HTTP against the real `registryctl serve`.

#include "common/util/file.hpp"
#include "tests/e2e/fixture.hpp"

#include <arpa/inet.h>
#include <atomic>
#include <chrono>
#include <netinet/in.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

using namespace registry::test;

namespace {

// One client connection driven byte by byte, to send a request's head and body
// in the pieces a test chooses and to read what comes back on that connection.
class RawConnection
{
public:
  explicit RawConnection(int port)
  {
    m_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    timeval timeout{30, 0};
    ::setsockopt(m_fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    REQUIRE(::connect(m_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  }
  ~RawConnection()
  {
    ::close(m_fd);
  }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  void
  send(std::string_view bytes)
  {
    while (!bytes.empty()) {
      ssize_t n = ::send(m_fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      REQUIRE(n > 0);
      bytes.remove_prefix(static_cast<size_t>(n));
    }
  }
  void
  finish_sending()
  {
    ::shutdown(m_fd, SHUT_WR);
  }

  // The next response's status and headers (names lower-cased); its body is read
  // and dropped. Status 0 when the connection ends first.
  std::pair<int, std::map<std::string, std::string>>
  response()
  {
    return read_response(true);
  }
  // The same for the answer to a HEAD, which has no body whatever its headers say.
  std::pair<int, std::map<std::string, std::string>>
  response_to_head()
  {
    return read_response(false);
  }

private:
  std::pair<int, std::map<std::string, std::string>>
  read_response(bool with_body)
  {
    size_t end;
    while ((end = m_pending.find("\r\n\r\n")) == std::string::npos) {
      if (!fill()) {
        return {0, {}};
      }
    }
    std::string head = m_pending.substr(0, end);
    m_pending.erase(0, end + 4);
    std::map<std::string, std::string> headers;
    size_t line = head.find("\r\n");
    for (size_t at = line; at != std::string::npos && at < head.size();) {
      size_t next = head.find("\r\n", at + 2);
      std::string field = head.substr(at + 2, next == std::string::npos ? std::string::npos : next - at - 2);
      size_t colon = field.find(':');
      if (colon != std::string::npos) {
        std::string name = field.substr(0, colon);
        std::transform(name.begin(), name.end(), name.begin(), ::tolower);
        headers[name] = field.substr(field.find_first_not_of(' ', colon + 1));
      }
      at = next;
    }
    size_t length = with_body && headers.count("content-length") ? std::stoul(headers["content-length"]) : 0;
    while (m_pending.size() < length) {
      if (!fill()) {
        return {0, {}};
      }
    }
    m_pending.erase(0, length);
    return {std::stoi(head.substr(head.find(' ') + 1, 3)), headers};
  }

  bool
  fill()
  {
    char buffer[65536];
    ssize_t n = ::recv(m_fd, buffer, sizeof buffer, 0);
    if (n <= 0) {
      return false;
    }
    m_pending.append(buffer, static_cast<size_t>(n));
    return true;
  }

  int m_fd = -1;
  std::string m_pending;
};

} // namespace

TEST_SUITE("e2e")
{
  TEST_CASE("api version check")
  {
    RegistryFixture f;
    auto res = f.c().get("/v2/");
    REQUIRE(res);
    CHECK(res->status == 200);
    CHECK(res->get_header_value("Docker-Distribution-API-Version") == "registry/2.0");
    auto health = f.c().get("/healthz");
    REQUIRE(health);
    CHECK(health->status == 200);
  }

  TEST_CASE("blob uploads")
  {
    RegistryFixture f;
    auto& c = f.c();
    Blob blob = make_blob(random_bytes(300000, 7));

    SUBCASE("monolithic POST with digest creates the blob")
    {
      auto res = c.post("/v2/main/app/blobs/uploads/?digest=" + blob.digest, blob.data);
      REQUIRE(res);
      CHECK(res->status == 201);
      CHECK(res->get_header_value("Location") == "/v2/main/app/blobs/" + blob.digest);
      CHECK(res->get_header_value("Docker-Content-Digest") == blob.digest);
      auto get = c.get("/v2/main/app/blobs/" + blob.digest);
      REQUIRE(get);
      CHECK(get->status == 200);
      CHECK(get->body == blob.data);
      CHECK(get->get_header_value("Docker-Content-Digest") == blob.digest);
    }

    SUBCASE("POST then PUT with the whole body")
    {
      auto start = c.post("/v2/main/app/blobs/uploads/");
      REQUIRE(start);
      CHECK(start->status == 202);
      std::string location = start->get_header_value("Location");
      CHECK(location.rfind("/v2/main/app/blobs/uploads/", 0) == 0);
      CHECK(start->get_header_value("Range") == "0-0");
      CHECK(!start->get_header_value("Docker-Upload-UUID").empty());
      auto put = c.put(location + "?digest=" + blob.digest, blob.data);
      REQUIRE(put);
      CHECK(put->status == 201);
      CHECK(put->get_header_value("Docker-Content-Digest") == blob.digest);
      auto head = c.head("/v2/main/app/blobs/" + blob.digest);
      REQUIRE(head);
      CHECK(head->status == 200);
      CHECK(head->get_header_value("Content-Length") == std::to_string(blob.data.size()));
    }

    SUBCASE("chunked PATCH with Content-Range, status, then PUT")
    {
      auto start = c.post("/v2/main/app/blobs/uploads/");
      REQUIRE(start);
      std::string location = start->get_header_value("Location");
      size_t chunk = 100000;
      for (size_t off = 0; off < blob.data.size(); off += chunk) {
        std::string part = blob.data.substr(off, chunk);
        std::string range = std::to_string(off) + "-" + std::to_string(off + part.size() - 1);
        auto res = c.patch(location, part, {{"Content-Range", range}});
        REQUIRE(res);
        REQUIRE_MESSAGE(res->status == 202, res->body);
        CHECK(res->get_header_value("Range") == "0-" + std::to_string(off + part.size() - 1));
        location = res->get_header_value("Location");
      }
      auto status = c.get(location);
      REQUIRE(status);
      CHECK(status->status == 204);
      CHECK(status->get_header_value("Range") == "0-" + std::to_string(blob.data.size() - 1));
      auto put = c.put(location + "?digest=" + blob.digest, "");
      REQUIRE(put);
      CHECK(put->status == 201);
      auto get = c.get("/v2/main/app/blobs/" + blob.digest);
      REQUIRE(get);
      CHECK(get->body == blob.data);
    }

    SUBCASE("out-of-order and repeated chunks answer 416")
    {
      auto start = c.post("/v2/main/app/blobs/uploads/");
      std::string location = start->get_header_value("Location");
      auto first = c.patch(location, blob.data.substr(0, 1000), {{"Content-Range", "0-999"}});
      REQUIRE(first);
      CHECK(first->status == 202);
      auto gap = c.patch(location, blob.data.substr(2000, 1000), {{"Content-Range", "2000-2999"}});
      expect_error(gap, 416, "BLOB_UPLOAD_INVALID");
      CHECK(gap->get_header_value("Range") == "0-999");
      auto repeat = c.patch(location, blob.data.substr(0, 1000), {{"Content-Range", "0-999"}});
      expect_error(repeat, 416, "BLOB_UPLOAD_INVALID");
      auto status = c.get(location);
      REQUIRE(status);
      CHECK(status->get_header_value("Range") == "0-999");
    }

    SUBCASE("streamed PATCH without Content-Range, final chunk in PUT")
    {
      auto start = c.post("/v2/main/app/blobs/uploads/");
      std::string location = start->get_header_value("Location");
      auto res = c.patch(location, blob.data.substr(0, 200000));
      REQUIRE(res);
      CHECK(res->status == 202);
      location = res->get_header_value("Location");
      auto put = c.put(location + "?digest=" + blob.digest, blob.data.substr(200000));
      REQUIRE(put);
      CHECK(put->status == 201);
      auto get = c.get("/v2/main/app/blobs/" + blob.digest);
      CHECK(get->body == blob.data);
    }

    SUBCASE("DELETE cancels an upload")
    {
      auto start = c.post("/v2/main/app/blobs/uploads/");
      std::string location = start->get_header_value("Location");
      c.patch(location, "some bytes");
      auto del = c.del(location);
      REQUIRE(del);
      CHECK(del->status == 204);
      expect_error(c.get(location), 404, "BLOB_UPLOAD_UNKNOWN");
      expect_error(c.put(location + "?digest=" + blob.digest, blob.data), 404, "BLOB_UPLOAD_UNKNOWN");
    }

    SUBCASE("a wrong digest is refused and nothing is stored")
    {
      std::string wrong = sha256_digest("something else");
      auto res = c.post("/v2/main/app/blobs/uploads/?digest=" + wrong, blob.data);
      expect_error(res, 400, "DIGEST_INVALID");
      expect_error(c.head("/v2/main/app/blobs/" + wrong), 404, "BLOB_UNKNOWN", true);
      auto uploads = run_cli(f.data, {"upload", "list", "-o", "json"});
      CHECK(nlohmann::json::parse(uploads.out).empty());
    }

    SUBCASE("an empty blob")
    {
      Blob empty = make_blob("");
      c.push_blob("main/app", empty);
      auto get = c.get("/v2/main/app/blobs/" + empty.digest);
      REQUIRE(get);
      CHECK(get->status == 200);
      CHECK(get->body.empty());
    }
  }

  TEST_CASE("blob reads")
  {
    RegistryFixture f;
    auto& c = f.c();
    Blob blob = make_blob(random_bytes(5000, 3));
    c.push_blob("main/app", blob);

    SUBCASE("Range requests answer 206 with the slice")
    {
      auto res = c.get("/v2/main/app/blobs/" + blob.digest, {{"Range", "bytes=100-199"}});
      REQUIRE(res);
      CHECK(res->status == 206);
      CHECK(res->body == blob.data.substr(100, 100));
      CHECK(res->get_header_value("Content-Range") == "bytes 100-199/5000");
      auto tail = c.get("/v2/main/app/blobs/" + blob.digest, {{"Range", "bytes=4990-"}});
      REQUIRE(tail);
      CHECK(tail->status == 206);
      CHECK(tail->body == blob.data.substr(4990));
      auto suffix = c.get("/v2/main/app/blobs/" + blob.digest, {{"Range", "bytes=-10"}});
      REQUIRE(suffix);
      CHECK(suffix->body == blob.data.substr(4990));
    }

    SUBCASE("an unsatisfiable range answers 416")
    {
      auto res = c.get("/v2/main/app/blobs/" + blob.digest, {{"Range", "bytes=6000-7000"}});
      REQUIRE(res);
      CHECK(res->status == 416);
      CHECK(res->get_header_value("Content-Range") == "bytes */5000");
    }

    SUBCASE("a blob is visible only in repositories linked to it")
    {
      expect_error(c.get("/v2/main/other/blobs/" + blob.digest), 404, "BLOB_UNKNOWN");
      expect_error(c.get("/v2/other/app/blobs/" + blob.digest), 404, "BLOB_UNKNOWN");
    }

    SUBCASE("DELETE unlinks the blob from the repository")
    {
      auto del = c.del("/v2/main/app/blobs/" + blob.digest);
      REQUIRE(del);
      CHECK(del->status == 202);
      expect_error(c.head("/v2/main/app/blobs/" + blob.digest), 404, "BLOB_UNKNOWN", true);
      expect_error(c.del("/v2/main/app/blobs/" + blob.digest), 404, "BLOB_UNKNOWN");
    }
  }

  TEST_CASE("cross-repository mount")
  {
    RegistryFixture f;
    auto& c = f.c();
    Blob blob = make_blob(random_bytes(1000, 11));
    c.push_blob("main/source", blob);

    SUBCASE("mount from a repository holding the blob answers 201")
    {
      auto res = c.post("/v2/main/target/blobs/uploads/?mount=" + blob.digest + "&from=main/source");
      REQUIRE(res);
      CHECK(res->status == 201);
      CHECK(res->get_header_value("Location") == "/v2/main/target/blobs/" + blob.digest);
      auto get = c.get("/v2/main/target/blobs/" + blob.digest);
      REQUIRE(get);
      CHECK(get->body == blob.data);
    }

    SUBCASE("mount across feeds of the same store works")
    {
      auto res = c.post("/v2/other/target/blobs/uploads/?mount=" + blob.digest + "&from=main/source");
      REQUIRE(res);
      CHECK(res->status == 201);
    }

    SUBCASE("mount of an unknown blob falls back to an upload session")
    {
      std::string missing = sha256_digest("not there");
      auto res = c.post("/v2/main/target/blobs/uploads/?mount=" + missing + "&from=main/source");
      REQUIRE(res);
      CHECK(res->status == 202);
      CHECK(res->get_header_value("Location").rfind("/v2/main/target/blobs/uploads/", 0) == 0);
      auto from_nowhere = c.post("/v2/main/target/blobs/uploads/?mount=" + blob.digest + "&from=main/nothing");
      REQUIRE(from_nowhere);
      CHECK(from_nowhere->status == 202);
    }
  }

  TEST_CASE("manifests")
  {
    RegistryFixture f;
    auto& c = f.c();

    SUBCASE("push and pull by tag and by digest")
    {
      auto image = c.push_image("main/app", "v1", {"layer one", "layer two"});
      auto by_tag = c.get("/v2/main/app/manifests/v1", {{"Accept", k_oci_manifest}});
      REQUIRE(by_tag);
      CHECK(by_tag->status == 200);
      CHECK(by_tag->body == image.manifest);
      CHECK(by_tag->get_header_value("Docker-Content-Digest") == image.digest);
      CHECK(by_tag->get_header_value("Content-Type") == k_oci_manifest);
      auto by_digest = c.get("/v2/main/app/manifests/" + image.digest);
      REQUIRE(by_digest);
      CHECK(by_digest->body == image.manifest);
      auto head = c.head("/v2/main/app/manifests/v1");
      REQUIRE(head);
      CHECK(head->status == 200);
      CHECK(head->get_header_value("Content-Length") == std::to_string(image.manifest.size()));
      CHECK(head->get_header_value("Docker-Content-Digest") == image.digest);
      CHECK(head->body.empty());
    }

    SUBCASE("Docker schema2 manifests keep their media type")
    {
      auto image = c.push_image("main/docker", "latest", {"docker layer"}, k_docker_manifest);
      auto res = c.get("/v2/main/docker/manifests/latest");
      REQUIRE(res);
      CHECK(res->get_header_value("Content-Type") == k_docker_manifest);
      CHECK(res->body == image.manifest);
    }

    SUBCASE("PUT by digest verifies the digest")
    {
      Blob config = make_blob("{}", k_oci_config);
      c.push_blob("main/app", config);
      std::string manifest = image_manifest(config, {});
      auto wrong = c.put_manifest("main/app", sha256_digest("x"), manifest, k_oci_manifest);
      expect_error(wrong, 400, "DIGEST_INVALID");
      auto right = c.put_manifest("main/app", sha256_digest(manifest), manifest, k_oci_manifest);
      REQUIRE(right);
      CHECK(right->status == 201);
      CHECK(right->get_header_value("Location") == "/v2/main/app/manifests/" + sha256_digest(manifest));
    }

    SUBCASE("a manifest whose blobs are missing is refused")
    {
      Blob config = make_blob("{}", k_oci_config);
      Blob layer = make_blob("never pushed");
      c.push_blob("main/app", config);
      auto res = c.put_manifest("main/app", "v1", image_manifest(config, {layer}), k_oci_manifest);
      expect_error(res, 400, "MANIFEST_BLOB_UNKNOWN");
      expect_error(c.get("/v2/main/app/manifests/v1"), 404, "MANIFEST_UNKNOWN");
    }

    SUBCASE("Accept excluding the stored type is not served it")
    {
      c.push_image("main/app", "v1", {"l"});
      auto res = c.get("/v2/main/app/manifests/v1", {{"Accept", k_docker_manifest}});
      expect_error(res, 404, "MANIFEST_UNKNOWN");
      auto wildcard = c.get("/v2/main/app/manifests/v1", {{"Accept", "*/*"}});
      REQUIRE(wildcard);
      CHECK(wildcard->status == 200);
    }

    SUBCASE("moving a tag")
    {
      auto first = c.push_image("main/app", "latest", {"one"});
      auto second = c.push_image("main/app", "latest", {"two"});
      auto res = c.head("/v2/main/app/manifests/latest");
      CHECK(res->get_header_value("Docker-Content-Digest") == second.digest);
      auto old = c.head("/v2/main/app/manifests/" + first.digest);
      CHECK(old->status == 200);
    }

    SUBCASE("an index over two platform images")
    {
      auto amd = c.push_image("main/multi", "amd64", {"amd layer"});
      auto arm = c.push_image("main/multi", "arm64", {"arm layer"});
      std::string bytes = image_index({{&amd, "amd64"}, {&arm, "arm64"}});
      auto res = c.put_manifest("main/multi", "latest", bytes, k_oci_index);
      REQUIRE(res);
      CHECK(res->status == 201);
      auto get = c.get("/v2/main/multi/manifests/latest");
      CHECK(get->get_header_value("Content-Type") == k_oci_index);
      // A child still referenced by the index cannot be deleted on its own.
      auto child = c.del("/v2/main/multi/manifests/" + amd.digest);
      REQUIRE(child);
      CHECK(child->status == 409);
      auto del_index = c.del("/v2/main/multi/manifests/" + sha256_digest(bytes));
      CHECK(del_index->status == 202);
      auto child_again = c.del("/v2/main/multi/manifests/" + amd.digest);
      CHECK(child_again->status == 202);
    }

    SUBCASE("an index referencing an unknown manifest is refused")
    {
      nlohmann::json index = {{"schemaVersion", 2}, {"mediaType", k_oci_index}};
      index["manifests"] = {{{"mediaType", k_oci_manifest}, {"digest", sha256_digest("nope")}, {"size", 4}}};
      expect_error(c.put_manifest("main/multi", "latest", index.dump(), k_oci_index), 400,
                   "MANIFEST_BLOB_UNKNOWN");
    }

    SUBCASE("delete by digest removes the manifest and its tags")
    {
      auto image = c.push_image("main/app", "v1", {"l"});
      auto tag2 = c.put_manifest("main/app", "v2", image.manifest, k_oci_manifest);
      REQUIRE(tag2->status == 201);
      auto del = c.del("/v2/main/app/manifests/" + image.digest);
      REQUIRE(del);
      CHECK(del->status == 202);
      expect_error(c.get("/v2/main/app/manifests/" + image.digest), 404, "MANIFEST_UNKNOWN");
      expect_error(c.get("/v2/main/app/manifests/v1"), 404, "MANIFEST_UNKNOWN");
      expect_error(c.get("/v2/main/app/manifests/v2"), 404, "MANIFEST_UNKNOWN");
      expect_error(c.del("/v2/main/app/manifests/" + image.digest), 404, "MANIFEST_UNKNOWN");
    }

    SUBCASE("delete by tag removes only that tag")
    {
      auto image = c.push_image("main/app", "v1", {"l"});
      c.put_manifest("main/app", "v2", image.manifest, k_oci_manifest);
      auto del = c.del("/v2/main/app/manifests/v1");
      REQUIRE(del);
      CHECK(del->status == 202);
      expect_error(c.get("/v2/main/app/manifests/v1"), 404, "MANIFEST_UNKNOWN");
      CHECK(c.get("/v2/main/app/manifests/v2")->status == 200);
      CHECK(c.get("/v2/main/app/manifests/" + image.digest)->status == 200);
    }
  }

  TEST_CASE("tag list and catalog pagination")
  {
    RegistryFixture f;
    auto& c = f.c();
    auto image = c.push_image("main/app", "t00", {"l"});
    for (int i = 1; i < 12; ++i) {
      char tag[8];
      std::snprintf(tag, sizeof tag, "t%02d", i);
      auto res = c.put_manifest("main/app", tag, image.manifest, k_oci_manifest);
      REQUIRE(res->status == 201);
    }
    for (const char* repo : {"main/b", "main/a", "other/z", "main/c/d"}) {
      c.push_image(repo, "latest", {"x"});
    }

    SUBCASE("the whole tag list in lexical order")
    {
      auto res = c.get("/v2/main/app/tags/list");
      REQUIRE(res);
      CHECK(res->status == 200);
      auto j = nlohmann::json::parse(res->body);
      CHECK(j["name"] == "main/app");
      REQUIRE(j["tags"].size() == 12);
      CHECK(j["tags"][0] == "t00");
      CHECK(j["tags"][11] == "t11");
      CHECK(res->get_header_value("Link").empty());
    }

    SUBCASE("n and last page through tags with a Link header")
    {
      auto res = c.get("/v2/main/app/tags/list?n=5");
      auto j = nlohmann::json::parse(res->body);
      REQUIRE(j["tags"].size() == 5);
      CHECK(j["tags"][4] == "t04");
      CHECK(res->get_header_value("Link") == "</v2/main/app/tags/list?n=5&last=t04>; rel=\"next\"");
      auto next = c.get("/v2/main/app/tags/list?n=5&last=t04");
      auto j2 = nlohmann::json::parse(next->body);
      CHECK(j2["tags"][0] == "t05");
      auto last_page = c.get("/v2/main/app/tags/list?n=5&last=t09");
      auto j3 = nlohmann::json::parse(last_page->body);
      CHECK(j3["tags"].size() == 2);
      CHECK(last_page->get_header_value("Link").empty());
      auto zero = c.get("/v2/main/app/tags/list?n=0");
      CHECK(nlohmann::json::parse(zero->body)["tags"].empty());
    }

    SUBCASE("a malformed n is a 400")
    {
      expect_error(c.get("/v2/main/app/tags/list?n=abc"), 400, "UNSUPPORTED");
      expect_error(c.get("/v2/_catalog?n=-1"), 400, "UNSUPPORTED");
    }

    SUBCASE("tags of an unknown repository")
    {
      expect_error(c.get("/v2/main/nothing/tags/list"), 404, "NAME_UNKNOWN");
    }

    SUBCASE("catalog in lexical order with pagination")
    {
      auto res = c.get("/v2/_catalog");
      auto j = nlohmann::json::parse(res->body);
      std::vector<std::string> all = j["repositories"];
      CHECK(all == std::vector<std::string>{"main/a", "main/app", "main/b", "main/c/d", "other/z"});
      auto page = c.get("/v2/_catalog?n=2");
      CHECK(nlohmann::json::parse(page->body)["repositories"]
            == nlohmann::json::array({"main/a", "main/app"}));
      CHECK(page->get_header_value("Link") == "</v2/_catalog?n=2&last=main/app>; rel=\"next\"");
      auto next = c.get("/v2/_catalog?n=2&last=main/app");
      CHECK(nlohmann::json::parse(next->body)["repositories"]
            == nlohmann::json::array({"main/b", "main/c/d"}));
    }
  }

  TEST_CASE("referrers")
  {
    RegistryFixture f;
    auto& c = f.c();
    auto image = c.push_image("main/app", "v1", {"l"});
    Blob empty = make_blob("{}", "application/vnd.oci.empty.v1+json");
    c.push_blob("main/app", empty);
    Blob sig = make_blob("signature bytes", "application/vnd.example.sig");
    c.push_blob("main/app", sig);
    nlohmann::json subject = {{"mediaType", k_oci_manifest}, {"digest", image.digest},
                              {"size", image.manifest.size()}};
    std::string sbom = image_manifest(empty, {sig}, k_oci_manifest,
                                      {{"artifactType", "application/vnd.example.sbom"},
                                       {"subject", subject},
                                       {"annotations", {{"org.example.kind", "sbom"}}}});
    std::string signature = image_manifest(empty, {sig}, k_oci_manifest,
                                           {{"artifactType", "application/vnd.example.signature"},
                                            {"subject", subject}});
    auto put = c.put_manifest("main/app", sha256_digest(sbom), sbom, k_oci_manifest);
    REQUIRE(put);
    CHECK(put->status == 201);
    CHECK(put->get_header_value("OCI-Subject") == image.digest);
    c.put_manifest("main/app", sha256_digest(signature), signature, k_oci_manifest);

    auto all = c.get("/v2/main/app/referrers/" + image.digest);
    REQUIRE(all);
    CHECK(all->status == 200);
    CHECK(all->get_header_value("Content-Type") == k_oci_index);
    auto j = nlohmann::json::parse(all->body);
    CHECK(j["manifests"].size() == 2);

    auto filtered = c.get("/v2/main/app/referrers/" + image.digest
                          + "?artifactType=application/vnd.example.sbom");
    CHECK(filtered->get_header_value("OCI-Filters-Applied") == "artifactType");
    auto jf = nlohmann::json::parse(filtered->body);
    REQUIRE(jf["manifests"].size() == 1);
    CHECK(jf["manifests"][0]["digest"] == sha256_digest(sbom));
    CHECK(jf["manifests"][0]["artifactType"] == "application/vnd.example.sbom");
    CHECK(jf["manifests"][0]["annotations"]["org.example.kind"] == "sbom");

    // A subject that does not exist (yet) still answers 200 with an empty index.
    auto none = c.get("/v2/main/app/referrers/" + sha256_digest("nothing"));
    CHECK(none->status == 200);
    CHECK(nlohmann::json::parse(none->body)["manifests"].empty());
  }

  TEST_CASE("concurrent pushes of the same blob")
  {
    RegistryFixture f;
    Blob blob = make_blob(random_bytes(2 << 20, 5));
    std::atomic<int> created{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < 8; ++i) {
      threads.emplace_back([&, i] {
        OciClient client(f.server->port());
        std::string repo = "main/concurrent" + std::to_string(i % 2);
        auto res = client.post("/v2/" + repo + "/blobs/uploads/?digest=" + blob.digest, blob.data);
        if (res && res->status == 201) {
          ++created;
        }
      });
    }
    for (auto& t : threads) {
      t.join();
    }
    CHECK(created == 8);
    for (const char* repo : {"main/concurrent0", "main/concurrent1"}) {
      auto get = f.c().get(std::string("/v2/") + repo + "/blobs/" + blob.digest);
      REQUIRE(get);
      CHECK(get->body == blob.data);
    }
  }

  TEST_CASE("large bodies are read as sent, and nothing past them")
  {
    // The server reads bodies from 256 KiB on straight from the socket, after the
    // bytes its HTTP library buffered with the request's head.
    RegistryFixture f;
    Blob blob = make_blob(random_bytes((1 << 20) + 123, 11));
    std::string_view body = blob.data;
    auto head = [&](const std::string& method, const std::string& target, size_t length) {
      return method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: "
             + std::to_string(length) + "\r\nContent-Type: application/octet-stream\r\n\r\n";
    };

    SUBCASE("a body in uneven pieces, and the next request sent with its last bytes")
    {
      RawConnection conn(f.server->port());
      conn.send(head("POST", "/v2/main/app/blobs/uploads/?digest=" + blob.digest, body.size())
                + std::string(body.substr(0, 1000)));
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      size_t at = 1000;
      for (size_t piece : {1u, 4095u, 70000u, 300000u}) {
        conn.send(body.substr(at, piece));
        at += piece;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      conn.send(std::string(body.substr(at)) + "GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
      auto [created, headers] = conn.response();
      CHECK(created == 201);
      CHECK(headers["docker-content-digest"] == blob.digest);
      CHECK(conn.response().first == 200);
      auto get = f.c().get("/v2/main/app/blobs/" + blob.digest);
      REQUIRE(get);
      CHECK(get->body == blob.data);
    }

    SUBCASE("a PATCH cut short keeps what arrived; the upload resumes from there")
    {
      auto start = f.c().post("/v2/main/app/blobs/uploads/");
      REQUIRE(start);
      std::string location = start->get_header_value("Location");
      {
        RawConnection conn(f.server->port());
        conn.send(head("PATCH", location, body.size()) + std::string(body.substr(0, 600000)));
        conn.finish_sending();
        // The answer is 400, which httplib logs but does not send once the body
        // ended early: the connection just closes.
        int status = conn.response().first;
        CHECK((status == 400 || status == 0));
      }
      auto status = f.c().get(location);
      REQUIRE(status);
      CHECK(status->status == 204);
      CHECK(status->get_header_value("Range") == "0-599999");
      auto rest = f.c().patch(location, std::string(body.substr(600000)),
                              {{"Content-Range", "600000-" + std::to_string(body.size() - 1)}});
      REQUIRE(rest);
      CHECK(rest->status == 202);
      auto put = f.c().put(rest->get_header_value("Location") + "?digest=" + blob.digest, "");
      REQUIRE(put);
      CHECK(put->status == 201);
      CHECK(f.c().get("/v2/main/app/blobs/" + blob.digest)->body == blob.data);
    }

    SUBCASE("a body refused before it is read is drained, and the connection serves on")
    {
      RawConnection conn(f.server->port());
      conn.send(head("POST", "/v2/main/app/blobs/uploads/?digest=sha256:nothex", body.size())
                + std::string(body) + "GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
      CHECK(conn.response().first == 400);
      CHECK(conn.response().first == 200);
    }
  }

  TEST_CASE("GET, HEAD and OPTIONS are served on one connection; a GET with a body closes it")
  {
    // These methods skip the HTTP library's routing. It never reads a body on
    // them, so a GET that carries one is answered, then the connection closes
    // rather than parsing the body as the next request. (Requests are sent one
    // at a time: httplib 0.11 loses pipelined requests it read ahead.)
    RegistryFixture f;
    f.c().push_image("main/app", "v1", {"layer"});
    RawConnection conn(f.server->port());
    conn.send("HEAD /v2/main/app/manifests/v1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    auto [head_status, head_headers] = conn.response_to_head();
    CHECK(head_status == 200);
    CHECK(head_headers["docker-content-digest"].rfind("sha256:", 0) == 0);
    conn.send("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    auto [health_status, health_headers] = conn.response();
    CHECK(health_status == 200);
    CHECK(health_headers["docker-distribution-api-version"] == "registry/2.0");
    conn.send("OPTIONS /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    CHECK(conn.response().first == 405);
    conn.send("GET /v2/main/app/tags/list HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    CHECK(conn.response().first == 200);
    conn.send("GET /v2/main/app/manifests/v1 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 24\r\n"
              "\r\nDELETE /v2/ HTTP/1.1\r\n\r\n");
    auto [get_status, get_headers] = conn.response();
    CHECK(get_status == 200);
    CHECK(get_headers["docker-content-digest"] == head_headers["docker-content-digest"]);
    CHECK(get_headers["connection"] == "close");
    CHECK(conn.response().first == 0); // closed: the body was not taken for a DELETE
  }

  TEST_CASE("base URL makes Locations absolute")
  {
    RegistryFixture f({"--base-url", "https://registry.example.test/"});
    auto res = f.c().post("/v2/main/app/blobs/uploads/");
    REQUIRE(res);
    CHECK(res->get_header_value("Location").rfind("https://registry.example.test/v2/main/app/blobs/uploads/", 0) == 0);
  }

  TEST_CASE("SIGTERM stops the server cleanly")
  {
    RegistryFixture f;
    f.c().push_image("main/app", "v1", {"l"});
    // An idle keep-alive connection stays open: shutdown must not wait for it forever.
    CHECK(f.server->stop() == 0);
    auto leftovers = registry::util::read_file(f.data / "registry.db");
    CHECK(leftovers.has_value());
    CHECK(std::filesystem::is_empty(f.data / "store" / "uploads"));
  }
}
