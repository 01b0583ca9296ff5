#include "server/metrics.hpp"

#include "common/service/registry.hpp"
#include "common/version.hpp"

#include <chrono>
#include <cstdio>

namespace registry::server {

namespace {

constexpr int64_t k_gauge_cache_ms = 5000;

int64_t
steady_ms()
{
  return std::chrono::duration_cast<std::chrono::milliseconds>(
           std::chrono::steady_clock::now().time_since_epoch())
    .count();
}

// A label value with Prometheus' escapes (backslash, quote, newline).
std::string
label(const std::string& value)
{
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string
number(double value)
{
  char text[64];
  std::snprintf(text, sizeof text, "%.9g", value);
  return text;
}

void
header(std::string& out, const char* name, const char* type, const char* help)
{
  out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

void
sample(std::string& out, const std::string& name, const std::string& labels, uint64_t value)
{
  out += name;
  if (!labels.empty()) {
    out += "{" + labels + "}";
  }
  out += " " + std::to_string(value) + "\n";
}

const std::string&
method_label(const std::string& method)
{
  static const std::string known[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};
  static const std::string other = "OTHER";
  for (const auto& m : known) {
    if (m == method) {
      return m;
    }
  }
  return other;
}

} // namespace

Metrics::Metrics()
  : m_started_at(std::chrono::duration_cast<std::chrono::seconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count())
{
}

void
Metrics::record_request(const std::string& method, const char* route, int status, double seconds,
                        uint64_t received, uint64_t sent)
{
  m_received += received;
  m_sent += sent;
  const std::string& m = method_label(method);
  size_t bucket = 0;
  while (bucket < k_buckets.size() && seconds > k_buckets[bucket]) {
    ++bucket;
  }
  std::lock_guard lock(m_mutex);
  ++m_requests[{m, route, status}];
  Histogram& h = m_durations[{m, route}];
  if (bucket < k_buckets.size()) {
    ++h.buckets[bucket];
  }
  ++h.count;
  h.sum += seconds;
}

void
Metrics::record_gc(bool succeeded, uint64_t blobs_removed, uint64_t bytes_freed)
{
  ++m_gc_runs;
  if (!succeeded) {
    ++m_gc_failures;
  }
  m_gc_blobs += blobs_removed;
  m_gc_bytes += bytes_freed;
}

std::string
Metrics::gauges(service::Registry& registry)
{
  std::lock_guard lock(m_gauge_mutex);
  int64_t now = steady_ms();
  if (!m_gauge_text.empty() && now - m_gauge_at_ms < k_gauge_cache_ms) {
    return m_gauge_text;
  }
  std::string out;
  auto& metadata = registry.metadata();
  if (auto uploads = metadata.list_uploads()) {
    header(out, "registryctl_uploads_in_progress", "gauge", "Upload sessions not yet completed or cancelled.");
    sample(out, "registryctl_uploads_in_progress", "", uploads->size());
  }
  if (auto usage = metadata.feed_usage()) {
    header(out, "registryctl_feed_repositories", "gauge", "Repositories per feed.");
    for (const auto& f : *usage) {
      sample(out, "registryctl_feed_repositories", "feed=\"" + label(f.feed) + "\"",
             static_cast<uint64_t>(f.repositories));
    }
    header(out, "registryctl_feed_blobs", "gauge", "Distinct blobs linked into each feed.");
    for (const auto& f : *usage) {
      sample(out, "registryctl_feed_blobs", "feed=\"" + label(f.feed) + "\"", static_cast<uint64_t>(f.blobs));
    }
    header(out, "registryctl_feed_bytes", "gauge", "Bytes of the distinct blobs linked into each feed.");
    for (const auto& f : *usage) {
      sample(out, "registryctl_feed_bytes", "feed=\"" + label(f.feed) + "\"", f.bytes);
    }
  }
  std::string blobs;
  std::string bytes;
  for (int64_t id : registry.store_ids()) {
    if (auto stats = metadata.store_stats(id)) {
      std::string labels = "store=\"" + std::to_string(id) + "\"";
      sample(blobs, "registryctl_store_blobs", labels, static_cast<uint64_t>(stats->blob_count));
      sample(bytes, "registryctl_store_bytes", labels, stats->total_bytes);
    }
  }
  header(out, "registryctl_store_blobs", "gauge", "Blobs held by each store.");
  out += blobs;
  header(out, "registryctl_store_bytes", "gauge", "Bytes held by each store.");
  out += bytes;
  m_gauge_text = out;
  m_gauge_at_ms = now;
  return out;
}

std::string
Metrics::render(service::Registry& registry)
{
  std::string out;
  header(out, "registryctl_build_info", "gauge", "Version of the running server.");
  sample(out, "registryctl_build_info", std::string("version=\"") + k_version + "\"", 1);
  header(out, "registryctl_start_time_seconds", "gauge", "Start of the server, Unix time.");
  sample(out, "registryctl_start_time_seconds", "", static_cast<uint64_t>(m_started_at));
  {
    std::lock_guard lock(m_mutex);
    header(out, "registryctl_http_requests_total", "counter", "Requests answered, by method, route and status.");
    for (const auto& [key, count] : m_requests) {
      const auto& [method, route, status] = key;
      sample(out, "registryctl_http_requests_total",
             "method=\"" + method + "\",route=\"" + route + "\",status=\"" + std::to_string(status) + "\"",
             count);
    }
    header(out, "registryctl_http_request_duration_seconds", "histogram",
           "Time from the request's arrival to the end of its response.");
    for (const auto& [key, h] : m_durations) {
      std::string labels = "method=\"" + key.first + "\",route=\"" + key.second + "\"";
      uint64_t cumulative = 0;
      for (size_t i = 0; i < k_buckets.size(); ++i) {
        cumulative += h.buckets[i];
        sample(out, "registryctl_http_request_duration_seconds_bucket",
               labels + ",le=\"" + number(k_buckets[i]) + "\"", cumulative);
      }
      sample(out, "registryctl_http_request_duration_seconds_bucket", labels + ",le=\"+Inf\"", h.count);
      out += "registryctl_http_request_duration_seconds_sum{" + labels + "} " + number(h.sum) + "\n";
      sample(out, "registryctl_http_request_duration_seconds_count", labels, h.count);
    }
  }
  struct Counter {
    const char* name;
    const char* help;
    uint64_t value;
  };
  const Counter counters[] = {
    {"registryctl_http_received_bytes_total", "Request body bytes received.", m_received.load()},
    {"registryctl_http_sent_bytes_total", "Response body bytes sent.", m_sent.load()},
    {"registryctl_gc_runs_total", "Runs of the scheduled cleanup job.", m_gc_runs.load()},
    {"registryctl_gc_failures_total", "Cleanup runs that failed.", m_gc_failures.load()},
    {"registryctl_gc_blobs_removed_total", "Blobs removed by the cleanup job.", m_gc_blobs.load()},
    {"registryctl_gc_bytes_freed_total", "Bytes freed by the cleanup job.", m_gc_bytes.load()},
  };
  for (const auto& c : counters) {
    header(out, c.name, "counter", c.help);
    sample(out, c.name, "", c.value);
  }
  auto activity = registry.connector_activity();
  using Activity = service::Registry::ConnectorActivity;
  struct PerConnector {
    const char* name;
    uint64_t Activity::*count;
    const char* help;
  };
  const PerConnector per_connector[] = {
    {"registryctl_connector_manifest_fetches_total", &Activity::manifest_fetches,
     "Manifests fetched from upstream and cached."},
    {"registryctl_connector_blob_fetches_total", &Activity::blob_fetches,
     "Blobs fetched from upstream, verified and cached."},
    {"registryctl_connector_blob_bytes_total", &Activity::blob_bytes, "Bytes of the blobs fetched from upstream."},
    {"registryctl_connector_revalidations_total", &Activity::revalidations,
     "Upstream HEAD checks of cached tags past their TTL."},
    {"registryctl_connector_stale_served_total", &Activity::stale_served,
     "Cached copies served because upstream failed."},
    {"registryctl_connector_upstream_failures_total", &Activity::upstream_failures,
     "Failed upstream requests: errors, 429, timeouts, wrong digests."},
  };
  for (const auto& metric : per_connector) {
    header(out, metric.name, "counter", metric.help);
    for (const auto& [url, counts] : activity) {
      sample(out, metric.name, "connector=\"" + label(url) + "\"", counts.*metric.count);
    }
  }
  out += gauges(registry);
  return out;
}

} // namespace registry::server
