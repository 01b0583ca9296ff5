#include "common/oci/digest.hpp"

#include "tests/unit/unit_helpers.hpp"

#include <doctest/doctest.h>

#include <string>

using registry::ErrorCode;
using registry::oci::Digest;
using registry::test::code_of;
namespace util = registry::util;

namespace {

const std::string k_empty_sha256
  = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const std::string k_abc_sha256
  = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
const std::string k_abc_sha512
  = "sha512:ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
    "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f";

} // namespace

TEST_SUITE("oci")
{
  TEST_CASE("oci::Digest::parse")
  {
    SUBCASE("a lowercase sha256 digest is accepted and split into its parts")
    {
      auto d = Digest::parse(k_abc_sha256);
      REQUIRE_OK(d);
      CHECK(d->str() == k_abc_sha256);
      CHECK(d->algorithm() == "sha256");
      CHECK(d->hex() == k_abc_sha256.substr(7));
      CHECK(d->hash_algorithm() == util::HashAlgorithm::sha256);
      CHECK_FALSE(d->empty());
    }

    SUBCASE("a sha512 digest with 128 hex digits is accepted")
    {
      auto d = Digest::parse(k_abc_sha512);
      REQUIRE_OK(d);
      CHECK(d->algorithm() == "sha512");
      CHECK(d->hex().size() == 128);
      CHECK(d->hash_algorithm() == util::HashAlgorithm::sha512);
    }

    SUBCASE("malformed digests are digest_invalid")
    {
      const std::string hex64 = k_abc_sha256.substr(7);
      const char* const bad[] = {
        "",
        ":",
        "sha256",
        "sha256:",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85",   // 63
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8555", // 65
        "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",  // upper
        "sha256:g3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",  // not hex
        "SHA256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "sha384:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "md5:d41d8cd98f00b204e9800998ecf8427e",
        " sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 ",
        "sha256:../../../../../../../../../../../../../../../../../../../etc/pa",
      };
      for (const char* text : bad) {
        INFO("digest: '", text, "'");
        CHECK(code_of(Digest::parse(text)) == ErrorCode::digest_invalid);
      }
      // a sha512 algorithm with a sha256-sized hex and the reverse
      CHECK(code_of(Digest::parse("sha512:" + hex64)) == ErrorCode::digest_invalid);
      CHECK(code_of(Digest::parse("sha256:" + k_abc_sha512.substr(7)))
            == ErrorCode::digest_invalid);
    }

    SUBCASE("a default-constructed digest is empty")
    {
      Digest d;
      CHECK(d.empty());
      CHECK(d.str().empty());
    }
  }

  TEST_CASE("oci::Digest::of")
  {
    SUBCASE("sha256 is the default and matches the known test vectors")
    {
      CHECK(Digest::of("").str() == k_empty_sha256);
      CHECK(Digest::of("abc").str() == k_abc_sha256);
    }

    SUBCASE("sha512 produces a sha512: digest")
    {
      CHECK(Digest::of("abc", util::HashAlgorithm::sha512).str() == k_abc_sha512);
    }

    SUBCASE("the result parses back to an equal digest")
    {
      Digest d = Digest::of("round trip");
      auto parsed = Digest::parse(d.str());
      REQUIRE_OK(parsed);
      CHECK(*parsed == d);
    }
  }

  TEST_CASE("oci::Digest::from_hasher")
  {
    SUBCASE("a streamed hash equals the one-shot digest")
    {
      util::Hasher hasher;
      hasher.update("a");
      hasher.update("bc");
      CHECK(Digest::from_hasher(hasher).str() == k_abc_sha256);
    }

    SUBCASE("the hasher's algorithm picks the prefix")
    {
      util::Hasher hasher(util::HashAlgorithm::sha512);
      hasher.update("abc");
      CHECK(Digest::from_hasher(hasher).str() == k_abc_sha512);
    }
  }

  TEST_CASE("oci::Digest comparison")
  {
    SUBCASE("digests compare by their text")
    {
      Digest a = Digest::of("a");
      Digest b = Digest::of("b");
      CHECK(a == Digest::of("a"));
      CHECK_FALSE(a == b);
      CHECK(((a < b) != (b < a)));
      CHECK_FALSE(a < a);
    }
  }
}
