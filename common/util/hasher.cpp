#include "common/util/hasher.hpp"

#include "common/assert.hpp"

// The SHA256_/SHA512_ functions are deprecated in OpenSSL 3 in favour of EVP,
// but EVP keeps the running state opaque and an upload to an object store must
// be able to save it (the bytes cannot be read back to rebuild it). They run the
// same assembly block functions as EVP.
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>

#include <cstring>
#include <variant>

namespace registry::util {

struct Hasher::Impl {
  std::variant<SHA256_CTX, SHA512_CTX> ctx;
};

namespace {

const char k_hex[] = "0123456789abcdef";

// Saved states start with this tag and the algorithm, so a state saved by an
// incompatible build is refused instead of producing a wrong digest.
const std::string_view k_state_tag = "registryctl-hash-v1:";

std::string
algorithm_name(HashAlgorithm algorithm)
{
  return algorithm == HashAlgorithm::sha512 ? "sha512" : "sha256";
}

} // namespace

Hasher::Hasher(HashAlgorithm algorithm)
  : m_algorithm(algorithm),
    m_impl(std::make_unique<Impl>())
{
  if (algorithm == HashAlgorithm::sha512) {
    SHA512_CTX ctx;
    REGISTRY_ASSERT(SHA512_Init(&ctx) == 1);
    m_impl->ctx = ctx;
  } else {
    SHA256_CTX ctx;
    REGISTRY_ASSERT(SHA256_Init(&ctx) == 1);
    m_impl->ctx = ctx;
  }
}

Hasher::~Hasher() = default;
Hasher::Hasher(Hasher&&) noexcept = default;
Hasher& Hasher::operator=(Hasher&&) noexcept = default;

void
Hasher::update(const void* data, size_t size)
{
  if (auto* sha512 = std::get_if<SHA512_CTX>(&m_impl->ctx)) {
    REGISTRY_ASSERT(SHA512_Update(sha512, data, size) == 1);
  } else {
    REGISTRY_ASSERT(SHA256_Update(&std::get<SHA256_CTX>(m_impl->ctx), data, size) == 1);
  }
}

std::string
Hasher::hex_digest() const
{
  unsigned char out[SHA512_DIGEST_LENGTH];
  size_t len = 0;
  if (const auto* sha512 = std::get_if<SHA512_CTX>(&m_impl->ctx)) {
    SHA512_CTX copy = *sha512;
    REGISTRY_ASSERT(SHA512_Final(out, &copy) == 1);
    len = SHA512_DIGEST_LENGTH;
  } else {
    SHA256_CTX copy = std::get<SHA256_CTX>(m_impl->ctx);
    REGISTRY_ASSERT(SHA256_Final(out, &copy) == 1);
    len = SHA256_DIGEST_LENGTH;
  }
  std::string hex;
  hex.reserve(len * 2);
  for (size_t i = 0; i < len; ++i) {
    hex.push_back(k_hex[out[i] >> 4]);
    hex.push_back(k_hex[out[i] & 0xf]);
  }
  return hex;
}

std::string
Hasher::save_state() const
{
  std::string state(k_state_tag);
  state += algorithm_name(m_algorithm) + ":";
  std::visit(
    [&](const auto& ctx) { state.append(reinterpret_cast<const char*>(&ctx), sizeof ctx); },
    m_impl->ctx);
  return state;
}

std::optional<Hasher>
Hasher::restore_state(std::string_view state)
{
  if (!state.starts_with(k_state_tag)) {
    return std::nullopt;
  }
  state.remove_prefix(k_state_tag.size());
  for (HashAlgorithm algorithm : {HashAlgorithm::sha256, HashAlgorithm::sha512}) {
    std::string prefix = algorithm_name(algorithm) + ":";
    if (!state.starts_with(prefix)) {
      continue;
    }
    state.remove_prefix(prefix.size());
    Hasher hasher(algorithm);
    bool fits = std::visit(
      [&](auto& ctx) {
        if (state.size() != sizeof ctx) {
          return false;
        }
        std::memcpy(&ctx, state.data(), sizeof ctx);
        return true;
      },
      hasher.m_impl->ctx);
    if (!fits) {
      return std::nullopt;
    }
    return hasher;
  }
  return std::nullopt;
}

std::string
hex_digest(std::string_view data, HashAlgorithm algorithm)
{
  Hasher hasher(algorithm);
  hasher.update(data);
  return hasher.hex_digest();
}

} // namespace registry::util
