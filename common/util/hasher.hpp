#pragma once

// Streaming message digest over OpenSSL (SHA-256 and SHA-512). Not thread-safe:
// one Hasher belongs to one upload or one reader at a time.

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace registry::util {

enum class HashAlgorithm { sha256, sha512 };

class Hasher
{
public:
  explicit Hasher(HashAlgorithm algorithm = HashAlgorithm::sha256);
  ~Hasher();
  Hasher(Hasher&&) noexcept;
  Hasher& operator=(Hasher&&) noexcept;
  Hasher(const Hasher&) = delete;
  Hasher& operator=(const Hasher&) = delete;

  void update(const void* data, size_t size);
  void
  update(std::string_view data)
  {
    update(data.data(), data.size());
  }

  // Lowercase hex of the digest of everything passed so far. The hasher stays
  // usable: the state is copied, so more data may follow.
  std::string hex_digest() const;

  // The running state as an opaque byte string, to resume hashing in another
  // process of the same build (an upload to an object store after a restart).
  std::string save_state() const;
  // nullopt when `state` is not one save_state() produced.
  static std::optional<Hasher> restore_state(std::string_view state);

  HashAlgorithm
  algorithm() const
  {
    return m_algorithm;
  }

private:
  struct Impl;
  HashAlgorithm m_algorithm;
  std::unique_ptr<Impl> m_impl;
};

// One-shot helper: lowercase hex digest of `data`.
std::string hex_digest(std::string_view data,
                       HashAlgorithm algorithm = HashAlgorithm::sha256);

} // namespace registry::util
