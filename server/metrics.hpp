#pragma once

// The server's Prometheus metrics (text exposition format 0.0.4, GET /metrics):
// requests by method, route and status; request duration histograms by method
// and route; bytes received and sent; garbage collection runs and results; and,
// read from the metadata when scraped (cached for a few seconds, so frequent
// scrapes stay cheap), uploads in progress and repositories, blobs and bytes
// per feed.
//
// Thread-safety: all members may be called concurrently.

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <tuple>

namespace registry::service {
class Registry;
}

namespace registry::server {

class Metrics
{
public:
  Metrics();

  void record_request(const std::string& method, const char* route, int status, double seconds,
                      uint64_t received, uint64_t sent);
  // One run of the cleanup job.
  void record_gc(bool succeeded, uint64_t blobs_removed, uint64_t bytes_freed);

  // The exposition document.
  std::string render(service::Registry& registry);

  // Upper bounds of the duration histogram buckets, in seconds.
  static constexpr std::array<double, 12> k_buckets = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                       0.25,  0.5,   1,    2.5,   10,   60};

private:
  struct Histogram {
    std::array<uint64_t, k_buckets.size()> buckets{}; // not cumulative
    uint64_t count = 0;
    double sum = 0;
  };
  std::string gauges(service::Registry& registry);

  std::mutex m_mutex;
  std::map<std::tuple<std::string, std::string, int>, uint64_t> m_requests;
  std::map<std::pair<std::string, std::string>, Histogram> m_durations;
  std::atomic<uint64_t> m_received{0};
  std::atomic<uint64_t> m_sent{0};
  std::atomic<uint64_t> m_gc_runs{0};
  std::atomic<uint64_t> m_gc_failures{0};
  std::atomic<uint64_t> m_gc_blobs{0};
  std::atomic<uint64_t> m_gc_bytes{0};
  int64_t m_started_at;

  std::mutex m_gauge_mutex;
  std::string m_gauge_text;
  int64_t m_gauge_at_ms = 0;
};

} // namespace registry::server
