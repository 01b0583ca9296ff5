#include "tests/support/object_stores.hpp"

#include "common/storage/azure_auth.hpp"

#include <doctest/doctest.h>
#include <httplib.h>

#include <cstdlib>
#include <ctime>

namespace registry::test {

namespace azure = registry::storage::azure;

const char*
azurite_endpoint()
{
  return std::getenv("AZURITE_ENDPOINT");
}

void
create_azurite_container(const std::string& container, const std::string& endpoint,
                         const std::string& ca_file)
{
  std::string path = "/" + std::string(k_azurite_account) + "/" + container;
  azure::HeaderList headers = {{"x-ms-date", azure::http_date(std::time(nullptr))},
                               {"x-ms-version", "2024-11-04"}};
  azure::RequestToSign to_sign{"PUT", path, {{"restype", "container"}}, headers, 0};
  headers.emplace_back("Authorization", azure::shared_key_authorization(
                                          k_azurite_account, *azure::base64_decode(k_azurite_key), to_sign));
  std::string origin = endpoint.substr(0, endpoint.find('/', endpoint.find("://") + 3));
  httplib::Client client(origin);
  if (!ca_file.empty()) {
    client.set_ca_cert_path(ca_file);
  }
  httplib::Headers h(headers.begin(), headers.end());
  auto res = client.Put(path + "?restype=container", h, "", "");
  REQUIRE(res);
  REQUIRE_MESSAGE((res->status == 201 || res->status == 409), res->status, " ", res->body);
}

} // namespace registry::test
