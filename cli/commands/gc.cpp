// `registryctl gc` and `registryctl fsck`

#include "cli/commands/commands.hpp"
#include "cli/exit_codes.hpp"
#include "cli/progress.hpp"
#include "common/service/garbage_collector.hpp"
#include "common/util/strings.hpp"

#include <cstdio>
#include <iostream>

namespace registry::cli {

namespace {

struct GcFlags {
  std::string feed;
  bool dry_run = false;
  std::string grace = "1h";
  std::string upload_expiry = "24h";
  std::string untagged_older_than;
};

struct FsckFlags {
  bool verify_content = false;
  bool repair = false;
  std::string grace = "1h";
};

} // namespace

void
add_gc_commands(CLI::App& app, AppContext& ctx)
{
  auto flags = std::make_shared<GcFlags>();
  auto* gc = app.add_subcommand(
    "gc", "Remove unreferenced blobs and abandoned uploads, expire cached content past its feed's "
          "cache retention (online: safe while clients push)");
  gc->add_option("--feed", flags->feed, "Only blobs linked to this feed")->type_name("FEED");
  gc->add_flag("--dry-run", flags->dry_run, "Report what would be removed; change nothing");
  gc->add_option("--grace", flags->grace, "Keep blobs used within this period")
    ->type_name("DURATION")
    ->envname("REGISTRYCTL_GC_GRACE")
    ->capture_default_str();
  gc->add_option("--upload-expiry", flags->upload_expiry, "Purge uploads idle for longer")
    ->type_name("DURATION")
    ->envname("REGISTRYCTL_UPLOAD_EXPIRY")
    ->capture_default_str();
  gc->add_option("--untagged-older-than", flags->untagged_older_than,
                 "Also delete untagged manifests older than this that no index references")
    ->type_name("DURATION");
  gc->callback([&ctx, flags] {
    service::GcOptions options;
    options.feed = flags->feed;
    options.dry_run = flags->dry_run;
    options.grace = duration_flag(flags->grace, "--grace");
    options.upload_expiry = duration_flag(flags->upload_expiry, "--upload-expiry");
    if (!flags->untagged_older_than.empty()) {
      options.untagged_older_than = duration_flag(flags->untagged_older_than, "--untagged-older-than");
    }
    // json output is for scripts: no progress even on a terminal
    Progress progress(ctx.format() == OutputFormat::table && Progress::stderr_is_terminal());
    options.progress = progress.callback();
    auto report = unwrap(service::collect_garbage(ctx.registry(), options));
    progress.finish();
    nlohmann::json doc = {{"dry_run", report.dry_run},
                          {"blobs_removed", report.blobs_removed},
                          {"bytes_freed", report.bytes_freed},
                          {"manifests_removed", report.manifests_removed},
                          {"uploads_purged", report.uploads_purged},
                          {"quarantine_recovered", report.quarantine_recovered},
                          {"cached_manifests_expired", report.cached_manifests_expired},
                          {"cached_tags_expired", report.cached_tags_expired},
                          {"expired_manifests", report.expired_manifests},
                          {"seconds", report.seconds},
                          {"removed_digests", report.removed_digests}};
    ctx.print(doc, [&] {
      std::printf("%s%llu blobs (%s), %llu manifests, %llu uploads in %.2fs\n",
                  report.dry_run ? "would remove " : "removed ",
                  static_cast<unsigned long long>(report.blobs_removed),
                  util::human_size(report.bytes_freed).c_str(),
                  static_cast<unsigned long long>(report.manifests_removed),
                  static_cast<unsigned long long>(report.uploads_purged), report.seconds);
      if (report.cached_manifests_expired > 0) {
        std::printf("%s%llu cached manifests (%llu tags) past their feed's cache retention\n",
                    report.dry_run ? "would expire " : "expired ",
                    static_cast<unsigned long long>(report.cached_manifests_expired),
                    static_cast<unsigned long long>(report.cached_tags_expired));
        for (const auto& name : report.expired_manifests) {
          std::printf("  %s\n", name.c_str());
        }
      }
    });
  });

  auto fsck_flags = std::make_shared<FsckFlags>();
  auto* fsck = app.add_subcommand("fsck", "Check that metadata and stored bytes agree");
  fsck->add_flag("--verify-content", fsck_flags->verify_content, "Re-hash every blob");
  fsck->add_flag("--repair", fsck_flags->repair,
                 "Remove orphaned bytes (no row) older than the grace period");
  fsck->add_option("--grace", fsck_flags->grace, "Orphans younger than this are left alone")
    ->type_name("DURATION")
    ->envname("REGISTRYCTL_GC_GRACE")
    ->capture_default_str();
  fsck->callback([&ctx, fsck_flags] {
    service::FsckOptions options;
    options.verify_content = fsck_flags->verify_content;
    options.repair = fsck_flags->repair;
    options.grace = duration_flag(fsck_flags->grace, "--grace");
    Progress progress(ctx.format() == OutputFormat::table && Progress::stderr_is_terminal());
    options.progress = progress.callback();
    auto report = unwrap(service::check_integrity(ctx.registry(), options));
    progress.finish();
    nlohmann::json problems = nlohmann::json::array();
    std::vector<std::vector<std::string>> rows;
    for (const auto& p : report.problems) {
      problems.push_back({{"kind", p.kind}, {"subject", p.subject}, {"detail", p.detail}, {"repaired", p.repaired}});
      rows.push_back({p.kind, p.subject, p.detail, p.repaired ? "repaired" : ""});
    }
    nlohmann::json doc = {{"clean", report.clean()},
                          {"blobs_checked", report.blobs_checked},
                          {"files_checked", report.files_checked},
                          {"seconds", report.seconds},
                          {"problems", problems}};
    ctx.print(doc, [&] {
      std::printf("checked %llu blobs and %llu files in %.2fs: %s\n",
                  static_cast<unsigned long long>(report.blobs_checked),
                  static_cast<unsigned long long>(report.files_checked), report.seconds,
                  report.problems.empty() ? "no problems" : "problems found");
      if (!rows.empty()) {
        print_table({"PROBLEM", "SUBJECT", "DETAIL", ""}, rows);
      }
    });
    if (!report.clean()) {
      std::cerr << "registryctl: error: fsck found problems that were not repaired\n";
      ctx.exit_status = k_exit_failure;
    }
  });
}

} // namespace registry::cli
