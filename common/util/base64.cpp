#include "common/util/base64.hpp"

#include <cstdint>

namespace registry::util {

namespace {

constexpr const char* k_base64_alphabet =
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int
base64_value(char c)
{
  if (c >= 'A' && c <= 'Z') {
    return c - 'A';
  }
  if (c >= 'a' && c <= 'z') {
    return c - 'a' + 26;
  }
  if (c >= '0' && c <= '9') {
    return c - '0' + 52;
  }
  if (c == '+') {
    return 62;
  }
  if (c == '/') {
    return 63;
  }
  return -1;
}

} // namespace

std::string
base64_encode(std::string_view bytes)
{
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    uint32_t v = (uint32_t(uint8_t(bytes[i])) << 16) | (uint32_t(uint8_t(bytes[i + 1])) << 8)
                 | uint32_t(uint8_t(bytes[i + 2]));
    out.push_back(k_base64_alphabet[(v >> 18) & 63]);
    out.push_back(k_base64_alphabet[(v >> 12) & 63]);
    out.push_back(k_base64_alphabet[(v >> 6) & 63]);
    out.push_back(k_base64_alphabet[v & 63]);
  }
  size_t rest = bytes.size() - i;
  if (rest > 0) {
    uint32_t v = uint32_t(uint8_t(bytes[i])) << 16;
    if (rest == 2) {
      v |= uint32_t(uint8_t(bytes[i + 1])) << 8;
    }
    out.push_back(k_base64_alphabet[(v >> 18) & 63]);
    out.push_back(k_base64_alphabet[(v >> 12) & 63]);
    out.push_back(rest == 2 ? k_base64_alphabet[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

std::optional<std::string>
base64_decode(std::string_view text)
{
  if (text.size() % 4 != 0) {
    return std::nullopt;
  }
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    int values[4];
    int padding = 0;
    for (int j = 0; j < 4; ++j) {
      char c = text[i + j];
      if (c == '=') {
        // Padding only at the very end, in the last two positions.
        if (i + 4 != text.size() || j < 2) {
          return std::nullopt;
        }
        values[j] = 0;
        ++padding;
      } else {
        if (padding > 0) {
          return std::nullopt;
        }
        values[j] = base64_value(c);
        if (values[j] < 0) {
          return std::nullopt;
        }
      }
    }
    uint32_t v = (uint32_t(values[0]) << 18) | (uint32_t(values[1]) << 12)
                 | (uint32_t(values[2]) << 6) | uint32_t(values[3]);
    out.push_back(static_cast<char>((v >> 16) & 0xff));
    if (padding < 2) {
      out.push_back(static_cast<char>((v >> 8) & 0xff));
    }
    if (padding < 1) {
      out.push_back(static_cast<char>(v & 0xff));
    }
  }
  return out;
}

} // namespace registry::util
