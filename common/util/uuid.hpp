#pragma once

#include <string>

namespace registry::util {

// A random version-4 UUID in canonical lowercase form, from OpenSSL's CSPRNG.
std::string random_uuid();

// True if `text` is a canonical lowercase UUID (8-4-4-4-12 hex).
bool is_uuid(const std::string& text);

} // namespace registry::util
