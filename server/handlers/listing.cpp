// GET /v2/, GET /v2/_catalog, GET /v2/<name>/tags/list, GET /v2/<name>/referrers/<digest>

#include "common/oci/media_types.hpp"
#include "common/util/strings.hpp"
#include "server/access.hpp"
#include "server/handlers/handlers.hpp"

#include <algorithm>
#include <map>

#include <nlohmann/json.hpp>

namespace registry::server::handlers {

namespace {
// An upper bound on one page, whatever `n` asks for: a listing is an index scan
// and this bounds the response size.
constexpr int64_t k_max_page = 10000;
} // namespace

Result<Page>
parse_page(const RequestContext& ctx, int64_t default_n)
{
  Page page{default_n, ctx.req.get_param_value("last"), false};
  if (ctx.req.has_param("n")) {
    auto n = util::parse_uint(ctx.req.get_param_value("n"));
    if (!n) {
      return fail(ErrorCode::invalid_argument,
                  "query parameter n must be a non-negative integer", ctx.req.get_param_value("n"));
    }
    page.n = static_cast<int64_t>(std::min<uint64_t>(*n, k_max_page));
    page.n_given = true;
  }
  if (page.last.size() > 512) {
    return fail(ErrorCode::invalid_argument, "query parameter last is too long");
  }
  return page;
}

void
set_next_link(RequestContext& ctx, const std::string& path, int64_t n, const std::string& last,
              const std::string& extra_query)
{
  std::string link = "<" + path + "?n=" + std::to_string(n) + "&last=" + util::url_encode(last)
                     + extra_query + ">; rel=\"next\"";
  ctx.res.set_header("Link", link);
}

void
get_base(RequestContext& ctx)
{
  ctx.res.status = 200;
  ctx.res.set_content("{}", "application/json");
}

void
get_catalog(RequestContext& ctx)
{
  auto page = parse_page(ctx, 1000);
  if (!page) {
    return ctx.write_error(page.error());
  }
  // Only repositories of feeds the principal may pull: pages are filled by
  // reading on until `n` visible names are found (or the end).
  std::vector<std::string> names;
  std::string last = page->last;
  bool more = false;
  std::map<std::string, bool> feed_visible;
  while (static_cast<int64_t>(names.size()) < page->n) {
    auto listing = ctx.registry.catalog(ctx.req.get_param_value("feed"), last,
                                        page->n - static_cast<int64_t>(names.size()));
    if (!listing) {
      return ctx.write_error(listing.error());
    }
    for (const auto& name : listing->names) {
      std::string feed = name.substr(0, name.find('/'));
      auto [it, fresh] = feed_visible.try_emplace(feed, false);
      if (fresh) {
        it->second = may_pull(ctx, name);
      }
      if (it->second) {
        names.push_back(name);
      }
    }
    more = listing->more;
    if (!more || listing->names.empty()) {
      break;
    }
    last = listing->names.back();
  }
  if (more && !names.empty()) {
    set_next_link(ctx, "/v2/_catalog", page->n, names.back());
  }
  ctx.res.status = 200;
  ctx.res.set_content(nlohmann::json{{"repositories", names}}.dump(), "application/json");
}

void
get_tags(RequestContext& ctx)
{
  auto page = parse_page(ctx, k_max_page);
  if (!page) {
    return ctx.write_error(page.error());
  }
  auto listing = ctx.registry.list_tags(ctx.route.name, page->last, page->n, false);
  if (!listing) {
    return ctx.write_error(listing.error());
  }
  if (listing->more && !listing->tags.empty()) {
    set_next_link(ctx, "/v2/" + listing->repository + "/tags/list", page->n,
                  listing->tags.back().name);
  }
  // Written by hand, as a 10,000-tag page is the largest answer on a hot path:
  // names and tags are validated to characters a JSON string carries as they
  // are, and anything else is escaped by the JSON library.
  auto append_string = [](std::string& out, const std::string& text) {
    bool plain = std::all_of(text.begin(), text.end(), [](unsigned char c) { return c >= 0x20 && c != '"' && c != '\\' && c < 0x7f; });
    if (!plain) {
      out += nlohmann::json(text).dump();
      return;
    }
    out += '"';
    out += text;
    out += '"';
  };
  std::string body = "{\"name\":";
  body.reserve(listing->repository.size() + listing->tags.size() * 24 + 32);
  append_string(body, listing->repository);
  body += ",\"tags\":[";
  for (size_t i = 0; i < listing->tags.size(); ++i) {
    if (i != 0) {
      body += ',';
    }
    append_string(body, listing->tags[i].name);
  }
  body += "]}";
  ctx.res.status = 200;
  ctx.res.set_content(std::move(body), "application/json");
}

void
get_referrers(RequestContext& ctx)
{
  std::string artifact_type = ctx.req.get_param_value("artifactType");
  auto index = ctx.registry.referrers(ctx.route.name, ctx.route.reference, artifact_type);
  if (!index) {
    return ctx.write_error(index.error());
  }
  if (!artifact_type.empty()) {
    ctx.res.set_header("OCI-Filters-Applied", "artifactType");
  }
  ctx.res.status = 200;
  ctx.res.set_content(*index, std::string(oci::media_type::oci_index));
}

} // namespace registry::server::handlers
