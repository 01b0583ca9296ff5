// Registry: connectors, i.e. pull-through caching of upstream registries. A
// feed with connectors answers a manifest or blob it lacks by fetching it from
// each connector in turn and storing it (marked with its origin) before
// serving it. Blobs go through the normal upload path, so they are hashed
// while they arrive and a digest mismatch stores nothing.

#include "common/service/registry.hpp"
#include "common/upstream/upstream_client.hpp"
#include "common/util/log.hpp"

#include <algorithm>

namespace registry::service {

Result<metadata::ConnectorRow>
Registry::add_connector(const std::string& feed, const std::string& url, const std::string& username,
                        const std::string& password, int64_t ttl)
{
  REGISTRY_TRY_ASSIGN(auto row, get_feed(feed));
  REGISTRY_TRY_ASSIGN(auto client, upstream::UpstreamClient::create(url, username, password));
  if (ttl < 0) {
    return fail(ErrorCode::invalid_argument, "the freshness TTL must not be negative");
  }
  return m_metadata->add_connector(row.id, client->url(), username, password, ttl, now());
}

Result<std::vector<metadata::ConnectorRow>>
Registry::list_connectors(const std::string& feed)
{
  int64_t feed_id = 0;
  if (!feed.empty()) {
    REGISTRY_TRY_ASSIGN(auto row, get_feed(feed));
    feed_id = row.id;
  }
  return m_metadata->list_connectors(feed_id);
}

Result<void>
Registry::remove_connector(const std::string& feed, const std::string& url)
{
  REGISTRY_TRY_ASSIGN(auto row, get_feed(feed));
  std::string normalized = url;
  while (!normalized.empty() && normalized.back() == '/') {
    normalized.pop_back();
  }
  REGISTRY_TRY_ASSIGN(bool removed, m_metadata->remove_connector(row.id, normalized));
  if (!removed) {
    return fail(ErrorCode::not_found, "feed '" + feed + "' has no connector " + url);
  }
  return ok();
}

std::shared_ptr<upstream::UpstreamClient>
Registry::upstream_client(const metadata::ConnectorRow& connector)
{
  std::string settings = connector.url + '\n' + connector.username + '\n' + connector.password;
  std::lock_guard lock(m_upstream_mutex);
  auto& entry = m_upstreams[connector.id];
  if (!entry.second || entry.first != settings) {
    auto client = upstream::UpstreamClient::create(connector.url, connector.username, connector.password);
    if (!client) {
      return nullptr;
    }
    entry = {settings, std::shared_ptr<upstream::UpstreamClient>(std::move(client).value())};
  }
  return entry.second;
}

void
Registry::count_connector(const std::string& url, uint64_t ConnectorActivity::*field, uint64_t n)
{
  std::lock_guard lock(m_activity_mutex);
  m_activity[url].*field += n;
}

std::map<std::string, Registry::ConnectorActivity>
Registry::connector_activity() const
{
  std::lock_guard lock(m_activity_mutex);
  return m_activity;
}

Result<std::optional<metadata::ManifestRow>>
Registry::pull_manifest(const ResolvedRepository& repo, const oci::ManifestReference& ref, bool with_bytes)
{
  REGISTRY_TRY_ASSIGN(auto connectors, m_metadata->list_connectors(repo.feed.id));
  std::optional<Error> failure;
  for (const auto& connector : connectors) {
    auto client = upstream_client(connector);
    if (!client) {
      continue;
    }
    auto fetched = client->get_manifest(client->upstream_name(repo.name.path), ref.str());
    if (!fetched) {
      util::log_warn("connector " + connector.url + ": " + repo.full + ":" + ref.str() + ": "
                     + fetched.error().message);
      count_connector(connector.url, &ConnectorActivity::upstream_failures);
      failure = fetched.error();
      continue;
    }
    if (!*fetched) {
      continue;
    }
    auto& manifest = **fetched;
    auto stored = store_manifest(repo, ref, manifest.media_type, std::move(manifest.bytes), connector.url);
    if (!stored) {
      util::log_warn("connector " + connector.url + ": cannot cache " + repo.full + ":" + ref.str() + ": "
                     + stored.error().message);
      failure = stored.error();
      continue;
    }
    count_connector(connector.url, &ConnectorActivity::manifest_fetches);
    REGISTRY_TRY_ASSIGN(auto cached, resolve(repo.full));
    if (!cached.row) {
      return fail(ErrorCode::internal, "cached manifest's repository vanished", repo.full);
    }
    return m_metadata->find_manifest(cached.row->id, stored->digest.str(), with_bytes);
  }
  if (failure) {
    // Nothing cached and upstream failing: say so, rather than "unknown".
    return fail(ErrorCode::io_error, "upstream unavailable: " + failure->message, ref.str());
  }
  return std::optional<metadata::ManifestRow>();
}

Result<metadata::ManifestRow>
Registry::revalidate(const ResolvedRepository& repo, const oci::ManifestReference& ref, metadata::ManifestRow row,
                     bool with_bytes)
{
  REGISTRY_TRY_ASSIGN(auto connectors, m_metadata->list_connectors(repo.feed.id));
  auto connector = std::find_if(connectors.begin(), connectors.end(),
                                [&](const metadata::ConnectorRow& c) { return c.url == row.origin; });
  if (connector == connectors.end() || now() - row.tag_updated_at < connector->ttl) {
    return row; // fresh, or its connector is gone: the cached copy stands
  }
  auto client = upstream_client(*connector);
  if (!client) {
    return row;
  }
  std::string where = repo.full + ":" + ref.str();
  count_connector(connector->url, &ConnectorActivity::revalidations);
  auto current = client->head_manifest(client->upstream_name(repo.name.path), ref.str());
  if (!current || !*current) {
    if (!current) {
      count_connector(connector->url, &ConnectorActivity::upstream_failures);
    }
    count_connector(connector->url, &ConnectorActivity::stale_served);
    util::log_warn("connector " + connector->url + ": " + where + ": "
                   + (current ? std::string("gone upstream") : current.error().message)
                   + "; serving the cached copy");
    return row;
  }
  if (**current == row.digest) {
    (void)m_metadata->touch_tag(row.repository_id, ref.tag(), now());
    return row;
  }
  // Moved (or upstream did not say which digest it has): fetch it again.
  auto fetched = pull_manifest(repo, ref, with_bytes);
  if (!fetched || !*fetched) {
    count_connector(connector->url, &ConnectorActivity::stale_served);
    util::log_warn("connector " + connector->url + ": " + where + ": cannot refresh ("
                   + (fetched ? std::string("gone upstream") : fetched.error().message)
                   + "); serving the cached copy");
    return row;
  }
  (void)m_metadata->touch_tag(row.repository_id, ref.tag(), now());
  return std::move(**fetched);
}

Result<bool>
Registry::pull_blob(const ResolvedRepository& repo, const oci::Digest& digest)
{
  REGISTRY_TRY_ASSIGN(auto connectors, m_metadata->list_connectors(repo.feed.id));
  if (connectors.empty()) {
    return false;
  }
  // One fetch per blob: later requests wait on the first one's mutex. The
  // slot leaves the map with its last user, on every path out.
  struct FetchSlot {
    Registry& registry;
    std::string key;
    std::shared_ptr<std::mutex> mutex;
    ~FetchSlot()
    {
      std::lock_guard lock(registry.m_fetch_mutex);
      if (mutex.use_count() == 1) {
        registry.m_fetching.erase(key);
      }
    }
  } slot{*this, repo.full + "@" + digest.str(), nullptr};
  {
    std::lock_guard lock(m_fetch_mutex);
    auto& entry = m_fetching[slot.key];
    slot.mutex = entry.lock();
    if (!slot.mutex) {
      slot.mutex = std::make_shared<std::mutex>();
      entry = slot.mutex;
    }
  }
  std::lock_guard fetching(*slot.mutex);
  // Another request may have fetched it while this one waited.
  REGISTRY_TRY_ASSIGN(auto current, resolve(repo.full));
  if (current.row) {
    REGISTRY_TRY_ASSIGN(auto linked, m_metadata->find_linked_blob(current.row->id, digest.str()));
    if (linked) {
      return true;
    }
  }
  std::optional<Error> failure;
  for (const auto& connector : connectors) {
    auto client = upstream_client(connector);
    if (!client) {
      continue;
    }
    REGISTRY_TRY_ASSIGN(auto upload, start_upload(repo.full));
    Result<bool> fetched = false;
    ByteSource body = [&](const storage::ByteSink& sink) {
      fetched = client->fetch_blob(client->upstream_name(repo.name.path), digest.str(), sink);
      return fetched && *fetched;
    };
    auto appended = append_upload(repo.full, upload.id, std::nullopt, body);
    if (appended && fetched && *fetched) {
      auto completed = complete_upload(repo.full, upload.id, digest.str(), nullptr);
      if (completed) {
        count_connector(connector.url, &ConnectorActivity::blob_fetches);
        count_connector(connector.url, &ConnectorActivity::blob_bytes, completed->size);
        return true;
      }
      failure = completed.error(); // digest mismatch: the upload is discarded
    } else {
      (void)cancel_upload(repo.full, upload.id);
      if (!fetched) {
        failure = fetched.error();
      } else if (!appended && *fetched) {
        failure = appended.error();
      }
    }
    if (failure) {
      count_connector(connector.url, &ConnectorActivity::upstream_failures);
      util::log_warn("connector " + connector.url + ": " + repo.full + "@" + digest.str() + ": "
                     + failure->message);
    }
  }
  if (failure) {
    return fail(ErrorCode::io_error, "upstream unavailable: " + failure->message, digest.str());
  }
  return false;
}

} // namespace registry::service
