#include "common/auth/password.hpp"

#include "common/assert.hpp"
#include "common/util/strings.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <vector>

namespace registry::auth {

namespace {

constexpr size_t k_salt_bytes = 16;
constexpr size_t k_hash_bytes = 32;

std::string
to_hex(const unsigned char* data, size_t size)
{
  static const char hex[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < size; ++i) {
    out.push_back(hex[data[i] >> 4]);
    out.push_back(hex[data[i] & 0xf]);
  }
  return out;
}

bool
from_hex(std::string_view text, std::vector<unsigned char>& out)
{
  if (text.size() % 2 != 0) {
    return false;
  }
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') {
      return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
      return c - 'a' + 10;
    }
    return -1;
  };
  out.clear();
  for (size_t i = 0; i < text.size(); i += 2) {
    int hi = nibble(text[i]);
    int lo = nibble(text[i + 1]);
    if (hi < 0 || lo < 0) {
      return false;
    }
    out.push_back(static_cast<unsigned char>(hi * 16 + lo));
  }
  return true;
}

std::vector<unsigned char>
derive(std::string_view password, const std::vector<unsigned char>& salt, int iterations)
{
  std::vector<unsigned char> out(k_hash_bytes);
  REGISTRY_ASSERT(PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()), salt.data(),
                                    static_cast<int>(salt.size()), iterations, EVP_sha256(),
                                    static_cast<int>(out.size()), out.data())
                  == 1);
  return out;
}

} // namespace

std::string
hash_password(std::string_view password, int iterations)
{
  std::vector<unsigned char> salt(k_salt_bytes);
  REGISTRY_ASSERT(RAND_bytes(salt.data(), static_cast<int>(salt.size())) == 1);
  auto hash = derive(password, salt, iterations);
  return "pbkdf2-sha256$" + std::to_string(iterations) + "$" + to_hex(salt.data(), salt.size())
         + "$" + to_hex(hash.data(), hash.size());
}

bool
verify_password(std::string_view password, std::string_view encoded)
{
  auto parts = util::split(encoded, '$');
  if (parts.size() != 4 || parts[0] != "pbkdf2-sha256") {
    return false;
  }
  auto iterations = util::parse_uint(parts[1]);
  std::vector<unsigned char> salt;
  std::vector<unsigned char> expected;
  if (!iterations || *iterations == 0 || *iterations > 10'000'000 || !from_hex(parts[2], salt)
      || !from_hex(parts[3], expected) || expected.size() != k_hash_bytes) {
    return false;
  }
  auto actual = derive(password, salt, static_cast<int>(*iterations));
  return CRYPTO_memcmp(actual.data(), expected.data(), k_hash_bytes) == 0;
}

} // namespace registry::auth
