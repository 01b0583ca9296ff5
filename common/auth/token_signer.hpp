#pragma once

// JSON Web Tokens signed with ES256 (ECDSA P-256, SHA-256), as the Docker token
// auth flow uses. The key is generated on first use and stored as PEM with mode
// 0600; the registry is both issuer and verifier.
//
// Thread-safety: sign() and verify() may be called concurrently.

#include "common/result.hpp"

#include <filesystem>
#include <memory>
#include <string>

namespace registry::auth {

class TokenSigner
{
public:
  // Loads the key at `path`, creating it when missing. io_error on failure.
  static Result<std::unique_ptr<TokenSigner>> open(const std::filesystem::path& path);
  ~TokenSigner();

  // "<header>.<claims>.<signature>" for the JSON object `claims_json`.
  std::string sign(const std::string& claims_json) const;

  // The claims JSON when `token` carries a valid signature of this key;
  // unauthorized otherwise. Expiry and audience are the caller's to check.
  Result<std::string> verify(const std::string& token) const;

private:
  struct Impl;
  explicit TokenSigner(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> m_impl;
};

} // namespace registry::auth
