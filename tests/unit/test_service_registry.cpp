#include "common/service/registry.hpp"

#include "common/oci/media_types.hpp"
#include "common/util/clock.hpp"
#include "common/util/uuid.hpp"
#include "tests/support/test_dir.hpp"
#include "tests/unit/unit_helpers.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <memory>
#include <string>
#include <thread>
#include <vector>

using registry::ErrorCode;
using registry::oci::Digest;
using registry::service::Registry;
using registry::test::code_of;
using registry::test::cut_source_of;
using registry::test::source_of;
using registry::test::TestDir;
using nlohmann::json;
namespace fs = std::filesystem;
namespace mt = registry::oci::media_type;
namespace util = registry::util;

namespace {

constexpr int64_t k_start = 1'700'000'000;

std::string
digest_of(const std::string& bytes)
{
  return Digest::of(bytes).str();
}

size_t
count_files(const fs::path& dir)
{
  size_t n = 0;
  if (!fs::exists(dir)) {
    return 0;
  }
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (entry.is_regular_file()) {
      ++n;
    }
  }
  return n;
}

// A registry on a fresh data directory with feeds "team" and "other" and a
// manual clock.
struct Fixture {
  TestDir dir;
  fs::path data = dir / "data";
  std::shared_ptr<util::ManualClock> clock = std::make_shared<util::ManualClock>(k_start);
  std::unique_ptr<Registry> reg;

  Fixture()
  {
    reopen();
    auto team = reg->create_feed("team", "", "pull");
    REQUIRE_OK(team);
    auto other = reg->create_feed("other", "", "none");
    REQUIRE_OK(other);
  }

  // Drops the Registry object and opens a new one on the same data directory,
  // as a server restart would.
  void
  reopen()
  {
    reg.reset();
    auto opened = Registry::open(data, clock);
    REQUIRE_OK(opened);
    reg = std::move(opened).value();
    // These cases look at the store's files: every blob goes there. The small
    // blobs the database keeps have cases of their own.
    reg->set_small_blob_limit(0);
  }

  fs::path
  uploads_dir() const
  {
    return data / "store" / "uploads";
  }
  fs::path
  blobs_dir() const
  {
    return data / "store" / "blobs";
  }

  // Pushes `bytes` monolithically into `repository`; returns the digest.
  std::string
  push(const std::string& repository, const std::string& bytes)
  {
    std::string digest = digest_of(bytes);
    auto pushed = reg->push_blob(repository, digest, source_of(bytes));
    REQUIRE_OK(pushed);
    REQUIRE(pushed->digest.str() == digest);
    REQUIRE(pushed->size == bytes.size());
    return digest;
  }

  // The whole blob as served to `repository`.
  std::string
  read(const std::string& repository, const std::string& digest)
  {
    auto blob = reg->open_blob(repository, digest);
    REQUIRE_OK(blob);
    std::string out(blob->info.size, '\0');
    size_t done = 0;
    while (done < out.size()) {
      auto n = blob->reader->read_at(done, out.data() + done, out.size() - done);
      REQUIRE_OK(n);
      REQUIRE(*n > 0);
      done += *n;
    }
    return out;
  }

  // Pushes a config and one layer into `repository` and returns an OCI image
  // manifest over them (distinct per `name`).
  std::string
  image(const std::string& repository, const std::string& name)
  {
    std::string config = R"({"name":")" + name + R"("})";
    std::string layer = "layer of " + name;
    push(repository, config);
    push(repository, layer);
    return registry::test::oci_manifest_json(config, {layer}).dump();
  }

  // put_manifest that must succeed; returns the digest.
  std::string
  put(const std::string& repository, const std::string& reference, const std::string& bytes,
      std::string_view content_type = mt::oci_manifest)
  {
    auto result = reg->put_manifest(repository, reference, content_type, bytes);
    REQUIRE_OK(result);
    return result->digest.str();
  }

  std::vector<std::string>
  tags(const std::string& repository)
  {
    auto page = reg->list_tags(repository, "", 1000);
    REQUIRE_OK(page);
    std::vector<std::string> out;
    for (const auto& t : page->tags) {
      out.push_back(t.name);
    }
    return out;
  }
};

} // namespace

