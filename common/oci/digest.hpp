#pragma once

// A content digest "<algorithm>:<hex>". Only sha256 (64 hex) and sha512 (128 hex)
// with lowercase hex are accepted: anything else is rejected before it reaches a
// path or a query.

#include "common/result.hpp"
#include "common/util/hasher.hpp"

#include <string>
#include <string_view>

namespace registry::oci {

class Digest
{
public:
  Digest() = default;

  // Parses `text`. digest_invalid for any other form or algorithm.
  static Result<Digest> parse(std::string_view text);

  // Digest of `data` with `algorithm`.
  static Digest of(std::string_view data,
                   util::HashAlgorithm algorithm = util::HashAlgorithm::sha256);

  // Digest from a finished hasher.
  static Digest from_hasher(const util::Hasher& hasher);

  const std::string&
  str() const
  {
    return m_text;
  }
  std::string_view algorithm() const;
  std::string_view hex() const;
  util::HashAlgorithm hash_algorithm() const;
  bool
  empty() const
  {
    return m_text.empty();
  }

  friend bool
  operator==(const Digest& a, const Digest& b)
  {
    return a.m_text == b.m_text;
  }
  friend bool
  operator<(const Digest& a, const Digest& b)
  {
    return a.m_text < b.m_text;
  }

private:
  explicit Digest(std::string text) : m_text(std::move(text)) {}
  std::string m_text;
};

} // namespace registry::oci
