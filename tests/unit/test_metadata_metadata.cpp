#include "common/metadata/metadata.hpp"

#include "common/oci/digest.hpp"
#include "common/oci/media_types.hpp"
#include "common/util/uuid.hpp"
#include "tests/support/test_dir.hpp"
#include "tests/unit/unit_helpers.hpp"

#include <SQLiteCpp/Database.h>
#include <doctest/doctest.h>
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

using registry::ErrorCode;
using registry::metadata::ManifestReferenceRecord;
using registry::metadata::Metadata;
using registry::metadata::NewManifest;
using registry::oci::Digest;
using registry::test::code_of;
using registry::test::TestDir;
namespace mt = registry::oci::media_type;
namespace util = registry::util;

namespace {

constexpr int64_t k_now = 1'700'000'000;
constexpr int64_t k_store = 1; // the default store created by the first migration

std::unique_ptr<Metadata>
open_db(const TestDir& dir)
{
  auto db = Metadata::open(dir / "registry.db");
  REQUIRE_OK(db);
  return std::move(db).value();
}

std::string
digest_of(const std::string& bytes)
{
  return Digest::of(bytes).str();
}

// A manifest record over `bytes` (metadata does not parse them) referencing blobs
// and child manifests by digest.
NewManifest
manifest_record(const std::string& bytes, const std::vector<std::string>& blobs = {},
                const std::vector<std::string>& children = {})
{
  NewManifest m;
  m.digest = digest_of(bytes);
  m.media_type = children.empty() ? std::string(mt::oci_manifest) : std::string(mt::oci_index);
  m.bytes = bytes;
  for (const auto& b : blobs) {
    m.references.push_back({ManifestReferenceRecord::Kind::blob, b});
  }
  for (const auto& c : children) {
    m.references.push_back({ManifestReferenceRecord::Kind::manifest, c});
  }
  return m;
}

std::vector<std::string>
tag_names(const std::vector<registry::metadata::TagRow>& rows)
{
  std::vector<std::string> out;
  for (const auto& row : rows) {
    out.push_back(row.name);
  }
  return out;
}

// A database with feed "team" and one blob recorded in team/app.
struct Fixture {
  TestDir dir;
  std::unique_ptr<Metadata> db = open_db(dir);
  registry::metadata::FeedRow feed;
  int64_t repo_id = 0;
  std::string blob = digest_of("layer");
  std::string config = digest_of("config");

  Fixture()
  {
    auto f = db->create_feed("team", "the team", k_store, "pull", k_now);
    REQUIRE_OK(f);
    feed = *f;
    for (const auto& d : {blob, config}) {
      auto row = db->record_blob(feed.id, "team/app", k_store, d, 5, "blobs/key-of-" + d, k_now);
      REQUIRE_OK(row);
    }
    auto repo = db->find_repository("team/app");
    REQUIRE_OK(repo);
    REQUIRE(repo->has_value());
    repo_id = (*repo)->id;
  }

  // Puts a manifest referencing the fixture's blobs, tagged `tag`; returns its digest.
  std::string
  put_image(const std::string& bytes, const std::string& tag)
  {
    auto put = db->put_manifest(feed.id, "team/app", manifest_record(bytes, {config, blob}), tag,
                                k_now);
    REQUIRE_OK(put);
    return digest_of(bytes);
  }
};

} // namespace

