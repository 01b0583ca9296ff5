// GC at scale: a store with N blobs (half referenced by manifests, half
// garbage), then a dry run and a real collection, while a second thread keeps
// pushing blobs (50 a second) and records the slowest push.
//
//   build/bench/gc_bench [N] [--no-pushes]     (N defaults to 100000)
//
// Blob files are written without fsync and rows inserted directly through the
// metadata layer, so populating is fast; the collection itself is the real one.

#include "common/metadata/metadata.hpp"
#include "common/service/garbage_collector.hpp"
#include "common/service/registry.hpp"
#include "common/storage/fs_blob_store.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>
#include <thread>

using namespace registry;
namespace fs = std::filesystem;

namespace {

double
seconds_since(std::chrono::steady_clock::time_point start)
{
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

} // namespace

int
main(int argc, char** argv)
{
  long n = argc > 1 ? std::atol(argv[1]) : 100000;
  fs::path dir = fs::temp_directory_path() / ("registryctl-gc-bench-" + std::to_string(::getpid()));
  auto opened = service::Registry::open(dir);
  if (!opened) {
    std::fprintf(stderr, "cannot open %s: %s\n", dir.c_str(), opened.error().message.c_str());
    return 1;
  }
  auto& reg = **opened;
  auto feed = reg.create_feed("bench", "", "pull");
  auto& md = reg.metadata();
  auto start = std::chrono::steady_clock::now();
  int64_t old = reg.now() - 7200; // past the 1 h grace
  metadata::NewManifest manifest;
  for (long i = 0; i < n; ++i) {
    std::string content = "blob " + std::to_string(i);
    auto digest = oci::Digest::of(content);
    std::string key = storage::FsBlobStore::key_for(digest);
    fs::create_directories((dir / "store" / key).parent_path());
    std::ofstream(dir / "store" / key, std::ios::binary) << content;
    (void)md.record_blob(feed->id, "bench/app", 1, digest.str(), content.size(), key, old);
    if (i % 2 == 0) {
      manifest.references.push_back({metadata::ManifestReferenceRecord::Kind::blob, digest.str()});
      if (manifest.references.size() == 10) {
        manifest.bytes = "{\"n\":" + std::to_string(i) + "}";
        manifest.digest = oci::Digest::of(manifest.bytes).str();
        manifest.media_type = "application/vnd.oci.image.manifest.v1+json";
        (void)md.put_manifest(feed->id, "bench/app", manifest, "t" + std::to_string(i), old);
        manifest.references.clear();
      }
    }
  }
  std::printf("populated %ld blobs (%ld referenced) in %.1fs\n", n, n / 2, seconds_since(start));

  service::GcOptions options;
  options.dry_run = true;
  start = std::chrono::steady_clock::now();
  auto plan = service::collect_garbage(reg, options);
  std::printf("dry run: %llu blobs would go, %.2fs\n",
              static_cast<unsigned long long>(plan ? plan->blobs_removed : 0), seconds_since(start));

  std::atomic<bool> stop{false};
  std::atomic<long> pushes{0};
  std::atomic<double> slowest{0};
  bool with_pushes = !(argc > 2 && std::string(argv[2]) == "--no-pushes");
  // A steady 50 pushes a second, like a busy CI: unpaced, the pusher would
  // take as much of the write lock as gc and the figure would measure both.
  std::thread pusher([&] {
    auto next = std::chrono::steady_clock::now();
    for (long i = 0; !stop && with_pushes; ++i) {
      next += std::chrono::milliseconds(20);
      std::this_thread::sleep_until(next);
      std::string content = "during gc " + std::to_string(i);
      auto t0 = std::chrono::steady_clock::now();
      auto pushed = reg.push_blob("bench/live", oci::Digest::of(content).str(),
                                  [&](const storage::ByteSink& sink) { return sink(content.data(), content.size()); });
      double took = seconds_since(t0);
      if (pushed) {
        ++pushes;
        if (took > slowest) {
          slowest = took;
        }
      }
    }
  });
  options.dry_run = false;
  start = std::chrono::steady_clock::now();
  auto report = service::collect_garbage(reg, options);
  double gc_seconds = seconds_since(start);
  stop = true;
  pusher.join();
  if (!report) {
    std::fprintf(stderr, "gc failed: %s\n", report.error().message.c_str());
    return 1;
  }
  std::printf("gc: removed %llu blobs (%llu bytes) in %.2fs; %ld pushes meanwhile, slowest %.1f ms\n",
              static_cast<unsigned long long>(report->blobs_removed),
              static_cast<unsigned long long>(report->bytes_freed), gc_seconds, pushes.load(),
              slowest.load() * 1000);
  std::error_code ec;
  fs::remove_all(dir, ec);
  return 0;
}
