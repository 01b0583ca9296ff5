#pragma once

// The object-store servers the tests run against, started around the test
// binaries by ctest wrappers (tests/support/azurite/run-with-azurite.sh), which
// export where they listen. Shared by the driver tests and the end-to-end tests.

#include <string>

namespace registry::test {

// Azurite's fixed development account and key.
inline constexpr const char* k_azurite_account = "devstoreaccount1";
inline constexpr const char* k_azurite_key =
  "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

// $AZURITE_ENDPOINT (http://127.0.0.1:PORT/devstoreaccount1), or nullptr when
// the tests run without Azurite.
const char* azurite_endpoint();

// Creates `container` with a hand-signed request (stores never create one), on
// the plain Azurite or, with `ca_file`, on a TLS one. REQUIREs success; an
// existing container is fine.
void create_azurite_container(const std::string& container,
                              const std::string& endpoint = azurite_endpoint(),
                              const std::string& ca_file = {});

} // namespace registry::test
