#include "common/oci/digest.hpp"

namespace registry::oci {

namespace {

bool
is_lower_hex(std::string_view text)
{
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return true;
}

} // namespace

Result<Digest>
Digest::parse(std::string_view text)
{
  size_t colon = text.find(':');
  if (colon == std::string_view::npos) {
    return fail(ErrorCode::digest_invalid, "invalid digest format", std::string(text.substr(0, 200)));
  }
  std::string_view algo = text.substr(0, colon);
  std::string_view hex = text.substr(colon + 1);
  size_t expected = 0;
  if (algo == "sha256") {
    expected = 64;
  } else if (algo == "sha512") {
    expected = 128;
  } else {
    return fail(ErrorCode::digest_invalid, "unsupported digest algorithm",
                std::string(algo.substr(0, 64)));
  }
  if (hex.size() != expected || !is_lower_hex(hex)) {
    return fail(ErrorCode::digest_invalid, "invalid digest format", std::string(text.substr(0, 200)));
  }
  return Digest(std::string(text));
}

Digest
Digest::of(std::string_view data, util::HashAlgorithm algorithm)
{
  std::string prefix = algorithm == util::HashAlgorithm::sha512 ? "sha512:" : "sha256:";
  return Digest(prefix + util::hex_digest(data, algorithm));
}

Digest
Digest::from_hasher(const util::Hasher& hasher)
{
  std::string prefix
    = hasher.algorithm() == util::HashAlgorithm::sha512 ? "sha512:" : "sha256:";
  return Digest(prefix + hasher.hex_digest());
}

std::string_view
Digest::algorithm() const
{
  std::string_view t = m_text;
  return t.substr(0, t.find(':'));
}

std::string_view
Digest::hex() const
{
  std::string_view t = m_text;
  return t.substr(t.find(':') + 1);
}

util::HashAlgorithm
Digest::hash_algorithm() const
{
  return algorithm() == "sha512" ? util::HashAlgorithm::sha512 : util::HashAlgorithm::sha256;
}

} // namespace registry::oci