TEST_SUITE("metadata")
{
  TEST_CASE("metadata::Metadata::open")
  {
    TestDir dir;

    SUBCASE("a new database has every migration applied and the default store")
    {
      auto db = open_db(dir);
      CHECK(db->schema_version() >= 1);
      auto stores = db->list_stores();
      REQUIRE_OK(stores);
      REQUIRE(stores->size() == 1);
      CHECK((*stores)[0].id == k_store);
      CHECK((*stores)[0].name == "default");
      CHECK((*stores)[0].type == "filesystem");
    }

    SUBCASE("reopening keeps the schema version and the data")
    {
      int version = 0;
      {
        auto db = open_db(dir);
        version = db->schema_version();
        REQUIRE_OK(db->create_feed("kept", "", k_store, "none", k_now));
      }
      auto db = open_db(dir);
      CHECK(db->schema_version() == version);
      auto feed = db->find_feed("kept");
      REQUIRE_OK(feed);
      CHECK(feed->has_value());
      auto stores = db->list_stores();
      REQUIRE_OK(stores);
      CHECK(stores->size() == 1);
    }

    SUBCASE("a schema newer than this program knows is corrupt")
    {
      int version = 0;
      {
        auto db = open_db(dir);
        version = db->schema_version();
      }
      {
        SQLite::Database raw((dir / "registry.db").string(), SQLite::OPEN_READWRITE);
        raw.exec("PRAGMA user_version = " + std::to_string(version + 1));
      }
      CHECK(code_of(Metadata::open(dir / "registry.db")) == ErrorCode::corrupt);
    }

    SUBCASE("a path that cannot be opened is io_error")
    {
      CHECK(code_of(Metadata::open(dir / "missing" / "registry.db")) == ErrorCode::io_error);
      CHECK(code_of(Metadata::open(dir.path())) == ErrorCode::io_error);
    }
  }

  TEST_CASE("metadata::Metadata::release_idle_memory")
  {
    TestDir dir;
    auto db = open_db(dir);
    auto feed = db->create_feed("idle", "", k_store, "none", k_now);
    REQUIRE_OK(feed);
    // A read inside a write transaction leases a second connection: two pooled.
    auto committed = db->commit_blob(feed->id, "idle/app", k_store, digest_of("a"), 1,
                                     [&]() -> registry::Result<std::string> {
                                       REQUIRE_OK(db->find_feed("idle"));
                                       return std::string("blobs/a");
                                     },
                                     k_now);
    REQUIRE_OK(committed);
    sqlite3_int64 busy = sqlite3_memory_used();

    CHECK(db->release_idle_memory(1) == 1);
    CHECK(db->release_idle_memory(0) == 1);
    CHECK(db->release_idle_memory(0) == 0);
    CHECK(sqlite3_memory_used() < busy);
    // The next caller opens a fresh connection and finds everything there.
    auto blob = db->find_blob(k_store, digest_of("a"));
    REQUIRE_OK(blob);
    CHECK(blob->has_value());
  }

  TEST_CASE("metadata::Metadata::checkpoint_in_background")
  {
    TestDir dir;
    auto db = open_db(dir);
    db->checkpoint_in_background();
    db->checkpoint_in_background(); // a second call changes nothing
    auto size_of = [&](const char* name) {
      std::error_code ec;
      auto size = std::filesystem::file_size(dir / name, ec);
      return ec ? uintmax_t{0} : size;
    };
    // Every event overflows into a second page: about 5.4 pages logged each.
    std::string detail(5000, 'x');
    auto record = [&](int count) {
      for (int i = 0; i < count; ++i) {
        REQUIRE_OK(db->record_event({0, k_now, "test.event", "-", "", "subject", detail}));
      }
    };

    SUBCASE("the thread checkpoints, and the next writer starts the WAL over")
    {
      // Four rounds over the threshold with pauses. The commits only signal;
      // the database file grows only through checkpoints.
      uintmax_t checkpointed = size_of("registry.db");
      for (int round = 0; round < 4; ++round) {
        record(300);
        for (int i = 0; i < 1000 && size_of("registry.db") <= checkpointed; ++i) {
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        CHECK(size_of("registry.db") > checkpointed);
        checkpointed = size_of("registry.db");
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      CHECK(checkpointed > 4 * 1024 * 1024);
      // Without a restart the WAL would hold all four rounds, about 26 MiB.
      CHECK(size_of("registry.db-wal") < 14 * 1024 * 1024);
      auto events = db->list_events("", 0, 2000);
      REQUIRE_OK(events);
      CHECK(events->size() == 1200);
    }

    SUBCASE("a writer that never pauses does not keep the WAL from starting over")
    {
      // The lock-free pass never catches up with this writer; the pass under
      // the write lock does, so the WAL starts over while it writes. Without
      // any restart it would reach about 33 MiB.
      record(1500);
      CHECK(size_of("registry.db-wal") < 28 * 1024 * 1024);
    }
  }

  TEST_CASE("metadata::Metadata::create_user")
  {
    TestDir dir;

    SUBCASE("the first user is the admin, the next ones are not")
    {
      auto db = open_db(dir);
      auto first = db->create_user("ann", "hash-a", k_now);
      REQUIRE_OK(first);
      CHECK(first->admin);
      auto second = db->create_user("bob", "hash-b", k_now);
      REQUIRE_OK(second);
      CHECK_FALSE(second->admin);
      auto stored = db->find_user("ann");
      REQUIRE_OK(stored);
      REQUIRE(stored->has_value());
      CHECK((*stored)->admin);
      CHECK(code_of(db->create_user("ann", "hash-c", k_now)) == ErrorCode::already_exists);
    }

    SUBCASE("two first users added at once by two processes: one admin")
    {
      // Two Metadata objects stand for two processes on one database.
      for (int round = 0; round < 20; ++round) {
        TestDir fresh;
        auto one = open_db(fresh);
        auto other = open_db(fresh);
        std::thread racer([&] { REQUIRE_OK(other->create_user("racer", "hash-r", k_now)); });
        REQUIRE_OK(one->create_user("local", "hash-l", k_now));
        racer.join();
        auto users = one->list_users();
        REQUIRE_OK(users);
        REQUIRE(users->size() == 2);
        CHECK(std::count_if(users->begin(), users->end(), [](const auto& u) { return u.admin; }) == 1);
      }
    }
  }

  TEST_CASE("metadata::Metadata feeds")
  {
    TestDir dir;
    auto db = open_db(dir);

    SUBCASE("a created feed can be found and listed")
    {
      auto created = db->create_feed("team", "desc", k_store, "none", k_now);
      REQUIRE_OK(created);
      CHECK(created->id > 0);
      CHECK(created->name == "team");
      CHECK(created->description == "desc");
      CHECK(created->store_id == k_store);
      CHECK(created->anonymous_access == "none");
      CHECK(created->created_at == k_now);

      auto found = db->find_feed("team");
      REQUIRE_OK(found);
      REQUIRE(found->has_value());
      CHECK((*found)->id == created->id);
      CHECK((*found)->description == "desc");
      CHECK((*found)->anonymous_access == "none");
      CHECK((*found)->created_at == k_now);
    }

    SUBCASE("a missing feed is nullopt")
    {
      auto found = db->find_feed("nope");
      REQUIRE_OK(found);
      CHECK_FALSE(found->has_value());
    }

    SUBCASE("a taken name is already_exists")
    {
      REQUIRE_OK(db->create_feed("team", "", k_store, "pull", k_now));
      CHECK(code_of(db->create_feed("team", "other", k_store, "none", k_now))
            == ErrorCode::already_exists);
      auto feeds = db->list_feeds();
      REQUIRE_OK(feeds);
      CHECK(feeds->size() == 1);
    }

    SUBCASE("feeds are listed by name")
    {
      for (const char* name : {"zeta", "alpha", "mid"}) {
        REQUIRE_OK(db->create_feed(name, "", k_store, "pull", k_now));
      }
      auto feeds = db->list_feeds();
      REQUIRE_OK(feeds);
      REQUIRE(feeds->size() == 3);
      CHECK((*feeds)[0].name == "alpha");
      CHECK((*feeds)[1].name == "mid");
      CHECK((*feeds)[2].name == "zeta");
    }

    SUBCASE("update_feed changes description and anonymous access")
    {
      REQUIRE_OK(db->create_feed("team", "old", k_store, "pull", k_now));
      auto updated = db->update_feed("team", "new", "none");
      REQUIRE_OK(updated);
      CHECK(updated->description == "new");
      CHECK(updated->anonymous_access == "none");
      CHECK(updated->created_at == k_now);
      auto found = db->find_feed("team");
      REQUIRE_OK(found);
      REQUIRE(found->has_value());
      CHECK((*found)->description == "new");
    }

    SUBCASE("updating or deleting a missing feed is name_unknown")
    {
      CHECK(code_of(db->update_feed("nope", "", "pull")) == ErrorCode::name_unknown);
      CHECK(code_of(db->delete_feed("nope")) == ErrorCode::name_unknown);
    }
  }

  TEST_CASE("metadata::Metadata blobs")
  {
    Fixture f;

    SUBCASE("record_blob creates the repository and links the blob to it")
    {
      auto linked = f.db->find_linked_blob(f.repo_id, f.blob);
      REQUIRE_OK(linked);
      REQUIRE(linked->has_value());
      CHECK((*linked)->digest == f.blob);
      CHECK((*linked)->size == 5);
      CHECK((*linked)->store_id == k_store);
      CHECK((*linked)->object_key == "blobs/key-of-" + f.blob);
      CHECK((*linked)->created_at == k_now);
      CHECK((*linked)->last_touched_at == k_now);

      auto repo = f.db->find_repository("team/app");
      REQUIRE_OK(repo);
      REQUIRE(repo->has_value());
      CHECK((*repo)->feed_id == f.feed.id);
      CHECK((*repo)->store_id == k_store);
      CHECK((*repo)->name == "team/app");
    }

    SUBCASE("a blob is not linked to another repository")
    {
      auto other = f.db->record_blob(f.feed.id, "team/other", k_store, digest_of("x"), 1,
                                     "blobs/x", k_now);
      REQUIRE_OK(other);
      auto repo = f.db->find_repository("team/other");
      REQUIRE_OK(repo);
      REQUIRE(repo->has_value());
      auto linked = f.db->find_linked_blob((*repo)->id, f.blob);
      REQUIRE_OK(linked);
      CHECK_FALSE(linked->has_value());
      // but the store knows it
      auto in_store = f.db->find_blob(k_store, f.blob);
      REQUIRE_OK(in_store);
      CHECK(in_store->has_value());
    }

    SUBCASE("recording the same blob again refreshes its use time and keeps one row")
    {
      auto again = f.db->record_blob(f.feed.id, "team/app2", k_store, f.blob, 5,
                                     "blobs/key-of-" + f.blob, k_now + 100);
      REQUIRE_OK(again);
      CHECK(again->created_at == k_now);
      CHECK(again->last_touched_at == k_now + 100);
      auto row = f.db->find_blob(k_store, f.blob);
      REQUIRE_OK(row);
      REQUIRE(row->has_value());
      CHECK((*row)->id == again->id);
    }

    SUBCASE("record_blob for a vanished feed is name_unknown")
    {
      CHECK(code_of(f.db->record_blob(f.feed.id + 100, "gone/app", k_store, f.blob, 5, "k",
                                      k_now))
            == ErrorCode::name_unknown);
    }

    SUBCASE("mount_blob links a blob from a repository that has it")
    {
      auto mounted = f.db->mount_blob(f.repo_id, f.feed.id, "team/copy", f.blob, k_now + 5);
      REQUIRE_OK(mounted);
      CHECK(*mounted);
      auto repo = f.db->find_repository("team/copy");
      REQUIRE_OK(repo);
      REQUIRE(repo->has_value());
      auto linked = f.db->find_linked_blob((*repo)->id, f.blob);
      REQUIRE_OK(linked);
      REQUIRE(linked->has_value());
      CHECK((*linked)->last_touched_at == k_now + 5);
    }

    SUBCASE("mount_blob from a repository without the blob changes nothing")
    {
      auto mounted = f.db->mount_blob(f.repo_id, f.feed.id, "team/copy", digest_of("absent"),
                                      k_now);
      REQUIRE_OK(mounted);
      CHECK_FALSE(*mounted);
      auto repo = f.db->find_repository("team/copy");
      REQUIRE_OK(repo);
      CHECK_FALSE(repo->has_value());
    }

    SUBCASE("unlink_blob removes the link once, then blob_unknown")
    {
      CHECK_OK(f.db->unlink_blob(f.repo_id, f.blob));
      auto linked = f.db->find_linked_blob(f.repo_id, f.blob);
      REQUIRE_OK(linked);
      CHECK_FALSE(linked->has_value());
      CHECK(code_of(f.db->unlink_blob(f.repo_id, f.blob)) == ErrorCode::blob_unknown);
      // the blob row stays for gc
      auto row = f.db->find_blob(k_store, f.blob);
      REQUIRE_OK(row);
      CHECK(row->has_value());
    }

    SUBCASE("touch_blob refreshes the use time only when it is over a minute old")
    {
      auto row = f.db->find_blob(k_store, f.blob);
      REQUIRE_OK(row);
      REQUIRE(row->has_value());
      REQUIRE_OK(f.db->touch_blob((*row)->id, k_now + 30));
      auto after_30 = f.db->find_blob(k_store, f.blob);
      REQUIRE_OK(after_30);
      CHECK((*after_30)->last_touched_at == k_now);
      REQUIRE_OK(f.db->touch_blob((*row)->id, k_now + 61));
      auto after_61 = f.db->find_blob(k_store, f.blob);
      REQUIRE_OK(after_61);
      CHECK((*after_61)->last_touched_at == k_now + 61);
    }

    SUBCASE("remove_unrecorded runs the removal only for a key no row names, in a write transaction")
    {
      int calls = 0;
      auto remove = [&]() -> registry::Result<void> {
        ++calls;
        // The write lock is held: another connection cannot start writing.
        SQLite::Database other((f.dir / "registry.db").string(), SQLite::OPEN_READWRITE);
        CHECK_THROWS(other.exec("BEGIN IMMEDIATE"));
        return registry::ok();
      };
      auto named = f.db->remove_unrecorded(k_store, "blobs/key-of-" + f.blob, remove);
      REQUIRE_OK(named);
      CHECK_FALSE(*named);
      CHECK(calls == 0);
      auto stray = f.db->remove_unrecorded(k_store, "blobs/stray", remove);
      REQUIRE_OK(stray);
      CHECK(*stray);
      CHECK(calls == 1);
      auto failing = f.db->remove_unrecorded(k_store, "blobs/stray", [] {
        return registry::Result<void>(registry::fail(ErrorCode::io_error, "disk"));
      });
      CHECK(code_of(failing) == ErrorCode::io_error);
    }
  }

  TEST_CASE("metadata::Metadata::put_manifest")
  {
    Fixture f;

    SUBCASE("a manifest whose blobs are linked is stored with its references and tag")
    {
      const std::string bytes = R"({"image":1})";
      auto put = f.db->put_manifest(f.feed.id, "team/app", manifest_record(bytes, {f.config, f.blob}),
                                    "latest", k_now + 1);
      REQUIRE_OK(put);
      CHECK(put->id == f.repo_id);

      auto row = f.db->find_manifest(f.repo_id, digest_of(bytes), true);
      REQUIRE_OK(row);
      REQUIRE(row->has_value());
      CHECK((*row)->digest == digest_of(bytes));
      CHECK((*row)->media_type == mt::oci_manifest);
      CHECK((*row)->bytes == bytes);
      CHECK((*row)->size == bytes.size());
      CHECK((*row)->pushed_at == k_now + 1);

      auto without_bytes = f.db->find_manifest(f.repo_id, digest_of(bytes), false);
      REQUIRE_OK(without_bytes);
      REQUIRE(without_bytes->has_value());
      CHECK((*without_bytes)->bytes.empty());
      CHECK((*without_bytes)->size == bytes.size());

      auto tagged = f.db->find_tagged_manifest(f.repo_id, "latest", true);
      REQUIRE_OK(tagged);
      REQUIRE(tagged->has_value());
      CHECK((*tagged)->digest == digest_of(bytes));
      CHECK((*tagged)->bytes == bytes);

      auto refs = f.db->manifest_references((*row)->id);
      REQUIRE_OK(refs);
      std::vector<std::string> ref_digests;
      for (const auto& r : *refs) {
        CHECK(r.kind == ManifestReferenceRecord::Kind::blob);
        ref_digests.push_back(r.digest);
      }
      std::sort(ref_digests.begin(), ref_digests.end());
      std::vector<std::string> expected{f.config, f.blob};
      std::sort(expected.begin(), expected.end());
      CHECK(ref_digests == expected);
    }

    SUBCASE("a reference to an unlinked blob is manifest_blob_unknown and nothing is stored")
    {
      const std::string missing = digest_of("not linked");
      auto put = f.db->put_manifest(f.feed.id, "team/app",
                                    manifest_record("{}", {f.config, missing}), "latest", k_now);
      REQUIRE(code_of(put) == ErrorCode::manifest_blob_unknown);
      CHECK(put.error().detail == missing);
      auto row = f.db->find_manifest(f.repo_id, digest_of("{}"), false);
      REQUIRE_OK(row);
      CHECK_FALSE(row->has_value());
      auto tagged = f.db->find_tagged_manifest(f.repo_id, "latest", false);
      REQUIRE_OK(tagged);
      CHECK_FALSE(tagged->has_value());
    }

    SUBCASE("a blob linked only to another repository is manifest_blob_unknown")
    {
      auto put = f.db->put_manifest(f.feed.id, "team/elsewhere", manifest_record("{}", {f.blob}),
                                    "", k_now);
      CHECK(code_of(put) == ErrorCode::manifest_blob_unknown);
      // the repository the failed put would have created does not exist
      auto repo = f.db->find_repository("team/elsewhere");
      REQUIRE_OK(repo);
      CHECK_FALSE(repo->has_value());
    }

    SUBCASE("an index whose child manifest is missing is manifest_blob_unknown")
    {
      const std::string child = digest_of("absent child");
      auto put = f.db->put_manifest(f.feed.id, "team/app", manifest_record("[index]", {}, {child}),
                                    "", k_now);
      REQUIRE(code_of(put) == ErrorCode::manifest_blob_unknown);
      CHECK(put.error().detail == child);
    }

    SUBCASE("putting the same manifest again is idempotent and may add a tag")
    {
      std::string digest = f.put_image("same", "one");
      f.put_image("same", "two");
      f.put_image("same", "");
      auto tags = f.db->tags_of(f.repo_id, digest);
      REQUIRE_OK(tags);
      CHECK(*tags == std::vector<std::string>{"one", "two"});
      auto summaries = f.db->list_repositories("team");
      REQUIRE_OK(summaries);
      REQUIRE(summaries->size() == 1);
      CHECK((*summaries)[0].manifest_count == 1);
      CHECK((*summaries)[0].tag_count == 2);
    }

    SUBCASE("a tag moves to the newest manifest pushed with it")
    {
      std::string first = f.put_image("first", "latest");
      std::string second = f.put_image("second", "latest");
      auto tagged = f.db->find_tagged_manifest(f.repo_id, "latest", false);
      REQUIRE_OK(tagged);
      REQUIRE(tagged->has_value());
      CHECK((*tagged)->digest == second);
      auto old_tags = f.db->tags_of(f.repo_id, first);
      REQUIRE_OK(old_tags);
      CHECK(old_tags->empty());
      // the untagged manifest stays addressable by digest
      auto old = f.db->find_manifest(f.repo_id, first, false);
      REQUIRE_OK(old);
      CHECK(old->has_value());
    }

    SUBCASE("a put for a vanished feed is name_unknown")
    {
      CHECK(code_of(f.db->put_manifest(f.feed.id + 100, "gone/app", manifest_record("{}"), "",
                                       k_now))
            == ErrorCode::name_unknown);
    }
  }

  TEST_CASE("metadata::Metadata::list_tags")
  {
    Fixture f;
    std::string digest = f.put_image("img", "v2");
    for (const char* tag : {"latest", "a", "v10", "v1", "B"}) {
      REQUIRE_OK(f.db->put_manifest(f.feed.id, "team/app", manifest_record("img"), tag, k_now));
    }

    SUBCASE("tags come in lexical order with their digest")
    {
      auto tags = f.db->list_tags(f.repo_id, "", 100);
      REQUIRE_OK(tags);
      CHECK(tag_names(*tags) == std::vector<std::string>{"B", "a", "latest", "v1", "v10", "v2"});
      for (const auto& t : *tags) {
        CHECK(t.digest == digest);
      }
    }

    SUBCASE("last is exclusive and limit caps the page")
    {
      auto first = f.db->list_tags(f.repo_id, "", 2);
      REQUIRE_OK(first);
      CHECK(tag_names(*first) == std::vector<std::string>{"B", "a"});
      auto second = f.db->list_tags(f.repo_id, "a", 2);
      REQUIRE_OK(second);
      CHECK(tag_names(*second) == std::vector<std::string>{"latest", "v1"});
      auto third = f.db->list_tags(f.repo_id, "v1", 2);
      REQUIRE_OK(third);
      CHECK(tag_names(*third) == std::vector<std::string>{"v10", "v2"});
      auto done = f.db->list_tags(f.repo_id, "v2", 2);
      REQUIRE_OK(done);
      CHECK(done->empty());
    }

    SUBCASE("a last that is not a tag starts after its position")
    {
      auto tags = f.db->list_tags(f.repo_id, "m", 10);
      REQUIRE_OK(tags);
      CHECK(tag_names(*tags) == std::vector<std::string>{"v1", "v10", "v2"});
    }

    SUBCASE("delete_tag removes one tag, then manifest_unknown")
    {
      CHECK_OK(f.db->delete_tag(f.repo_id, "v1"));
      auto tags = f.db->list_tags(f.repo_id, "", 100);
      REQUIRE_OK(tags);
      CHECK(tags->size() == 5);
      CHECK(code_of(f.db->delete_tag(f.repo_id, "v1")) == ErrorCode::manifest_unknown);
      auto still = f.db->find_manifest(f.repo_id, digest, false);
      REQUIRE_OK(still);
      CHECK(still->has_value());
    }
  }

  TEST_CASE("metadata::Metadata::delete_manifest")
  {
    Fixture f;

    SUBCASE("deleting returns the manifest's tags and removes them")
    {
      std::string digest = f.put_image("img", "b");
      f.put_image("img", "a");
      std::string other = f.put_image("other", "c");
      auto removed = f.db->delete_manifest(f.repo_id, digest);
      REQUIRE_OK(removed);
      CHECK(*removed == std::vector<std::string>{"a", "b"});
      auto row = f.db->find_manifest(f.repo_id, digest, false);
      REQUIRE_OK(row);
      CHECK_FALSE(row->has_value());
      auto tags = f.db->list_tags(f.repo_id, "", 10);
      REQUIRE_OK(tags);
      CHECK(tag_names(*tags) == std::vector<std::string>{"c"});
    }

    SUBCASE("an untagged manifest deletes with no tags")
    {
      std::string digest = f.put_image("img", "");
      auto removed = f.db->delete_manifest(f.repo_id, digest);
      REQUIRE_OK(removed);
      CHECK(removed->empty());
    }

    SUBCASE("a missing manifest is manifest_unknown")
    {
      CHECK(code_of(f.db->delete_manifest(f.repo_id, digest_of("nothing")))
            == ErrorCode::manifest_unknown);
    }

    SUBCASE("a manifest referenced by an index in the repository is a conflict")
    {
      std::string child = f.put_image("child", "child");
      const std::string index_bytes = "[index of child]";
      REQUIRE_OK(f.db->put_manifest(f.feed.id, "team/app", manifest_record(index_bytes, {}, {child}),
                                    "multi", k_now));
      auto refused = f.db->delete_manifest(f.repo_id, child);
      REQUIRE(code_of(refused) == ErrorCode::conflict);
      CHECK(refused.error().detail == digest_of(index_bytes));
      // nothing changed
      auto tags = f.db->tags_of(f.repo_id, child);
      REQUIRE_OK(tags);
      CHECK(*tags == std::vector<std::string>{"child"});

      // once the index is gone the child may go
      auto index_removed = f.db->delete_manifest(f.repo_id, digest_of(index_bytes));
      REQUIRE_OK(index_removed);
      CHECK(*index_removed == std::vector<std::string>{"multi"});
      CHECK_OK(f.db->delete_manifest(f.repo_id, child));
    }

    SUBCASE("an index in another repository does not block the delete")
    {
      std::string child = f.put_image("child", "");
      REQUIRE_OK(f.db->record_blob(f.feed.id, "team/other", k_store, f.blob, 5, "k", k_now));
      REQUIRE_OK(f.db->record_blob(f.feed.id, "team/other", k_store, f.config, 5, "k", k_now));
      REQUIRE_OK(f.db->put_manifest(f.feed.id, "team/other",
                                    manifest_record("child", {f.config, f.blob}), "", k_now));
      REQUIRE_OK(f.db->put_manifest(f.feed.id, "team/other",
                                    manifest_record("[idx]", {}, {child}), "", k_now));
      CHECK_OK(f.db->delete_manifest(f.repo_id, child));
    }
  }

  TEST_CASE("metadata::Metadata::list_referrers")
  {
    Fixture f;
    std::string subject = f.put_image("subject image", "latest");

    auto put_referrer = [&](const std::string& bytes, const std::string& artifact_type,
                            const std::string& subject_digest) {
      NewManifest m = manifest_record(bytes, {f.config});
      m.artifact_type = artifact_type;
      m.subject_digest = subject_digest;
      m.annotations_json = R"({"n":")" + bytes + R"("})";
      REQUIRE_OK(f.db->put_manifest(f.feed.id, "team/app", m, "", k_now));
      return m.digest;
    };
    std::string sig = put_referrer("sig", "application/vnd.example.sig", subject);
    std::string sbom = put_referrer("sbom", "application/vnd.example.sbom", subject);
    put_referrer("unrelated", "application/vnd.example.sig", digest_of("something else"));

    SUBCASE("every manifest with the subject is listed, ordered by digest")
    {
      auto rows = f.db->list_referrers(f.repo_id, subject, "");
      REQUIRE_OK(rows);
      REQUIRE(rows->size() == 2);
      std::vector<std::string> expected{sig, sbom};
      std::sort(expected.begin(), expected.end());
      CHECK((*rows)[0].digest == expected[0]);
      CHECK((*rows)[1].digest == expected[1]);
      for (const auto& row : *rows) {
        CHECK(row.subject_digest == subject);
        CHECK_FALSE(row.annotations_json.empty());
      }
    }

    SUBCASE("an artifact type filter keeps only matching referrers")
    {
      auto rows = f.db->list_referrers(f.repo_id, subject, "application/vnd.example.sbom");
      REQUIRE_OK(rows);
      REQUIRE(rows->size() == 1);
      CHECK((*rows)[0].digest == sbom);
      CHECK((*rows)[0].artifact_type == "application/vnd.example.sbom");
      CHECK((*rows)[0].annotations_json == R"({"n":"sbom"})");

      auto none = f.db->list_referrers(f.repo_id, subject, "application/unknown");
      REQUIRE_OK(none);
      CHECK(none->empty());
    }

    SUBCASE("a digest nobody refers to has no referrers")
    {
      auto rows = f.db->list_referrers(f.repo_id, sig, "");
      REQUIRE_OK(rows);
      CHECK(rows->empty());
    }
  }

  TEST_CASE("metadata::Metadata repositories")
  {
    Fixture f;
    REQUIRE_OK(f.db->create_feed("other", "", k_store, "pull", k_now));
    auto other = f.db->find_feed("other");
    REQUIRE_OK(other);
    REQUIRE(other->has_value());
    for (const char* repo : {"team/b", "team/a", "team/c"}) {
      REQUIRE_OK(f.db->put_manifest(f.feed.id, repo, manifest_record(repo), "", k_now));
    }
    REQUIRE_OK(f.db->put_manifest((*other)->id, "other/x", manifest_record("x"), "", k_now));

    SUBCASE("only repositories holding manifests are listed, in order, with last and limit")
    {
      // team/app holds only blobs
      auto all = f.db->list_repository_names("", "", 100);
      REQUIRE_OK(all);
      CHECK(*all == std::vector<std::string>{"other/x", "team/a", "team/b", "team/c"});
      auto page = f.db->list_repository_names("", "other/x", 2);
      REQUIRE_OK(page);
      CHECK(*page == std::vector<std::string>{"team/a", "team/b"});
    }

    SUBCASE("find_feed_and_repository answers both rows, or what exists, and leaves no transaction open")
    {
      for (int round = 0; round < 2; ++round) { // the pooled connection is reused
        auto both = f.db->find_feed_and_repository("other", "other/x");
        REQUIRE_OK(both);
        REQUIRE(both->feed.has_value());
        CHECK(both->feed->id == (*other)->id);
        REQUIRE(both->repository.has_value());
        CHECK(both->repository->name == "other/x");
        CHECK(both->repository->feed_id == (*other)->id);
        CHECK(both->repository->store_id == k_store);
        auto no_repo = f.db->find_feed_and_repository("other", "other/none");
        REQUIRE_OK(no_repo);
        CHECK(no_repo->feed.has_value());
        CHECK_FALSE(no_repo->repository.has_value());
        auto no_feed = f.db->find_feed_and_repository("nope", "nope/x");
        REQUIRE_OK(no_feed);
        CHECK_FALSE(no_feed->feed.has_value());
        CHECK_FALSE(no_feed->repository.has_value());
      }
      // A write on the same (only) pooled connection still begins and commits.
      REQUIRE_OK(f.db->put_manifest((*other)->id, "other/y", manifest_record("y"), "", k_now));
      auto written = f.db->find_feed_and_repository("other", "other/y");
      REQUIRE_OK(written);
      CHECK(written->repository.has_value());
    }

    SUBCASE("a feed restricts the listing")
    {
      auto team = f.db->list_repository_names("team", "", 100);
      REQUIRE_OK(team);
      CHECK(*team == std::vector<std::string>{"team/a", "team/b", "team/c"});
      auto summaries = f.db->list_repositories("other");
      REQUIRE_OK(summaries);
      REQUIRE(summaries->size() == 1);
      CHECK((*summaries)[0].name == "other/x");
      CHECK((*summaries)[0].manifest_count == 1);
      CHECK((*summaries)[0].tag_count == 0);
    }
  }

  TEST_CASE("metadata::Metadata uploads")
  {
    Fixture f;
    const std::string id = util::random_uuid();
    REQUIRE_OK(f.db->create_upload(id, f.feed.id, "team/app", k_store, k_now));

    SUBCASE("an upload can be found, touched, listed and deleted idempotently")
    {
      auto row = f.db->find_upload(id);
      REQUIRE_OK(row);
      REQUIRE(row->has_value());
      CHECK((*row)->feed_id == f.feed.id);
      CHECK((*row)->repository_name == "team/app");
      CHECK((*row)->store_id == k_store);
      CHECK((*row)->started_at == k_now);
      CHECK((*row)->updated_at == k_now);

      REQUIRE_OK(f.db->touch_upload(id, k_now + 9));
      auto touched = f.db->find_upload(id);
      REQUIRE_OK(touched);
      CHECK((*touched)->updated_at == k_now + 9);
      CHECK((*touched)->started_at == k_now);

      auto all = f.db->list_uploads();
      REQUIRE_OK(all);
      REQUIRE(all->size() == 1);
      CHECK((*all)[0].id == id);

      CHECK_OK(f.db->delete_upload(id));
      CHECK_OK(f.db->delete_upload(id));
      auto gone = f.db->find_upload(id);
      REQUIRE_OK(gone);
      CHECK_FALSE(gone->has_value());
    }

    SUBCASE("the commit of a finished upload removes its row; a failed one keeps it")
    {
      auto failed = f.db->commit_blob(
        f.feed.id, "team/app", k_store, digest_of("up"), 2,
        []() -> registry::Result<std::string> { return registry::fail(ErrorCode::io_error, "disk"); },
        k_now, id);
      CHECK(code_of(failed) == ErrorCode::io_error);
      auto kept = f.db->find_upload(id);
      REQUIRE_OK(kept);
      CHECK(kept->has_value());

      auto committed = f.db->commit_blob(
        f.feed.id, "team/app", k_store, digest_of("up"), 2,
        []() -> registry::Result<std::string> { return std::string("blobs/up"); }, k_now, id);
      REQUIRE_OK(committed);
      auto gone = f.db->find_upload(id);
      REQUIRE_OK(gone);
      CHECK_FALSE(gone->has_value());
      auto blob = f.db->find_blob(k_store, digest_of("up"));
      REQUIRE_OK(blob);
      CHECK(blob->has_value());
    }
  }

  TEST_CASE("metadata::Metadata::delete_feed")
  {
    Fixture f;
    std::string digest = f.put_image("img", "latest");
    const std::string upload = util::random_uuid();
    REQUIRE_OK(f.db->create_upload(upload, f.feed.id, "team/app", k_store, k_now));
    REQUIRE_OK(f.db->create_feed("keep", "", k_store, "pull", k_now));
    auto keep = f.db->find_feed("keep");
    REQUIRE_OK(keep);
    REQUIRE(keep->has_value());
    REQUIRE_OK(f.db->record_blob((*keep)->id, "keep/app", k_store, f.blob, 5, "k", k_now));

    SUBCASE("the feed goes with its repositories, manifests, tags and uploads")
    {
      auto removed = f.db->delete_feed("team");
      REQUIRE_OK(removed);
      CHECK(*removed == std::vector<std::string>{upload});

      auto feed = f.db->find_feed("team");
      REQUIRE_OK(feed);
      CHECK_FALSE(feed->has_value());
      auto repo = f.db->find_repository("team/app");
      REQUIRE_OK(repo);
      CHECK_FALSE(repo->has_value());
      auto manifest = f.db->find_manifest(f.repo_id, digest, false);
      REQUIRE_OK(manifest);
      CHECK_FALSE(manifest->has_value());
      auto tags = f.db->list_tags(f.repo_id, "", 10);
      REQUIRE_OK(tags);
      CHECK(tags->empty());
      auto linked = f.db->find_linked_blob(f.repo_id, f.blob);
      REQUIRE_OK(linked);
      CHECK_FALSE(linked->has_value());
      auto up = f.db->find_upload(upload);
      REQUIRE_OK(up);
      CHECK_FALSE(up->has_value());
      auto names = f.db->list_repository_names("", "", 10);
      REQUIRE_OK(names);
      CHECK(names->empty());
    }

    SUBCASE("blob rows stay for gc and other feeds keep their links")
    {
      REQUIRE_OK(f.db->delete_feed("team"));
      auto blob = f.db->find_blob(k_store, f.blob);
      REQUIRE_OK(blob);
      CHECK(blob->has_value());
      auto config = f.db->find_blob(k_store, f.config);
      REQUIRE_OK(config);
      CHECK(config->has_value());
      auto keep_repo = f.db->find_repository("keep/app");
      REQUIRE_OK(keep_repo);
      REQUIRE(keep_repo->has_value());
      auto linked = f.db->find_linked_blob((*keep_repo)->id, f.blob);
      REQUIRE_OK(linked);
      CHECK(linked->has_value());
    }

    SUBCASE("deleting it again is name_unknown")
    {
      REQUIRE_OK(f.db->delete_feed("team"));
      CHECK(code_of(f.db->delete_feed("team")) == ErrorCode::name_unknown);
    }
  }
}

TEST_SUITE("metadata")
{
  TEST_CASE("metadata::Metadata::open_read_only")
  {
    SUBCASE("a missing database is not_found and is not created")
    {
      TestDir dir;
      auto db = Metadata::open_read_only(dir / "registry.db");
      CHECK(code_of(db) == ErrorCode::not_found);
      CHECK(!std::filesystem::exists(dir / "registry.db"));
    }

    SUBCASE("it reads what a writer recorded, totals included, and cannot write")
    {
      Fixture f;
      f.put_image("image one", "v1");
      REQUIRE_OK(f.db->create_upload(util::random_uuid(), f.feed.id, "team/app", k_store, k_now));
      auto ro = Metadata::open_read_only(f.dir / "registry.db");
      REQUIRE_OK(ro);
      CHECK((*ro)->schema_version() == Metadata::current_schema_version());
      auto feeds = (*ro)->list_feeds();
      REQUIRE_OK(feeds);
      REQUIRE(feeds->size() == 1);
      CHECK((*feeds)[0].name == "team");
      auto totals = (*ro)->totals();
      REQUIRE_OK(totals);
      CHECK(totals->feeds == 1);
      CHECK(totals->repositories == 1);
      CHECK(totals->manifests == 1);
      CHECK(totals->tags == 1);
      CHECK(totals->blobs == 2);
      CHECK(totals->blob_bytes == 10);
      CHECK(totals->uploads == 1);
      CHECK(code_of((*ro)->create_feed("other", "", k_store, "pull", k_now)) == ErrorCode::io_error);
    }
  }

  TEST_CASE("metadata::Metadata small blobs and upload heads")
  {
    Fixture f;
    const std::string bytes = "a small config";
    const std::string digest = digest_of(bytes);

    SUBCASE("a kept blob has its bytes beside its row, linked like any blob")
    {
      auto kept = f.db->keep_small_blob(f.feed.id, "team/other", k_store, digest, bytes, k_now);
      REQUIRE_OK(kept);
      CHECK(kept->in_database());
      CHECK(kept->object_key == registry::metadata::k_database_key);
      CHECK(kept->size == bytes.size());
      auto content = f.db->blob_content(kept->id);
      REQUIRE_OK(content);
      CHECK(*content == std::optional<std::string>(bytes));
      auto repo = f.db->find_repository("team/other");
      REQUIRE_OK(repo);
      REQUIRE(repo->has_value());
      auto linked = f.db->find_linked_blob((*repo)->id, digest);
      REQUIRE_OK(linked);
      CHECK(linked->has_value());
      auto totals = f.db->totals();
      REQUIRE_OK(totals);
      CHECK(totals->blobs == 3);
      CHECK(totals->blobs_in_database == 1);
      CHECK(totals->blob_bytes_in_database == bytes.size());
      // Its bytes go with its row.
      REQUIRE_OK(f.db->delete_blob_row(kept->id));
      content = f.db->blob_content(kept->id);
      REQUIRE_OK(content);
      CHECK_FALSE(content->has_value());
    }

    SUBCASE("a digest the store has already keeps its row and gets no bytes")
    {
      auto kept = f.db->keep_small_blob(f.feed.id, "team/other", k_store, f.blob, "layer", k_now + 5);
      REQUIRE_OK(kept);
      CHECK_FALSE(kept->in_database());
      CHECK(kept->object_key == "blobs/key-of-" + f.blob);
      CHECK(kept->last_touched_at == k_now + 5);
      auto content = f.db->blob_content(kept->id);
      REQUIRE_OK(content);
      CHECK_FALSE(content->has_value());
    }

    SUBCASE("the finished upload's row goes in the same transaction")
    {
      const std::string id = util::random_uuid();
      REQUIRE_OK(f.db->create_upload(id, f.feed.id, "team/app", k_store, k_now));
      REQUIRE_OK(f.db->keep_small_blob(f.feed.id, "team/app", k_store, digest, bytes, k_now, id));
      auto upload = f.db->find_upload(id);
      REQUIRE_OK(upload);
      CHECK_FALSE(upload->has_value());
    }

    SUBCASE("an upload's head is set, replaced, dropped, and counts as activity")
    {
      const std::string id = util::random_uuid();
      REQUIRE_OK(f.db->create_upload(id, f.feed.id, "team/app", k_store, k_now));
      auto read = [&] {
        auto row = f.db->find_upload(id);
        REQUIRE_OK(row);
        REQUIRE(row->has_value());
        return **row;
      };
      CHECK_FALSE(read().head.has_value());
      auto set = f.db->set_upload_head(id, std::string_view("abc"), k_now + 10);
      REQUIRE_OK(set);
      CHECK(*set);
      CHECK(read().head == std::optional<std::string>("abc"));
      CHECK(read().updated_at == k_now + 10);
      REQUIRE_OK(f.db->set_upload_head(id, std::string_view("abcdef"), k_now + 20));
      CHECK(read().head == std::optional<std::string>("abcdef"));
      REQUIRE_OK(f.db->set_upload_head(id, std::nullopt, k_now + 30));
      CHECK_FALSE(read().head.has_value());
      auto missing = f.db->set_upload_head(util::random_uuid(), std::string_view("x"), k_now);
      REQUIRE_OK(missing);
      CHECK_FALSE(*missing);
    }
  }

  TEST_CASE("metadata::Metadata cached manifest expiry")
  {
    Fixture f;
    constexpr int64_t k_day = 86400;
    const std::string k_origin = "https://upstream.invalid";
    auto cache = [&](const std::string& bytes, const std::string& tag,
                     const std::vector<std::string>& children = {}) {
      NewManifest m = manifest_record(bytes, children.empty() ? std::vector<std::string>{f.config, f.blob}
                                                              : std::vector<std::string>{},
                                      children);
      m.origin = k_origin;
      REQUIRE_OK(f.db->put_manifest(f.feed.id, "team/app", m, tag, k_now));
      return digest_of(bytes);
    };
    auto row_of = [&](const std::string& digest) {
      auto row = f.db->find_manifest(f.repo_id, digest, false);
      REQUIRE_OK(row);
      return *row;
    };
    auto stale_digests = [&](int64_t now) {
      auto rows = f.db->list_stale_cached_manifests(0, now, 0, 100);
      REQUIRE_OK(rows);
      std::vector<std::string> out;
      for (const auto& r : *rows) {
        CHECK(r.repository == "team/app");
        out.push_back(r.manifest.digest);
      }
      std::sort(out.begin(), out.end());
      return out;
    };
    REQUIRE_OK(f.db->update_feed("team", "the team", "pull", 7 * k_day));

    SUBCASE("a cached manifest records its caching time as its last pull; a pushed one has none")
    {
      std::string cached = cache("cached", "c");
      std::string pushed = f.put_image("pushed", "p");
      CHECK(row_of(cached)->last_pulled_at == k_now);
      CHECK(row_of(cached)->origin == k_origin);
      CHECK(row_of(pushed)->last_pulled_at == 0);
    }

    SUBCASE("update_feed sets the retention only when given one, and 0 turns it off")
    {
      auto kept = f.db->update_feed("team", "renamed", "none");
      REQUIRE_OK(kept);
      CHECK(kept->cache_retention == 7 * k_day);
      auto off = f.db->update_feed("team", "renamed", "none", 0);
      REQUIRE_OK(off);
      CHECK(off->cache_retention == 0);
      auto found = f.db->find_feed("team");
      REQUIRE_OK(found);
      CHECK((*found)->cache_retention == 0);
    }

    SUBCASE("only cached manifests unpulled for longer than the feed's retention are stale")
    {
      std::string cached = cache("cached", "c");
      f.put_image("pushed", "p");
      CHECK(stale_digests(k_now + 7 * k_day - 1).empty());
      CHECK(stale_digests(k_now + 7 * k_day) == std::vector<std::string>{cached});
      REQUIRE_OK(f.db->update_feed("team", "the team", "pull", 0));
      CHECK(stale_digests(k_now + 365 * k_day).empty());
    }

    SUBCASE("touch_manifest_pull writes only when the stamp is older than the interval")
    {
      std::string cached = cache("cached", "c");
      int64_t id = row_of(cached)->id;
      auto early = f.db->touch_manifest_pull(id, k_now + 3599, 3600);
      REQUIRE_OK(early);
      CHECK_FALSE(*early);
      CHECK(row_of(cached)->last_pulled_at == k_now);
      auto late = f.db->touch_manifest_pull(id, k_now + 3601, 3600);
      REQUIRE_OK(late);
      CHECK(*late);
      CHECK(row_of(cached)->last_pulled_at == k_now + 3601);
      std::string pushed = f.put_image("pushed", "p");
      auto on_pushed = f.db->touch_manifest_pull(row_of(pushed)->id, k_now + 9000, 0);
      REQUIRE_OK(on_pushed);
      CHECK_FALSE(*on_pushed);
      CHECK(row_of(pushed)->last_pulled_at == 0);
    }

    SUBCASE("expire_cached_manifest deletes it with its tags, once")
    {
      std::string cached = cache("cached", "c");
      cache("cached", "latest");
      int64_t id = row_of(cached)->id;
      auto expired = f.db->expire_cached_manifest(id, k_now + 8 * k_day);
      REQUIRE_OK(expired);
      REQUIRE(expired->has_value());
      CHECK(**expired == std::vector<std::string>{"c", "latest"});
      CHECK_FALSE(row_of(cached).has_value());
      auto tags = f.db->list_tags(f.repo_id, "", 10);
      REQUIRE_OK(tags);
      CHECK(tags->empty());
      auto again = f.db->expire_cached_manifest(id, k_now + 8 * k_day);
      REQUIRE_OK(again);
      CHECK_FALSE(again->has_value());
    }

    SUBCASE("a pull recorded after the listing keeps the manifest (re-checked in the transaction)")
    {
      std::string cached = cache("cached", "c");
      int64_t id = row_of(cached)->id;
      REQUIRE(stale_digests(k_now + 8 * k_day) == std::vector<std::string>{cached});
      REQUIRE_OK(f.db->touch_manifest_pull(id, k_now + 8 * k_day - 10, 3600));
      auto expired = f.db->expire_cached_manifest(id, k_now + 8 * k_day);
      REQUIRE_OK(expired);
      CHECK_FALSE(expired->has_value());
      CHECK(row_of(cached).has_value());
    }

    SUBCASE("a pushed manifest is never expired, nor a cached one in a feed without retention")
    {
      std::string pushed = f.put_image("pushed", "p");
      auto not_cached = f.db->expire_cached_manifest(row_of(pushed)->id, k_now + 100 * k_day);
      REQUIRE_OK(not_cached);
      CHECK_FALSE(not_cached->has_value());
      std::string cached = cache("cached", "c");
      REQUIRE_OK(f.db->update_feed("team", "the team", "pull", 0));
      auto off = f.db->expire_cached_manifest(row_of(cached)->id, k_now + 100 * k_day);
      REQUIRE_OK(off);
      CHECK_FALSE(off->has_value());
      CHECK(row_of(pushed).has_value());
      CHECK(row_of(cached).has_value());
    }

    SUBCASE("a manifest an index lists, or a referrer names as subject, is not expired until they go")
    {
      std::string child = cache("child", "");
      std::string index = cache("index", "multi", {child});
      REQUIRE(stale_digests(k_now + 8 * k_day) == [&] {
        std::vector<std::string> both{child, index};
        std::sort(both.begin(), both.end());
        return both;
      }());
      auto blocked = f.db->expire_cached_manifest(row_of(child)->id, k_now + 8 * k_day);
      REQUIRE_OK(blocked);
      CHECK_FALSE(blocked->has_value());
      auto parent = f.db->expire_cached_manifest(row_of(index)->id, k_now + 8 * k_day);
      REQUIRE_OK(parent);
      REQUIRE(parent->has_value());
      CHECK(**parent == std::vector<std::string>{"multi"});

      NewManifest referrer = manifest_record("signature", {f.blob});
      referrer.subject_digest = child;
      REQUIRE_OK(f.db->put_manifest(f.feed.id, "team/app", referrer, "", k_now));
      auto subject = f.db->expire_cached_manifest(row_of(child)->id, k_now + 8 * k_day);
      REQUIRE_OK(subject);
      CHECK_FALSE(subject->has_value());
      CHECK(row_of(child).has_value());
    }
  }

  TEST_CASE("metadata::Metadata migration to cache retention")
  {
    TestDir dir;
    int version = 0;
    std::string cached = digest_of("cached");
    std::string pushed = digest_of("pushed");
    {
      auto db = open_db(dir);
      version = db->schema_version();
      auto feed = db->create_feed("team", "", k_store, "pull", k_now, 3600);
      REQUIRE_OK(feed);
      NewManifest c = manifest_record("cached");
      c.origin = "https://upstream.invalid";
      REQUIRE_OK(db->put_manifest(feed->id, "team/app", c, "c", k_now));
      REQUIRE_OK(db->put_manifest(feed->id, "team/app", manifest_record("pushed"), "p", k_now));
    }
    {
      // Back to the schema before migration 8, as an older registryctl left it;
      // the migrations from there on run again.
      SQLite::Database raw((dir / "registry.db").string(), SQLite::OPEN_READWRITE);
      raw.exec("ALTER TABLE uploads DROP COLUMN head"); // 10
      raw.exec("DROP TABLE blob_contents");              // 9
      raw.exec("DROP INDEX manifests_cached");
      raw.exec("ALTER TABLE manifests DROP COLUMN last_pulled_at");
      raw.exec("ALTER TABLE feeds DROP COLUMN cache_retention");
      raw.exec("PRAGMA user_version = 7");
    }
    int64_t before = static_cast<int64_t>(std::time(nullptr));
    auto db = open_db(dir);
    CHECK(db->schema_version() == version);
    auto feed = db->find_feed("team");
    REQUIRE_OK(feed);
    CHECK((*feed)->cache_retention == 0);
    auto repo = db->find_repository("team/app");
    REQUIRE_OK(repo);
    auto c = db->find_manifest((*repo)->id, cached, false);
    REQUIRE_OK(c);
    REQUIRE(c->has_value());
    // Existing cached content counts as pulled at the upgrade, not at its caching.
    CHECK((*c)->last_pulled_at >= before);
    CHECK((*c)->last_pulled_at <= static_cast<int64_t>(std::time(nullptr)));
    auto p = db->find_manifest((*repo)->id, pushed, false);
    REQUIRE_OK(p);
    REQUIRE(p->has_value());
    CHECK((*p)->last_pulled_at == 0);
  }
}
