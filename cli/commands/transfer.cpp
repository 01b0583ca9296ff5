// `registryctl export` and `registryctl import`: OCI image layouts as
// zstd-compressed tar archives (backup, migration, air-gapped transfer).

#include "cli/commands/commands.hpp"
#include "common/service/transfer.hpp"
#include "common/util/strings.hpp"
#include "common/util/zstd.hpp"

#include <chrono>
#include <iostream>
#include <thread>
#include <unistd.h>

namespace registry::cli {

namespace {

// A one-line progress report on stderr, redrawn with '\r' at most every 200 ms,
// and only when stderr is a terminal.
class ProgressLine
{
public:
  explicit ProgressLine(std::string verb) : m_verb(std::move(verb)), m_enabled(::isatty(2) == 1) {}
  ~ProgressLine() { done(); }

  service::TransferProgress
  callback()
  {
    if (!m_enabled) {
      return {};
    }
    return [this](uint64_t bytes, uint64_t objects) { update(bytes, objects); };
  }

  void
  done()
  {
    if (m_enabled && m_drawn) {
      std::cerr << "\r\033[K" << std::flush;
      m_drawn = false;
    }
  }

private:
  void
  update(uint64_t bytes, uint64_t objects)
  {
    auto now = std::chrono::steady_clock::now();
    if (m_drawn && now - m_last < std::chrono::milliseconds(200)) {
      return;
    }
    m_last = now;
    m_drawn = true;
    std::cerr << "\r\033[K" << m_verb << " " << util::human_size(bytes) << ", " << objects
              << " objects" << std::flush;
  }

  std::string m_verb;
  bool m_enabled;
  bool m_drawn = false;
  std::chrono::steady_clock::time_point m_last;
};

nlohmann::json
stats_json(const service::TransferStats& stats)
{
  return {{"manifests", stats.manifests},
          {"blobs", stats.blobs},
          {"bytes", stats.bytes},
          {"skipped", stats.skipped}};
}

} // namespace

void
add_transfer_commands(CLI::App& app, AppContext& ctx)
{
  struct ExportArgs {
    std::string source;
    std::string file;
    int level = 3;
    int threads = -1;
  };
  auto ex = std::make_shared<ExportArgs>();
  auto* export_cmd = app.add_subcommand(
    "export", "Write a feed, repository or image as an OCI image layout in a tar.zst archive");
  export_cmd->add_option("source", ex->source, "FEED, FEED/REPO, FEED/REPO:TAG or FEED/REPO@DIGEST")
    ->required();
  export_cmd->add_option("-o,--file", ex->file, "Archive to write ('-' for standard output)")
    ->required();
  export_cmd->add_option("--level", ex->level, "zstd compression level")
    ->check(CLI::Range(1, 19))
    ->capture_default_str();
  export_cmd->add_option("--threads", ex->threads,
                         "zstd worker threads (default: one per CPU, 0: compress inline)");
  export_cmd->callback([&ctx, ex] {
    auto& registry = ctx.registry();
    bool to_stdout = ex->file == "-";
    if (to_stdout && ::isatty(1) == 1) {
      throw CommandError(make_error(ErrorCode::invalid_argument,
                                    "refusing to write an archive to a terminal; redirect "
                                    "standard output or use -o FILE"));
    }
    std::unique_ptr<util::OutputStream> file;
    if (to_stdout) {
      file = std::make_unique<util::FdOutputStream>(1);
    } else {
      file = unwrap(util::AtomicFileOutputStream::create(ex->file));
    }
    int threads = ex->threads >= 0 ? ex->threads
                                   : static_cast<int>(std::max(1U, std::thread::hardware_concurrency()));
    auto zstd = unwrap(util::ZstdOutputStream::create(*file, ex->level, threads));
    ProgressLine progress("exporting");
    service::ExportOptions options{ex->source, progress.callback()};
    auto stats = unwrap(service::export_archive(registry, options, *zstd));
    unwrap(zstd->finish()); // ends the frame, then fsyncs and renames the file
    progress.done();
    auto doc = stats_json(stats);
    doc["source"] = ex->source;
    doc["file"] = ex->file;
    // With the archive on standard output, the summary goes to stderr.
    std::ostream& out = to_stdout ? std::cerr : std::cout;
    if (ctx.format() == OutputFormat::json) {
      out << doc.dump(2) << "\n";
    } else {
      out << "exported " << ex->source << ": " << stats.manifests << " manifests, "
          << stats.blobs << " blobs, " << util::human_size(stats.bytes) << " to " << ex->file
          << "\n";
    }
  });

  struct ImportArgs {
    std::string file;
    std::string feed;
    std::string repository;
  };
  auto im = std::make_shared<ImportArgs>();
  auto* import_cmd = app.add_subcommand(
    "import", "Import an OCI image layout archive (.tar.zst or .tar) into a feed");
  import_cmd->add_option("archive", im->file, "Archive to read ('-' for standard input)")
    ->required();
  import_cmd->add_option("--feed", im->feed, "Target feed")->required();
  import_cmd->add_option("--repository", im->repository,
                         "Repository inside the feed (required when the archive names only tags)");
  import_cmd->callback([&ctx, im] {
    auto& registry = ctx.registry();
    std::unique_ptr<util::InputStream> owned;
    util::FdInputStream standard_input(0);
    util::InputStream* in = &standard_input;
    if (im->file != "-") {
      owned = unwrap(util::FileInputStream::open(im->file));
      in = owned.get();
    }
    ProgressLine progress("importing");
    service::ImportOptions options{im->feed, im->repository, progress.callback()};
    auto stats = unwrap(service::import_archive(registry, options, *in));
    progress.done();
    auto doc = stats_json(stats);
    doc["feed"] = im->feed;
    ctx.print(doc, [&] {
      std::cout << "imported " << stats.manifests << " manifests and " << stats.blobs
                << " blobs (" << stats.skipped << " already present, "
                << util::human_size(stats.bytes) << " read) into " << im->feed << "\n";
    });
  });
}

} // namespace registry::cli
