#pragma once

// One Ceph radosgw for a whole test binary, started by tests/support/radosgw.sh on
// first use (about 10-15 s) and stopped when the binary exits (and by the script's
// watchdog if the binary dies). A test that needs it and cannot get it fails.

#include <string>

namespace registry::test {

struct RadosgwEndpoint {
  std::string endpoint; // http://127.0.0.1:PORT
  std::string region;
  std::string bucket;
  std::string access_key_id;
  std::string secret_access_key;
  std::string ipv6_endpoint; // the same gateway: http://[::1]:PORT
  std::string tls_endpoint;  // the same gateway: https://127.0.0.1:PORT
  std::string ca_file;       // the TLS endpoint's self-signed certificate
};

// The shared server; starts it on the first call. Fails the current test (REQUIRE)
// if it cannot start; later calls fail the same way without retrying.
const RadosgwEndpoint& radosgw();

} // namespace registry::test
