#pragma once

// The BlobStore contract: what every driver (filesystem, S3, Azure) must do, as
// one set of subcases run unchanged against each of them. A driver's test file
// calls run_blob_store_contract() from its own TEST_CASE with a factory that
// returns a store over an empty namespace (a fresh directory, a fresh bucket
// prefix) on every call: doctest re-enters the test case once per subcase.
//
// Driver-specific behaviour (file layout, signing, multipart part sizes) stays in
// the driver's own test file.

#include "common/oci/digest.hpp"
#include "common/storage/blob_store.hpp"
#include "common/util/uuid.hpp"
#include "tests/unit/unit_helpers.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace registry::test {

using StoreFactory = std::function<std::unique_ptr<storage::BlobStore>()>;

namespace contract {

inline void
append(storage::BlobStore& store, const std::string& id, std::string_view data)
{
  auto writer = store.append_upload(id);
  REQUIRE_OK(writer);
  auto written = (*writer)->write(data.data(), data.size());
  REQUIRE_OK(written);
  auto closed = (*writer)->close();
  REQUIRE_OK(closed);
}

// The whole blob under `key`, read through open_blob()->read_at() in pieces of
// `piece` bytes (sequential, as the server streams a GET).
inline std::string
read_blob(storage::BlobStore& store, const std::string& key, size_t piece = 1 << 20)
{
  auto reader = store.open_blob(key);
  REQUIRE_OK(reader);
  std::string out((*reader)->size(), '\0');
  size_t done = 0;
  while (done < out.size()) {
    auto n = (*reader)->read_at(done, out.data() + done, std::min(piece, out.size() - done));
    REQUIRE_OK(n);
    REQUIRE(*n > 0);
    done += *n;
  }
  return out;
}

inline std::vector<storage::ObjectInfo>
listed_blobs(storage::BlobStore& store)
{
  std::vector<storage::ObjectInfo> infos;
  auto listed = store.list_blobs([&](const storage::ObjectInfo& info) {
    infos.push_back(info);
    return true;
  });
  REQUIRE_OK(listed);
  std::sort(infos.begin(), infos.end(),
            [](const auto& a, const auto& b) { return a.key < b.key; });
  return infos;
}

inline std::vector<std::string>
upload_ids(storage::BlobStore& store)
{
  auto uploads = store.list_uploads();
  REQUIRE_OK(uploads);
  std::vector<std::string> ids;
  for (const auto& info : *uploads) {
    ids.push_back(info.key);
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

// Creates an upload holding `content` (appended in `chunk`-byte writes, one
// writer per chunk as PATCH requests do) and commits it.
inline std::string
commit(storage::BlobStore& store, std::string_view content, size_t chunk = 1 << 20)
{
  const std::string id = util::random_uuid();
  REQUIRE_OK(store.create_upload(id));
  for (size_t at = 0; at < content.size(); at += chunk) {
    append(store, id, content.substr(at, chunk));
  }
  REQUIRE_OK(store.sync_upload(id));
  auto key = store.commit_upload(id, oci::Digest::of(content));
  REQUIRE_OK(key);
  return *key;
}

} // namespace contract

inline void
run_blob_store_contract(const StoreFactory& open_fresh)
{
  using contract::append;
  using contract::commit;
  using contract::read_blob;
  auto store = open_fresh();
  REQUIRE(store != nullptr);
  const std::string id = util::random_uuid();

  SUBCASE("contract: check() succeeds on a usable store")
  {
    CHECK_OK(store->check());
    CHECK(contract::listed_blobs(*store).empty());
    CHECK(contract::upload_ids(*store).empty());
  }

  SUBCASE("contract: a new upload is empty and listed; a second create is already_exists")
  {
    REQUIRE_OK(store->create_upload(id));
    auto size = store->upload_size(id);
    REQUIRE_OK(size);
    CHECK(*size == 0);
    CHECK(contract::upload_ids(*store) == std::vector<std::string>{id});
    CHECK(code_of(store->create_upload(id)) == ErrorCode::already_exists);
  }

  SUBCASE("contract: appends from many writers accumulate in order")
  {
    REQUIRE_OK(store->create_upload(id));
    append(*store, id, "hello ");
    append(*store, id, "world");
    auto size = store->upload_size(id);
    REQUIRE_OK(size);
    CHECK(*size == 11);
    auto uploads = store->list_uploads();
    REQUIRE_OK(uploads);
    REQUIRE(uploads->size() == 1);
    CHECK((*uploads)[0].size == 11);
    CHECK((*uploads)[0].modified > 0);
    if (store->can_read_uploads()) {
      std::string back;
      REQUIRE_OK(store->read_upload(id, [&](const char* data, size_t n) {
        back.append(data, n);
        return true;
      }));
      CHECK(back == "hello world");
    }
    REQUIRE_OK(store->sync_upload(id));
    auto key = store->commit_upload(id, oci::Digest::of("hello world"));
    REQUIRE_OK(key);
    CHECK(read_blob(*store, *key) == "hello world");
  }

  SUBCASE("contract: small and large writes commit to the exact bytes; the upload is gone")
  {
    // Many small chunks then one large one: the shape of a chunked push.
    const std::string content = random_bytes(9 * 1024 * 1024 + 4321, 41);
    REQUIRE_OK(store->create_upload(id));
    size_t at = 0;
    for (int i = 0; i < 40; ++i) {
      append(*store, id, std::string_view(content).substr(at, 1000 + i));
      at += 1000 + static_cast<size_t>(i);
    }
    append(*store, id, std::string_view(content).substr(at));
    auto size = store->upload_size(id);
    REQUIRE_OK(size);
    CHECK(*size == content.size());
    REQUIRE_OK(store->sync_upload(id));
    auto key = store->commit_upload(id, oci::Digest::of(content));
    REQUIRE_OK(key);
    CHECK(code_of(store->upload_size(id)) == ErrorCode::not_found);
    CHECK(contract::upload_ids(*store).empty());
    CHECK(read_blob(*store, *key) == content);
    CHECK(read_blob(*store, *key, 64 * 1024) == content);
    auto info = store->stat_blob(*key);
    REQUIRE_OK(info);
    CHECK(info->key == *key);
    CHECK(info->size == content.size());
    CHECK(info->modified > 0);
    auto listed = contract::listed_blobs(*store);
    REQUIRE(listed.size() == 1);
    CHECK(listed[0].key == *key);
    CHECK(listed[0].size == content.size());
  }

  SUBCASE("contract: an empty upload commits to an empty blob")
  {
    REQUIRE_OK(store->create_upload(id));
    REQUIRE_OK(store->sync_upload(id));
    auto key = store->commit_upload(id, oci::Digest::of(""));
    REQUIRE_OK(key);
    auto reader = store->open_blob(*key);
    REQUIRE_OK(reader);
    CHECK((*reader)->size() == 0);
    char c = 0;
    auto n = (*reader)->read_at(0, &c, 1);
    REQUIRE_OK(n);
    CHECK(*n == 0);
  }

  SUBCASE("contract: operations on a missing upload are not_found; remove is idempotent")
  {
    CHECK(code_of(store->upload_size(id)) == ErrorCode::not_found);
    CHECK(code_of(store->append_upload(id)) == ErrorCode::not_found);
    CHECK(code_of(store->commit_upload(id, oci::Digest::of(""))) == ErrorCode::not_found);
    CHECK_OK(store->remove_upload(id));
    REQUIRE_OK(store->create_upload(id));
    append(*store, id, "data");
    CHECK_OK(store->remove_upload(id));
    CHECK(code_of(store->upload_size(id)) == ErrorCode::not_found);
    CHECK_OK(store->remove_upload(id));
    CHECK(contract::upload_ids(*store).empty());
  }

  SUBCASE("contract: upload ids that are not UUIDs are invalid_argument")
  {
    for (const char* bad : {"../x", "..", "", "x", "a/b", "123E4567-E89B-42D3-A456-426614174000"}) {
      INFO("'", bad, "'");
      CHECK(code_of(store->create_upload(bad)) == ErrorCode::invalid_argument);
      CHECK(code_of(store->upload_size(bad)) == ErrorCode::invalid_argument);
      CHECK(code_of(store->append_upload(bad)) == ErrorCode::invalid_argument);
      CHECK(code_of(store->remove_upload(bad)) == ErrorCode::invalid_argument);
    }
  }

  SUBCASE("contract: upload state is kept when the store cannot read uploads back")
  {
    REQUIRE_OK(store->create_upload(id));
    if (store->can_read_uploads()) {
      CHECK(code_of(store->save_upload_state(id, "x")) == ErrorCode::unsupported);
    } else {
      auto none = store->load_upload_state(id);
      REQUIRE_OK(none);
      CHECK_FALSE(none->has_value());
      REQUIRE_OK(store->save_upload_state(id, "first"));
      REQUIRE_OK(store->save_upload_state(id, std::string("second\0binary", 13)));
      auto loaded = store->load_upload_state(id);
      REQUIRE_OK(loaded);
      REQUIRE(loaded->has_value());
      CHECK(**loaded == std::string("second\0binary", 13));
      REQUIRE_OK(store->remove_upload(id));
      auto gone = store->load_upload_state(id);
      CHECK((!gone || !gone->has_value()));
    }
  }

  SUBCASE("contract: put_blob stores small bytes, twice is harmless, empty works")
  {
    const std::string bytes = R"({"config":true})";
    auto key = store->put_blob(oci::Digest::of(bytes), bytes);
    REQUIRE_OK(key);
    auto again = store->put_blob(oci::Digest::of(bytes), bytes);
    REQUIRE_OK(again);
    CHECK(read_blob(*store, *key) == bytes);
    CHECK(read_blob(*store, *again) == bytes);
    auto empty = store->put_blob(oci::Digest::of(""), "");
    REQUIRE_OK(empty);
    auto reader = store->open_blob(*empty);
    REQUIRE_OK(reader);
    CHECK((*reader)->size() == 0);
  }

  SUBCASE("contract: read_at reads any range and returns 0 at and beyond the end")
  {
    const std::string content = random_bytes(300'000, 42);
    const std::string key = commit(*store, content, 100'000);
    auto reader = store->open_blob(key);
    REQUIRE_OK(reader);
    CHECK((*reader)->size() == content.size());
    std::string buffer(100, '\0');
    for (uint64_t offset : {uint64_t{150'000}, uint64_t{5}, uint64_t{299'950}, uint64_t{0}}) {
      INFO("offset ", offset);
      auto n = (*reader)->read_at(offset, buffer.data(), buffer.size());
      REQUIRE_OK(n);
      size_t expected = std::min<size_t>(100, content.size() - offset);
      CHECK(*n == expected);
      CHECK(buffer.substr(0, *n) == content.substr(offset, *n));
    }
    auto end = (*reader)->read_at(content.size(), buffer.data(), buffer.size());
    REQUIRE_OK(end);
    CHECK(*end == 0);
    auto beyond = (*reader)->read_at(content.size() + 1000, buffer.data(), buffer.size());
    REQUIRE_OK(beyond);
    CHECK(*beyond == 0);
  }

  SUBCASE("contract: removed blobs are not_found and no longer listed; removal is idempotent")
  {
    const std::string key = commit(*store, "gone");
    const std::string kept = commit(*store, "kept");
    CHECK_OK(store->remove_blob(key));
    CHECK(code_of(store->open_blob(key)) == ErrorCode::not_found);
    CHECK(code_of(store->stat_blob(key)) == ErrorCode::not_found);
    CHECK_OK(store->remove_blob(key));
    auto listed = contract::listed_blobs(*store);
    REQUIRE(listed.size() == 1);
    CHECK(listed[0].key == kept);
  }

  SUBCASE("contract: listing visits every blob once and stops when asked")
  {
    std::vector<std::string> keys;
    for (int i = 0; i < 7; ++i) {
      std::string bytes = "blob " + std::to_string(i);
      auto key = store->put_blob(oci::Digest::of(bytes), bytes);
      REQUIRE_OK(key);
      keys.push_back(*key);
    }
    std::sort(keys.begin(), keys.end());
    std::vector<std::string> seen;
    for (const auto& info : contract::listed_blobs(*store)) {
      seen.push_back(info.key);
    }
    CHECK(seen == keys);
    int visits = 0;
    REQUIRE_OK(store->list_blobs([&](const storage::ObjectInfo&) {
      ++visits;
      return false;
    }));
    CHECK(visits == 1);
  }

  SUBCASE("contract: quarantine, restore and purge")
  {
    const std::string content = random_bytes(50'000, 43);
    const std::string key = commit(*store, content);

    // quarantined then restored: readable again, nothing left in quarantine
    REQUIRE_OK(store->quarantine_blob(key));
    auto q = store->list_quarantined();
    REQUIRE_OK(q);
    CHECK(*q == std::vector<std::string>{key});
    REQUIRE_OK(store->restore_blob(key));
    q = store->list_quarantined();
    REQUIRE_OK(q);
    CHECK(q->empty());
    CHECK(read_blob(*store, key) == content);

    // a crash between quarantine and the row's deletion: the blob stays
    // readable, and gc's recovery (restore_blob for a key with a row) ends it
    REQUIRE_OK(store->quarantine_blob(key));
    CHECK(read_blob(*store, key) == content);
    CHECK_OK(store->stat_blob(key));
    REQUIRE_OK(store->restore_blob(key));
    CHECK(read_blob(*store, key) == content);
    q = store->list_quarantined();
    REQUIRE_OK(q);
    CHECK(q->empty());

    // quarantined then purged: gone for good
    REQUIRE_OK(store->quarantine_blob(key));
    REQUIRE_OK(store->purge_quarantined(key));
    q = store->list_quarantined();
    REQUIRE_OK(q);
    CHECK(q->empty());
    CHECK(contract::listed_blobs(*store).empty());
    CHECK(code_of(store->stat_blob(key)) == ErrorCode::not_found);
    CHECK_OK(store->purge_quarantined(key));
    CHECK_OK(store->restore_blob(key));
  }

  SUBCASE("contract: concurrent uploads do not mix")
  {
    constexpr int threads = 6;
    std::vector<std::string> contents;
    for (int i = 0; i < threads; ++i) {
      contents.push_back(random_bytes(700'000 + static_cast<size_t>(i) * 1000, 50 + i));
    }
    std::vector<std::string> keys(threads);
    std::vector<std::string> errors(threads);
    std::vector<std::thread> workers;
    for (int i = 0; i < threads; ++i) {
      workers.emplace_back([&, i] {
        const std::string upload = util::random_uuid();
        auto step = [&]() -> Result<std::string> {
          REGISTRY_TRY(store->create_upload(upload));
          for (size_t at = 0; at < contents[i].size(); at += 100'000) {
            REGISTRY_TRY_ASSIGN(auto writer, store->append_upload(upload));
            size_t n = std::min<size_t>(100'000, contents[i].size() - at);
            REGISTRY_TRY(writer->write(contents[i].data() + at, n));
            REGISTRY_TRY(writer->close());
          }
          REGISTRY_TRY(store->sync_upload(upload));
          return store->commit_upload(upload, oci::Digest::of(contents[i]));
        };
        auto key = step();
        if (key) {
          keys[i] = *key;
        } else {
          errors[i] = key.error().message;
        }
      });
    }
    for (auto& worker : workers) {
      worker.join();
    }
    for (int i = 0; i < threads; ++i) {
      INFO("upload ", i);
      CHECK(errors[i] == "");
      if (errors[i].empty()) {
        CHECK(read_blob(*store, keys[i]) == contents[i]);
      }
    }
  }
}

} // namespace registry::test
