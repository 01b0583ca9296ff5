// Registry: connectors, i.e. pull-through caching of upstream registries. A
// feed with connectors answers a manifest or blob it lacks by fetching it from
// each connector in turn and storing it (marked with its origin) before
// serving it. Blobs go through the normal upload path, so they are hashed
// while they arrive and a digest mismatch stores nothing.

#include "common/service/registry.hpp"
#include "common/upstream/upstream_client.hpp"
#include "common/util/log.hpp"

#include <algorithm>
#include <system_error>
#include <thread>

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

Result<std::optional<OpenBlob>>
Registry::arriving_blob(std::string_view repository, const oci::Digest& digest)
{
  REGISTRY_TRY_ASSIGN(auto repo, resolve(repository));
  // Most feeds have no connector: their miss (every docker push asks HEAD of
  // each layer first) ends here, without another look for a link.
  REGISTRY_TRY_ASSIGN(auto connectors, m_metadata->list_connectors(repo.feed.id));
  if (connectors.empty()) {
    return fail(ErrorCode::blob_unknown, "blob unknown to registry", digest.str());
  }
  if (repo.row) {
    REGISTRY_TRY_ASSIGN(auto linked, m_metadata->find_linked_blob(repo.row->id, digest.str()));
    if (linked) {
      return std::optional<OpenBlob>();
    }
  }
  REGISTRY_TRY_ASSIGN(auto fetch, join_fetch(repo, digest, std::move(connectors)));
  if (!fetch) {
    return std::optional<OpenBlob>();
  }
  auto progress = fetch->wait_streamable();
  switch (progress.state) {
  case BlobFetch::State::committed:
    return std::optional<OpenBlob>();
  case BlobFetch::State::absent:
    return fail(ErrorCode::blob_unknown, "blob unknown to registry", digest.str());
  case BlobFetch::State::failed:
    return fail(progress.error);
  case BlobFetch::State::running:
    break;
  }
  OpenBlob streaming{BlobInfo{digest, progress.size.value_or(0)}, nullptr, {}, std::move(fetch),
                     progress.size.has_value()};
  return std::optional<OpenBlob>(std::move(streaming));
}

Result<bool>
Registry::pull_blob(const ResolvedRepository& repo, const oci::Digest& digest)
{
  REGISTRY_TRY_ASSIGN(auto connectors, m_metadata->list_connectors(repo.feed.id));
  REGISTRY_TRY_ASSIGN(auto fetch, join_fetch(repo, digest, std::move(connectors)));
  if (!fetch) {
    return false;
  }
  auto progress = fetch->wait_finished();
  if (progress.state == BlobFetch::State::failed) {
    return fail(progress.error);
  }
  return progress.state == BlobFetch::State::committed;
}

Result<std::shared_ptr<BlobFetch>>
Registry::join_fetch(const ResolvedRepository& repo, const oci::Digest& digest,
                     std::vector<metadata::ConnectorRow> connectors)
{
  if (connectors.empty()) {
    return std::shared_ptr<BlobFetch>();
  }
  std::string key = repo.full + "@" + digest.str();
  std::lock_guard lock(m_fetch_mutex);
  if (auto it = m_fetching.find(key); it != m_fetching.end()) {
    return it->second;
  }
  if (m_closing) {
    return fail(ErrorCode::io_error, "the registry is shutting down", digest.str());
  }
  REGISTRY_TRY_ASSIGN(auto fetch, BlobFetch::create(m_data_dir / "fetching"));
  // The thread owns copies of everything it uses but this Registry, whose
  // destructor waits for it.
  try {
    std::thread([this, repo, digest, connectors = std::move(connectors), fetch] {
      run_fetch(repo, digest, connectors, *fetch);
      std::lock_guard done(m_fetch_mutex);
      --m_fetch_threads;
      m_fetch_ended.notify_all();
    }).detach();
  } catch (const std::system_error& e) {
    return fail(ErrorCode::internal, std::string("cannot start a fetch: ") + e.what(), digest.str());
  }
  ++m_fetch_threads;
  m_fetching[key] = fetch;
  return fetch;
}

void
Registry::run_fetch(const ResolvedRepository& repo, const oci::Digest& digest,
                    const std::vector<metadata::ConnectorRow>& connectors, BlobFetch& fetch)
{
  // The fetch leaves the map before it says how it ended: a request that
  // learns of a failure and asks again starts a new fetch.
  auto finish = [&](BlobFetch::State state, Error error = {}) {
    {
      std::lock_guard lock(m_fetch_mutex);
      m_fetching.erase(repo.full + "@" + digest.str());
    }
    fetch.finish(state, std::move(error));
  };
  // An earlier fetch may have stored it between the caller's look and now.
  auto current = resolve(repo.full);
  if (current && current->row) {
    auto linked = m_metadata->find_linked_blob(current->row->id, digest.str());
    if (linked && *linked) {
      return finish(BlobFetch::State::committed);
    }
  }
  std::optional<Error> failure;
  for (const auto& connector : connectors) {
    auto client = upstream_client(connector);
    if (!client) {
      continue;
    }
    if (!fetch.restart()) {
      break; // readers have bytes from the previous upstream: only that one counted
    }
    auto upload = start_upload(repo.full);
    if (!upload) {
      failure = upload.error();
      break;
    }
    Result<bool> fetched = false;
    std::optional<Error> spool_error;
    ByteSource body = [&](const storage::ByteSink& sink) {
      fetched = client->fetch_blob(
        client->upstream_name(repo.name.path), digest.str(),
        [&](const char* data, size_t n) {
          if (m_closing || !sink(data, n)) {
            return false;
          }
          if (auto spooled = fetch.append(data, n); !spooled) {
            spool_error = spooled.error();
            return false;
          }
          return true;
        },
        [&](std::optional<uint64_t> size) { fetch.announce(size); });
      return fetched && *fetched && !spool_error && !m_closing;
    };
    auto appended = append_upload(repo.full, upload->id, std::nullopt, body);
    std::optional<Error> error;
    if (appended && fetched && *fetched) {
      auto completed = complete_upload(repo.full, upload->id, digest.str(), nullptr);
      if (completed) {
        count_connector(connector.url, &ConnectorActivity::blob_fetches);
        count_connector(connector.url, &ConnectorActivity::blob_bytes, completed->size);
        return finish(BlobFetch::State::committed);
      }
      error = completed.error(); // digest mismatch: the upload is discarded
    } else {
      (void)cancel_upload(repo.full, upload->id);
      if (spool_error) {
        error = spool_error;
      } else if (m_closing) {
        error = make_error(ErrorCode::io_error, "the registry is shutting down");
      } else if (!fetched) {
        error = fetched.error();
      } else if (!appended && *fetched) {
        error = appended.error();
      }
    }
    if (error) {
      count_connector(connector.url, &ConnectorActivity::upstream_failures);
      util::log_warn("connector " + connector.url + ": " + repo.full + "@" + digest.str() + ": "
                     + error->message);
      failure = std::move(error);
    }
  }
  if (failure) {
    return finish(BlobFetch::State::failed,
                  make_error(ErrorCode::io_error, "upstream unavailable: " + failure->message, digest.str()));
  }
  finish(BlobFetch::State::absent);
}

} // namespace registry::service
