#include "common/auth/token_signer.hpp"

#include "common/util/file.hpp"
#include "common/util/hasher.hpp"
#include "common/util/strings.hpp"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <vector>

namespace registry::auth {

namespace {

constexpr size_t k_coordinate = 32; // P-256

std::string
base64url(const unsigned char* data, size_t size)
{
  static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  size_t i = 0;
  while (i + 3 <= size) {
    uint32_t v = (uint32_t(data[i]) << 16) | (uint32_t(data[i + 1]) << 8) | data[i + 2];
    out += alphabet[v >> 18];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += alphabet[v & 63];
    i += 3;
  }
  if (size - i == 1) {
    uint32_t v = uint32_t(data[i]) << 16;
    out += alphabet[v >> 18];
    out += alphabet[(v >> 12) & 63];
  } else if (size - i == 2) {
    uint32_t v = (uint32_t(data[i]) << 16) | (uint32_t(data[i + 1]) << 8);
    out += alphabet[v >> 18];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
  }
  return out;
}

std::string
base64url(const std::string& text)
{
  return base64url(reinterpret_cast<const unsigned char*>(text.data()), text.size());
}

bool
unbase64url(std::string_view text, std::string& out)
{
  out.clear();
  uint32_t buffer = 0;
  int bits = 0;
  for (char c : text) {
    int v;
    if (c >= 'A' && c <= 'Z') {
      v = c - 'A';
    } else if (c >= 'a' && c <= 'z') {
      v = c - 'a' + 26;
    } else if (c >= '0' && c <= '9') {
      v = c - '0' + 52;
    } else if (c == '-') {
      v = 62;
    } else if (c == '_') {
      v = 63;
    } else {
      return false;
    }
    buffer = (buffer << 6) | uint32_t(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buffer >> bits) & 0xff));
    }
  }
  return true;
}

} // namespace

struct TokenSigner::Impl {
  EVP_PKEY* key = nullptr;
  std::string header; // base64url of the JOSE header
  ~Impl()
  {
    EVP_PKEY_free(key);
  }
};

TokenSigner::TokenSigner(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}
TokenSigner::~TokenSigner() = default;

Result<std::unique_ptr<TokenSigner>>
TokenSigner::open(const std::filesystem::path& path)
{
  auto impl = std::make_unique<Impl>();
  auto pem = util::read_file(path);
  if (pem) {
    BIO* bio = BIO_new_mem_buf(pem->data(), static_cast<int>(pem->size()));
    impl->key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    if (impl->key == nullptr || EVP_PKEY_get_base_id(impl->key) != EVP_PKEY_EC) {
      return fail(ErrorCode::io_error, "cannot read the token signing key " + path.string());
    }
  } else if (pem.error().code == ErrorCode::not_found) {
    impl->key = EVP_EC_gen("P-256");
    if (impl->key == nullptr) {
      return fail(ErrorCode::internal, "cannot generate a token signing key");
    }
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(bio, impl->key, nullptr, nullptr, 0, nullptr, nullptr);
    char* data = nullptr;
    long size = BIO_get_mem_data(bio, &data);
    std::string text(data, static_cast<size_t>(size));
    BIO_free(bio);
    REGISTRY_TRY(util::write_file_atomic(path, text, 0600));
  } else {
    return fail(pem.take_error());
  }
  // The key id: the first 16 hex of the SHA-256 of the public key (DER).
  unsigned char* der = nullptr;
  int der_size = i2d_PUBKEY(impl->key, &der);
  std::string kid = util::hex_digest(std::string_view(reinterpret_cast<char*>(der), static_cast<size_t>(der_size))).substr(0, 16);
  OPENSSL_free(der);
  impl->header = base64url(R"({"alg":"ES256","typ":"JWT","kid":")" + kid + "\"}");
  return std::unique_ptr<TokenSigner>(new TokenSigner(std::move(impl)));
}

std::string
TokenSigner::sign(const std::string& claims_json) const
{
  std::string input = m_impl->header + "." + base64url(claims_json);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  size_t der_size = 0;
  std::vector<unsigned char> der;
  if (EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, m_impl->key) == 1
      && EVP_DigestSign(ctx, nullptr, &der_size, reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1) {
    der.resize(der_size);
    EVP_DigestSign(ctx, der.data(), &der_size, reinterpret_cast<const unsigned char*>(input.data()), input.size());
    der.resize(der_size);
  }
  EVP_MD_CTX_free(ctx);
  // JWS wants r || s, each 32 bytes, not the DER sequence OpenSSL produces.
  const unsigned char* p = der.data();
  ECDSA_SIG* sig = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size()));
  unsigned char raw[2 * k_coordinate] = {};
  if (sig != nullptr) {
    const BIGNUM* r = nullptr;
    const BIGNUM* s = nullptr;
    ECDSA_SIG_get0(sig, &r, &s);
    BN_bn2binpad(r, raw, k_coordinate);
    BN_bn2binpad(s, raw + k_coordinate, k_coordinate);
    ECDSA_SIG_free(sig);
  }
  return input + "." + base64url(raw, sizeof raw);
}

Result<std::string>
TokenSigner::verify(const std::string& token) const
{
  auto invalid = [] { return fail(ErrorCode::unauthorized, "invalid token"); };
  size_t first = token.find('.');
  size_t second = first == std::string::npos ? first : token.find('.', first + 1);
  if (second == std::string::npos || token.substr(0, first) != m_impl->header) {
    return invalid();
  }
  std::string raw;
  std::string claims;
  if (!unbase64url(std::string_view(token).substr(second + 1), raw) || raw.size() != 2 * k_coordinate
      || !unbase64url(std::string_view(token).substr(first + 1, second - first - 1), claims)) {
    return invalid();
  }
  ECDSA_SIG* sig = ECDSA_SIG_new();
  ECDSA_SIG_set0(sig, BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()), k_coordinate, nullptr),
                 BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()) + k_coordinate, k_coordinate, nullptr));
  unsigned char* der = nullptr;
  int der_size = i2d_ECDSA_SIG(sig, &der);
  ECDSA_SIG_free(sig);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  std::string input = token.substr(0, second);
  bool good = der_size > 0 && EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, m_impl->key) == 1
              && EVP_DigestVerify(ctx, der, static_cast<size_t>(der_size),
                                  reinterpret_cast<const unsigned char*>(input.data()), input.size())
                   == 1;
  EVP_MD_CTX_free(ctx);
  OPENSSL_free(der);
  if (!good) {
    return invalid();
  }
  return claims;
}

} // namespace registry::auth
