#include "common/service/registry.hpp"

#include <algorithm>
#include <limits>

#include "common/storage/fs_blob_store.hpp"
#include "common/util/hasher.hpp"
#include "common/util/log.hpp"

namespace registry::service {

namespace fs = std::filesystem;

Registry::~Registry() = default;

Result<std::unique_ptr<Registry>>
Registry::open(const fs::path& data_dir, std::shared_ptr<const util::Clock> clock)
{
  std::error_code ec;
  fs::create_directories(data_dir, ec);
  if (ec) {
    return fail(ErrorCode::io_error,
                "cannot create data directory " + data_dir.string() + ": " + ec.message());
  }
  std::unique_ptr<Registry> registry(new Registry());
  registry->m_data_dir = data_dir;
  registry->m_clock = clock ? std::move(clock) : std::make_shared<util::SystemClock>();
  REGISTRY_TRY_ASSIGN(registry->m_metadata, metadata::Metadata::open(data_dir / "registry.db"));
  registry->m_accounts = std::make_unique<Accounts>(*registry->m_metadata, registry->m_clock);
  REGISTRY_TRY_ASSIGN(auto stores, registry->m_metadata->list_stores());
  for (const auto& row : stores) {
    if (row.type != "filesystem") {
      return fail(ErrorCode::invalid_argument, "store '" + row.name + "' has unsupported type "
                                                 + row.type);
    }
    fs::path root = row.name == "default" ? data_dir / "store" : data_dir / "stores" / row.name;
    REGISTRY_TRY_ASSIGN(auto store, storage::FsBlobStore::open(root));
    registry->m_stores[row.id] = std::move(store);
  }
  return registry;
}

Result<storage::BlobStore*>
Registry::store(int64_t store_id)
{
  auto it = m_stores.find(store_id);
  if (it == m_stores.end()) {
    return fail(ErrorCode::internal, "store " + std::to_string(store_id) + " is not configured");
  }
  return it->second.get();
}

void
Registry::audit(const std::string& kind, const std::string& actor, const std::string& feed,
                const std::string& subject, const std::string& detail)
{
  auto written = m_metadata->record_event(metadata::EventRow{0, now(), kind, actor, feed, subject, detail});
  if (!written) {
    util::log_warn("audit: cannot record " + kind + " " + subject + ": " + written.error().message);
  }
}

Result<TokenService*>
Registry::tokens()
{
  std::lock_guard lock(m_tokens_mutex);
  if (!m_tokens) {
    REGISTRY_TRY_ASSIGN(auto signer, auth::TokenSigner::open(m_data_dir / "token-key.pem"));
    m_tokens = std::make_unique<TokenService>(*this, std::move(signer));
  }
  return m_tokens.get();
}

std::vector<int64_t>
Registry::store_ids() const
{
  std::vector<int64_t> ids;
  for (const auto& [id, store] : m_stores) {
    ids.push_back(id);
  }
  return ids;
}

// --- feeds ---

Result<metadata::FeedRow>
Registry::create_feed(const std::string& name, const std::string& description,
                      const std::string& anonymous_access)
{
  if (!oci::is_valid_feed_name(name)) {
    return fail(ErrorCode::name_invalid,
                "invalid feed name '" + name
                  + "': use lowercase letters and digits separated by '.', '_' or '-'; "
                    "v2, auth, ui, api and names starting with '_' are reserved",
                name);
  }
  if (anonymous_access != "none" && anonymous_access != "pull") {
    return fail(ErrorCode::invalid_argument, "anonymous access must be 'none' or 'pull'");
  }
  return m_metadata->create_feed(name, description, 1, anonymous_access, now());
}

Result<std::vector<metadata::FeedRow>>
Registry::list_feeds()
{
  return m_metadata->list_feeds();
}

Result<metadata::FeedRow>
Registry::get_feed(const std::string& name)
{
  REGISTRY_TRY_ASSIGN(auto feed, m_metadata->find_feed(name));
  if (!feed) {
    return fail(ErrorCode::name_unknown, "feed '" + name + "' does not exist", name);
  }
  return *feed;
}

Result<metadata::FeedRow>
Registry::update_feed(const std::string& name, const std::optional<std::string>& description,
                      const std::optional<std::string>& anonymous_access)
{
  REGISTRY_TRY_ASSIGN(auto feed, get_feed(name));
  if (anonymous_access && *anonymous_access != "none" && *anonymous_access != "pull") {
    return fail(ErrorCode::invalid_argument, "anonymous access must be 'none' or 'pull'");
  }
  return m_metadata->update_feed(name, description.value_or(feed.description),
                                 anonymous_access.value_or(feed.anonymous_access));
}

Result<void>
Registry::delete_feed(const std::string& name)
{
  REGISTRY_TRY_ASSIGN(auto feed, get_feed(name));
  REGISTRY_TRY_ASSIGN(auto uploads, m_metadata->delete_feed(name));
  REGISTRY_TRY_ASSIGN(auto* blob_store, store(feed.store_id));
  for (const auto& id : uploads) {
    forget_upload(id);
    (void)blob_store->remove_upload(id);
  }
  return ok();
}

// --- resolution ---

Result<Registry::ResolvedRepository>
Registry::resolve(std::string_view repository)
{
  REGISTRY_TRY_ASSIGN(auto name, oci::parse_repository_name(repository));
  REGISTRY_TRY_ASSIGN(auto feed, m_metadata->find_feed(name.feed));
  if (!feed) {
    return fail(ErrorCode::name_unknown, "feed '" + name.feed + "' does not exist",
                std::string(repository));
  }
  ResolvedRepository resolved{name, name.full(), *feed, std::nullopt};
  REGISTRY_TRY_ASSIGN(resolved.row, m_metadata->find_repository(resolved.full));
  return resolved;
}

Result<Registry::ResolvedRepository>
Registry::resolve_existing(std::string_view repository)
{
  REGISTRY_TRY_ASSIGN(auto resolved, resolve(repository));
  if (!resolved.row) {
    return fail(ErrorCode::name_unknown, "repository name not known to registry",
                std::string(repository));
  }
  return resolved;
}

Result<RepositoryPage>
Registry::catalog(const std::string& feed, const std::string& last, int64_t limit)
{
  RepositoryPage page;
  limit = std::clamp<int64_t>(limit, 0, std::numeric_limits<int64_t>::max() - 1);
  REGISTRY_TRY_ASSIGN(page.names, m_metadata->list_repository_names(feed, last, limit + 1));
  if (static_cast<int64_t>(page.names.size()) > limit) {
    page.names.resize(static_cast<size_t>(limit));
    page.more = true;
  }
  return page;
}

} // namespace registry::service
