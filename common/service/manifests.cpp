// Registry: manifests, tags and referrers.

#include "common/service/registry.hpp"

#include <algorithm>
#include <limits>

#include "common/oci/media_types.hpp"
#include "common/util/log.hpp"

#include <nlohmann/json.hpp>

namespace registry::service {

namespace {

// A tag or a digest as the API receives it. A malformed tag is
// `invalid_code` (MANIFEST_INVALID on put, MANIFEST_UNKNOWN on reads).
Result<oci::ManifestReference>
parse_reference(std::string_view text, ErrorCode invalid_code)
{
  auto ref = oci::parse_manifest_reference(text);
  if (!ref) {
    if (ref.error().code == ErrorCode::invalid_argument) {
      return fail(invalid_code, "invalid tag", std::string(text.substr(0, 200)));
    }
    return fail(ref.take_error());
  }
  return ref;
}

ManifestData
to_data(metadata::ManifestRow row)
{
  return ManifestData{*oci::Digest::parse(row.digest), std::move(row.media_type), row.size,
                      std::move(row.bytes), std::move(row.origin)};
}

} // namespace

Result<PutManifestResult>
Registry::put_manifest(std::string_view repository, std::string_view reference,
                       std::string_view content_type, std::string bytes, const std::string* actor)
{
  REGISTRY_TRY_ASSIGN(auto repo, resolve(repository));
  REGISTRY_TRY_ASSIGN(auto ref, parse_reference(reference, ErrorCode::manifest_invalid));
  return store_manifest(repo, ref, content_type, std::move(bytes), {}, actor);
}

Result<PutManifestResult>
Registry::store_manifest(const ResolvedRepository& repo, const oci::ManifestReference& ref,
                         std::string_view content_type, std::string bytes, const std::string& origin,
                         const std::string* actor)
{
  REGISTRY_TRY_ASSIGN(auto manifest, oci::parse_manifest(bytes, content_type));
  auto algorithm = ref.is_digest() ? ref.digest().hash_algorithm() : util::HashAlgorithm::sha256;
  oci::Digest digest = oci::Digest::of(bytes, algorithm);
  if (ref.is_digest() && !(ref.digest() == digest)) {
    return fail(ErrorCode::digest_invalid, "manifest digest does not match its content",
                ref.digest().str());
  }
  metadata::NewManifest record;
  record.digest = digest.str();
  record.media_type = manifest.media_type;
  record.artifact_type = manifest.artifact_type;
  record.subject_digest = manifest.subject ? manifest.subject->digest.str() : "";
  record.annotations_json = manifest.annotations_json;
  for (const auto& blob : manifest.referenced_blobs()) {
    record.references.push_back({metadata::ManifestReferenceRecord::Kind::blob, blob.digest.str()});
  }
  for (const auto& child : manifest.manifests) {
    record.references.push_back(
      {metadata::ManifestReferenceRecord::Kind::manifest, child.digest.str()});
  }
  record.bytes = std::move(bytes);
  record.origin = origin;
  auto event = audit_event(actor, "manifest.push", repo.full, repo.full + "@" + record.digest,
                           ref.is_digest() ? std::string() : "tag " + ref.tag());
  REGISTRY_TRY(m_metadata->put_manifest(repo.feed.id, repo.full, record,
                                        ref.is_digest() ? std::string() : ref.tag(), now(),
                                        event ? &*event : nullptr));
  return PutManifestResult{digest, record.subject_digest};
}

Result<ManifestData>
Registry::get_manifest(std::string_view repository, std::string_view reference, bool with_bytes)
{
  REGISTRY_TRY_ASSIGN(auto ref, parse_reference(reference, ErrorCode::manifest_unknown));
  REGISTRY_TRY_ASSIGN(auto repo, resolve(repository));
  std::optional<metadata::ManifestRow> row;
  if (repo.row && ref.is_digest()) {
    REGISTRY_TRY_ASSIGN(row, m_metadata->find_manifest(repo.row->id, ref.digest().str(), with_bytes));
  } else if (repo.row) {
    REGISTRY_TRY_ASSIGN(row, m_metadata->find_tagged_manifest(repo.row->id, ref.tag(), with_bytes));
  }
  if (!row) {
    // A feed with connectors fetches what it lacks from upstream.
    REGISTRY_TRY_ASSIGN(row, pull_manifest(repo, ref, with_bytes));
  } else if (!ref.is_digest() && !row->origin.empty()) {
    // A cached tag may have moved upstream.
    REGISTRY_TRY_ASSIGN(row, revalidate(repo, ref, std::move(*row), with_bytes));
  }
  if (!row) {
    return fail(ErrorCode::manifest_unknown, "manifest unknown", ref.str());
  }
  if (!row->origin.empty()) {
    record_pull(repo.feed, *row);
  }
  return to_data(std::move(*row));
}

void
Registry::record_pull(const metadata::FeedRow& feed, const metadata::ManifestRow& row)
{
  // Compared here first, so most pulls stay reads.
  int64_t interval = pull_record_interval(feed.cache_retention);
  int64_t at = now();
  if (row.last_pulled_at >= at - interval) {
    return;
  }
  if (auto touched = m_metadata->touch_manifest_pull(row.id, at, interval); !touched) {
    util::log_warn("cannot record a pull of " + row.digest + ": " + touched.error().message);
  }
}

Result<DeleteManifestResult>
Registry::delete_manifest(std::string_view repository, std::string_view reference,
                          const std::string* actor)
{
  REGISTRY_TRY_ASSIGN(auto ref, parse_reference(reference, ErrorCode::manifest_unknown));
  REGISTRY_TRY_ASSIGN(auto repo, resolve(repository));
  if (!repo.row) {
    return fail(ErrorCode::manifest_unknown, "manifest unknown", ref.str());
  }
  if (!ref.is_digest()) {
    REGISTRY_TRY_ASSIGN(auto row, m_metadata->find_tagged_manifest(repo.row->id, ref.tag(), false));
    if (!row) {
      return fail(ErrorCode::manifest_unknown, "manifest unknown", ref.tag());
    }
    auto event = audit_event(actor, "tag.delete", repo.full, repo.full + "@" + row->digest, "tags " + ref.tag());
    REGISTRY_TRY(m_metadata->delete_tag(repo.row->id, ref.tag(), event ? &*event : nullptr));
    return DeleteManifestResult{*oci::Digest::parse(row->digest), {ref.tag()}};
  }
  auto event = audit_event(actor, "manifest.delete", repo.full, repo.full + "@" + ref.digest().str(), "");
  REGISTRY_TRY_ASSIGN(auto tags,
                      m_metadata->delete_manifest(repo.row->id, ref.digest().str(), event ? &*event : nullptr));
  return DeleteManifestResult{ref.digest(), std::move(tags)};
}

Result<DeleteManifestResult>
Registry::delete_image(std::string_view repository, std::string_view reference, const std::string* actor)
{
  REGISTRY_TRY_ASSIGN(auto manifest, get_manifest(repository, reference, false));
  return delete_manifest(repository, manifest.digest.str(), actor);
}

Result<ImageDetails>
Registry::describe_image(std::string_view repository, std::string_view reference)
{
  REGISTRY_TRY_ASSIGN(auto repo, resolve_existing(repository));
  REGISTRY_TRY_ASSIGN(auto manifest, get_manifest(repository, reference, true));
  REGISTRY_TRY_ASSIGN(auto parsed, oci::parse_manifest(manifest.bytes, manifest.media_type));
  REGISTRY_TRY_ASSIGN(auto tags, m_metadata->tags_of(repo.row->id, manifest.digest.str()));
  return ImageDetails{repo.full, std::move(manifest), std::move(tags), std::move(parsed)};
}

Result<TagPage>
Registry::list_tags(std::string_view repository, const std::string& last, int64_t limit,
                    bool with_manifests)
{
  REGISTRY_TRY_ASSIGN(auto repo, resolve_existing(repository));
  limit = std::clamp<int64_t>(limit, 0, std::numeric_limits<int64_t>::max() - 1);
  TagPage page;
  page.repository = repo.full;
  REGISTRY_TRY_ASSIGN(page.tags, m_metadata->list_tags(repo.row->id, last, limit + 1, with_manifests));
  if (static_cast<int64_t>(page.tags.size()) > limit) {
    page.tags.resize(static_cast<size_t>(limit));
    page.more = true;
  }
  return page;
}

Result<std::string>
Registry::referrers(std::string_view repository, std::string_view digest,
                    const std::string& artifact_type)
{
  REGISTRY_TRY_ASSIGN(auto parsed, oci::Digest::parse(digest));
  REGISTRY_TRY_ASSIGN(auto repo, resolve(repository));
  nlohmann::json index = {{"schemaVersion", 2},
                          {"mediaType", oci::media_type::oci_index},
                          {"manifests", nlohmann::json::array()}};
  if (repo.row) {
    REGISTRY_TRY_ASSIGN(auto rows, m_metadata->list_referrers(repo.row->id, parsed.str(), artifact_type));
    for (const auto& row : rows) {
      nlohmann::json d = {{"mediaType", row.media_type}, {"digest", row.digest}, {"size", row.size}};
      if (!row.artifact_type.empty()) {
        d["artifactType"] = row.artifact_type;
      }
      if (!row.annotations_json.empty()) {
        auto annotations = nlohmann::json::parse(row.annotations_json, nullptr, false);
        if (annotations.is_object() && !annotations.empty()) {
          d["annotations"] = annotations;
        }
      }
      index["manifests"].push_back(std::move(d));
    }
  }
  return index.dump();
}

} // namespace registry::service
