#pragma once

// A client of an upstream registry (Docker Registry HTTP API V2), for
// connectors: manifests and blobs by repository, with anonymous, Basic or
// Docker token (Bearer) auth. Tokens are cached per scope until shortly before
// they expire, so pulls do not log in each time. After a 429 or 503 with
// Retry-After, calls fail at once (io_error) until that time has passed.
//
// Thread-safety: all members may be called concurrently.

#include "common/result.hpp"

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

namespace registry::upstream {

struct UpstreamManifest {
  std::string bytes;
  std::string media_type;
  std::string digest; // "sha256:..." of the bytes
};

class UpstreamClient
{
public:
  // `url`: scheme://host[:port] (a path is not supported). invalid_argument
  // when malformed.
  static Result<std::unique_ptr<UpstreamClient>> create(const std::string& url, std::string username,
                                                        std::string password);
  ~UpstreamClient();

  // The name to ask upstream for `path` (a repository path without the feed):
  // Docker Hub's "library/" is added to one-component names.
  std::string upstream_name(const std::string& path) const;

  // nullopt when upstream does not have it (404). io_error when upstream
  // cannot be reached or fails (5xx, 429, timeout), unauthorized when it
  // refuses the credentials. digest_invalid when the bytes do not match the
  // digest asked for or announced.
  Result<std::optional<UpstreamManifest>> get_manifest(const std::string& name, const std::string& reference);

  // The digest upstream has for `reference` now, by HEAD (cheap on rate
  // limits); an empty string when upstream does not say. nullopt on 404.
  Result<std::optional<std::string>> head_manifest(const std::string& name, const std::string& reference);

  // Streams the blob to `sink` (which may stop it by returning false). false
  // when upstream does not have it; errors as above. `on_size`, when given, is
  // called once the upstream answered 200, before the first byte, with the size
  // it announced (Content-Length; nullopt when it sent none).
  Result<bool> fetch_blob(const std::string& name, const std::string& digest,
                          const std::function<bool(const char*, size_t)>& sink,
                          const std::function<void(std::optional<uint64_t>)>& on_size = {});

  const std::string&
  url() const
  {
    return m_url;
  }

private:
  struct Impl;
  UpstreamClient(std::string url, std::unique_ptr<Impl> impl);
  std::string m_url;
  std::unique_ptr<Impl> m_impl;
};

} // namespace registry::upstream
