#include "common/util/hasher.hpp"

#include "tests/support/test_dir.hpp"

#include <doctest/doctest.h>

#include <string>
#include <utility>

using registry::util::HashAlgorithm;
using registry::util::Hasher;
namespace util = registry::util;

namespace {

const char* const k_sha256_empty
  = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const char* const k_sha256_abc
  = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
const char* const k_sha256_hello_world
  = "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9";
const char* const k_sha512_empty
  = "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce"
    "47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e";
const char* const k_sha512_abc
  = "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
    "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f";

} // namespace

TEST_SUITE("util")
{
  TEST_CASE("util::hex_digest")
  {
    SUBCASE("sha256 matches the FIPS 180 test vectors")
    {
      CHECK(util::hex_digest("") == k_sha256_empty);
      CHECK(util::hex_digest("abc") == k_sha256_abc);
      CHECK(util::hex_digest("hello world", HashAlgorithm::sha256) == k_sha256_hello_world);
    }

    SUBCASE("sha512 matches the FIPS 180 test vectors")
    {
      CHECK(util::hex_digest("", HashAlgorithm::sha512) == k_sha512_empty);
      CHECK(util::hex_digest("abc", HashAlgorithm::sha512) == k_sha512_abc);
    }
  }

  TEST_CASE("util::Hasher")
  {
    SUBCASE("a fresh hasher digests the empty input")
    {
      Hasher hasher;
      CHECK(hasher.algorithm() == HashAlgorithm::sha256);
      CHECK(hasher.hex_digest() == k_sha256_empty);
    }

    SUBCASE("hex_digest leaves the hasher usable for more data")
    {
      Hasher hasher;
      hasher.update("hello");
      CHECK(hasher.hex_digest() == util::hex_digest("hello"));
      hasher.update(" world");
      CHECK(hasher.hex_digest() == k_sha256_hello_world);
      CHECK(hasher.hex_digest() == k_sha256_hello_world); // repeatable
    }

    SUBCASE("splitting the input anywhere gives the same digest")
    {
      std::string data = registry::test::random_bytes(100'000, 7);
      std::string expected = util::hex_digest(data);
      for (size_t piece : {size_t{1}, size_t{63}, size_t{64}, size_t{4096}, size_t{99'999}}) {
        Hasher hasher;
        for (size_t pos = 0; pos < data.size(); pos += piece) {
          hasher.update(data.data() + pos, std::min(piece, data.size() - pos));
        }
        INFO("piece size ", piece);
        CHECK(hasher.hex_digest() == expected);
      }
    }

    SUBCASE("a moved hasher keeps its state and algorithm")
    {
      Hasher source(HashAlgorithm::sha512);
      source.update("ab");
      Hasher moved(std::move(source));
      moved.update("c");
      CHECK(moved.algorithm() == HashAlgorithm::sha512);
      CHECK(moved.hex_digest() == k_sha512_abc);

      Hasher assigned;
      assigned = std::move(moved);
      CHECK(assigned.algorithm() == HashAlgorithm::sha512);
      CHECK(assigned.hex_digest() == k_sha512_abc);
    }

    SUBCASE("binary data including NUL bytes is hashed completely")
    {
      std::string data("a\0b", 3);
      Hasher hasher;
      hasher.update(data);
      CHECK(hasher.hex_digest() == util::hex_digest(data));
      CHECK(hasher.hex_digest() != util::hex_digest("a"));
    }
  }

  TEST_CASE("util::Hasher::save_state")
  {
    const std::string data(300'001, 'q');
    for (HashAlgorithm algorithm : {HashAlgorithm::sha256, HashAlgorithm::sha512}) {
      INFO("sha512: ", algorithm == HashAlgorithm::sha512);
      Hasher first(algorithm);
      first.update(data.substr(0, 123'457));
      auto resumed = Hasher::restore_state(first.save_state());
      REQUIRE(resumed.has_value());
      CHECK(resumed->algorithm() == algorithm);
      resumed->update(data.substr(123'457));
      CHECK(resumed->hex_digest() == util::hex_digest(data, algorithm));
    }

    SUBCASE("foreign or damaged states are refused")
    {
      std::string saved = Hasher().save_state();
      CHECK_FALSE(Hasher::restore_state("").has_value());
      CHECK_FALSE(Hasher::restore_state("sha256:abc").has_value());
      CHECK_FALSE(Hasher::restore_state(saved.substr(0, saved.size() - 1)).has_value());
      CHECK_FALSE(Hasher::restore_state(saved + "x").has_value());
      CHECK(Hasher::restore_state(saved).has_value());
    }
  }
}
