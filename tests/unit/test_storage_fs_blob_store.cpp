#include "common/storage/fs_blob_store.hpp"

#include "common/oci/digest.hpp"
#include "common/util/uuid.hpp"
#include "tests/support/test_dir.hpp"
#include "tests/unit/storage_contract.hpp"
#include "tests/unit/unit_helpers.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

using registry::ErrorCode;
using registry::oci::Digest;
using registry::storage::FsBlobStore;
using registry::storage::ObjectInfo;
using registry::test::code_of;
using registry::test::TestDir;
namespace fs = std::filesystem;
namespace util = registry::util;

namespace {

std::unique_ptr<FsBlobStore>
open_store(const TestDir& dir)
{
  auto store = FsBlobStore::open(dir / "store");
  REQUIRE_OK(store);
  return std::move(store).value();
}

// Appends `data` to upload `id` through one writer and closes it.
void
append(FsBlobStore& store, const std::string& id, const std::string& data)
{
  auto writer = store.append_upload(id);
  REQUIRE_OK(writer);
  auto written = (*writer)->write(data.data(), data.size());
  REQUIRE_OK(written);
  auto closed = (*writer)->close();
  REQUIRE_OK(closed);
}

// A store in a fresh directory holding one upload of `size` random bytes.
struct OneUpload {
  TestDir dir;
  std::unique_ptr<FsBlobStore> store = open_store(dir);
  std::string content;
  Digest digest;
  std::string id = util::random_uuid();

  OneUpload(size_t size, uint64_t seed)
    : content(registry::test::random_bytes(size, seed)), digest(Digest::of(content))
  {
    REQUIRE_OK(store->create_upload(id));
    append(*store, id, content);
  }
};

std::string
read_upload(FsBlobStore& store, const std::string& id)
{
  std::string out;
  auto read = store.read_upload(id, [&](const char* data, size_t size) {
    out.append(data, size);
    return true;
  });
  REQUIRE_OK(read);
  return out;
}

// The whole blob under `key`, read through open_blob()->read_at().
std::string
read_blob(FsBlobStore& store, const std::string& key)
{
  auto reader = store.open_blob(key);
  REQUIRE_OK(reader);
  std::string out((*reader)->size(), '\0');
  size_t done = 0;
  while (done < out.size()) {
    auto n = (*reader)->read_at(done, out.data() + done, out.size() - done);
    REQUIRE_OK(n);
    REQUIRE(*n > 0);
    done += *n;
  }
  return out;
}

std::vector<std::string>
blob_keys(FsBlobStore& store)
{
  std::vector<std::string> keys;
  auto listed = store.list_blobs([&](const ObjectInfo& info) {
    keys.push_back(info.key);
    return true;
  });
  REQUIRE_OK(listed);
  std::sort(keys.begin(), keys.end());
  return keys;
}

size_t
files_in(const fs::path& dir)
{
  size_t n = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator(dir)) {
    ++n;
  }
  return n;
}

} // namespace

