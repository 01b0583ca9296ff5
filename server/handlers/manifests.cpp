// GET/HEAD/PUT/DELETE /v2/<name>/manifests/<reference>

#include "common/oci/manifest.hpp"
#include "common/oci/media_types.hpp"
#include "common/util/strings.hpp"
#include "server/handlers/handlers.hpp"

namespace registry::server::handlers {

namespace {

// Content negotiation: when the client's Accept lists manifest media types but
// not the stored one (and no wildcard), the manifest is not offered to it
// (Distribution answers MANIFEST_UNKNOWN the same way for OCI content).
bool
accepts(const httplib::Request& req, const std::string& media_type)
{
  size_t count = req.get_header_value_count("Accept");
  if (count == 0) {
    return true;
  }
  bool lists_manifest_types = false;
  for (size_t i = 0; i < count; ++i) {
    for (const auto& item : util::split(req.get_header_value("Accept", i), ',')) {
      std::string type(util::trim(item.substr(0, item.find(';'))));
      if (type == media_type || type == "*/*" || type == "application/*") {
        return true;
      }
      if (oci::media_type::is_manifest_type(type)) {
        lists_manifest_types = true;
      }
    }
  }
  return !lists_manifest_types;
}

} // namespace

void
get_manifest(RequestContext& ctx)
{
  auto manifest = ctx.registry.get_manifest(ctx.route.name, ctx.route.reference, !ctx.is_head());
  if (!manifest) {
    return ctx.write_error(manifest.error());
  }
  if (!accepts(ctx.req, manifest->media_type)) {
    return ctx.write_error(make_error(ErrorCode::manifest_unknown,
                                      "the manifest is " + manifest->media_type
                                        + ", which the request's Accept header excludes",
                                      manifest->digest.str()));
  }
  ctx.res.status = 200;
  ctx.res.set_header("Docker-Content-Digest", manifest->digest.str());
  ctx.res.set_header("ETag", "\"" + manifest->digest.str() + "\"");
  if (ctx.is_head()) {
    ctx.res.set_header("Content-Type", manifest->media_type);
    ctx.res.set_header("Content-Length", std::to_string(manifest->size));
    return;
  }
  ctx.res.set_content(std::move(manifest->bytes), manifest->media_type);
}

void
put_manifest(RequestContext& ctx)
{
  auto body = ctx.read_body(oci::k_max_manifest_bytes);
  if (!body) {
    return ctx.write_error(make_error(ErrorCode::manifest_invalid,
                                      "manifest exceeds the 4 MiB limit"));
  }
  std::string actor = ctx.actor();
  auto result = ctx.registry.put_manifest(ctx.route.name, ctx.route.reference,
                                          ctx.req.get_header_value("Content-Type"),
                                          std::move(*body), &actor);
  if (!result) {
    return ctx.write_error(result.error());
  }
  ctx.res.status = 201;
  ctx.res.set_header("Location",
                     ctx.url("/v2/" + ctx.route.name + "/manifests/" + result->digest.str()));
  ctx.res.set_header("Docker-Content-Digest", result->digest.str());
  if (!result->subject.empty()) {
    ctx.res.set_header("OCI-Subject", result->subject);
  }
  ctx.res.set_header("Content-Length", "0");
}

void
delete_manifest(RequestContext& ctx)
{
  std::string actor = ctx.actor();
  auto result = ctx.registry.delete_manifest(ctx.route.name, ctx.route.reference, &actor);
  if (!result) {
    return ctx.write_error(result.error());
  }
  ctx.res.status = 202;
  ctx.res.set_header("Content-Length", "0");
}

} // namespace registry::server::handlers
