#include "common/oci/reference.hpp"

#include "tests/unit/unit_helpers.hpp"

#include <doctest/doctest.h>

#include <string>

using registry::ErrorCode;
using registry::oci::Digest;
using registry::test::code_of;
namespace oci = registry::oci;

TEST_SUITE("oci")
{
  TEST_CASE("oci::is_valid_name_component")
  {
    SUBCASE("lowercase alphanumerics joined by the allowed separators are valid")
    {
      for (const char* name : {"a", "0", "abc", "a1", "a.b", "a_b", "a__b", "a-b", "a--b",
                               "a---b", "a.b_c__d-e", "9lives"}) {
        INFO(name);
        CHECK(oci::is_valid_name_component(name));
      }
    }

    SUBCASE("uppercase, bad separators and leading or trailing separators are invalid")
    {
      for (const char* name : {"", "A", "aB", "a___b", "a..b", "a._b", "a-.b", "-a", "a-",
                               ".a", "a.", "_a", "a_", "a/b", "a b", "a:b", "a@b", "é"}) {
        INFO("'", name, "'");
        CHECK_FALSE(oci::is_valid_name_component(name));
      }
    }
  }

  TEST_CASE("oci::is_valid_repository_name")
  {
    SUBCASE("components joined by single slashes are valid")
    {
      CHECK(oci::is_valid_repository_name("feed/repo"));
      CHECK(oci::is_valid_repository_name("feed/dotnet/aspnet"));
      CHECK(oci::is_valid_repository_name("single"));
    }

    SUBCASE("empty components and path tricks are invalid")
    {
      for (const char* name : {"", "/", "feed/", "/repo", "feed//repo", "feed/../repo",
                               "feed/./repo", "Feed/repo", "feed/repo:tag",
                               "feed/repo@sha256"}) {
        INFO("'", name, "'");
        CHECK_FALSE(oci::is_valid_repository_name(name));
      }
    }

    SUBCASE("the full name may have at most 255 characters")
    {
      std::string name = "feed/" + std::string(250, 'a');
      CHECK(name.size() == 255);
      CHECK(oci::is_valid_repository_name(name));
      CHECK_FALSE(oci::is_valid_repository_name(name + "a"));
    }
  }

  TEST_CASE("oci::is_valid_tag")
  {
    SUBCASE("word characters, dots and dashes are valid after a word character")
    {
      for (const char* tag : {"latest", "v1.0", "1.2.3-rc.1", "_private", "A", "Release_2",
                              "a-b.c_d"}) {
        INFO(tag);
        CHECK(oci::is_valid_tag(tag));
      }
    }

    SUBCASE("a leading dot or dash and other characters are invalid")
    {
      for (const char* tag : {"", ".hidden", "-x", "a/b", "a:b", "a@b", "a b", "a+b"}) {
        INFO("'", tag, "'");
        CHECK_FALSE(oci::is_valid_tag(tag));
      }
    }

    SUBCASE("a tag may have at most 128 characters")
    {
      CHECK(oci::is_valid_tag(std::string(128, 'x')));
      CHECK_FALSE(oci::is_valid_tag(std::string(129, 'x')));
    }
  }

  TEST_CASE("oci::is_valid_feed_name")
  {
    SUBCASE("lowercase alphanumerics with single separators are valid")
    {
      for (const char* name : {"myimages", "a", "team-a", "team.a", "team_a", "v3", "v2x",
                               "api2", "a1-b2.c3_d4"}) {
        INFO(name);
        CHECK(oci::is_valid_feed_name(name));
      }
    }

    SUBCASE("reserved names are invalid")
    {
      for (const char* name : {"v2", "auth", "ui", "api", "_", "_hidden"}) {
        INFO(name);
        CHECK_FALSE(oci::is_valid_feed_name(name));
      }
    }

    SUBCASE("double separators, edges, uppercase and slashes are invalid")
    {
      for (const char* name : {"", "a__b", "a--b", "a.-b", "-a", "a-", ".a", "a.", "A",
                               "Images", "a/b", "a b"}) {
        INFO("'", name, "'");
        CHECK_FALSE(oci::is_valid_feed_name(name));
      }
    }

    SUBCASE("a feed name may have at most 64 characters")
    {
      CHECK(oci::is_valid_feed_name(std::string(64, 'f')));
      CHECK_FALSE(oci::is_valid_feed_name(std::string(65, 'f')));
    }
  }

  TEST_CASE("oci::parse_repository_name")
  {
    SUBCASE("the first component is the feed and the rest the path")
    {
      auto name = oci::parse_repository_name("myimages/dotnet/aspnet");
      REQUIRE_OK(name);
      CHECK(name->feed == "myimages");
      CHECK(name->path == "dotnet/aspnet");
      CHECK(name->full() == "myimages/dotnet/aspnet");
    }

    SUBCASE("a name with a single component is name_invalid")
    {
      CHECK(code_of(oci::parse_repository_name("myimages")) == ErrorCode::name_invalid);
    }

    SUBCASE("a name that breaks the grammar is name_invalid")
    {
      for (const char* name : {"", "My/repo", "feed/Repo", "feed//repo", "feed/repo/",
                               "feed/../etc", "feed/a..b"}) {
        INFO("'", name, "'");
        CHECK(code_of(oci::parse_repository_name(name)) == ErrorCode::name_invalid);
      }
      CHECK(code_of(oci::parse_repository_name("feed/" + std::string(251, 'a')))
            == ErrorCode::name_invalid);
    }
  }

  TEST_CASE("oci::parse_manifest_reference")
  {
    const std::string digest = Digest::of("x").str();

    SUBCASE("a valid tag is a tag reference")
    {
      auto ref = oci::parse_manifest_reference("v1.2");
      REQUIRE_OK(ref);
      CHECK_FALSE(ref->is_digest());
      CHECK(ref->tag() == "v1.2");
      CHECK(ref->str() == "v1.2");
    }

    SUBCASE("a valid digest is a digest reference")
    {
      auto ref = oci::parse_manifest_reference(digest);
      REQUIRE_OK(ref);
      CHECK(ref->is_digest());
      CHECK(ref->digest().str() == digest);
      CHECK(ref->str() == digest);
    }

    SUBCASE("a text with a colon that is not a digest is digest_invalid")
    {
      CHECK(code_of(oci::parse_manifest_reference("sha256:abc")) == ErrorCode::digest_invalid);
      CHECK(code_of(oci::parse_manifest_reference("a:b")) == ErrorCode::digest_invalid);
    }

    SUBCASE("an invalid tag is invalid_argument, left for the caller to translate")
    {
      CHECK(code_of(oci::parse_manifest_reference("")) == ErrorCode::invalid_argument);
      CHECK(code_of(oci::parse_manifest_reference(".x")) == ErrorCode::invalid_argument);
      CHECK(code_of(oci::parse_manifest_reference(std::string(129, 't')))
            == ErrorCode::invalid_argument);
    }
  }

  TEST_CASE("oci::parse_image_reference")
  {
    const std::string digest = Digest::of("image").str();

    SUBCASE("FEED/REPO:TAG names a tag")
    {
      auto ref = oci::parse_image_reference("myimages/dotnet/aspnet:8.0");
      REQUIRE_OK(ref);
      CHECK(ref->repository.feed == "myimages");
      CHECK(ref->repository.path == "dotnet/aspnet");
      REQUIRE_FALSE(ref->reference.is_digest());
      CHECK(ref->reference.tag() == "8.0");
    }

    SUBCASE("FEED/REPO@DIGEST names a digest")
    {
      auto ref = oci::parse_image_reference("myimages/app@" + digest);
      REQUIRE_OK(ref);
      CHECK(ref->repository.full() == "myimages/app");
      REQUIRE(ref->reference.is_digest());
      CHECK(ref->reference.digest().str() == digest);
    }

    SUBCASE("a reference without tag or digest means latest")
    {
      auto ref = oci::parse_image_reference("myimages/app");
      REQUIRE_OK(ref);
      CHECK(ref->repository.full() == "myimages/app");
      REQUIRE_FALSE(ref->reference.is_digest());
      CHECK(ref->reference.tag() == "latest");
    }

    SUBCASE("a bad digest after @ is digest_invalid")
    {
      CHECK(code_of(oci::parse_image_reference("myimages/app@sha256:1234"))
            == ErrorCode::digest_invalid);
      CHECK(code_of(oci::parse_image_reference("myimages/app@latest"))
            == ErrorCode::digest_invalid);
    }

    SUBCASE("a bad tag is invalid_argument")
    {
      CHECK(code_of(oci::parse_image_reference("myimages/app:.bad"))
            == ErrorCode::invalid_argument);
      CHECK(code_of(oci::parse_image_reference("myimages/app:")) == ErrorCode::invalid_argument);
    }

    SUBCASE("a bad or single-component repository is name_invalid")
    {
      CHECK(code_of(oci::parse_image_reference("app:latest")) == ErrorCode::name_invalid);
      CHECK(code_of(oci::parse_image_reference("MyImages/app:1")) == ErrorCode::name_invalid);
      CHECK(code_of(oci::parse_image_reference("myimages/app:tag@" + digest))
            == ErrorCode::name_invalid);
      CHECK(code_of(oci::parse_image_reference("")) == ErrorCode::name_invalid);
    }
  }
}
