#pragma once

// RFC 4648 base64, standard alphabet, with padding (Basic credentials, Azure
// keys and signatures, S3 Content-MD5). The JWT code has its own base64url.

#include <optional>
#include <string>
#include <string_view>

namespace registry::util {

std::string base64_encode(std::string_view bytes);
// nullopt unless `text` is valid padded base64.
std::optional<std::string> base64_decode(std::string_view text);

} // namespace registry::util
