#include "common/service/registry.hpp"

#include <algorithm>
#include <limits>

#include "common/storage/store_factory.hpp"
#include "common/util/hasher.hpp"
#include "common/util/log.hpp"

namespace registry::service {

namespace fs = std::filesystem;

Registry::~Registry()
{
  // Fetching threads use this object: stop them and wait until they are gone.
  std::unique_lock lock(m_fetch_mutex);
  m_closing = true;
  m_fetch_ended.wait(lock, [&] { return m_fetch_threads == 0; });
}

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
  // The default store opens now (it creates its directories); the others on
  // first use, so a store added by the CLI while the server runs is found, and
  // an unreachable object store does not stop the process.
  REGISTRY_TRY(registry->store(1));
  return registry;
}

Result<storage::BlobStore*>
Registry::store(int64_t store_id)
{
  std::lock_guard lock(m_stores_mutex);
  auto it = m_stores.find(store_id);
  if (it != m_stores.end()) {
    return it->second.get();
  }
  REGISTRY_TRY_ASSIGN(auto rows, m_metadata->list_stores());
  for (const auto& row : rows) {
    if (row.id == store_id) {
      auto opened = storage::open_store(row, m_data_dir);
      if (!opened) {
        return fail(opened.error().code == ErrorCode::io_error ? ErrorCode::io_error
                                                                : ErrorCode::internal,
                    "store '" + row.name + "': " + opened.error().message);
      }
      auto* raw = opened->get();
      m_stores[store_id] = std::move(opened).value();
      return raw;
    }
  }
  return fail(ErrorCode::internal, "store " + std::to_string(store_id) + " does not exist");
}

std::vector<int64_t>
Registry::store_ids() const
{
  std::vector<int64_t> ids;
  auto rows = m_metadata->list_stores();
  if (rows) {
    for (const auto& row : *rows) {
      ids.push_back(row.id);
    }
    return ids;
  }
  std::lock_guard lock(m_stores_mutex);
  for (const auto& [id, store] : m_stores) {
    ids.push_back(id);
  }
  return ids;
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

std::optional<metadata::EventRow>
Registry::audit_event(const std::string* actor, const std::string& kind, std::string_view repository,
                      const std::string& subject, const std::string& detail) const
{
  if (actor == nullptr) {
    return std::nullopt;
  }
  std::string feed(repository.substr(0, repository.find('/')));
  return metadata::EventRow{0, now(), kind, *actor, std::move(feed), subject, detail};
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

// --- stores ---

Result<metadata::StoreRow>
Registry::add_store(const std::string& name, const std::string& type,
                    const storage::StoreSettings& settings, bool check)
{
  if (!oci::is_valid_feed_name(name)) {
    return fail(ErrorCode::name_invalid,
                "invalid store name '" + name
                  + "': use lowercase letters and digits separated by '.', '_' or '-'",
                name);
  }
  REGISTRY_TRY(storage::validate_settings(type, settings));
  REGISTRY_TRY_ASSIGN(auto existing, m_metadata->find_store(name));
  if (existing) {
    return fail(ErrorCode::already_exists, "store '" + name + "' already exists", name);
  }
  metadata::StoreRow row{0, name, type, storage::settings_json(settings)};
  // Opening validates every setting with the driver itself; the check proves
  // the secrets and the network path before any feed depends on them.
  REGISTRY_TRY_ASSIGN(auto opened, storage::open_store(row, m_data_dir));
  if (check) {
    if (auto checked = opened->check(); !checked) {
      return fail(ErrorCode::io_error, "store '" + name + "' failed its check: "
                                         + checked.error().message + " (add --no-check to add it anyway)");
    }
  }
  return m_metadata->add_store(name, type, row.config_json);
}

Result<std::vector<metadata::StoreRow>>
Registry::list_stores()
{
  return m_metadata->list_stores();
}

Result<metadata::StoreRow>
Registry::get_store(const std::string& name)
{
  REGISTRY_TRY_ASSIGN(auto row, m_metadata->find_store(name));
  if (!row) {
    return fail(ErrorCode::name_unknown, "store '" + name + "' does not exist", name);
  }
  return *row;
}

Result<void>
Registry::check_store(const std::string& name)
{
  REGISTRY_TRY_ASSIGN(auto row, get_store(name));
  REGISTRY_TRY_ASSIGN(auto* blob_store, store(row.id));
  auto checked = blob_store->check();
  if (!checked) {
    return fail(ErrorCode::io_error, "store '" + name + "': " + checked.error().message);
  }
  return ok();
}

Result<void>
Registry::delete_store(const std::string& name)
{
  REGISTRY_TRY_ASSIGN(auto row, get_store(name));
  REGISTRY_TRY(m_metadata->delete_store(name));
  std::lock_guard lock(m_stores_mutex);
  m_stores.erase(row.id);
  return ok();
}

// --- feeds ---

Result<metadata::FeedRow>
Registry::create_feed(const std::string& name, const std::string& description,
                      const std::string& anonymous_access, const std::string& store_name,
                      int64_t cache_retention)
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
  if (cache_retention < 0) {
    return fail(ErrorCode::invalid_argument, "the cache retention must not be negative");
  }
  REGISTRY_TRY_ASSIGN(auto store_row, get_store(store_name));
  return m_metadata->create_feed(name, description, store_row.id, anonymous_access, now(),
                                 cache_retention);
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
                      const std::optional<std::string>& anonymous_access,
                      std::optional<int64_t> cache_retention)
{
  REGISTRY_TRY_ASSIGN(auto feed, get_feed(name));
  if (anonymous_access && *anonymous_access != "none" && *anonymous_access != "pull") {
    return fail(ErrorCode::invalid_argument, "anonymous access must be 'none' or 'pull'");
  }
  if (cache_retention && *cache_retention < 0) {
    return fail(ErrorCode::invalid_argument, "the cache retention must not be negative");
  }
  return m_metadata->update_feed(name, description.value_or(feed.description),
                                 anonymous_access.value_or(feed.anonymous_access), cache_retention);
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
  std::string full = name.full();
  REGISTRY_TRY_ASSIGN(auto found, m_metadata->find_feed_and_repository(name.feed, full));
  if (!found.feed) {
    return fail(ErrorCode::name_unknown, "feed '" + name.feed + "' does not exist",
                std::string(repository));
  }
  return ResolvedRepository{name, std::move(full), std::move(*found.feed), std::move(found.repository)};
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
