// GET/HEAD/DELETE /v2/<name>/blobs/<digest> and the upload endpoints
// POST/PATCH/PUT/GET/DELETE /v2/<name>/blobs/uploads/[<uuid>]

#include "common/util/strings.hpp"
#include "server/access.hpp"
#include "server/handlers/handlers.hpp"

#include <memory>

namespace registry::server::handlers {

namespace {

constexpr size_t k_read_chunk = 1 << 20;

std::string
range_header(uint64_t offset)
{
  // Distribution's convention: "0-0" for an empty upload, else 0-<last byte>.
  return "0-" + std::to_string(offset == 0 ? 0 : offset - 1);
}

void
upload_accepted(RequestContext& ctx, const service::UploadStatus& status, int http_status)
{
  ctx.res.status = http_status;
  ctx.res.set_header("Location",
                     ctx.url("/v2/" + status.repository + "/blobs/uploads/" + status.id));
  ctx.res.set_header("Range", range_header(status.offset));
  ctx.res.set_header("Docker-Upload-UUID", status.id);
  ctx.res.set_header("Content-Length", "0");
}

void
blob_created(RequestContext& ctx, const std::string& repository, const service::BlobInfo& info)
{
  ctx.res.status = 201;
  ctx.res.set_header("Location", ctx.url("/v2/" + repository + "/blobs/" + info.digest.str()));
  ctx.res.set_header("Docker-Content-Digest", info.digest.str());
  ctx.res.set_header("Content-Length", "0");
}

// Parses "Content-Range: <start>-<end>" (also accepts the "bytes " prefix and a
// "/<total>" suffix some clients send). nullopt when malformed.
std::optional<std::pair<uint64_t, uint64_t>>
parse_content_range(std::string text)
{
  std::string_view view = util::trim(text);
  if (view.substr(0, 6) == "bytes ") {
    view.remove_prefix(6);
  }
  if (size_t slash = view.find('/'); slash != std::string_view::npos) {
    view = view.substr(0, slash);
  }
  size_t dash = view.find('-');
  if (dash == std::string_view::npos) {
    return std::nullopt;
  }
  auto start = util::parse_uint(view.substr(0, dash));
  auto end = util::parse_uint(view.substr(dash + 1));
  if (!start || !end || *end < *start) {
    return std::nullopt;
  }
  return std::make_pair(*start, *end);
}

struct ByteRange {
  bool valid = false;         // a single satisfiable range was parsed
  bool unsatisfiable = false; // syntactically fine but outside the blob
  uint64_t first = 0;
  uint64_t last = 0;
};

// RFC 9110 single byte range: "bytes=a-b", "bytes=a-", "bytes=-n". Anything else
// (several ranges, other units, garbage) is ignored and the whole blob served, as
// the RFC allows.
ByteRange
parse_byte_range(const std::string& header, uint64_t size)
{
  ByteRange r;
  std::string_view v = util::trim(header);
  if (v.substr(0, 6) != "bytes=" || v.find(',') != std::string_view::npos) {
    return r;
  }
  v.remove_prefix(6);
  size_t dash = v.find('-');
  if (dash == std::string_view::npos) {
    return r;
  }
  auto a = v.substr(0, dash);
  auto b = v.substr(dash + 1);
  if (a.empty()) {
    auto suffix = util::parse_uint(b);
    if (!suffix) {
      return r;
    }
    if (*suffix == 0 || size == 0) {
      r.unsatisfiable = true;
      return r;
    }
    r.first = *suffix >= size ? 0 : size - *suffix;
    r.last = size - 1;
    r.valid = true;
    return r;
  }
  auto first = util::parse_uint(a);
  auto last = b.empty() ? std::optional<uint64_t>(size == 0 ? 0 : size - 1) : util::parse_uint(b);
  if (!first || !last || *last < *first) {
    return r;
  }
  if (*first >= size) {
    r.unsatisfiable = true;
    return r;
  }
  r.first = *first;
  r.last = std::min(*last, size - 1);
  r.valid = true;
  return r;
}

// A blob still arriving from upstream: the whole of it (a Range is ignored, as
// RFC 9110 allows), as fast as the fetch releases it. Content-Length when the
// upstream announced one, else chunked. A failed fetch ends the response
// without completing it, so the client never mistakes it for the blob.
void
stream_arriving_blob(RequestContext& ctx, const service::OpenBlob& blob)
{
  ctx.res.status = 200;
  ctx.res.set_header("Docker-Content-Digest", blob.info.digest.str());
  ctx.res.set_header("ETag", "\"" + blob.info.digest.str() + "\"");
  std::shared_ptr<service::BlobFetch> fetch = blob.fetch;
  auto buffer = std::make_shared<std::string>();
  auto pull = [fetch, buffer](size_t offset, size_t want, httplib::DataSink& sink) -> std::optional<size_t> {
    if (buffer->empty()) {
      buffer->resize(k_read_chunk);
    }
    auto n = fetch->read_at(offset, buffer->data(), std::min(want, buffer->size()));
    if (!n) {
      return std::nullopt; // the fetcher logged why
    }
    if (*n > 0 && !sink.write(buffer->data(), *n)) {
      return std::nullopt;
    }
    return *n;
  };
  if (blob.size_known) {
    ctx.res.set_content_provider(static_cast<size_t>(blob.info.size), "application/octet-stream",
                                 [pull](size_t offset, size_t want, httplib::DataSink& sink) {
                                   auto n = pull(offset, want, sink);
                                   return n && *n > 0; // a short blob closes the connection
                                 });
    return;
  }
  ctx.res.set_chunked_content_provider("application/octet-stream",
                                       [pull](size_t offset, httplib::DataSink& sink) {
                                         auto n = pull(offset, k_read_chunk, sink);
                                         if (n && *n == 0) {
                                           sink.done();
                                         }
                                         return n.has_value();
                                       });
}

} // namespace

void
get_blob(RequestContext& ctx)
{
  if (ctx.is_head()) {
    auto info = ctx.registry.stat_blob(ctx.route.name, ctx.route.reference);
    if (!info) {
      return ctx.write_error(info.error());
    }
    ctx.res.status = 200;
    ctx.res.set_header("Content-Type", "application/octet-stream");
    ctx.res.set_header("Content-Length", std::to_string(info->size));
    ctx.res.set_header("Docker-Content-Digest", info->digest.str());
    ctx.res.set_header("Accept-Ranges", "bytes");
    ctx.res.set_header("ETag", "\"" + info->digest.str() + "\"");
    return;
  }
  auto blob = ctx.registry.open_blob(ctx.route.name, ctx.route.reference, service::OpenFor::serving);
  if (!blob) {
    return ctx.write_error(blob.error());
  }
  // httplib 0.11.4 would slice the body again from its own parse of Range, and
  // gets unsatisfiable and multi-range requests wrong; the range is ours alone.
  const_cast<httplib::Request&>(ctx.req).ranges.clear();
  if (blob->fetch) {
    return stream_arriving_blob(ctx, *blob);
  }
  if (!blob->redirect_url.empty()) {
    // An object store serves the bytes (and any Range) from a short-lived URL.
    ctx.res.status = 307;
    ctx.res.set_header("Location", blob->redirect_url);
    ctx.res.set_header("Docker-Content-Digest", blob->info.digest.str());
    ctx.res.set_header("Content-Length", "0");
    return;
  }
  uint64_t size = blob->info.size;
  uint64_t first = 0;
  uint64_t length = size;
  ctx.res.status = 200;
  if (ctx.req.has_header("Range")) {
    auto range = parse_byte_range(ctx.req.get_header_value("Range"), size);
    if (range.unsatisfiable) {
      ctx.res.set_header("Content-Range", "bytes */" + std::to_string(size));
      return ctx.write_error(make_error(ErrorCode::invalid_argument,
                                        "requested range not satisfiable",
                                        ctx.req.get_header_value("Range")),
                             416);
    }
    if (range.valid) {
      first = range.first;
      length = range.last - range.first + 1;
      ctx.res.status = 206;
      ctx.res.set_header("Content-Range", "bytes " + std::to_string(range.first) + "-"
                                            + std::to_string(range.last) + "/"
                                            + std::to_string(size));
    }
  }
  ctx.res.set_header("Docker-Content-Digest", blob->info.digest.str());
  ctx.res.set_header("Accept-Ranges", "bytes");
  ctx.res.set_header("ETag", "\"" + blob->info.digest.str() + "\"");
  std::shared_ptr<storage::BlobReader> reader = std::move(blob->reader);
  auto buffer = std::make_shared<std::string>();
  ctx.res.set_content_provider(
    static_cast<size_t>(length), "application/octet-stream",
    [reader, buffer, first](size_t offset, size_t want, httplib::DataSink& sink) {
      if (buffer->empty()) {
        buffer->resize(k_read_chunk);
      }
      auto n = reader->read_at(first + offset, buffer->data(), std::min(want, buffer->size()));
      if (!n || *n == 0) {
        return false; // closes the connection: the client sees a short body
      }
      return sink.write(buffer->data(), *n);
    });
}

void
delete_blob(RequestContext& ctx)
{
  auto result = ctx.registry.delete_blob(ctx.route.name, ctx.route.reference);
  if (!result) {
    return ctx.write_error(result.error());
  }
  ctx.audit("blob.delete", ctx.route.name + "@" + ctx.route.reference);
  ctx.res.status = 202;
  ctx.res.set_header("Content-Length", "0");
}

void
post_upload(RequestContext& ctx)
{
  const auto& req = ctx.req;
  // Mounting needs pull on the source; without it the request falls back to a
  // plain upload, so it reveals nothing about the source.
  if (req.has_param("mount") && may_pull(ctx, req.get_param_value("from"))) {
    auto mounted = ctx.registry.mount_blob(ctx.route.name, req.get_param_value("from"),
                                           req.get_param_value("mount"));
    if (!mounted) {
      return ctx.write_error(mounted.error());
    }
    if (*mounted) {
      ctx.drain_body();
      return blob_created(ctx, ctx.route.name, **mounted);
    }
    // distribution-spec: if the mount cannot be done the registry falls back to
    // a regular upload session (202).
  }
  if (req.has_param("digest")) {
    auto body = ctx.body();
    auto info = ctx.registry.push_blob(ctx.route.name, req.get_param_value("digest"), body);
    if (!info) {
      return ctx.write_error(info.error());
    }
    return blob_created(ctx, ctx.route.name, *info);
  }
  auto status = ctx.registry.start_upload(ctx.route.name);
  if (!status) {
    return ctx.write_error(status.error());
  }
  ctx.drain_body();
  upload_accepted(ctx, *status, 202);
}

void
patch_upload(RequestContext& ctx)
{
  std::optional<uint64_t> expected_offset;
  if (ctx.req.has_header("Content-Range")) {
    auto range = parse_content_range(ctx.req.get_header_value("Content-Range"));
    if (!range) {
      return ctx.write_error(make_error(ErrorCode::upload_range_invalid,
                                        "malformed Content-Range",
                                        ctx.req.get_header_value("Content-Range")));
    }
    if (ctx.req.has_header("Content-Length")) {
      auto length = util::parse_uint(ctx.req.get_header_value("Content-Length"));
      if (!length || *length != range->second - range->first + 1) {
        return ctx.write_error(make_error(ErrorCode::upload_range_invalid,
                                          "Content-Range does not match Content-Length"));
      }
    }
    expected_offset = range->first;
  }
  auto body = ctx.body();
  auto status = ctx.registry.append_upload(ctx.route.name, ctx.route.reference, expected_offset,
                                           body);
  if (!status) {
    if (status.error().code == ErrorCode::upload_range_invalid) {
      // Tell the client where the upload really stands.
      ctx.res.set_header("Range", status.error().detail);
      ctx.res.set_header(
        "Location", ctx.url("/v2/" + ctx.route.name + "/blobs/uploads/" + ctx.route.reference));
    }
    return ctx.write_error(status.error());
  }
  upload_accepted(ctx, *status, 202);
}

void
put_upload(RequestContext& ctx)
{
  if (!ctx.req.has_param("digest")) {
    return ctx.write_error(
      make_error(ErrorCode::digest_invalid, "the digest query parameter is required"));
  }
  auto body = ctx.body();
  auto info = ctx.registry.complete_upload(ctx.route.name, ctx.route.reference,
                                           ctx.req.get_param_value("digest"), &body);
  if (!info) {
    return ctx.write_error(info.error());
  }
  blob_created(ctx, ctx.route.name, *info);
}

void
get_upload(RequestContext& ctx)
{
  auto status = ctx.registry.upload_status(ctx.route.name, ctx.route.reference);
  if (!status) {
    return ctx.write_error(status.error());
  }
  upload_accepted(ctx, *status, 204);
}

void
delete_upload(RequestContext& ctx)
{
  auto result = ctx.registry.cancel_upload(ctx.route.name, ctx.route.reference);
  if (!result) {
    return ctx.write_error(result.error());
  }
  ctx.res.status = 204;
}

} // namespace registry::server::handlers
