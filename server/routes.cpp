#include "server/routes.hpp"

#include <vector>

namespace registry::server {

namespace {

constexpr size_t k_max_path = 2048;

std::vector<std::string_view>
components(std::string_view path)
{
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) {
      parts.push_back(path.substr(start));
      break;
    }
    parts.push_back(path.substr(start, slash - start));
    start = slash + 1;
  }
  return parts;
}

std::string
join(const std::vector<std::string_view>& parts, size_t count)
{
  std::string out;
  for (size_t i = 0; i < count; ++i) {
    if (i > 0) {
      out.push_back('/');
    }
    out.append(parts[i]);
  }
  return out;
}

} // namespace

Route
parse_route(std::string_view path)
{
  if (path.size() > k_max_path || path.substr(0, 4) != "/v2/") {
    if (path == "/v2") {
      return Route{RouteKind::base, {}, {}};
    }
    return {};
  }
  std::string_view rest = path.substr(4);
  if (rest.empty()) {
    return Route{RouteKind::base, {}, {}};
  }
  if (rest == "_catalog") {
    return Route{RouteKind::catalog, {}, {}};
  }
  auto parts = components(rest);
  size_t n = parts.size();
  if (n >= 3 && parts[n - 2] == "tags" && parts[n - 1] == "list") {
    return Route{RouteKind::tags, join(parts, n - 2), {}};
  }
  if (n >= 4 && parts[n - 3] == "blobs" && parts[n - 2] == "uploads") {
    if (parts[n - 1].empty()) {
      return Route{RouteKind::upload_start, join(parts, n - 3), {}};
    }
    return Route{RouteKind::upload, join(parts, n - 3), std::string(parts[n - 1])};
  }
  if (n >= 3 && parts[n - 2] == "blobs" && parts[n - 1] == "uploads") {
    return Route{RouteKind::upload_start, join(parts, n - 2), {}};
  }
  if (n >= 3 && !parts[n - 1].empty()) {
    if (parts[n - 2] == "manifests") {
      return Route{RouteKind::manifest, join(parts, n - 2), std::string(parts[n - 1])};
    }
    if (parts[n - 2] == "blobs") {
      return Route{RouteKind::blob, join(parts, n - 2), std::string(parts[n - 1])};
    }
    if (parts[n - 2] == "referrers") {
      return Route{RouteKind::referrers, join(parts, n - 2), std::string(parts[n - 1])};
    }
  }
  return {};
}

const char*
route_name(RouteKind kind)
{
  switch (kind) {
  case RouteKind::not_found:
    return "not_found";
  case RouteKind::base:
    return "base";
  case RouteKind::catalog:
    return "catalog";
  case RouteKind::tags:
    return "tags";
  case RouteKind::manifest:
    return "manifest";
  case RouteKind::blob:
    return "blob";
  case RouteKind::upload_start:
    return "upload_start";
  case RouteKind::upload:
    return "upload";
  case RouteKind::referrers:
    return "referrers";
  }
  return "not_found";
}

} // namespace registry::server