TEST_SUITE("storage")
{
  TEST_CASE("storage::FsBlobStore contract")
  {
    TestDir dir;
    registry::test::run_blob_store_contract(
      [&]() -> std::unique_ptr<registry::storage::BlobStore> { return open_store(dir); });
  }

  TEST_CASE("storage::FsBlobStore::open")
  {
    TestDir dir;

    SUBCASE("the root and its blobs and uploads directories are created")
    {
      auto store = FsBlobStore::open(dir / "a" / "b");
      REQUIRE_OK(store);
      CHECK(fs::is_directory(dir / "a" / "b" / "blobs"));
      CHECK(fs::is_directory(dir / "a" / "b" / "uploads"));
      CHECK((*store)->kind() == "filesystem");
      CHECK((*store)->root() == dir / "a" / "b");
    }

    SUBCASE("a new store has its 256 sha256 shards; an existing one is left as it is")
    {
      REQUIRE_OK(FsBlobStore::open(dir / "s"));
      size_t shards = 0;
      for (const auto& entry : fs::directory_iterator(dir / "s" / "blobs" / "sha256")) {
        CHECK(entry.is_directory());
        CHECK(entry.path().filename().string().size() == 2);
        ++shards;
      }
      CHECK(shards == 256);
      CHECK(fs::is_directory(dir / "s" / "blobs" / "sha256" / "00"));
      CHECK(fs::is_directory(dir / "s" / "blobs" / "sha256" / "ff"));
      fs::remove(dir / "s" / "blobs" / "sha256" / "7f");
      REQUIRE_OK(FsBlobStore::open(dir / "s"));
      CHECK_FALSE(fs::exists(dir / "s" / "blobs" / "sha256" / "7f"));
    }

    SUBCASE("a root that cannot be created is io_error")
    {
      std::ofstream(dir / "file") << "x";
      CHECK(code_of(FsBlobStore::open(dir / "file" / "store")) == ErrorCode::io_error);
    }
  }

  TEST_CASE("storage::FsBlobStore::key_for")
  {
    SUBCASE("the key is blobs/<algorithm>/<2 hex>/<hex>")
    {
      Digest d = Digest::of("abc");
      CHECK(FsBlobStore::key_for(d)
            == "blobs/sha256/ba/ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
      Digest d512 = Digest::of("abc", util::HashAlgorithm::sha512);
      CHECK(FsBlobStore::key_for(d512) == "blobs/sha512/dd/" + std::string(d512.hex()));
    }
  }

  TEST_CASE("storage::FsBlobStore uploads")
  {
    TestDir dir;
    auto store = open_store(dir);
    const std::string id = util::random_uuid();

    SUBCASE("a new upload is empty and listed")
    {
      auto created = store->create_upload(id);
      REQUIRE_OK(created);
      auto size = store->upload_size(id);
      REQUIRE_OK(size);
      CHECK(*size == 0);
      auto uploads = store->list_uploads();
      REQUIRE_OK(uploads);
      REQUIRE(uploads->size() == 1);
      CHECK((*uploads)[0].key == id);
      CHECK((*uploads)[0].size == 0);
      CHECK((*uploads)[0].modified > 0);
    }

    SUBCASE("creating an upload twice is already_exists")
    {
      auto created = store->create_upload(id);
      REQUIRE_OK(created);
      CHECK(code_of(store->create_upload(id)) == ErrorCode::already_exists);
    }

    SUBCASE("appends accumulate in order across writers")
    {
      REQUIRE_OK(store->create_upload(id));
      append(*store, id, "hello ");
      append(*store, id, "world");
      auto size = store->upload_size(id);
      REQUIRE_OK(size);
      CHECK(*size == 11);
      CHECK(read_upload(*store, id) == "hello world");
    }

    SUBCASE("writes larger than the writer's buffer are kept whole and in order")
    {
      REQUIRE_OK(store->create_upload(id));
      std::string big = registry::test::random_bytes(3 * 1024 * 1024 + 17, 3);
      auto writer = store->append_upload(id);
      REQUIRE_OK(writer);
      // small, huge, small: exercises buffering, flush and the direct path
      REQUIRE_OK((*writer)->write(big.data(), 10));
      REQUIRE_OK((*writer)->write(big.data() + 10, 2 * 1024 * 1024));
      REQUIRE_OK((*writer)->write(big.data() + 10 + 2 * 1024 * 1024,
                                  big.size() - 10 - 2 * 1024 * 1024));
      REQUIRE_OK((*writer)->close());
      writer->reset();
      auto size = store->upload_size(id);
      REQUIRE_OK(size);
      CHECK(*size == big.size());
      CHECK(read_upload(*store, id) == big);
    }

    SUBCASE("bytes written but never closed do not count")
    {
      REQUIRE_OK(store->create_upload(id));
      append(*store, id, "kept");
      {
        auto writer = store->append_upload(id);
        REQUIRE_OK(writer);
        REQUIRE_OK((*writer)->write("lost", 4));
      }
      auto size = store->upload_size(id);
      REQUIRE_OK(size);
      CHECK(*size == 4);
      CHECK(read_upload(*store, id) == "kept");
    }

    SUBCASE("read_upload stops when the sink returns false")
    {
      REQUIRE_OK(store->create_upload(id));
      append(*store, id, registry::test::random_bytes(3 * 1024 * 1024, 4));
      int calls = 0;
      auto read = store->read_upload(id, [&](const char*, size_t) {
        ++calls;
        return false;
      });
      REQUIRE_OK(read);
      CHECK(calls == 1);
    }

    SUBCASE("operations on a missing upload are not_found")
    {
      CHECK(code_of(store->upload_size(id)) == ErrorCode::not_found);
      CHECK(code_of(store->append_upload(id)) == ErrorCode::not_found);
      CHECK(code_of(store->read_upload(id, [](const char*, size_t) { return true; }))
            == ErrorCode::not_found);
      CHECK(code_of(store->commit_upload(id, Digest::of(""))) == ErrorCode::not_found);
    }

    SUBCASE("upload ids that are not UUIDs are invalid_argument, so no path escapes")
    {
      for (const char* bad : {"../x", "..", "", "x", "../../etc/passwd",
                              "123e4567-e89b-42d3-a456-42661417/000",
                              "123E4567-E89B-42D3-A456-426614174000"}) {
        INFO("'", bad, "'");
        CHECK(code_of(store->create_upload(bad)) == ErrorCode::invalid_argument);
        CHECK(code_of(store->upload_size(bad)) == ErrorCode::invalid_argument);
        CHECK(code_of(store->append_upload(bad)) == ErrorCode::invalid_argument);
        CHECK(code_of(store->commit_upload(bad, Digest::of(""))) == ErrorCode::invalid_argument);
        CHECK(code_of(store->remove_upload(bad)) == ErrorCode::invalid_argument);
      }
      CHECK_FALSE(fs::exists(dir / "x"));
    }

    SUBCASE("remove_upload is idempotent")
    {
      REQUIRE_OK(store->create_upload(id));
      append(*store, id, "data");
      CHECK_OK(store->remove_upload(id));
      CHECK(code_of(store->upload_size(id)) == ErrorCode::not_found);
      CHECK_OK(store->remove_upload(id));
      auto uploads = store->list_uploads();
      REQUIRE_OK(uploads);
      CHECK(uploads->empty());
    }

    SUBCASE("list_uploads reports every upload with its size and skips foreign files")
    {
      const std::string other = util::random_uuid();
      REQUIRE_OK(store->create_upload(id));
      REQUIRE_OK(store->create_upload(other));
      append(*store, other, "12345");
      std::ofstream(dir / "store" / "uploads" / "not-an-upload") << "junk";
      auto uploads = store->list_uploads();
      REQUIRE_OK(uploads);
      REQUIRE(uploads->size() == 2);
      auto find = [&](const std::string& key) {
        return std::find_if(uploads->begin(), uploads->end(),
                            [&](const ObjectInfo& info) { return info.key == key; });
      };
      REQUIRE(find(id) != uploads->end());
      CHECK(find(id)->size == 0);
      REQUIRE(find(other) != uploads->end());
      CHECK(find(other)->size == 5);
    }
  }

  TEST_CASE("storage::FsBlobStore::commit_upload")
  {
    OneUpload f(70'000, 5);
    auto& [dir, store, content, digest, id] = f;

    SUBCASE("the upload becomes the blob under key_for(digest) and the upload is gone")
    {
      auto key = store->commit_upload(id, digest);
      REQUIRE_OK(key);
      CHECK(*key == FsBlobStore::key_for(digest));
      CHECK(fs::is_regular_file(dir / "store" / *key));
      CHECK(code_of(store->upload_size(id)) == ErrorCode::not_found);
      CHECK(files_in(dir / "store" / "uploads") == 0);
      CHECK(read_blob(*store, *key) == content);
      auto info = store->stat_blob(*key);
      REQUIRE_OK(info);
      CHECK(info->key == *key);
      CHECK(info->size == content.size());
      CHECK(info->modified > 0);
    }

    SUBCASE("committing when the blob already exists keeps it and drops the upload")
    {
      auto first = store->commit_upload(id, digest);
      REQUIRE_OK(first);
      const std::string again = util::random_uuid();
      REQUIRE_OK(store->create_upload(again));
      append(*store, again, content);
      auto second = store->commit_upload(again, digest);
      REQUIRE_OK(second);
      CHECK(*second == *first);
      CHECK(code_of(store->upload_size(again)) == ErrorCode::not_found);
      CHECK(files_in(dir / "store" / "uploads") == 0);
      CHECK(blob_keys(*store) == std::vector<std::string>{*first});
      CHECK(read_blob(*store, *first) == content);
    }
  }

  TEST_CASE("storage::FsBlobStore::place_upload")
  {
    OneUpload f(5'000, 6);
    auto& [dir, store, content, digest, id] = f;
    const fs::path blob = dir / "store" / FsBlobStore::key_for(digest);

    SUBCASE("a synced upload gets a second name at its key; the commit drops the first")
    {
      REQUIRE_OK(store->sync_upload(id));
      REQUIRE_OK(store->place_upload(id, digest));
      CHECK(fs::is_regular_file(blob));
      CHECK(fs::hard_link_count(blob) == 2);
      CHECK(store->upload_size(id).value() == content.size());
      auto key = store->commit_upload(id, digest);
      REQUIRE_OK(key);
      CHECK(fs::hard_link_count(blob) == 1);
      CHECK(files_in(dir / "store" / "uploads") == 0);
      CHECK(read_blob(*store, *key) == content);
    }

    SUBCASE("bytes removed between the placement and the commit are put back by the commit")
    {
      REQUIRE_OK(store->sync_upload(id));
      REQUIRE_OK(store->place_upload(id, digest));
      REQUIRE_OK(store->remove_blob(FsBlobStore::key_for(digest))); // as gc would
      CHECK_FALSE(fs::exists(blob));
      auto key = store->commit_upload(id, digest);
      REQUIRE_OK(key);
      CHECK(read_blob(*store, *key) == content);
      CHECK(files_in(dir / "store" / "uploads") == 0);
    }

    SUBCASE("an existing blob stays as it is; the commit drops the upload")
    {
      const std::string first = util::random_uuid();
      REQUIRE_OK(store->create_upload(first));
      append(*store, first, content);
      REQUIRE_OK(store->commit_upload(first, digest));
      REQUIRE_OK(store->sync_upload(id));
      REQUIRE_OK(store->place_upload(id, digest));
      CHECK(fs::hard_link_count(blob) == 1);
      REQUIRE_OK(store->commit_upload(id, digest));
      CHECK(files_in(dir / "store" / "uploads") == 0);
      CHECK(read_blob(*store, FsBlobStore::key_for(digest)) == content);
    }

    SUBCASE("an upload not synced is left where it is: the commit syncs and moves it")
    {
      REQUIRE_OK(store->place_upload(id, digest));
      CHECK_FALSE(fs::exists(blob));
      REQUIRE_OK(store->commit_upload(id, digest));
      CHECK(fs::hard_link_count(blob) == 1);
      CHECK(read_blob(*store, FsBlobStore::key_for(digest)) == content);
    }

    SUBCASE("a missing shard directory is created")
    {
      fs::remove(blob.parent_path()); // as in a store older than the shards made at open
      CHECK_FALSE(fs::exists(blob.parent_path()));
      REQUIRE_OK(store->sync_upload(id));
      REQUIRE_OK(store->place_upload(id, digest));
      CHECK(fs::is_directory(blob.parent_path()));
      CHECK(fs::is_regular_file(blob));
    }
  }

  TEST_CASE("storage::FsBlobStore::put_blob")
  {
    TestDir dir;
    auto store = open_store(dir);

    SUBCASE("small bytes are stored under key_for(digest) and the call is idempotent")
    {
      const std::string bytes = R"({"config":true})";
      const Digest digest = Digest::of(bytes);
      auto key = store->put_blob(digest, bytes);
      REQUIRE_OK(key);
      CHECK(*key == FsBlobStore::key_for(digest));
      auto again = store->put_blob(digest, bytes);
      REQUIRE_OK(again);
      CHECK(*again == *key);
      CHECK(read_blob(*store, *key) == bytes);
      CHECK(files_in(dir / "store" / "uploads") == 0);
    }

    SUBCASE("an empty blob can be stored and read")
    {
      const Digest digest = Digest::of("");
      auto key = store->put_blob(digest, "");
      REQUIRE_OK(key);
      auto reader = store->open_blob(*key);
      REQUIRE_OK(reader);
      CHECK((*reader)->size() == 0);
      char c = 0;
      auto n = (*reader)->read_at(0, &c, 1);
      REQUIRE_OK(n);
      CHECK(*n == 0);
    }
  }

  TEST_CASE("storage::FsBlobStore::open_blob")
  {
    TestDir dir;
    auto store = open_store(dir);
    const std::string content = registry::test::random_bytes(10'000, 6);
    auto key = store->put_blob(Digest::of(content), content);
    REQUIRE_OK(key);

    SUBCASE("read_at reads any range and returns 0 at the end")
    {
      auto reader = store->open_blob(*key);
      REQUIRE_OK(reader);
      CHECK((*reader)->size() == content.size());

      std::string buffer(100, '\0');
      auto n = (*reader)->read_at(5000, buffer.data(), buffer.size());
      REQUIRE_OK(n);
      CHECK(*n == 100);
      CHECK(buffer == content.substr(5000, 100));

      auto tail = (*reader)->read_at(content.size() - 10, buffer.data(), buffer.size());
      REQUIRE_OK(tail);
      CHECK(*tail == 10);
      CHECK(buffer.substr(0, 10) == content.substr(content.size() - 10));

      auto end = (*reader)->read_at(content.size(), buffer.data(), buffer.size());
      REQUIRE_OK(end);
      CHECK(*end == 0);
      auto beyond = (*reader)->read_at(content.size() + 1000, buffer.data(), buffer.size());
      REQUIRE_OK(beyond);
      CHECK(*beyond == 0);

      auto first = (*reader)->read_at(0, buffer.data(), 1);
      REQUIRE_OK(first);
      CHECK(*first == 1);
      CHECK(buffer[0] == content[0]);
    }

    SUBCASE("a well-formed key with no blob is not_found")
    {
      const std::string missing = FsBlobStore::key_for(Digest::of("missing"));
      CHECK(code_of(store->open_blob(missing)) == ErrorCode::not_found);
      CHECK(code_of(store->stat_blob(missing)) == ErrorCode::not_found);
    }

    SUBCASE("keys the store never produced are invalid_argument, so no path escapes")
    {
      // A file outside the blob tree that an escaping key would reach.
      std::ofstream(dir / "secret") << "secret";
      std::ofstream(dir / "store" / "x") << "x";
      const std::string hex = std::string(Digest::of(content).hex());
      const std::string wrong_prefix = hex.substr(0, 2) == "00" ? "11" : "00";
      for (const std::string& bad :
           {std::string("blobs/../x"), std::string("blobs/../../secret"), std::string("../secret"),
            std::string("/etc/passwd"), std::string(""), std::string("blobs"),
            std::string("blobs/"), std::string("blobs/sha256"), std::string("blobs/sha256/"),
            std::string("blobs/md5/ab/abcd"), std::string("blobs/sha256/../../x"),
            "blobs/sha256/" + hex.substr(0, 2) + "/../../../x",
            "blobs/sha256/" + hex.substr(0, 2) + "/" + hex + "/..",
            "blobs/sha256/zz/zz" + hex.substr(4), "blobs/sha256/" + wrong_prefix + "/" + hex,
            "blobs/SHA256/" + hex.substr(0, 2) + "/" + hex,
            "uploads/" + util::random_uuid(), "./" + *key, "/" + *key}) {
        INFO("key: '", bad, "'");
        CHECK(code_of(store->open_blob(bad)) == ErrorCode::invalid_argument);
        CHECK(code_of(store->stat_blob(bad)) == ErrorCode::invalid_argument);
        CHECK(code_of(store->remove_blob(bad)) == ErrorCode::invalid_argument);
      }
      CHECK(fs::exists(dir / "secret"));
      CHECK(fs::exists(dir / "store" / "x"));
    }
  }

  TEST_CASE("storage::FsBlobStore::remove_blob")
  {
    TestDir dir;
    auto store = open_store(dir);

    SUBCASE("removing is idempotent")
    {
      auto key = store->put_blob(Digest::of("gone"), "gone");
      REQUIRE_OK(key);
      CHECK_OK(store->remove_blob(*key));
      CHECK(code_of(store->stat_blob(*key)) == ErrorCode::not_found);
      CHECK(code_of(store->open_blob(*key)) == ErrorCode::not_found);
      CHECK_OK(store->remove_blob(*key));
      CHECK(blob_keys(*store).empty());
    }
  }

  TEST_CASE("storage::FsBlobStore::list_blobs")
  {
    TestDir dir;
    auto store = open_store(dir);

    SUBCASE("an empty store lists nothing")
    {
      CHECK(blob_keys(*store).empty());
    }

    SUBCASE("every committed blob is listed with its size; stray files are not")
    {
      std::vector<std::string> expected;
      for (int i = 0; i < 5; ++i) {
        std::string bytes = "blob " + std::to_string(i) + std::string(static_cast<size_t>(i), 'x');
        Digest d = i == 4 ? Digest::of(bytes, util::HashAlgorithm::sha512) : Digest::of(bytes);
        auto key = store->put_blob(d, bytes);
        REQUIRE_OK(key);
        expected.push_back(*key);
      }
      std::sort(expected.begin(), expected.end());
      fs::create_directories(dir / "store" / "blobs" / "sha256" / "ab");
      std::ofstream(dir / "store" / "blobs" / "sha256" / "ab" / "ab.tmp") << "stray";
      std::ofstream(dir / "store" / "blobs" / "README") << "stray";
      CHECK(blob_keys(*store) == expected);

      std::vector<ObjectInfo> infos;
      REQUIRE_OK(store->list_blobs([&](const ObjectInfo& info) {
        infos.push_back(info);
        return true;
      }));
      for (const auto& info : infos) {
        auto stat = store->stat_blob(info.key);
        REQUIRE_OK(stat);
        CHECK(stat->size == info.size);
      }
    }

    SUBCASE("listing stops when the visitor returns false")
    {
      for (int i = 0; i < 3; ++i) {
        std::string bytes = "b" + std::to_string(i);
        REQUIRE_OK(store->put_blob(Digest::of(bytes), bytes));
      }
      int visits = 0;
      auto listed = store->list_blobs([&](const ObjectInfo&) {
        ++visits;
        return false;
      });
      REQUIRE_OK(listed);
      CHECK(visits == 1);
    }
  }
}
