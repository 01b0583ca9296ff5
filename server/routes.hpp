#pragma once

// The API surface: every /v2/ path the registry answers, parsed by hand. Repository
// names contain '/', so a path is read from its end: the last components say
// which resource it is, the rest is the name.
//
//   /v2/                                       base
//   /v2/_catalog                               catalog
//   /v2/<name>/tags/list                       tags
//   /v2/<name>/manifests/<reference>           manifest
//   /v2/<name>/blobs/<digest>                  blob
//   /v2/<name>/blobs/uploads/                  upload_start
//   /v2/<name>/blobs/uploads/<uuid>            upload
//   /v2/<name>/referrers/<digest>              referrers

#include <string>
#include <string_view>

namespace registry::server {

enum class RouteKind {
  not_found,
  base,
  catalog,
  tags,
  manifest,
  blob,
  upload_start,
  upload,
  referrers,
};

struct Route {
  RouteKind kind = RouteKind::not_found;
  std::string name;      // repository name (not yet validated)
  std::string reference; // tag, digest or upload id (not yet validated)
};

// Parses the path of a request (without query string).
Route parse_route(std::string_view path);

// The route's name for logs and metrics ("manifest", "blob", ...).
const char* route_name(RouteKind kind);

} // namespace registry::server