TEST_SUITE("service")
{
  TEST_CASE("service::Registry::open")
  {
    TestDir dir;
    auto clock = std::make_shared<util::ManualClock>(k_start);

    SUBCASE("a new data directory gets the database and the default store")
    {
      auto reg = Registry::open(dir / "data", clock);
      REQUIRE_OK(reg);
      CHECK((*reg)->data_dir() == dir / "data");
      CHECK(fs::is_regular_file(dir / "data" / "registry.db"));
      CHECK(fs::is_directory(dir / "data" / "store" / "blobs"));
      CHECK(fs::is_directory(dir / "data" / "store" / "uploads"));
      CHECK((*reg)->now() == k_start);
      clock->advance(10);
      CHECK((*reg)->now() == k_start + 10);
    }

    SUBCASE("reopening the same directory keeps the feeds")
    {
      {
        auto reg = Registry::open(dir / "data", clock);
        REQUIRE_OK(reg);
        REQUIRE_OK((*reg)->create_feed("team", "kept", "pull"));
      }
      auto reg = Registry::open(dir / "data", clock);
      REQUIRE_OK(reg);
      auto feed = (*reg)->get_feed("team");
      REQUIRE_OK(feed);
      CHECK(feed->description == "kept");
    }

    SUBCASE("a data directory that cannot be created is io_error")
    {
      std::ofstream(dir / "file") << "x";
      CHECK(code_of(Registry::open(dir / "file" / "data", clock)) == ErrorCode::io_error);
    }

    SUBCASE("without a clock the system clock is used")
    {
      auto reg = Registry::open(dir / "data");
      REQUIRE_OK(reg);
      CHECK((*reg)->now() > k_start);
    }
  }

  TEST_CASE("service::Registry feeds")
  {
    Fixture f;

    SUBCASE("a created feed is listed and can be read back")
    {
      auto created = f.reg->create_feed("images", "desc", "none");
      REQUIRE_OK(created);
      CHECK(created->name == "images");
      CHECK(created->created_at == k_start);
      auto got = f.reg->get_feed("images");
      REQUIRE_OK(got);
      CHECK(got->description == "desc");
      CHECK(got->anonymous_access == "none");
      auto all = f.reg->list_feeds();
      REQUIRE_OK(all);
      CHECK(all->size() == 3);
    }

    SUBCASE("invalid and reserved names are name_invalid")
    {
      for (const char* name : {"", "v2", "auth", "ui", "api", "_hidden", "Team", "a__b", "a/b",
                               "-a", "a b", "team/app"}) {
        INFO("'", name, "'");
        CHECK(code_of(f.reg->create_feed(name, "", "pull")) == ErrorCode::name_invalid);
      }
      CHECK(code_of(f.reg->create_feed(std::string(65, 'a'), "", "pull"))
            == ErrorCode::name_invalid);
    }

    SUBCASE("anonymous access other than none or pull is invalid_argument")
    {
      CHECK(code_of(f.reg->create_feed("images", "", "push")) == ErrorCode::invalid_argument);
      CHECK(code_of(f.reg->create_feed("images", "", "")) == ErrorCode::invalid_argument);
      CHECK(code_of(f.reg->get_feed("images")) == ErrorCode::name_unknown);
    }

    SUBCASE("a taken name is already_exists")
    {
      CHECK(code_of(f.reg->create_feed("team", "", "pull")) == ErrorCode::already_exists);
    }

    SUBCASE("update_feed changes only what is given")
    {
      auto updated = f.reg->update_feed("team", std::string("new"), std::nullopt);
      REQUIRE_OK(updated);
      CHECK(updated->description == "new");
      CHECK(updated->anonymous_access == "pull");
      auto access = f.reg->update_feed("team", std::nullopt, std::string("none"));
      REQUIRE_OK(access);
      CHECK(access->description == "new");
      CHECK(access->anonymous_access == "none");
      CHECK(code_of(f.reg->update_feed("team", std::nullopt, std::string("all")))
            == ErrorCode::invalid_argument);
    }

    SUBCASE("a missing feed is name_unknown")
    {
      CHECK(code_of(f.reg->get_feed("nope")) == ErrorCode::name_unknown);
      CHECK(code_of(f.reg->update_feed("nope", std::string("d"), std::nullopt))
            == ErrorCode::name_unknown);
      CHECK(code_of(f.reg->delete_feed("nope")) == ErrorCode::name_unknown);
    }

    SUBCASE("delete_feed removes its repositories and its upload files")
    {
      std::string manifest = f.image("team/app", "one");
      f.put("team/app", "latest", manifest);
      auto upload = f.reg->start_upload("team/app");
      REQUIRE_OK(upload);
      REQUIRE_OK(f.reg->append_upload("team/app", upload->id, 0, source_of("some bytes")));
      REQUIRE(count_files(f.uploads_dir()) == 1);

      REQUIRE_OK(f.reg->delete_feed("team"));
      CHECK(code_of(f.reg->get_feed("team")) == ErrorCode::name_unknown);
      CHECK(count_files(f.uploads_dir()) == 0);
      CHECK(code_of(f.reg->get_manifest("team/app", "latest", false)) == ErrorCode::name_unknown);
      CHECK(code_of(f.reg->upload_status("team/app", upload->id))
            == ErrorCode::blob_upload_unknown);
      auto catalog = f.reg->catalog("", "", 100);
      REQUIRE_OK(catalog);
      CHECK(catalog->names.empty());

      // the name can be used again and starts empty
      REQUIRE_OK(f.reg->create_feed("team", "", "pull"));
      CHECK(code_of(f.reg->list_tags("team/app", "", 10)) == ErrorCode::name_unknown);
    }
  }

  TEST_CASE("service::Registry::push_blob")
  {
    Fixture f;
    const std::string content = registry::test::random_bytes(200'000, 11);
    const std::string digest = digest_of(content);

    SUBCASE("a monolithic push stores the blob and links it to the repository")
    {
      auto pushed = f.reg->push_blob("team/app", digest, source_of(content, 4096));
      REQUIRE_OK(pushed);
      CHECK(pushed->digest.str() == digest);
      CHECK(pushed->size == content.size());
      auto info = f.reg->stat_blob("team/app", digest);
      REQUIRE_OK(info);
      CHECK(info->size == content.size());
      CHECK(f.read("team/app", digest) == content);
      std::string hex = digest.substr(7);
      CHECK(fs::is_regular_file(f.blobs_dir() / "sha256" / hex.substr(0, 2) / hex));
      CHECK(count_files(f.uploads_dir()) == 0);
    }

    SUBCASE("a wrong digest is digest_invalid and leaves no blob and no upload file")
    {
      const std::string wrong = digest_of("something else");
      auto pushed = f.reg->push_blob("team/app", wrong, source_of(content));
      CHECK(code_of(pushed) == ErrorCode::digest_invalid);
      CHECK(code_of(f.reg->stat_blob("team/app", wrong)) == ErrorCode::blob_unknown);
      CHECK(code_of(f.reg->stat_blob("team/app", digest)) == ErrorCode::blob_unknown);
      CHECK(count_files(f.uploads_dir()) == 0);
      CHECK(count_files(f.blobs_dir()) == 0);
    }

    SUBCASE("the blob row records the size and the store's key")
    {
      f.push("team/app", content);
      auto row = f.reg->metadata().find_blob(1, digest);
      REQUIRE_OK(row);
      REQUIRE(row->has_value());
      CHECK((*row)->size == content.size());
      std::string hex = digest.substr(7);
      CHECK((*row)->object_key == "blobs/sha256/" + hex.substr(0, 2) + "/" + hex);
      CHECK((*row)->created_at == k_start);
    }

    SUBCASE("a wrong digest that names a blob of another repository does not link it")
    {
      f.push("team/owner", content);
      const std::string other = registry::test::random_bytes(1000, 99);
      CHECK(code_of(f.reg->push_blob("team/thief", digest, source_of(other)))
            == ErrorCode::digest_invalid);
      CHECK(code_of(f.reg->stat_blob("team/thief", digest)) == ErrorCode::blob_unknown);
      CHECK(count_files(f.uploads_dir()) == 0);
      CHECK(f.read("team/owner", digest) == content);
    }

    SUBCASE("a malformed digest is digest_invalid before anything is written")
    {
      for (const char* bad : {"", "sha256:abc", "md5:d41d8cd98f00b204e9800998ecf8427e",
                              "latest"}) {
        INFO("'", bad, "'");
        CHECK(code_of(f.reg->push_blob("team/app", bad, source_of(content)))
              == ErrorCode::digest_invalid);
      }
      CHECK(count_files(f.uploads_dir()) == 0);
      CHECK(count_files(f.blobs_dir()) == 0);
    }

    SUBCASE("a cut body is blob_upload_invalid and leaves no blob and no upload file")
    {
      auto pushed = f.reg->push_blob("team/app", digest, cut_source_of(content.substr(0, 1000)));
      CHECK(code_of(pushed) == ErrorCode::blob_upload_invalid);
      CHECK(code_of(f.reg->stat_blob("team/app", digest)) == ErrorCode::blob_unknown);
      CHECK(count_files(f.blobs_dir()) == 0);
      CHECK(count_files(f.uploads_dir()) == 0);
    }

    SUBCASE("a body cut after all of its bytes still leaves no blob")
    {
      // Every byte arrived, yet the transport reported failure: not a complete push.
      auto pushed = f.reg->push_blob("team/app", digest, cut_source_of(content));
      CHECK(code_of(pushed) == ErrorCode::blob_upload_invalid);
      CHECK(code_of(f.reg->stat_blob("team/app", digest)) == ErrorCode::blob_unknown);
      CHECK(count_files(f.blobs_dir()) == 0);
      CHECK(count_files(f.uploads_dir()) == 0);
    }

    SUBCASE("pushing the same blob twice keeps one copy")
    {
      f.push("team/app", content);
      f.push("team/app", content);
      f.push("team/other", content);
      CHECK(count_files(f.blobs_dir()) == 1);
      CHECK(count_files(f.uploads_dir()) == 0);
      CHECK_OK(f.reg->stat_blob("team/other", digest));
    }

    SUBCASE("an empty blob can be pushed and read")
    {
      std::string empty_digest = f.push("team/app", "");
      auto info = f.reg->stat_blob("team/app", empty_digest);
      REQUIRE_OK(info);
      CHECK(info->size == 0);
      CHECK(f.read("team/app", empty_digest).empty());
    }

    SUBCASE("a sha512 digest is verified with sha512")
    {
      std::string d512 = Digest::of(content, util::HashAlgorithm::sha512).str();
      auto pushed = f.reg->push_blob("team/app", d512, source_of(content));
      REQUIRE_OK(pushed);
      CHECK(pushed->digest.str() == d512);
      CHECK(f.read("team/app", d512) == content);
      CHECK(code_of(f.reg->push_blob("team/app",
                                     Digest::of("x", util::HashAlgorithm::sha512).str(),
                                     source_of(content)))
            == ErrorCode::digest_invalid);
      CHECK(count_files(f.uploads_dir()) == 0);
    }

    SUBCASE("a missing feed is name_unknown and a bad name name_invalid")
    {
      CHECK(code_of(f.reg->push_blob("nofeed/app", digest, source_of(content)))
            == ErrorCode::name_unknown);
      for (const char* bad : {"app", "Team/app", "team/App", "team//app", "team/../app", ""}) {
        INFO("'", bad, "'");
        CHECK(code_of(f.reg->push_blob(bad, digest, source_of(content)))
              == ErrorCode::name_invalid);
      }
      CHECK(count_files(f.uploads_dir()) == 0);
    }
  }

  TEST_CASE("service::Registry chunked uploads")
  {
    Fixture f;
    const std::string content = registry::test::random_bytes(300'000, 12);
    const std::string digest = digest_of(content);
    const std::string part1 = content.substr(0, 100'000);
    const std::string part2 = content.substr(100'000, 150'000);
    const std::string part3 = content.substr(250'000);

    auto started = f.reg->start_upload("team/app");
    REQUIRE_OK(started);
    const std::string id = started->id;

    SUBCASE("a new upload is empty; its file in the store comes with its first bytes")
    {
      CHECK(util::is_uuid(id));
      CHECK(started->repository == "team/app");
      CHECK(started->offset == 0);
      CHECK_FALSE(fs::exists(f.uploads_dir() / id));
      auto status = f.reg->upload_status("team/app", id);
      REQUIRE_OK(status);
      CHECK(status->offset == 0);
      CHECK(status->id == id);
      CHECK_FALSE(fs::exists(f.uploads_dir() / id));
      REQUIRE_OK(f.reg->append_upload("team/app", id, 0, source_of(part1)));
      CHECK(fs::file_size(f.uploads_dir() / id) == part1.size());
    }

    SUBCASE("after a restart, an upload no bytes reached is empty and takes chunks")
    {
      f.reopen();
      auto status = f.reg->upload_status("team/app", id);
      REQUIRE_OK(status);
      CHECK(status->offset == 0);
      REQUIRE_OK(f.reg->append_upload("team/app", id, 0, source_of(part1)));
      REQUIRE_OK(f.reg->append_upload("team/app", id, part1.size(), source_of(part2 + part3)));
      REQUIRE_OK(f.reg->complete_upload("team/app", id, digest, nullptr));
      CHECK(f.read("team/app", digest) == content);
    }

    SUBCASE("chunks at the expected offsets complete into the blob")
    {
      auto s1 = f.reg->append_upload("team/app", id, 0, source_of(part1));
      REQUIRE_OK(s1);
      CHECK(s1->offset == part1.size());
      auto s2 = f.reg->append_upload("team/app", id, part1.size(), source_of(part2, 1000));
      REQUIRE_OK(s2);
      CHECK(s2->offset == part1.size() + part2.size());
      auto s3 = f.reg->append_upload("team/app", id, std::nullopt, source_of(part3));
      REQUIRE_OK(s3);
      CHECK(s3->offset == content.size());
      auto status = f.reg->upload_status("team/app", id);
      REQUIRE_OK(status);
      CHECK(status->offset == content.size());

      auto done = f.reg->complete_upload("team/app", id, digest, nullptr);
      REQUIRE_OK(done);
      CHECK(done->digest.str() == digest);
      CHECK(done->size == content.size());
      CHECK(f.read("team/app", digest) == content);
      CHECK(count_files(f.uploads_dir()) == 0);
      CHECK(code_of(f.reg->upload_status("team/app", id)) == ErrorCode::blob_upload_unknown);
      CHECK(code_of(f.reg->complete_upload("team/app", id, digest, nullptr))
            == ErrorCode::blob_upload_unknown);
    }

    SUBCASE("the last chunk may come with the completion")
    {
      REQUIRE_OK(f.reg->append_upload("team/app", id, 0, source_of(part1 + part2)));
      auto last = source_of(part3);
      auto done = f.reg->complete_upload("team/app", id, digest, &last);
      REQUIRE_OK(done);
      CHECK(done->size == content.size());
      CHECK(f.read("team/app", digest) == content);
    }

    SUBCASE("a chunk at the wrong offset is upload_range_invalid and writes nothing")
    {
      REQUIRE_OK(f.reg->append_upload("team/app", id, 0, source_of(part1)));
      auto ahead = f.reg->append_upload("team/app", id, part1.size() + 1, source_of(part2));
      REQUIRE(code_of(ahead) == ErrorCode::upload_range_invalid);
      CHECK(ahead.error().detail == "0-" + std::to_string(part1.size() - 1));
      CHECK(code_of(f.reg->append_upload("team/app", id, 0, source_of(part2)))
            == ErrorCode::upload_range_invalid);
      CHECK(code_of(f.reg->append_upload("team/app", id, part1.size() - 1, source_of(part2)))
            == ErrorCode::upload_range_invalid);
      auto status = f.reg->upload_status("team/app", id);
      REQUIRE_OK(status);
      CHECK(status->offset == part1.size());
      CHECK(fs::file_size(f.uploads_dir() / id) == part1.size());

      // the upload is still usable
      REQUIRE_OK(f.reg->append_upload("team/app", id, part1.size(), source_of(part2 + part3)));
      auto done = f.reg->complete_upload("team/app", id, digest, nullptr);
      REQUIRE_OK(done);
      CHECK(f.read("team/app", digest) == content);
    }

    SUBCASE("a non-zero offset on an empty upload is upload_range_invalid")
    {
      CHECK(code_of(f.reg->append_upload("team/app", id, 5, source_of(part1)))
            == ErrorCode::upload_range_invalid);
      auto status = f.reg->upload_status("team/app", id);
      REQUIRE_OK(status);
      CHECK(status->offset == 0);
    }

    SUBCASE("completing with the wrong digest is digest_invalid and discards everything")
    {
      REQUIRE_OK(f.reg->append_upload("team/app", id, 0, source_of(content)));
      const std::string wrong = digest_of("not the content");
      CHECK(code_of(f.reg->complete_upload("team/app", id, wrong, nullptr))
            == ErrorCode::digest_invalid);
      CHECK(code_of(f.reg->stat_blob("team/app", wrong)) == ErrorCode::blob_unknown);
      CHECK(code_of(f.reg->stat_blob("team/app", digest)) == ErrorCode::blob_unknown);
      CHECK(count_files(f.uploads_dir()) == 0);
      CHECK(count_files(f.blobs_dir()) == 0);
      CHECK(code_of(f.reg->upload_status("team/app", id)) == ErrorCode::blob_upload_unknown);
    }

    SUBCASE("completing with a malformed digest is digest_invalid and leaves no blob")
    {
      REQUIRE_OK(f.reg->append_upload("team/app", id, 0, source_of(content)));
      CHECK(code_of(f.reg->complete_upload("team/app", id, "sha256:short", nullptr))
            == ErrorCode::digest_invalid);
      CHECK(code_of(f.reg->stat_blob("team/app", digest)) == ErrorCode::blob_unknown);
      CHECK(count_files(f.blobs_dir()) == 0);
    }

    SUBCASE("a cut final chunk is blob_upload_invalid and leaves no blob")
    {
      REQUIRE_OK(f.reg->append_upload("team/app", id, 0, source_of(part1 + part2)));
      auto cut = cut_source_of(part3);
      CHECK(code_of(f.reg->complete_upload("team/app", id, digest, &cut))
            == ErrorCode::blob_upload_invalid);
      CHECK(code_of(f.reg->stat_blob("team/app", digest)) == ErrorCode::blob_unknown);
      CHECK(count_files(f.blobs_dir()) == 0);
    }

    SUBCASE("a cut chunk is blob_upload_invalid and leaves no blob")
    {
      CHECK(code_of(f.reg->append_upload("team/app", id, 0, cut_source_of(part1)))
            == ErrorCode::blob_upload_invalid);
      CHECK(code_of(f.reg->stat_blob("team/app", digest)) == ErrorCode::blob_unknown);
      CHECK(count_files(f.blobs_dir()) == 0);
      // the upload itself is still known and reports what it holds
      auto status = f.reg->upload_status("team/app", id);
      REQUIRE_OK(status);
      CHECK(status->offset == fs::file_size(f.uploads_dir() / id));
    }

    SUBCASE("an upload survives a restart and completes with the right digest")
    {
      REQUIRE_OK(f.reg->append_upload("team/app", id, 0, source_of(part1)));
      f.reopen();
      auto status = f.reg->upload_status("team/app", id);
      REQUIRE_OK(status);
      CHECK(status->offset == part1.size());
      REQUIRE_OK(f.reg->append_upload("team/app", id, part1.size(), source_of(part2)));
      f.reopen();
      auto last = source_of(part3);
      auto done = f.reg->complete_upload("team/app", id, digest, &last);
      REQUIRE_OK(done);
      CHECK(done->digest.str() == digest);
      CHECK(done->size == content.size());
      CHECK(f.read("team/app", digest) == content);
      CHECK(count_files(f.uploads_dir()) == 0);
    }

    SUBCASE("two Registry objects on one data directory share an upload")
    {
      auto second = Registry::open(f.data, f.clock);
      REQUIRE_OK(second);
      REQUIRE_OK(f.reg->append_upload("team/app", id, 0, source_of(part1)));
      REQUIRE_OK((*second)->append_upload("team/app", id, part1.size(), source_of(part2)));
      // the first object's running hash is stale now and must be rebuilt
      auto last = source_of(part3);
      auto done = f.reg->complete_upload("team/app", id, digest, &last);
      REQUIRE_OK(done);
      CHECK(done->size == content.size());
      CHECK(f.read("team/app", digest) == content);
    }

    SUBCASE("after a restart a wrong offset is still upload_range_invalid")
    {
      REQUIRE_OK(f.reg->append_upload("team/app", id, 0, source_of(part1)));
      f.reopen();
      CHECK(code_of(f.reg->append_upload("team/app", id, 0, source_of(part1)))
            == ErrorCode::upload_range_invalid);
      REQUIRE_OK(f.reg->append_upload("team/app", id, part1.size(), source_of(part2 + part3)));
      auto done = f.reg->complete_upload("team/app", id, digest, nullptr);
      REQUIRE_OK(done);
    }

    SUBCASE("after a restart a wrong digest is still digest_invalid")
    {
      REQUIRE_OK(f.reg->append_upload("team/app", id, 0, source_of(content)));
      f.reopen();
      CHECK(code_of(f.reg->complete_upload("team/app", id, digest_of(part1), nullptr))
            == ErrorCode::digest_invalid);
      CHECK(count_files(f.uploads_dir()) == 0);
      CHECK(count_files(f.blobs_dir()) == 0);
    }

    SUBCASE("an unknown id, a malformed id or another repository's id is blob_upload_unknown")
    {
      const std::string unknown = util::random_uuid();
      CHECK(code_of(f.reg->upload_status("team/app", unknown)) == ErrorCode::blob_upload_unknown);
      CHECK(code_of(f.reg->append_upload("team/app", unknown, 0, source_of("x")))
            == ErrorCode::blob_upload_unknown);
      CHECK(code_of(f.reg->complete_upload("team/app", unknown, digest, nullptr))
            == ErrorCode::blob_upload_unknown);
      CHECK(code_of(f.reg->cancel_upload("team/app", unknown)) == ErrorCode::blob_upload_unknown);
      for (const char* bad : {"", "../x", "../../registry.db", "not-a-uuid"}) {
        INFO("'", bad, "'");
        CHECK(code_of(f.reg->upload_status("team/app", bad)) == ErrorCode::blob_upload_unknown);
        CHECK(code_of(f.reg->append_upload("team/app", bad, 0, source_of("x")))
              == ErrorCode::blob_upload_unknown);
      }
      CHECK(code_of(f.reg->upload_status("team/other", id)) == ErrorCode::blob_upload_unknown);
      CHECK(code_of(f.reg->append_upload("other/app", id, 0, source_of(part1)))
            == ErrorCode::blob_upload_unknown);
      CHECK(code_of(f.reg->complete_upload("team/other", id, digest, nullptr))
            == ErrorCode::blob_upload_unknown);
      // the owner still has it, untouched
      auto status = f.reg->upload_status("team/app", id);
      REQUIRE_OK(status);
      CHECK(status->offset == 0);
    }

    SUBCASE("cancel_upload removes the session and its file")
    {
      REQUIRE_OK(f.reg->append_upload("team/app", id, 0, source_of(part1)));
      REQUIRE_OK(f.reg->cancel_upload("team/app", id));
      CHECK(count_files(f.uploads_dir()) == 0);
      CHECK(code_of(f.reg->upload_status("team/app", id)) == ErrorCode::blob_upload_unknown);
      CHECK(code_of(f.reg->cancel_upload("team/app", id)) == ErrorCode::blob_upload_unknown);
    }

    SUBCASE("purge_uploads removes only uploads idle since before the cut-off")
    {
      REQUIRE_OK(f.reg->append_upload("team/app", id, 0, source_of(part1)));
      f.clock->advance(100);
      auto fresh = f.reg->start_upload("team/app");
      REQUIRE_OK(fresh);
      REQUIRE_OK(f.reg->append_upload("team/app", fresh->id, 0, source_of(part1)));
      auto purged = f.reg->purge_uploads(k_start + 50);
      REQUIRE_OK(purged);
      CHECK(*purged == 1);
      CHECK(code_of(f.reg->upload_status("team/app", id)) == ErrorCode::blob_upload_unknown);
      CHECK_FALSE(fs::exists(f.uploads_dir() / id));
      CHECK_OK(f.reg->upload_status("team/app", fresh->id));
      CHECK(fs::exists(f.uploads_dir() / fresh->id));
    }

    SUBCASE("purge_uploads keeps an upload active after the cut-off, purges one active at it")
    {
      auto kept = f.reg->purge_uploads(k_start - 1);
      REQUIRE_OK(kept);
      CHECK(*kept == 0);
      auto purged = f.reg->purge_uploads(k_start);
      REQUIRE_OK(purged);
      CHECK(*purged == 1);
      CHECK(count_files(f.uploads_dir()) == 0);
    }

    SUBCASE("an upload whose file vanished is blob_upload_unknown")
    {
      REQUIRE_OK(f.reg->append_upload("team/app", id, 0, source_of(part1)));
      REQUIRE(fs::remove(f.uploads_dir() / id));
      CHECK(code_of(f.reg->upload_status("team/app", id)) == ErrorCode::blob_upload_unknown);
      CHECK(code_of(f.reg->append_upload("team/app", id, 0, source_of(part1)))
            == ErrorCode::blob_upload_unknown);
      CHECK(code_of(f.reg->complete_upload("team/app", id, digest, nullptr))
            == ErrorCode::blob_upload_unknown);
      CHECK(count_files(f.blobs_dir()) == 0);
    }

    SUBCASE("appending counts as activity for purge_uploads")
    {
      f.clock->advance(100);
      REQUIRE_OK(f.reg->append_upload("team/app", id, 0, source_of(part1)));
      auto purged = f.reg->purge_uploads(k_start + 50);
      REQUIRE_OK(purged);
      CHECK(*purged == 0);
      CHECK_OK(f.reg->upload_status("team/app", id));
    }

    SUBCASE("start_upload on a missing feed is name_unknown, on a bad name name_invalid")
    {
      CHECK(code_of(f.reg->start_upload("nofeed/app")) == ErrorCode::name_unknown);
      CHECK(code_of(f.reg->start_upload("app")) == ErrorCode::name_invalid);
      CHECK(code_of(f.reg->start_upload("team/App")) == ErrorCode::name_invalid);
      auto sessions = f.reg->metadata().list_uploads();
      REQUIRE_OK(sessions);
      CHECK(sessions->size() == 1); // the fixture's own
      CHECK(count_files(f.uploads_dir()) == 0);
    }
  }

  TEST_CASE("service::Registry blob access")
  {
    Fixture f;
    const std::string content = registry::test::random_bytes(5000, 13);
    const std::string digest = f.push("team/app", content);

    SUBCASE("a blob is visible only in repositories it is linked to")
    {
      CHECK_OK(f.reg->stat_blob("team/app", digest));
      CHECK(code_of(f.reg->stat_blob("team/sibling", digest)) == ErrorCode::blob_unknown);
      CHECK(code_of(f.reg->open_blob("team/sibling", digest)) == ErrorCode::blob_unknown);
      CHECK(code_of(f.reg->stat_blob("other/app", digest)) == ErrorCode::blob_unknown);
      CHECK(code_of(f.reg->open_blob("other/app", digest)) == ErrorCode::blob_unknown);
    }

    SUBCASE("stat_blob refreshes the blob's use time for the gc grace period")
    {
      f.clock->advance(3600);
      REQUIRE_OK(f.reg->stat_blob("team/app", digest));
      auto row = f.reg->metadata().find_blob(1, digest);
      REQUIRE_OK(row);
      REQUIRE(row->has_value());
      CHECK((*row)->created_at == k_start);
      CHECK((*row)->last_touched_at == k_start + 3600);
    }

    SUBCASE("open_blob serves any range through read_at")
    {
      auto blob = f.reg->open_blob("team/app", digest);
      REQUIRE_OK(blob);
      CHECK(blob->info.size == content.size());
      CHECK(blob->reader->size() == content.size());
      std::string buffer(10, '\0');
      auto n = blob->reader->read_at(4990, buffer.data(), buffer.size());
      REQUIRE_OK(n);
      CHECK(*n == 10);
      CHECK(buffer == content.substr(4990));
      auto end = blob->reader->read_at(5000, buffer.data(), buffer.size());
      REQUIRE_OK(end);
      CHECK(*end == 0);
    }

    SUBCASE("a linked blob whose bytes are gone is io_error, never served or hidden")
    {
      std::string hex = digest.substr(7);
      REQUIRE(fs::remove(f.blobs_dir() / "sha256" / hex.substr(0, 2) / hex));
      CHECK(code_of(f.reg->open_blob("team/app", digest)) == ErrorCode::io_error);
    }

    SUBCASE("delete_blob unlinks it from the repository only")
    {
      f.push("team/second", content);
      REQUIRE_OK(f.reg->delete_blob("team/app", digest));
      CHECK(code_of(f.reg->stat_blob("team/app", digest)) == ErrorCode::blob_unknown);
      CHECK(code_of(f.reg->delete_blob("team/app", digest)) == ErrorCode::blob_unknown);
      CHECK(f.read("team/second", digest) == content);
    }

    SUBCASE("malformed digests, missing feeds and bad names have their own codes")
    {
      CHECK(code_of(f.reg->stat_blob("team/app", "sha256:abc")) == ErrorCode::digest_invalid);
      CHECK(code_of(f.reg->open_blob("team/app", "nope")) == ErrorCode::digest_invalid);
      CHECK(code_of(f.reg->delete_blob("team/app", "")) == ErrorCode::digest_invalid);
      CHECK(code_of(f.reg->stat_blob("nofeed/app", digest)) == ErrorCode::name_unknown);
      CHECK(code_of(f.reg->open_blob("nofeed/app", digest)) == ErrorCode::name_unknown);
      CHECK(code_of(f.reg->delete_blob("nofeed/app", digest)) == ErrorCode::name_unknown);
      CHECK(code_of(f.reg->stat_blob("Team/app", digest)) == ErrorCode::name_invalid);
      CHECK(code_of(f.reg->open_blob("team", digest)) == ErrorCode::name_invalid);
    }
  }

  TEST_CASE("service::Registry small blobs kept in the database")
  {
    Fixture f;
    f.reg->set_small_blob_limit(registry::service::k_small_blob_limit);
    const uint64_t limit = registry::service::k_small_blob_limit;
    const std::string small = registry::test::random_bytes(1000, 7);
    const std::string digest = digest_of(small);
    auto row_of = [&](const std::string& d) {
      auto found = f.reg->metadata().find_blob(1, d);
      REQUIRE_OK(found);
      REQUIRE(found->has_value());
      return **found;
    };
    // An upload of `small` whose first `first` bytes came in one chunk.
    auto begin_small = [&](size_t first) {
      auto started = f.reg->start_upload("team/app");
      REQUIRE_OK(started);
      REQUIRE_OK(f.reg->append_upload("team/app", started->id, 0, source_of(small.substr(0, first))));
      return started->id;
    };
    // Sends the rest of `small` from `from` as a chunk, completes, reads back.
    auto finish_small = [&](const std::string& id, size_t from) {
      REQUIRE_OK(f.reg->append_upload("team/app", id, from, source_of(small.substr(from))));
      REQUIRE_OK(f.reg->complete_upload("team/app", id, digest, nullptr));
      CHECK(f.read("team/app", digest) == small);
    };

    SUBCASE("a monolithic push under the limit makes no file, and reads back")
    {
      f.push("team/app", small);
      CHECK(count_files(f.blobs_dir()) == 0);
      CHECK(count_files(f.uploads_dir()) == 0);
      CHECK(row_of(digest).in_database());
      CHECK(f.read("team/app", digest) == small);
      auto info = f.reg->stat_blob("team/app", digest);
      REQUIRE_OK(info);
      CHECK(info->size == small.size());
      auto blob = f.reg->open_blob("team/app", digest, registry::service::OpenFor::serving);
      REQUIRE_OK(blob);
      CHECK(blob->redirect_url.empty());
      // still linked per repository
      CHECK(code_of(f.reg->open_blob("team/other", digest)) == ErrorCode::blob_unknown);
    }

    SUBCASE("a blob of exactly the limit is kept; one byte more goes to the store")
    {
      const std::string at_limit = registry::test::random_bytes(limit, 8);
      const std::string over = registry::test::random_bytes(limit + 1, 9);
      f.push("team/app", at_limit);
      CHECK(row_of(digest_of(at_limit)).in_database());
      CHECK(count_files(f.blobs_dir()) == 0);
      f.push("team/app", over);
      CHECK_FALSE(row_of(digest_of(over)).in_database());
      CHECK(count_files(f.blobs_dir()) == 1);
      CHECK(f.read("team/app", digest_of(at_limit)) == at_limit);
      CHECK(f.read("team/app", digest_of(over)) == over);
    }

    SUBCASE("a body that outgrows the limit midway reaches the store whole")
    {
      const std::string large = registry::test::random_bytes(3 * limit + 123, 10);
      auto pushed = f.reg->push_blob("team/app", digest_of(large), source_of(large, 4096));
      REQUIRE_OK(pushed);
      CHECK(pushed->size == large.size());
      CHECK_FALSE(row_of(digest_of(large)).in_database());
      CHECK(f.read("team/app", digest_of(large)) == large);
      CHECK(count_files(f.uploads_dir()) == 0);
    }

    SUBCASE("POST then PUT with the body: no upload file at any point")
    {
      auto started = f.reg->start_upload("team/app");
      REQUIRE_OK(started);
      CHECK(count_files(f.uploads_dir()) == 0);
      auto body = source_of(small);
      REQUIRE_OK(f.reg->complete_upload("team/app", started->id, digest, &body));
      CHECK(count_files(f.uploads_dir()) == 0);
      CHECK(count_files(f.blobs_dir()) == 0);
      CHECK(f.read("team/app", digest) == small);
      // the session ended with the commit
      CHECK(code_of(f.reg->upload_status("team/app", started->id))
            == ErrorCode::blob_upload_unknown);
    }

    SUBCASE("the same after a restart between POST and PUT")
    {
      auto started = f.reg->start_upload("team/app");
      REQUIRE_OK(started);
      f.reopen();
      f.reg->set_small_blob_limit(limit);
      auto body = source_of(small);
      REQUIRE_OK(f.reg->complete_upload("team/app", started->id, digest, &body));
      CHECK(row_of(digest).in_database());
      CHECK(f.read("team/app", digest) == small);
    }

    SUBCASE("small chunks (PATCH) stay in the upload's row, then go to the database")
    {
      const std::string id = begin_small(400);
      auto second = f.reg->append_upload("team/app", id, 400, source_of(small.substr(400)));
      REQUIRE_OK(second);
      CHECK(second->offset == small.size());
      CHECK(count_files(f.uploads_dir()) == 0);
      auto row = f.reg->metadata().find_upload(id);
      REQUIRE_OK(row);
      REQUIRE(row->has_value());
      CHECK((*row)->head == small);
      REQUIRE_OK(f.reg->complete_upload("team/app", id, digest, nullptr));
      CHECK(row_of(digest).in_database());
      CHECK(f.read("team/app", digest) == small);
      CHECK(count_files(f.uploads_dir()) == 0);
      CHECK(count_files(f.blobs_dir()) == 0);
    }

    SUBCASE("chunks that outgrow the limit move to the store with what came before")
    {
      const std::string large = registry::test::random_bytes(limit + 5000, 11);
      auto started = f.reg->start_upload("team/app");
      REQUIRE_OK(started);
      REQUIRE_OK(f.reg->append_upload("team/app", started->id, 0, source_of(large.substr(0, 1000))));
      REQUIRE_OK(f.reg->append_upload("team/app", started->id, 1000, source_of(large.substr(1000))));
      CHECK(fs::file_size(f.uploads_dir() / started->id) == large.size());
      auto row = f.reg->metadata().find_upload(started->id);
      REQUIRE_OK(row);
      CHECK_FALSE((*row)->head.has_value());
      REQUIRE_OK(f.reg->complete_upload("team/app", started->id, digest_of(large), nullptr));
      CHECK_FALSE(row_of(digest_of(large)).in_database());
      CHECK(f.read("team/app", digest_of(large)) == large);
    }

    SUBCASE("a restart between small chunks resumes from the row")
    {
      const std::string id = begin_small(300);
      f.reopen();
      f.reg->set_small_blob_limit(limit);
      auto status = f.reg->upload_status("team/app", id);
      REQUIRE_OK(status);
      CHECK(status->offset == 300);
      CHECK(code_of(f.reg->append_upload("team/app", id, 0, source_of("x")))
            == ErrorCode::upload_range_invalid);
      auto body = source_of(small.substr(300));
      REQUIRE_OK(f.reg->complete_upload("team/app", id, digest, &body));
      CHECK(f.read("team/app", digest) == small);
    }

    SUBCASE("a second process appending is seen: the row is read again")
    {
      auto other = Registry::open(f.data, f.clock);
      REQUIRE_OK(other);
      const std::string id = begin_small(100);
      REQUIRE_OK((*other)->append_upload("team/app", id, 100, source_of(small.substr(100, 100))));
      auto status = f.reg->upload_status("team/app", id);
      REQUIRE_OK(status);
      CHECK(status->offset == 200);
      finish_small(id, 200);
    }

    SUBCASE("with the limit turned to 0 the kept chunk reaches the store with the next")
    {
      const std::string id = begin_small(300);
      f.reg->set_small_blob_limit(0);
      REQUIRE_OK(f.reg->append_upload("team/app", id, 300, source_of(small.substr(300))));
      CHECK(fs::file_size(f.uploads_dir() / id) == small.size());
      REQUIRE_OK(f.reg->complete_upload("team/app", id, digest, nullptr));
      CHECK_FALSE(row_of(digest).in_database());
      CHECK(f.read("team/app", digest) == small);
    }

    SUBCASE("a small chunk cut short keeps the upload where it was")
    {
      const std::string id = begin_small(300);
      CHECK(code_of(f.reg->append_upload("team/app", id, 300,
                                         registry::test::cut_source_of(small.substr(300, 50))))
            == ErrorCode::blob_upload_invalid);
      auto status = f.reg->upload_status("team/app", id);
      REQUIRE_OK(status);
      CHECK(status->offset == 300);
      finish_small(id, 300);
    }

    SUBCASE("a wrong digest keeps nothing and ends the session")
    {
      auto started = f.reg->start_upload("team/app");
      REQUIRE_OK(started);
      auto body = source_of(small);
      CHECK(code_of(f.reg->complete_upload("team/app", started->id, digest_of("other"), &body))
            == ErrorCode::digest_invalid);
      auto found = f.reg->metadata().find_blob(1, digest_of("other"));
      REQUIRE_OK(found);
      CHECK_FALSE(found->has_value());
      CHECK(code_of(f.reg->upload_status("team/app", started->id))
            == ErrorCode::blob_upload_unknown);
    }

    SUBCASE("a small body that ends early leaves the upload empty and usable")
    {
      auto started = f.reg->start_upload("team/app");
      REQUIRE_OK(started);
      auto cut = registry::test::cut_source_of(small.substr(0, 500));
      CHECK(code_of(f.reg->complete_upload("team/app", started->id, digest, &cut))
            == ErrorCode::blob_upload_invalid);
      auto status = f.reg->upload_status("team/app", started->id);
      REQUIRE_OK(status);
      CHECK(status->offset == 0);
      auto body = source_of(small);
      REQUIRE_OK(f.reg->complete_upload("team/app", started->id, digest, &body));
      CHECK(f.read("team/app", digest) == small);
    }

    SUBCASE("a sha512 digest and the empty blob are kept too")
    {
      std::string d512 = Digest::of(small, util::HashAlgorithm::sha512).str();
      REQUIRE_OK(f.reg->push_blob("team/app", d512, source_of(small)));
      CHECK(row_of(d512).in_database());
      CHECK(f.read("team/app", d512) == small);
      const std::string empty_digest = digest_of("");
      auto started = f.reg->start_upload("team/app");
      REQUIRE_OK(started);
      REQUIRE_OK(f.reg->complete_upload("team/app", started->id, empty_digest, nullptr));
      CHECK(row_of(empty_digest).in_database());
      CHECK(f.read("team/app", empty_digest).empty());
      CHECK(count_files(f.blobs_dir()) == 0);
    }

    SUBCASE("with the limit at 0 the empty blob goes to the store")
    {
      f.reg->set_small_blob_limit(0);
      const std::string empty_digest = digest_of("");
      auto started = f.reg->start_upload("team/app");
      REQUIRE_OK(started);
      REQUIRE_OK(f.reg->complete_upload("team/app", started->id, empty_digest, nullptr));
      CHECK_FALSE(row_of(empty_digest).in_database());
      CHECK(count_files(f.blobs_dir()) == 1);
    }

    SUBCASE("a blob pushed to the store first keeps its file when pushed again small")
    {
      f.reg->set_small_blob_limit(0);
      f.push("team/app", small);
      f.reg->set_small_blob_limit(limit);
      f.push("team/second", small);
      CHECK_FALSE(row_of(digest).in_database());
      CHECK(f.read("team/second", digest) == small);
      CHECK(count_files(f.blobs_dir()) == 1);
    }

    SUBCASE("the same digest uploaded in chunks after it was kept leaves no spare file")
    {
      f.push("team/app", small);
      f.reg->set_small_blob_limit(0);
      auto started = f.reg->start_upload("team/second");
      REQUIRE_OK(started);
      REQUIRE_OK(f.reg->append_upload("team/second", started->id, 0, source_of(small)));
      REQUIRE_OK(f.reg->complete_upload("team/second", started->id, digest, nullptr));
      CHECK(row_of(digest).in_database());
      CHECK(count_files(f.blobs_dir()) == 0);
      CHECK(count_files(f.uploads_dir()) == 0);
      CHECK(f.read("team/second", digest) == small);
      CHECK(f.read("team/app", digest) == small);
    }

    SUBCASE("a kept blob mounts into another repository of the feed")
    {
      f.push("team/app", small);
      auto mounted = f.reg->mount_blob("team/copy", "team/app", digest);
      REQUIRE_OK(mounted);
      REQUIRE(mounted->has_value());
      CHECK(f.read("team/copy", digest) == small);
    }

    SUBCASE("a manifest over kept blobs is accepted and served")
    {
      std::string manifest = f.image("team/app", "kept");
      f.put("team/app", "v1", manifest);
      CHECK(count_files(f.blobs_dir()) == 0);
      auto got = f.reg->get_manifest("team/app", "v1", true);
      REQUIRE_OK(got);
      CHECK(got->bytes == manifest);
    }
  }

  TEST_CASE("service::Registry::mount_blob")
  {
    Fixture f;
    const std::string content = registry::test::random_bytes(4000, 14);
    const std::string digest = f.push("team/source", content);

    SUBCASE("a blob mounts between repositories of one feed")
    {
      auto mounted = f.reg->mount_blob("team/target", "team/source", digest);
      REQUIRE_OK(mounted);
      REQUIRE(mounted->has_value());
      CHECK((*mounted)->digest.str() == digest);
      CHECK((*mounted)->size == content.size());
      CHECK(f.read("team/target", digest) == content);
      CHECK(count_files(f.blobs_dir()) == 1);
    }

    SUBCASE("a blob mounts across feeds that share the store")
    {
      auto mounted = f.reg->mount_blob("other/target", "team/source", digest);
      REQUIRE_OK(mounted);
      REQUIRE(mounted->has_value());
      CHECK(f.read("other/target", digest) == content);
      // a manifest may now reference it in the target
      std::string config = "{}";
      f.push("other/target", config);
      json manifest = registry::test::oci_manifest_json(config, {});
      manifest["layers"].push_back(
        registry::test::descriptor_json("application/octet-stream", content));
      CHECK(f.put("other/target", "v1", manifest.dump()) == digest_of(manifest.dump()));
    }

    SUBCASE("a source without the blob gives nullopt and links nothing")
    {
      f.push("team/empty", "unrelated");
      const std::string absent = digest_of("absent");
      for (const char* from : {"team/empty", "team/missing", "nofeed/source", "Bad/Name"}) {
        INFO(from);
        auto mounted = f.reg->mount_blob("team/target", from, digest);
        REQUIRE_OK(mounted);
        CHECK_FALSE(mounted->has_value());
      }
      auto absent_mount = f.reg->mount_blob("team/target", "team/source", absent);
      REQUIRE_OK(absent_mount);
      CHECK_FALSE(absent_mount->has_value());
      CHECK(code_of(f.reg->stat_blob("team/target", digest)) == ErrorCode::blob_unknown);
    }

    SUBCASE("an unlinked source gives nullopt even though the bytes exist")
    {
      REQUIRE_OK(f.reg->delete_blob("team/source", digest));
      auto mounted = f.reg->mount_blob("team/target", "team/source", digest);
      REQUIRE_OK(mounted);
      CHECK_FALSE(mounted->has_value());
    }

    SUBCASE("a bad target, a missing target feed or a bad digest fail with their codes")
    {
      CHECK(code_of(f.reg->mount_blob("Team/target", "team/source", digest))
            == ErrorCode::name_invalid);
      CHECK(code_of(f.reg->mount_blob("nofeed/target", "team/source", digest))
            == ErrorCode::name_unknown);
      CHECK(code_of(f.reg->mount_blob("team/target", "team/source", "sha256:x"))
            == ErrorCode::digest_invalid);
    }
  }

  TEST_CASE("service::Registry manifests")
  {
    Fixture f;
    const std::string manifest = f.image("team/app", "app");
    const std::string digest = digest_of(manifest);

    SUBCASE("a manifest put by tag can be read by tag and by digest with its exact bytes")
    {
      auto put = f.reg->put_manifest("team/app", "latest", mt::oci_manifest, manifest);
      REQUIRE_OK(put);
      CHECK(put->digest.str() == digest);
      CHECK(put->subject.empty());

      auto by_tag = f.reg->get_manifest("team/app", "latest", true);
      REQUIRE_OK(by_tag);
      CHECK(by_tag->digest.str() == digest);
      CHECK(by_tag->media_type == mt::oci_manifest);
      CHECK(by_tag->size == manifest.size());
      CHECK(by_tag->bytes == manifest);

      auto by_digest = f.reg->get_manifest("team/app", digest, true);
      REQUIRE_OK(by_digest);
      CHECK(by_digest->bytes == manifest);

      auto head = f.reg->get_manifest("team/app", "latest", false);
      REQUIRE_OK(head);
      CHECK(head->bytes.empty());
      CHECK(head->size == manifest.size());
    }

    SUBCASE("a manifest put by digest is untagged and readable by digest")
    {
      auto put = f.reg->put_manifest("team/app", digest, mt::oci_manifest, manifest);
      REQUIRE_OK(put);
      CHECK(put->digest.str() == digest);
      CHECK_OK(f.reg->get_manifest("team/app", digest, false));
      CHECK(f.tags("team/app").empty());
    }

    SUBCASE("a manifest put by sha512 digest is addressed by that digest")
    {
      std::string d512 = Digest::of(manifest, util::HashAlgorithm::sha512).str();
      auto put = f.reg->put_manifest("team/app", d512, mt::oci_manifest, manifest);
      REQUIRE_OK(put);
      CHECK(put->digest.str() == d512);
      auto got = f.reg->get_manifest("team/app", d512, true);
      REQUIRE_OK(got);
      CHECK(got->bytes == manifest);
    }

    SUBCASE("a digest that does not match the bytes is digest_invalid and stores nothing")
    {
      const std::string wrong = digest_of(manifest + " ");
      CHECK(code_of(f.reg->put_manifest("team/app", wrong, mt::oci_manifest, manifest))
            == ErrorCode::digest_invalid);
      CHECK(code_of(f.reg->get_manifest("team/app", wrong, false)) == ErrorCode::manifest_unknown);
      CHECK(code_of(f.reg->get_manifest("team/app", digest, false))
            == ErrorCode::manifest_unknown);
    }

    SUBCASE("a manifest referencing an unlinked blob is manifest_blob_unknown")
    {
      json j = json::parse(manifest);
      j["layers"].push_back(registry::test::descriptor_json("application/octet-stream", "nope"));
      auto put = f.reg->put_manifest("team/app", "latest", mt::oci_manifest, j.dump());
      REQUIRE(code_of(put) == ErrorCode::manifest_blob_unknown);
      CHECK(put.error().detail == digest_of("nope"));
      CHECK(code_of(f.reg->get_manifest("team/app", "latest", false))
            == ErrorCode::manifest_unknown);
      // blobs of another repository do not count either
      CHECK(code_of(f.reg->put_manifest("team/elsewhere", "latest", mt::oci_manifest, manifest))
            == ErrorCode::manifest_blob_unknown);
    }

    SUBCASE("a foreign layer need not be linked")
    {
      json j = json::parse(manifest);
      auto foreign = registry::test::descriptor_json(
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", "windows base");
      foreign["urls"] = {"https://example.com/base.tar"};
      j["layers"].push_back(foreign);
      CHECK_OK(f.reg->put_manifest("team/app", "win", mt::oci_manifest, j.dump()));
    }

    SUBCASE("invalid manifests and tags are manifest_invalid")
    {
      CHECK(code_of(f.reg->put_manifest("team/app", "latest", mt::oci_manifest, "{not json"))
            == ErrorCode::manifest_invalid);
      CHECK(code_of(f.reg->put_manifest("team/app", "latest", mt::docker_manifest, manifest))
            == ErrorCode::manifest_invalid);
      CHECK(code_of(f.reg->put_manifest("team/app", ".bad", mt::oci_manifest, manifest))
            == ErrorCode::manifest_invalid);
      CHECK(code_of(f.reg->put_manifest("team/app", "sha256:zz", mt::oci_manifest, manifest))
            == ErrorCode::digest_invalid);
      std::string big = manifest;
      big.resize(registry::oci::k_max_manifest_bytes + 1, ' ');
      CHECK(code_of(f.reg->put_manifest("team/app", "big", mt::oci_manifest, big))
            == ErrorCode::manifest_invalid);
      CHECK(f.tags("team/app").empty());
    }

    SUBCASE("reads of unknown references are manifest_unknown")
    {
      f.put("team/app", "latest", manifest);
      CHECK(code_of(f.reg->get_manifest("team/app", "other", false))
            == ErrorCode::manifest_unknown);
      CHECK(code_of(f.reg->get_manifest("team/app", ".bad", false))
            == ErrorCode::manifest_unknown);
      CHECK(code_of(f.reg->get_manifest("team/app", digest_of("x"), false))
            == ErrorCode::manifest_unknown);
      CHECK(code_of(f.reg->get_manifest("team/app", "sha256:x", false))
            == ErrorCode::digest_invalid);
      CHECK(code_of(f.reg->get_manifest("team/never", "latest", false))
            == ErrorCode::manifest_unknown);
      // a manifest is visible only in its repository
      CHECK(code_of(f.reg->get_manifest("other/app", digest, false))
            == ErrorCode::manifest_unknown);
    }

    SUBCASE("a missing feed is name_unknown and a bad name name_invalid")
    {
      CHECK(code_of(f.reg->put_manifest("nofeed/app", "latest", mt::oci_manifest, manifest))
            == ErrorCode::name_unknown);
      CHECK(code_of(f.reg->get_manifest("nofeed/app", "latest", false))
            == ErrorCode::name_unknown);
      CHECK(code_of(f.reg->delete_manifest("nofeed/app", digest)) == ErrorCode::name_unknown);
      CHECK(code_of(f.reg->put_manifest("app", "latest", mt::oci_manifest, manifest))
            == ErrorCode::name_invalid);
      CHECK(code_of(f.reg->get_manifest("team/APP", "latest", false))
            == ErrorCode::name_invalid);
      CHECK(code_of(f.reg->delete_manifest("team/a..b", digest)) == ErrorCode::name_invalid);
    }

    SUBCASE("a tag moves to the manifest pushed last")
    {
      f.put("team/app", "latest", manifest);
      std::string second = f.image("team/app", "second");
      f.put("team/app", "latest", second);
      auto got = f.reg->get_manifest("team/app", "latest", true);
      REQUIRE_OK(got);
      CHECK(got->bytes == second);
      CHECK_OK(f.reg->get_manifest("team/app", digest, false));
    }

    SUBCASE("delete_manifest by tag removes only that tag")
    {
      f.put("team/app", "a", manifest);
      f.put("team/app", "b", manifest);
      auto removed = f.reg->delete_manifest("team/app", "a");
      REQUIRE_OK(removed);
      CHECK(removed->digest.str() == digest);
      CHECK(removed->removed_tags == std::vector<std::string>{"a"});
      CHECK(code_of(f.reg->get_manifest("team/app", "a", false)) == ErrorCode::manifest_unknown);
      CHECK_OK(f.reg->get_manifest("team/app", "b", false));
      CHECK_OK(f.reg->get_manifest("team/app", digest, false));
      CHECK(f.tags("team/app") == std::vector<std::string>{"b"});
      CHECK(code_of(f.reg->delete_manifest("team/app", "a")) == ErrorCode::manifest_unknown);
    }

    SUBCASE("delete_manifest by digest removes the manifest and all its tags")
    {
      f.put("team/app", "a", manifest);
      f.put("team/app", "b", manifest);
      auto removed = f.reg->delete_manifest("team/app", digest);
      REQUIRE_OK(removed);
      CHECK(removed->digest.str() == digest);
      CHECK(removed->removed_tags == std::vector<std::string>{"a", "b"});
      CHECK(code_of(f.reg->get_manifest("team/app", digest, false))
            == ErrorCode::manifest_unknown);
      CHECK(f.tags("team/app").empty());
      CHECK(code_of(f.reg->delete_manifest("team/app", digest)) == ErrorCode::manifest_unknown);
      // the blobs stay linked
      CHECK_OK(f.reg->stat_blob("team/app", digest_of(R"({"name":"app"})")));
    }

    SUBCASE("delete_image removes the manifest with every tag")
    {
      f.put("team/app", "a", manifest);
      f.put("team/app", "b", manifest);
      std::string other = f.image("team/app", "other");
      f.put("team/app", "c", other);
      auto removed = f.reg->delete_image("team/app", "a");
      REQUIRE_OK(removed);
      CHECK(removed->digest.str() == digest);
      CHECK(removed->removed_tags == std::vector<std::string>{"a", "b"});
      CHECK(code_of(f.reg->get_manifest("team/app", "b", false)) == ErrorCode::manifest_unknown);
      CHECK(code_of(f.reg->get_manifest("team/app", digest, false))
            == ErrorCode::manifest_unknown);
      CHECK(f.tags("team/app") == std::vector<std::string>{"c"});
      CHECK(code_of(f.reg->delete_image("team/app", "a")) == ErrorCode::manifest_unknown);
      CHECK(code_of(f.reg->delete_image("team/app", digest)) == ErrorCode::manifest_unknown);
    }

    SUBCASE("an index needs its children in the repository and protects them from deletion")
    {
      std::string arm = f.image("team/app", "arm");
      std::string d_amd = f.put("team/app", digest, manifest);
      std::string d_arm = f.put("team/app", digest_of(arm), arm);
      std::string index = registry::test::oci_index_json({manifest, arm}).dump();

      std::string missing_child = registry::test::oci_index_json({manifest, "absent"}).dump();
      auto refused = f.reg->put_manifest("team/app", "multi", mt::oci_index, missing_child);
      REQUIRE(code_of(refused) == ErrorCode::manifest_blob_unknown);
      CHECK(refused.error().detail == digest_of("absent"));

      std::string d_index = f.put("team/app", "multi", index, mt::oci_index);
      auto got = f.reg->get_manifest("team/app", "multi", false);
      REQUIRE_OK(got);
      CHECK(got->media_type == mt::oci_index);

      auto conflict = f.reg->delete_manifest("team/app", d_arm);
      REQUIRE(code_of(conflict) == ErrorCode::conflict);
      CHECK(conflict.error().detail == d_index);
      CHECK(code_of(f.reg->delete_image("team/app", d_amd)) == ErrorCode::conflict);

      REQUIRE_OK(f.reg->delete_manifest("team/app", d_index));
      CHECK_OK(f.reg->delete_manifest("team/app", d_arm));
    }

    SUBCASE("a Docker manifest list is stored with its media type")
    {
      std::string docker_config = R"({"docker":true})";
      std::string layer = "docker layer";
      f.push("team/app", docker_config);
      f.push("team/app", layer);
      json image = {{"schemaVersion", 2},
                    {"mediaType", mt::docker_manifest},
                    {"config", registry::test::descriptor_json(mt::docker_config, docker_config)},
                    {"layers",
                     {registry::test::descriptor_json(
                       "application/vnd.docker.image.rootfs.diff.tar.gzip", layer)}}};
      std::string d_image = f.put("team/app", "amd64", image.dump(), mt::docker_manifest);
      json list = {{"schemaVersion", 2},
                   {"mediaType", mt::docker_manifest_list},
                   {"manifests",
                    {{{"mediaType", mt::docker_manifest},
                      {"digest", d_image},
                      {"size", image.dump().size()},
                      {"platform", {{"os", "linux"}, {"architecture", "amd64"}}}}}}};
      f.put("team/app", "latest", list.dump(), mt::docker_manifest_list);
      auto got = f.reg->get_manifest("team/app", "latest", true);
      REQUIRE_OK(got);
      CHECK(got->media_type == mt::docker_manifest_list);
      CHECK(got->bytes == list.dump());
    }

    SUBCASE("describe_image reports tags and the parsed manifest")
    {
      f.put("team/app", "b", manifest);
      f.put("team/app", "a", manifest);
      auto details = f.reg->describe_image("team/app", "a");
      REQUIRE_OK(details);
      CHECK(details->repository == "team/app");
      CHECK(details->manifest.digest.str() == digest);
      CHECK(details->tags == std::vector<std::string>{"a", "b"});
      CHECK(details->parsed.layers.size() == 1);
      CHECK(code_of(f.reg->describe_image("team/never", "a")) == ErrorCode::name_unknown);
      CHECK(code_of(f.reg->describe_image("team/app", "zzz")) == ErrorCode::manifest_unknown);
    }
  }

  TEST_CASE("service::Registry::list_tags")
  {
    Fixture f;
    const std::string manifest = f.image("team/app", "app");
    const std::vector<std::string> all{"1.0", "1.1", "2.0", "latest", "stable"};
    for (const auto& tag : {"stable", "1.1", "latest", "2.0", "1.0"}) {
      f.put("team/app", tag, manifest);
    }

    SUBCASE("tags come sorted with their digest")
    {
      auto page = f.reg->list_tags("team/app", "", 100);
      REQUIRE_OK(page);
      CHECK(page->repository == "team/app");
      CHECK_FALSE(page->more);
      REQUIRE(page->tags.size() == all.size());
      for (size_t i = 0; i < all.size(); ++i) {
        CHECK(page->tags[i].name == all[i]);
        CHECK(page->tags[i].digest == digest_of(manifest));
        CHECK(page->tags[i].updated_at == k_start);
      }
    }

    SUBCASE("pages follow last and say whether more follow")
    {
      std::vector<std::string> seen;
      std::string last;
      int pages = 0;
      for (;;) {
        auto page = f.reg->list_tags("team/app", last, 2);
        REQUIRE_OK(page);
        ++pages;
        REQUIRE(page->tags.size() <= 2);
        for (const auto& t : page->tags) {
          seen.push_back(t.name);
        }
        if (!page->more) {
          break;
        }
        REQUIRE(!page->tags.empty());
        last = page->tags.back().name;
        REQUIRE(pages < 10);
      }
      CHECK(pages == 3);
      CHECK(seen == all);
    }

    SUBCASE("a page that ends exactly at the last tag has no more")
    {
      auto page = f.reg->list_tags("team/app", "", 5);
      REQUIRE_OK(page);
      CHECK(page->tags.size() == 5);
      CHECK_FALSE(page->more);
      auto four = f.reg->list_tags("team/app", "", 4);
      REQUIRE_OK(four);
      CHECK(four->tags.size() == 4);
      CHECK(four->more);
      auto after = f.reg->list_tags("team/app", "latest", 5);
      REQUIRE_OK(after);
      REQUIRE(after->tags.size() == 1);
      CHECK(after->tags[0].name == "stable");
      CHECK_FALSE(after->more);
    }

    SUBCASE("a missing repository or feed is name_unknown and a bad name name_invalid")
    {
      CHECK(code_of(f.reg->list_tags("team/never", "", 10)) == ErrorCode::name_unknown);
      CHECK(code_of(f.reg->list_tags("nofeed/app", "", 10)) == ErrorCode::name_unknown);
      CHECK(code_of(f.reg->list_tags("team/Bad", "", 10)) == ErrorCode::name_invalid);
    }
  }

  TEST_CASE("service::Registry::catalog")
  {
    Fixture f;
    const std::vector<std::string> repos{"other/x", "team/a", "team/b/c", "team/d"};
    for (const auto& repo : repos) {
      f.put(repo, "latest", f.image(repo, repo));
    }
    f.push("team/blobs-only", "just a blob");

    SUBCASE("every repository with a manifest is listed in order")
    {
      auto page = f.reg->catalog("", "", 100);
      REQUIRE_OK(page);
      CHECK(page->names == repos);
      CHECK_FALSE(page->more);
    }

    SUBCASE("pages follow last and say whether more follow")
    {
      auto first = f.reg->catalog("", "", 3);
      REQUIRE_OK(first);
      CHECK(first->names == std::vector<std::string>{"other/x", "team/a", "team/b/c"});
      CHECK(first->more);
      auto second = f.reg->catalog("", first->names.back(), 3);
      REQUIRE_OK(second);
      CHECK(second->names == std::vector<std::string>{"team/d"});
      CHECK_FALSE(second->more);
      auto exact = f.reg->catalog("", "", 4);
      REQUIRE_OK(exact);
      CHECK(exact->names.size() == 4);
      CHECK_FALSE(exact->more);
    }

    SUBCASE("a feed restricts the catalog")
    {
      auto team = f.reg->catalog("team", "", 2);
      REQUIRE_OK(team);
      CHECK(team->names == std::vector<std::string>{"team/a", "team/b/c"});
      CHECK(team->more);
      auto other = f.reg->catalog("other", "", 10);
      REQUIRE_OK(other);
      CHECK(other->names == std::vector<std::string>{"other/x"});
      CHECK_FALSE(other->more);
    }

    SUBCASE("a repository whose manifests are all deleted leaves the catalog")
    {
      auto got = f.reg->get_manifest("team/d", "latest", false);
      REQUIRE_OK(got);
      REQUIRE_OK(f.reg->delete_manifest("team/d", got->digest.str()));
      auto page = f.reg->catalog("team", "", 10);
      REQUIRE_OK(page);
      CHECK(page->names == std::vector<std::string>{"team/a", "team/b/c"});
    }
  }

  TEST_CASE("service::Registry::referrers")
  {
    Fixture f;
    const std::string subject_bytes = f.image("team/app", "subject");
    const std::string subject = f.put("team/app", "latest", subject_bytes);
    f.push("team/app", "{}");

    auto put_artifact = [&](const std::string& artifact_type, const std::string& payload) {
      f.push("team/app", payload);
      json j = {{"schemaVersion", 2},
                {"mediaType", mt::oci_manifest},
                {"artifactType", artifact_type},
                {"config", registry::test::descriptor_json(mt::oci_empty, "{}")},
                {"layers", {registry::test::descriptor_json("application/octet-stream", payload)}},
                {"subject", registry::test::descriptor_json(mt::oci_manifest, subject_bytes)},
                {"annotations", {{"org.example.payload", payload}}}};
      std::string bytes = j.dump();
      auto put = f.reg->put_manifest("team/app", digest_of(bytes), mt::oci_manifest, bytes);
      REQUIRE_OK(put);
      CHECK(put->subject == subject);
      return std::make_pair(put->digest.str(), bytes.size());
    };
    auto [sig, sig_size] = put_artifact("application/vnd.example.signature", "signature");
    auto [sbom, sbom_size] = put_artifact("application/vnd.example.sbom", "sbom");

    SUBCASE("the referrers index lists every manifest with the subject")
    {
      auto text = f.reg->referrers("team/app", subject, "");
      REQUIRE_OK(text);
      json index = json::parse(*text);
      CHECK(index["schemaVersion"] == 2);
      CHECK(index["mediaType"] == mt::oci_index);
      REQUIRE(index["manifests"].is_array());
      REQUIRE(index["manifests"].size() == 2);
      for (const auto& d : index["manifests"]) {
        CHECK(d["mediaType"] == mt::oci_manifest);
        if (d["digest"] == sig) {
          CHECK(d["artifactType"] == "application/vnd.example.signature");
          CHECK(d["size"] == sig_size);
          CHECK(d["annotations"] == json{{"org.example.payload", "signature"}});
        } else {
          CHECK(d["digest"] == sbom);
          CHECK(d["artifactType"] == "application/vnd.example.sbom");
          CHECK(d["size"] == sbom_size);
          CHECK(d["annotations"] == json{{"org.example.payload", "sbom"}});
        }
      }
    }

    SUBCASE("an artifact type filter keeps only matching referrers")
    {
      auto text = f.reg->referrers("team/app", subject, "application/vnd.example.sbom");
      REQUIRE_OK(text);
      json index = json::parse(*text);
      REQUIRE(index["manifests"].size() == 1);
      CHECK(index["manifests"][0]["digest"] == sbom);
    }

    SUBCASE("a subject without referrers, even an unknown one, gives an empty index")
    {
      for (const std::string& d : {sig, digest_of("never pushed")}) {
        auto text = f.reg->referrers("team/app", d, "");
        REQUIRE_OK(text);
        json index = json::parse(*text);
        CHECK(index["mediaType"] == mt::oci_index);
        CHECK(index["manifests"] == json::array());
      }
      auto elsewhere = f.reg->referrers("team/never", subject, "");
      REQUIRE_OK(elsewhere);
      CHECK(json::parse(*elsewhere)["manifests"] == json::array());
    }

    SUBCASE("a referrer without annotations has no annotations member")
    {
      json j = {{"schemaVersion", 2},
                {"mediaType", mt::oci_manifest},
                {"config", registry::test::descriptor_json("application/vnd.example.plain", "{}")},
                {"layers", json::array()},
                {"subject", registry::test::descriptor_json(mt::oci_manifest, subject_bytes)}};
      std::string plain = f.put("team/app", digest_of(j.dump()), j.dump());
      auto text = f.reg->referrers("team/app", subject, "application/vnd.example.plain");
      REQUIRE_OK(text);
      json index = json::parse(*text);
      REQUIRE(index["manifests"].size() == 1);
      CHECK(index["manifests"][0]["digest"] == plain);
      // the config media type stands in for the missing artifactType
      CHECK(index["manifests"][0]["artifactType"] == "application/vnd.example.plain");
      CHECK_FALSE(index["manifests"][0].contains("annotations"));
    }

    SUBCASE("the referrers of a deleted artifact no longer list it")
    {
      REQUIRE_OK(f.reg->delete_manifest("team/app", sig));
      auto text = f.reg->referrers("team/app", subject, "");
      REQUIRE_OK(text);
      json index = json::parse(*text);
      REQUIRE(index["manifests"].size() == 1);
      CHECK(index["manifests"][0]["digest"] == sbom);
    }

    SUBCASE("a malformed digest, a missing feed and a bad name fail with their codes")
    {
      CHECK(code_of(f.reg->referrers("team/app", "sha256:1", "")) == ErrorCode::digest_invalid);
      CHECK(code_of(f.reg->referrers("nofeed/app", subject, "")) == ErrorCode::name_unknown);
      CHECK(code_of(f.reg->referrers("team//app", subject, "")) == ErrorCode::name_invalid);
    }
  }
}

TEST_SUITE("service")
{
  TEST_CASE("service::Registry concurrent pushes")
  {
    Fixture f;
    constexpr int k_threads = 4;
    constexpr int k_rounds = 8;
    const std::string shared = registry::test::random_bytes(50'000, 21);
    std::vector<std::string> failures[k_threads];
    std::vector<std::thread> threads;

    SUBCASE("threads pushing the same and distinct blobs all succeed")
    {
      for (int t = 0; t < k_threads; ++t) {
        threads.emplace_back([&, t] {
          for (int r = 0; r < k_rounds; ++r) {
            std::string own = registry::test::random_bytes(10'000 + static_cast<size_t>(r),
                                                           static_cast<unsigned>(100 + t * 16 + r));
            const std::string repo = "team/app" + std::to_string(t % 2);
            for (const std::string* bytes : std::initializer_list<const std::string*>{&shared, &own}) {
              auto pushed = f.reg->push_blob(repo, digest_of(*bytes), source_of(*bytes, 777));
              if (!pushed) {
                failures[t].push_back(registry::test::describe(pushed));
              }
            }
          }
        });
      }
      for (auto& thread : threads) {
        thread.join();
      }
      for (const auto& list : failures) {
        for (const auto& failure : list) {
          FAIL_CHECK(failure);
        }
      }
      CHECK(f.read("team/app0", digest_of(shared)) == shared);
      CHECK(f.read("team/app1", digest_of(shared)) == shared);
      CHECK(count_files(f.uploads_dir()) == 0);
      CHECK(count_files(f.blobs_dir()) == 1 + k_threads * k_rounds);
    }
  }
}
