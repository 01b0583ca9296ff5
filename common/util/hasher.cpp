#include "common/util/hasher.hpp"

#include "common/assert.hpp"

#include <openssl/evp.h>

namespace registry::util {

struct Hasher::Impl {
  EVP_MD_CTX* ctx = nullptr;
  ~Impl()
  {
    EVP_MD_CTX_free(ctx);
  }
};

namespace {

const EVP_MD*
md_for(HashAlgorithm algorithm)
{
  return algorithm == HashAlgorithm::sha512 ? EVP_sha512() : EVP_sha256();
}

const char k_hex[] = "0123456789abcdef";

} // namespace

Hasher::Hasher(HashAlgorithm algorithm)
  : m_algorithm(algorithm),
    m_impl(std::make_unique<Impl>())
{
  m_impl->ctx = EVP_MD_CTX_new();
  REGISTRY_ASSERT(m_impl->ctx != nullptr);
  REGISTRY_ASSERT(EVP_DigestInit_ex(m_impl->ctx, md_for(algorithm), nullptr) == 1);
}

Hasher::~Hasher() = default;
Hasher::Hasher(Hasher&&) noexcept = default;
Hasher& Hasher::operator=(Hasher&&) noexcept = default;

void
Hasher::update(const void* data, size_t size)
{
  REGISTRY_ASSERT(EVP_DigestUpdate(m_impl->ctx, data, size) == 1);
}

std::string
Hasher::hex_digest() const
{
  EVP_MD_CTX* copy = EVP_MD_CTX_new();
  REGISTRY_ASSERT(copy != nullptr);
  REGISTRY_ASSERT(EVP_MD_CTX_copy_ex(copy, m_impl->ctx) == 1);
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  REGISTRY_ASSERT(EVP_DigestFinal_ex(copy, out, &len) == 1);
  EVP_MD_CTX_free(copy);
  std::string hex;
  hex.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    hex.push_back(k_hex[out[i] >> 4]);
    hex.push_back(k_hex[out[i] & 0xf]);
  }
  return hex;
}

std::string
hex_digest(std::string_view data, HashAlgorithm algorithm)
{
  Hasher hasher(algorithm);
  hasher.update(data);
  return hasher.hex_digest();
}

} // namespace registry::util
