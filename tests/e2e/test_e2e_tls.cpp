// Transport: HTTPS served by registryctl with a self-signed certificate made
// here, and a real nginx terminating TLS in front of a plain-HTTP registryctl
// started with --base-url and token auth. skopeo and podman log in with an API
// key (username "api"); skopeo copies a two-layer image through both.

#include "common/util/file.hpp"
#include "tests/e2e/fixture.hpp"

using namespace registry::test;
namespace fs = std::filesystem;

namespace {

struct Certificate {
  fs::path cert;
  fs::path key;
  fs::path cert_dir; // for skopeo's --cert-dir: holds ca.crt
};

// A self-signed certificate for 127.0.0.1, valid for a day.
Certificate
make_certificate(const fs::path& dir)
{
  Certificate c{dir / "cert.pem", dir / "key.pem", dir / "certs"};
  auto made = run_command("openssl", {"req", "-x509", "-newkey", "ec", "-pkeyopt",
                                      "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj",
                                      "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                                      "-keyout", c.key.string(), "-out", c.cert.string()});
  REQUIRE_MESSAGE(made.exit_code == 0, made.err);
  fs::create_directories(c.cert_dir);
  fs::copy_file(c.cert, c.cert_dir / "ca.crt");
  return c;
}

std::string
create_key(const fs::path& data, const std::string& feed)
{
  auto created = run_cli(data, {"key", "create", "--feed", feed, "--privileges", "pull,push", "-o", "json"});
  REQUIRE_MESSAGE(created.exit_code == 0, created.err);
  return nlohmann::json::parse(created.out)["key"];
}

std::unique_ptr<httplib::SSLClient>
verified_client(int port, const Certificate& cert)
{
  auto client = std::make_unique<httplib::SSLClient>("127.0.0.1", port);
  client->set_ca_cert_path(cert.cert.c_str());
  client->enable_server_certificate_verification(true);
  client->set_connection_timeout(5);
  return client;
}

// The nginx configuration the README documents, on loopback, with every path
// under `dir`.
std::string
nginx_config(const fs::path& dir, const Certificate& cert, int port, int upstream)
{
  std::string d = dir.string();
  return "daemon off;\nmaster_process off;\nworker_processes 1;\npid " + d + "/nginx.pid;\n"
         "error_log " + d + "/error.log warn;\n"
         "events { worker_connections 64; }\n"
         "http {\n"
         "  access_log " + d + "/access.log;\n"
         "  client_body_temp_path " + d + "/body;\n  proxy_temp_path " + d + "/proxy;\n"
         "  fastcgi_temp_path " + d + "/fastcgi;\n  uwsgi_temp_path " + d + "/uwsgi;\n"
         "  scgi_temp_path " + d + "/scgi;\n"
         "  server {\n"
         "    listen 127.0.0.1:" + std::to_string(port) + " ssl;\n"
         "    ssl_certificate " + cert.cert.string() + ";\n"
         "    ssl_certificate_key " + cert.key.string() + ";\n"
         "    client_max_body_size 0;\n"
         "    location / {\n"
         "      proxy_pass http://127.0.0.1:" + std::to_string(upstream) + ";\n"
         "      proxy_http_version 1.1;\n"
         "      proxy_request_buffering off;\n"
         "      proxy_buffering off;\n"
         "      proxy_read_timeout 900s;\n"
         "      proxy_set_header Host $http_host;\n"
         "      proxy_set_header X-Real-IP $remote_addr;\n"
         "      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
         "      proxy_set_header X-Forwarded-Proto $scheme;\n"
         "    }\n"
         "  }\n"
         "}\n";
}

CommandResult
skopeo(const std::vector<std::string>& args, const std::string& input = {})
{
  std::vector<std::string> full = {"--insecure-policy"};
  full.insert(full.end(), args.begin(), args.end());
  return run_command("skopeo", full, 120, input);
}

} // namespace

TEST_SUITE("e2e")
{
  TEST_CASE("TLS: HTTPS with a self-signed certificate, and nginx terminating TLS")
  {
    RegistryFixture source; // plain HTTP, open: where the image comes from
    auto image = source.c().push_image("main/app", "v1", {"first layer", "second layer"});
    std::string from = "docker://" + source.server->host_port() + "/main/app:v1";

    TestDir dir;
    Certificate cert = make_certificate(dir.path());
    fs::path data = dir / "data";
    REQUIRE(run_cli(data, {"feed", "create", "private", "--anonymous", "none"}).exit_code == 0);
    REQUIRE(run_cli(data, {"user", "add", "admin"}, "admin password\n").exit_code == 0);
    std::string key = create_key(data, "private");
    fs::path authfile = dir / "auth.json";
    // podman shares skopeo's registry code but is its own binary, as users run it.
    auto podman_login = [&](const std::string& host, const std::string& password) {
      return run_command("podman", {"login", "--cert-dir", cert.cert_dir.string(), "--authfile",
                                    (dir / "podman-auth.json").string(), "-u", "api", "--password-stdin", host},
                         60, password + "\n");
    };
    auto skopeo_login = [&](const std::string& host, const std::string& password) {
      return skopeo({"login", "--cert-dir", cert.cert_dir.string(), "--authfile", authfile.string(), "-u",
                     "api", "--password-stdin", host},
                    password + "\n");
    };
    // Logs in to `host` with the key, copies the image there, reads it back;
    // returns the image's reference there.
    auto push_through = [&](const std::string& host) {
      auto login = skopeo_login(host, key);
      REQUIRE_MESSAGE(login.exit_code == 0, login.err);
      std::string to = "docker://" + host + "/private/app:v1";
      auto copied = skopeo({"copy", "--preserve-digests", "--src-tls-verify=false", "--dest-cert-dir",
                            cert.cert_dir.string(), "--authfile", authfile.string(), from, to});
      REQUIRE_MESSAGE(copied.exit_code == 0, copied.err);
      auto inspected = skopeo({"inspect", "--raw", "--cert-dir", cert.cert_dir.string(), "--authfile",
                               authfile.string(), to});
      CHECK_MESSAGE(inspected.exit_code == 0, inspected.err);
      CHECK(inspected.out == image.manifest);
      return to;
    };

    SUBCASE("registryctl serves HTTPS")
    {
      ServerProcess server(data, {"--tls-cert", cert.cert.string(), "--tls-key", cert.key.string()});
      std::string host = server.host_port();
      auto client_holder = verified_client(server.port(), cert);
      auto& client = *client_holder;
      auto anonymous = client.Get("/v2/");
      REQUIRE(anonymous);
      CHECK(anonymous->status == 401);
      CHECK(anonymous->get_header_value("WWW-Authenticate") == "Basic realm=\"registryctl\"");
      client.set_basic_auth("api", key.c_str());
      auto signed_in = client.Get("/v2/");
      REQUIRE(signed_in);
      CHECK(signed_in->status == 200);
      auto upload = client.Post("/v2/private/probe/blobs/uploads/", "", "application/octet-stream");
      REQUIRE(upload);
      CHECK(upload->status == 202);
      CHECK(upload->get_header_value("Location").rfind("/v2/private/probe/blobs/uploads/", 0) == 0);
      // Clients that do not trust the certificate, or speak plain HTTP, get nowhere.
      httplib::SSLClient untrusting("127.0.0.1", server.port());
      untrusting.enable_server_certificate_verification(true);
      untrusting.set_ca_cert_path((dir / "nonexistent.pem").c_str());
      CHECK(!untrusting.Get("/v2/"));
      httplib::Client plain("127.0.0.1", server.port());
      plain.set_connection_timeout(5);
      plain.set_read_timeout(5);
      auto over_http = plain.Get("/v2/");
      CHECK((!over_http || over_http->status >= 400));

      CHECK(skopeo_login(host, "rk_wrong").exit_code != 0);
      CHECK(podman_login(host, "rk_wrong").exit_code != 0);
      auto podman = podman_login(host, key);
      CHECK_MESSAGE(podman.exit_code == 0, podman.err);
      std::string to = push_through(host);
      auto pulled = skopeo({"copy", "--src-cert-dir", cert.cert_dir.string(), "--authfile", authfile.string(),
                            to, "dir:" + (dir / "pulled").string()});
      CHECK_MESSAGE(pulled.exit_code == 0, pulled.err);
      auto layer = registry::util::read_file(dir / "pulled" / image.layers[1].digest.substr(7));
      CHECK((layer && *layer == "second layer"));
      // Without the login, nothing.
      auto anonymous_pull = skopeo({"inspect", "--raw", "--cert-dir", cert.cert_dir.string(), "--authfile",
                                    (dir / "none.json").string(), to});
      CHECK(anonymous_pull.exit_code != 0);
      CHECK(server.log().find("GET /v2/private/app/manifests/v1 200") != std::string::npos);
    }

    SUBCASE("nginx terminates TLS in front of --base-url and token auth")
    {
      int port = free_loopback_port();
      std::string external = "127.0.0.1:" + std::to_string(port);
      ServerProcess server(data, {"--base-url", "https://" + external + "/", "--token-auth",
                                  "--trust-proxy-headers"});
      fs::path nginx_dir = dir / "nginx";
      fs::create_directories(nginx_dir);
      REQUIRE(registry::util::write_file_atomic(nginx_dir / "nginx.conf",
                                                nginx_config(nginx_dir, cert, port, server.port())));
      BackgroundProcess nginx("nginx", {"-p", nginx_dir.string(), "-c", (nginx_dir / "nginx.conf").string()},
                              port);

      auto client_holder = verified_client(port, cert);
      auto& client = *client_holder;
      auto challenge = client.Post("/v2/private/app/blobs/uploads/", "", "application/octet-stream");
      REQUIRE(challenge);
      CHECK(challenge->status == 401);
      CHECK(challenge->get_header_value("WWW-Authenticate")
            == "Bearer realm=\"https://" + external
                 + "/auth/token\",service=\"registryctl\",scope=\"repository:private/app:pull,push\"");
      client.set_basic_auth("api", key.c_str());
      auto upload = client.Post("/v2/private/app/blobs/uploads/", "", "application/octet-stream");
      REQUIRE(upload);
      CHECK(upload->status == 202);
      CHECK(upload->get_header_value("Location").rfind("https://" + external + "/v2/private/app/blobs/uploads/", 0)
            == 0);

      push_through(external);
      auto podman = podman_login(external, key);
      CHECK_MESSAGE(podman.exit_code == 0, podman.err);
      std::string log = server.log();
      // Tokens came from the realm behind nginx; the registry saw the key's token.
      CHECK(log.find("GET /auth/token 200") != std::string::npos);
      CHECK(log.find("PUT /v2/private/app/manifests/v1 201") != std::string::npos);
      CHECK(log.find(" 127.0.0.1 api id=") != std::string::npos);
    }
  }

  TEST_CASE("--trust-proxy-headers takes the client address from the proxy")
  {
    TestDir dir;
    fs::path data = dir / "data";
    REQUIRE(run_cli(data, {"user", "add", "admin"}, "admin password\n").exit_code == 0);
    auto wrong = httplib::make_basic_authentication_header("admin", "wrong password");
    for (bool trusted : {false, true}) {
      ServerProcess server(data, trusted ? std::vector<std::string>{"--trust-proxy-headers"}
                                         : std::vector<std::string>{});
      httplib::Client client("127.0.0.1", server.port());
      // One address fails often enough to be throttled; another is unaffected
      // only when the proxy's headers are trusted.
      for (int i = 0; i < 7; ++i) {
        client.Get("/v2/", {wrong, {"X-Forwarded-For", "198.51.100.7, 203.0.113.9"}});
      }
      auto other = client.Get("/v2/", {httplib::make_basic_authentication_header("admin", "admin password"),
                                       {"X-Real-IP", "192.0.2.1"}});
      REQUIRE(other);
      CHECK(other->status == (trusted ? 200 : 429));
      std::string log = server.log();
      CHECK((log.find("login failed for user 'admin' from 203.0.113.9") != std::string::npos) == trusted);
      CHECK((log.find("login failed for user 'admin' from 127.0.0.1") != std::string::npos) == !trusted);
    }
  }
}
