#include "common/util/uuid.hpp"

#include "common/assert.hpp"

#include <openssl/rand.h>

namespace registry::util {

std::string
random_uuid()
{
  unsigned char b[16];
  REGISTRY_ASSERT(RAND_bytes(b, sizeof b) == 1);
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);
  static const char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) {
      out.push_back('-');
    }
    out.push_back(hex[b[i] >> 4]);
    out.push_back(hex[b[i] & 0xf]);
  }
  return out;
}

bool
is_uuid(const std::string& text)
{
  if (text.size() != 36) {
    return false;
  }
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') {
        return false;
      }
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return true;
}

} // namespace registry::util
