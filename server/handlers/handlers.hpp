#pragma once

// One function per HTTP resource and method. Handlers never throw: every failure
// is written as the spec's error envelope through ctx.write_error().

#include "server/request_context.hpp"

namespace registry::server::handlers {

void get_base(RequestContext& ctx);
void get_catalog(RequestContext& ctx);
void get_tags(RequestContext& ctx);
void get_referrers(RequestContext& ctx);

void get_manifest(RequestContext& ctx); // GET and HEAD
void put_manifest(RequestContext& ctx);
void delete_manifest(RequestContext& ctx);

void get_blob(RequestContext& ctx); // GET and HEAD
void delete_blob(RequestContext& ctx);

void post_upload(RequestContext& ctx); // start, monolithic, mount
void patch_upload(RequestContext& ctx);
void put_upload(RequestContext& ctx);
void get_upload(RequestContext& ctx);
void delete_upload(RequestContext& ctx);

void token(RequestContext& ctx); // GET and POST /auth/token

// Helpers shared by handlers.

// Parses the pagination query (n, last). invalid_argument on a malformed `n`.
struct Page {
  int64_t n;
  std::string last;
  bool n_given;
};
Result<Page> parse_page(const RequestContext& ctx, int64_t default_n);

// Sets `Link: <path?n=..&last=..>; rel="next"`.
void set_next_link(RequestContext& ctx, const std::string& path, int64_t n,
                   const std::string& last, const std::string& extra_query = {});

} // namespace registry::server::handlers
