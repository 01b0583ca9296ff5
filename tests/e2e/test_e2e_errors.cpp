// Every error the API produces, from the real server: status, content type, the
// envelope's code, and no body on HEAD.

#include "tests/e2e/fixture.hpp"

using namespace registry::test;

TEST_SUITE("e2e")
{
  TEST_CASE("error responses")
  {
    RegistryFixture f;
    auto& c = f.c();
    auto image = c.push_image("main/app", "v1", {"layer"});
    std::string missing = sha256_digest("missing");

    SUBCASE("NAME_INVALID for names outside the grammar")
    {
      expect_error(c.get("/v2/main/UPPER/tags/list"), 400, "NAME_INVALID");
      expect_error(c.get("/v2/main/a..b/manifests/latest"), 400, "NAME_INVALID");
      expect_error(c.post("/v2/main/-x/blobs/uploads/"), 400, "NAME_INVALID");
      // A repository needs a feed and a name.
      expect_error(c.get("/v2/main/manifests/latest"), 400, "NAME_INVALID");
      std::string too_long = "main/" + std::string(260, 'a');
      expect_error(c.get("/v2/" + too_long + "/tags/list"), 400, "NAME_INVALID");
    }

    SUBCASE("NAME_UNKNOWN for a feed that does not exist")
    {
      expect_error(c.get("/v2/nofeed/app/tags/list"), 404, "NAME_UNKNOWN");
      expect_error(c.post("/v2/nofeed/app/blobs/uploads/"), 404, "NAME_UNKNOWN");
      expect_error(c.put_manifest("nofeed/app", "v1", image.manifest, k_oci_manifest), 404,
                   "NAME_UNKNOWN");
      expect_error(c.head("/v2/nofeed/app/manifests/v1"), 404, "NAME_UNKNOWN", true);
    }

    SUBCASE("NAME_UNKNOWN for paths outside the API")
    {
      expect_error(c.get("/v2/main/app/whatever"), 404, "NAME_UNKNOWN");
      expect_error(c.get("/nothing"), 404, "NAME_UNKNOWN");
    }

    SUBCASE("BLOB_UNKNOWN")
    {
      expect_error(c.get("/v2/main/app/blobs/" + missing), 404, "BLOB_UNKNOWN");
      expect_error(c.head("/v2/main/app/blobs/" + missing), 404, "BLOB_UNKNOWN", true);
      expect_error(c.del("/v2/main/app/blobs/" + missing), 404, "BLOB_UNKNOWN");
      expect_error(c.get("/v2/main/never/blobs/" + missing), 404, "BLOB_UNKNOWN");
    }

    SUBCASE("DIGEST_INVALID")
    {
      expect_error(c.get("/v2/main/app/blobs/sha256:abc"), 400, "DIGEST_INVALID");
      expect_error(c.get("/v2/main/app/blobs/md5:" + std::string(32, 'a')), 400, "DIGEST_INVALID");
      expect_error(c.post("/v2/main/app/blobs/uploads/?digest=sha256:zz", "x"), 400, "DIGEST_INVALID");
      auto start = c.post("/v2/main/app/blobs/uploads/");
      std::string location = start->get_header_value("Location");
      expect_error(c.put(location, "data"), 400, "DIGEST_INVALID");
      expect_error(c.get("/v2/main/app/referrers/sha256:nothex"), 400, "DIGEST_INVALID");
    }

    SUBCASE("BLOB_UPLOAD_UNKNOWN")
    {
      std::string bogus = "/v2/main/app/blobs/uploads/01234567-89ab-4def-8123-456789abcdef";
      expect_error(c.get(bogus), 404, "BLOB_UPLOAD_UNKNOWN");
      expect_error(c.patch(bogus, "x"), 404, "BLOB_UPLOAD_UNKNOWN");
      expect_error(c.put(bogus + "?digest=" + missing, "x"), 404, "BLOB_UPLOAD_UNKNOWN");
      expect_error(c.del(bogus), 404, "BLOB_UPLOAD_UNKNOWN");
      expect_error(c.get("/v2/main/app/blobs/uploads/not-a-uuid"), 404, "BLOB_UPLOAD_UNKNOWN");
      // An upload belongs to its repository.
      auto start = c.post("/v2/main/app/blobs/uploads/");
      std::string id = start->get_header_value("Docker-Upload-UUID");
      expect_error(c.get("/v2/main/elsewhere/blobs/uploads/" + id), 404, "BLOB_UPLOAD_UNKNOWN");
    }

    SUBCASE("BLOB_UPLOAD_INVALID for a malformed Content-Range")
    {
      auto start = c.post("/v2/main/app/blobs/uploads/");
      std::string location = start->get_header_value("Location");
      expect_error(c.patch(location, "abc", {{"Content-Range", "garbage"}}), 416,
                   "BLOB_UPLOAD_INVALID");
      expect_error(c.patch(location, "abc", {{"Content-Range", "0-9"}}), 416,
                   "BLOB_UPLOAD_INVALID");
    }

    SUBCASE("MANIFEST_INVALID")
    {
      expect_error(c.put_manifest("main/app", "bad", "not json", k_oci_manifest), 400,
                   "MANIFEST_INVALID");
      expect_error(c.put_manifest("main/app", "bad", R"({"schemaVersion":1})", k_oci_manifest), 400,
                   "MANIFEST_INVALID");
      expect_error(c.put_manifest("main/app", "bad", image.manifest, k_docker_manifest), 400,
                   "MANIFEST_INVALID");
      expect_error(c.put_manifest("main/app", "bad",
                                  R"({"schemaVersion":2,"mediaType":")" + std::string(k_oci_manifest)
                                    + R"(","config":{"mediaType":"x","digest":"sha256:1","size":1},"layers":[]})",
                                  k_oci_manifest),
                   400, "MANIFEST_INVALID");
      expect_error(c.put_manifest("main/app", "bad!tag", image.manifest, k_oci_manifest), 400,
                   "MANIFEST_INVALID");
      std::string huge = std::string(5 << 20, ' ');
      expect_error(c.put_manifest("main/app", "huge", huge, k_oci_manifest), 400, "MANIFEST_INVALID");
    }

    SUBCASE("MANIFEST_UNKNOWN")
    {
      expect_error(c.get("/v2/main/app/manifests/nope"), 404, "MANIFEST_UNKNOWN");
      expect_error(c.head("/v2/main/app/manifests/nope"), 404, "MANIFEST_UNKNOWN", true);
      expect_error(c.get("/v2/main/app/manifests/" + missing), 404, "MANIFEST_UNKNOWN");
      expect_error(c.del("/v2/main/app/manifests/" + missing), 404, "MANIFEST_UNKNOWN");
      expect_error(c.get("/v2/main/never/manifests/latest"), 404, "MANIFEST_UNKNOWN");
    }

    SUBCASE("UNSUPPORTED for a method a route does not have")
    {
      expect_error(c.put("/v2/main/app/tags/list", "x"), 405, "UNSUPPORTED");
      expect_error(c.del("/v2/"), 405, "UNSUPPORTED");
      expect_error(c.post("/v2/main/app/manifests/v1", "x"), 405, "UNSUPPORTED");
    }

    SUBCASE("the connection survives errors")
    {
      // Error responses drain the request body, so keep-alive keeps working.
      expect_error(c.patch("/v2/nofeed/app/blobs/uploads/01234567-89ab-4def-8123-456789abcdef",
                           random_bytes(100000)),
                   404, "BLOB_UPLOAD_UNKNOWN");
      auto ok = c.get("/v2/");
      REQUIRE(ok);
      CHECK(ok->status == 200);
    }
  }
}
