#pragma once

// Password hashing: PBKDF2-HMAC-SHA256 with a random 16-byte salt. The encoded
// hash records its parameters ("pbkdf2-sha256$<iterations>$<salt hex>$<hash hex>")
// so the cost can be raised later without invalidating stored hashes.

#include <string>
#include <string_view>

namespace registry::auth {

inline constexpr int k_pbkdf2_iterations = 100000;

// Hashes `password` with a fresh salt.
std::string hash_password(std::string_view password, int iterations = k_pbkdf2_iterations);

// True when `password` matches `encoded`. Compares in constant time; false for a
// malformed `encoded`.
bool verify_password(std::string_view password, std::string_view encoded);

} // namespace registry::auth
