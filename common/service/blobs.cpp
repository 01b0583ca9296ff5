// Registry: blob reads, uploads and mounts.

#include "common/service/registry.hpp"

#include "common/util/hasher.hpp"
#include "common/util/log.hpp"
#include "common/util/uuid.hpp"

namespace registry::service {

// Where an upload stands: its running hash over the bytes received so far.
struct UploadProgress {
  util::Hasher hasher{util::HashAlgorithm::sha256};
  uint64_t offset = 0;
  bool loaded = false;
};

namespace {

Unexpected
upload_unknown()
{
  return fail(ErrorCode::blob_upload_unknown, "blob upload unknown to registry");
}

// Lower-layer not_found about an upload becomes the wire's upload-unknown.
Error
translate_upload_error(Error error)
{
  if (error.code == ErrorCode::not_found || error.code == ErrorCode::invalid_argument) {
    return Error{ErrorCode::blob_upload_unknown, "blob upload unknown to registry", {}};
  }
  return error;
}

// Makes upload `upload_id` the durable blob `digest` and records it, linked to
// `repository`. On a store whose commit keys are unique the (networked) commit
// runs before the metadata transaction; if the row then names other bytes of the
// same digest, or cannot be written, the fresh copy is removed again. A store
// with shared keys places the bytes first where it can (place_upload()), and the
// commit inside the transaction, serialised with gc's removals, then finds them
// there (or puts them back). The upload's row, if it has one, is removed in the
// same transaction.
Result<metadata::BlobRow>
commit_and_record(metadata::Metadata& md, storage::BlobStore& blob_store, int64_t feed_id,
                  const std::string& repository, int64_t store_id, const std::string& upload_id,
                  const oci::Digest& digest, uint64_t size, int64_t now)
{
  std::optional<std::string> committed;
  if (blob_store.commit_keys_are_unique()) {
    auto key = blob_store.commit_upload(upload_id, digest);
    if (!key) {
      return fail(translate_upload_error(key.take_error()));
    }
    committed = std::move(*key);
  } else if (auto placed = blob_store.place_upload(upload_id, digest); !placed) {
    return fail(translate_upload_error(placed.take_error()));
  }
  std::optional<std::string> placed;
  auto recorded = md.commit_blob(
    feed_id, repository, store_id, digest.str(), size,
    [&]() -> Result<std::string> {
      if (committed) {
        return *committed;
      }
      // Shared keys: the commit runs here, serialised with gc's removals.
      auto key = blob_store.commit_upload(upload_id, digest);
      if (!key) {
        return fail(translate_upload_error(key.take_error()));
      }
      placed = *key;
      return key;
    },
    now, upload_id);
  auto spare_stays = [&](const std::string& key, const Error& error) {
    util::log_warn("spare copy " + key + " of " + digest.str() + " stays until fsck: "
                   + error.message);
  };
  if (committed && (!recorded || recorded->object_key != *committed)) {
    if (auto removed = blob_store.remove_blob(*committed); !removed) {
      spare_stays(*committed, removed.error());
    }
  } else if (placed && recorded && recorded->in_database()) {
    // The database kept this digest first (a small blob), so the shared key
    // holds a spare copy. It goes only while no row names the key: gc may
    // remove the kept row and a push may name the key meanwhile.
    auto removed = md.remove_unrecorded(store_id, *placed,
                                        [&] { return blob_store.remove_blob(*placed); });
    if (!removed) {
      spare_stays(*placed, removed.error());
    }
  }
  return recorded;
}

// The hash state saved with an upload on a store that cannot read uploads back:
// "<offset> <Hasher::save_state()>".
std::string
checkpoint(const UploadProgress& state)
{
  return std::to_string(state.offset) + " " + state.hasher.save_state();
}

Result<void>
restore_checkpoint(storage::BlobStore& blob_store, const std::string& id, uint64_t size,
                   UploadProgress& state)
{
  REGISTRY_TRY_ASSIGN(auto saved, blob_store.load_upload_state(id));
  if (!saved) {
    if (size != 0) {
      return fail(ErrorCode::blob_upload_invalid,
                  "the upload's hash state is lost; start the upload again");
    }
    state.hasher = util::Hasher(util::HashAlgorithm::sha256);
    state.offset = 0;
    state.loaded = true;
    return ok();
  }
  size_t space = saved->find(' ');
  uint64_t offset = 0;
  std::optional<util::Hasher> hasher;
  if (space != std::string::npos) {
    offset = std::strtoull(saved->substr(0, space).c_str(), nullptr, 10);
    hasher = util::Hasher::restore_state(std::string_view(*saved).substr(space + 1));
  }
  if (!hasher || offset != size) {
    // The bytes moved past the saved state (a crash between the append and the
    // save): the upload cannot be resumed, only restarted.
    return fail(ErrorCode::blob_upload_invalid,
                "the upload's hash state does not match its bytes; start the upload again");
  }
  state.hasher = std::move(*hasher);
  state.offset = offset;
  state.loaded = true;
  return ok();
}

// Streams `body` into upload `id` of `blob_store`, hashing and counting what
// is written. With `kept` engaged the store has no upload yet: the bytes are
// kept there, in memory, while they fit in `limit`; a body that outgrows it
// creates the store's upload, which gets the kept bytes first, and `kept` is
// emptied. The store's errors come back as they are; the value says whether
// `body` ran to its end.
Result<bool>
write_upload(storage::BlobStore& blob_store, const std::string& id, const ByteSource& body,
             util::Hasher& hasher, uint64_t& written, std::optional<std::string>* kept = nullptr,
             uint64_t limit = 0)
{
  std::unique_ptr<storage::UploadWriter> writer;
  auto open_writer = [&]() -> Result<void> {
    REGISTRY_TRY_ASSIGN(writer, blob_store.append_upload(id));
    return ok();
  };
  if (!kept || !*kept) {
    REGISTRY_TRY(open_writer());
  }
  Result<void> write_result;
  bool complete = body([&](const char* data, size_t n) {
    if (!writer && (*kept)->size() + n <= limit) {
      (*kept)->append(data, n);
    } else {
      if (!writer) {
        write_result = blob_store.create_upload(id);
        if (!write_result) {
          return false;
        }
        std::string head = std::move(**kept);
        kept->reset(); // the store has the upload from here on
        write_result = open_writer();
        if (write_result) {
          write_result = writer->write(head.data(), head.size());
        }
        if (!write_result) {
          return false;
        }
      }
      write_result = writer->write(data, n);
      if (!write_result) {
        return false;
      }
    }
    hasher.update(data, n);
    written += n;
    return true;
  });
  auto closed = writer ? writer->close() : Result<void>();
  REGISTRY_TRY(write_result);
  REGISTRY_TRY(closed);
  return complete;
}

} // namespace

// Per-upload state kept in memory while the server runs: the running hash, so
// completing an upload never re-reads it. After a restart it is rebuilt from the
// stored bytes once (the fallback DESIGN.md §4.1 allows).
struct Registry::UploadState : UploadProgress {
  std::mutex mutex; // serialises requests on one upload
  // Whether the store has the upload. start_upload() leaves its creation to
  // the first bytes past the small-blob limit; before, they wait in the
  // upload's row (UploadRow::head).
  bool in_store = true;
};

Result<metadata::BlobRow>
Registry::linked_blob(std::string_view repository, const oci::Digest& digest)
{
  // The common case in one query: the blob is there.
  REGISTRY_TRY_ASSIGN(auto name, oci::parse_repository_name(repository));
  REGISTRY_TRY_ASSIGN(auto direct, m_metadata->find_linked_blob(name.full(), digest.str()));
  if (direct) {
    return std::move(*direct);
  }
  REGISTRY_TRY_ASSIGN(auto repo, resolve(repository));
  std::optional<metadata::BlobRow> blob;
  if (repo.row) {
    REGISTRY_TRY_ASSIGN(blob, m_metadata->find_linked_blob(repo.row->id, digest.str()));
  }
  if (!blob) {
    // A feed with connectors fetches what it lacks from upstream.
    REGISTRY_TRY_ASSIGN(bool fetched, pull_blob(repo, digest));
    if (fetched) {
      REGISTRY_TRY_ASSIGN(auto cached, resolve(repository));
      if (cached.row) {
        REGISTRY_TRY_ASSIGN(blob, m_metadata->find_linked_blob(cached.row->id, digest.str()));
      }
    }
  }
  if (!blob) {
    return fail(ErrorCode::blob_unknown, "blob unknown to registry", digest.str());
  }
  return std::move(*blob);
}

Result<BlobInfo>
Registry::stat_blob(std::string_view repository, std::string_view digest)
{
  REGISTRY_TRY_ASSIGN(auto parsed, oci::Digest::parse(digest));
  REGISTRY_TRY_ASSIGN(auto name, oci::parse_repository_name(repository));
  REGISTRY_TRY_ASSIGN(auto found, m_metadata->find_linked_blob(name.full(), parsed.str()));
  if (!found) {
    // A miss on a feed with connectors: answer once upstream has announced the
    // size, not after the whole layer; the fetch goes on and caches the blob
    // for the GET that usually follows. Without a size, wait for the end.
    REGISTRY_TRY_ASSIGN(auto arriving, arriving_blob(repository, parsed));
    if (arriving && arriving->size_known) {
      return arriving->info;
    }
    if (arriving) {
      auto progress = arriving->fetch->wait_finished();
      if (progress.state == BlobFetch::State::failed) {
        return fail(progress.error);
      }
    }
    // Stored by now: fetched, or pushed since the first look.
    REGISTRY_TRY_ASSIGN(found, m_metadata->find_linked_blob(name.full(), parsed.str()));
    if (!found) {
      return fail(ErrorCode::blob_unknown, "blob unknown to registry", parsed.str());
    }
  }
  return stat_found(*found, parsed);
}

BlobInfo
Registry::stat_found(const metadata::BlobRow& blob, const oci::Digest& parsed)
{
  // A HEAD counts as use for the gc grace, but a write only every minute: the
  // row we just read says whether one is due, so HEAD storms stay reads.
  if (blob.last_touched_at < now() - 60) {
    (void)m_metadata->touch_blob(blob.id, now());
  }
  return BlobInfo{parsed, blob.size};
}

Result<OpenBlob>
Registry::open_blob(std::string_view repository, std::string_view digest, OpenFor purpose)
{
  REGISTRY_TRY_ASSIGN(auto parsed, oci::Digest::parse(digest));
  // The stored blob first: one query on the path every pull takes.
  REGISTRY_TRY_ASSIGN(auto name, oci::parse_repository_name(repository));
  REGISTRY_TRY_ASSIGN(auto found, m_metadata->find_linked_blob(name.full(), parsed.str()));
  if (!found && purpose == OpenFor::serving) {
    // A miss on a feed with connectors: serve the fetch as its bytes arrive.
    REGISTRY_TRY_ASSIGN(auto arriving, arriving_blob(repository, parsed));
    if (arriving) {
      return std::move(*arriving);
    }
  }
  if (!found) {
    REGISTRY_TRY_ASSIGN(found, linked_blob(repository, parsed));
  }
  const metadata::BlobRow& blob = *found;
  REGISTRY_TRY_ASSIGN(auto* blob_store, store(blob.store_id));
  if (purpose == OpenFor::serving && !blob.in_database()) {
    auto url = blob_store->redirect_url(blob.object_key, k_blob_redirect_lifetime);
    if (!url) {
      util::log_warn("blob " + parsed.str() + ": no redirect URL, serving it directly: "
                     + url.error().message);
    } else if (*url) {
      return OpenBlob{BlobInfo{parsed, blob.size}, nullptr, std::move(**url), nullptr, true};
    }
  }
  auto reader = open_stored(blob);
  if (!reader && (reader.error().code == ErrorCode::storage_unavailable
                  || reader.error().code == ErrorCode::storage_denied)) {
    return fail(reader.take_error()); // the store is away, not the bytes
  }
  if (!reader) {
    // A row without bytes breaks the crash-safety invariant: report, never hide.
    util::log_error("blob " + parsed.str() + " has a row but its bytes cannot be read: "
                    + reader.error().message);
    return fail(ErrorCode::io_error, "blob data unavailable", parsed.str());
  }
  return OpenBlob{BlobInfo{parsed, blob.size}, std::move(reader).value(), {}, nullptr, true};
}

Result<std::unique_ptr<storage::BlobReader>>
Registry::open_stored(const metadata::BlobRow& blob)
{
  if (blob.in_database()) {
    REGISTRY_TRY_ASSIGN(auto bytes, m_metadata->blob_content(blob.id));
    if (!bytes) {
      return fail(ErrorCode::not_found, "the database has no bytes for " + blob.digest);
    }
    return std::unique_ptr<storage::BlobReader>(
      std::make_unique<storage::BytesBlobReader>(std::move(*bytes)));
  }
  REGISTRY_TRY_ASSIGN(auto* blob_store, store(blob.store_id));
  return blob_store->open_blob(blob.object_key);
}

Result<void>
Registry::delete_blob(std::string_view repository, std::string_view digest)
{
  REGISTRY_TRY_ASSIGN(auto parsed, oci::Digest::parse(digest));
  REGISTRY_TRY_ASSIGN(auto repo, resolve(repository));
  if (!repo.row) {
    return fail(ErrorCode::blob_unknown, "blob unknown to registry", parsed.str());
  }
  return m_metadata->unlink_blob(repo.row->id, parsed.str());
}

// --- uploads ---

Result<UploadStatus>
Registry::start_upload(std::string_view repository)
{
  REGISTRY_TRY_ASSIGN(auto repo, resolve(repository));
  REGISTRY_TRY(store(repo.feed.store_id)); // the feed's store can be opened
  std::string id = util::random_uuid();
  // The store's upload is created with the first bytes that go there.
  REGISTRY_TRY(m_metadata->create_upload(id, repo.feed.id, repo.full, repo.feed.store_id, now()));
  auto state = std::make_shared<UploadState>();
  state->loaded = true;
  state->in_store = false;
  {
    std::lock_guard lock(m_uploads_mutex);
    m_uploads[id] = state;
  }
  return UploadStatus{id, repo.full, 0};
}

Result<std::shared_ptr<Registry::UploadState>>
Registry::upload_state(std::string_view repository, std::string_view id,
                       metadata::UploadRow& row)
{
  std::string key(id);
  if (!util::is_uuid(key)) {
    return upload_unknown();
  }
  REGISTRY_TRY_ASSIGN(auto name, oci::parse_repository_name(repository));
  REGISTRY_TRY_ASSIGN(auto found, m_metadata->find_upload(key));
  if (!found || found->repository_name != name.full()) {
    return upload_unknown();
  }
  row = *found;
  std::lock_guard lock(m_uploads_mutex);
  auto& state = m_uploads[key];
  if (!state) {
    state = std::make_shared<UploadState>();
  }
  return state;
}

void
Registry::forget_upload(const std::string& id)
{
  std::lock_guard lock(m_uploads_mutex);
  m_uploads.erase(id);
}

// REQUIRES: state.mutex held.
Result<void>
Registry::append_locked(UploadState& state, const metadata::UploadRow& row, const ByteSource& body,
                        std::optional<std::string>* kept)
{
  REGISTRY_TRY_ASSIGN(auto* blob_store, store(row.store_id));
  auto start_from_head = [&](const std::optional<std::string>& head) {
    state.hasher = util::Hasher(util::HashAlgorithm::sha256);
    state.offset = 0;
    if (head) {
      state.hasher.update(head->data(), head->size());
      state.offset = head->size();
    }
    state.loaded = true;
    state.in_store = false;
  };
  if (state.in_store || !state.loaded) {
    auto size = blob_store->upload_size(row.id);
    if (!size && size.error().code == ErrorCode::not_found && !state.loaded) {
      // Restarted server: the store has nothing of an upload whose bytes so far
      // are all in its row (or that has none).
      start_from_head(row.head);
    } else if (!size) {
      return fail(translate_upload_error(size.take_error()));
    } else if ((!state.loaded || state.offset != *size) && !blob_store->can_read_uploads()) {
      // An object store cannot give the bytes back: resume from the hash state
      // saved with the upload after its last append.
      REGISTRY_TRY(restore_checkpoint(*blob_store, row.id, *size, state));
    } else if (!state.loaded || state.offset != *size) {
      // Restarted server (or another process appended): rebuild the hash from
      // the stored bytes. Never happens on the normal path.
      util::Hasher hasher(util::HashAlgorithm::sha256);
      uint64_t seen = 0;
      REGISTRY_TRY(blob_store->read_upload(row.id, [&](const char* data, size_t n) {
        hasher.update(data, n);
        seen += n;
        return true;
      }));
      state.hasher = std::move(hasher);
      state.offset = seen;
      state.loaded = true;
    }
  }
  // While the store has nothing, the bytes so far are the row's head: kept
  // in memory for the completing request, or for this chunk's new head.
  std::optional<std::string> chunk_head;
  std::optional<std::string>* keep = nullptr;
  if (kept) {
    kept->reset();
  }
  if (!state.in_store && (m_small_blob_limit > 0 || row.head || state.offset > 0)) {
    if (row.head.value_or("").size() != state.offset) {
      // The row was read before another request (or process) appended: start
      // over from what the row and the store say now.
      REGISTRY_TRY_ASSIGN(auto fresh, m_metadata->find_upload(row.id));
      if (!fresh) {
        return upload_unknown();
      }
      state.loaded = false;
      return append_locked(state, *fresh, body, kept);
    }
    keep = kept ? kept : &chunk_head;
    *keep = row.head.value_or(std::string());
  }
  if (!body) {
    return ok();
  }
  if (!state.in_store && !keep) {
    if (auto created = blob_store->create_upload(row.id); !created) {
      return fail(translate_upload_error(created.take_error()));
    }
    state.in_store = true;
  }
  auto complete = write_upload(*blob_store, row.id, body, state.hasher, state.offset, keep,
                               m_small_blob_limit);
  if (keep && !*keep) {
    state.in_store = true; // outgrew the limit: the store has it all now
    if (row.head) {
      (void)m_metadata->set_upload_head(row.id, std::nullopt, now());
    }
  }
  if (!complete || (!state.in_store && !*complete)) {
    // The hash may be ahead of the bytes, or bytes kept in memory die with
    // the request: rebuild from the store or the row next time.
    state.loaded = false;
    if (kept) {
      kept->reset();
    }
  }
  if (!complete) {
    return fail(translate_upload_error(complete.take_error()));
  }
  if (!state.in_store && !*complete) {
    return fail(ErrorCode::blob_upload_invalid, "the request body ended early");
  }
  if (!state.in_store && keep == &chunk_head) {
    // A chunk that keeps the upload small: its bytes go to the row.
    auto saved = m_metadata->set_upload_head(row.id, *chunk_head, now());
    if (!saved || !*saved) {
      state.loaded = false;
      return saved ? upload_unknown() : fail(saved.take_error());
    }
  }
  if (state.in_store && !blob_store->can_read_uploads()) {
    auto saved = blob_store->save_upload_state(row.id, checkpoint(state));
    if (!saved) {
      state.loaded = false;
      return fail(translate_upload_error(saved.take_error()));
    }
  }
  if (!*complete) {
    // The bytes that did arrive are kept and counted, as a resumable upload should.
    return fail(ErrorCode::blob_upload_invalid, "the request body ended early");
  }
  return ok();
}

Result<UploadStatus>
Registry::upload_status(std::string_view repository, std::string_view id)
{
  metadata::UploadRow row;
  REGISTRY_TRY_ASSIGN(auto state, upload_state(repository, id, row));
  std::lock_guard lock(state->mutex);
  REGISTRY_TRY(append_locked(*state, row, nullptr));
  return UploadStatus{row.id, row.repository_name, state->offset};
}

Result<UploadStatus>
Registry::append_upload(std::string_view repository, std::string_view id,
                        std::optional<uint64_t> expected_offset, const ByteSource& body)
{
  metadata::UploadRow row;
  REGISTRY_TRY_ASSIGN(auto state, upload_state(repository, id, row));
  std::lock_guard lock(state->mutex);
  REGISTRY_TRY(append_locked(*state, row, nullptr));
  if (expected_offset && *expected_offset != state->offset) {
    return fail(ErrorCode::upload_range_invalid,
                "chunk starts at " + std::to_string(*expected_offset) + " but the upload has "
                  + std::to_string(state->offset) + " bytes",
                "0-" + std::to_string(state->offset == 0 ? 0 : state->offset - 1));
  }
  REGISTRY_TRY(append_locked(*state, row, body));
  // Keeps the upload from expiring while it is active (a chunk kept in the
  // row did that already). A completing request removes the row instead.
  if (state->in_store) {
    (void)m_metadata->touch_upload(row.id, now());
  }
  return UploadStatus{row.id, row.repository_name, state->offset};
}

Result<BlobInfo>
Registry::complete_upload(std::string_view repository, std::string_view id,
                          std::string_view digest, const ByteSource* body)
{
  auto parsed = oci::Digest::parse(digest);
  metadata::UploadRow row;
  REGISTRY_TRY_ASSIGN(auto state, upload_state(repository, id, row));
  std::lock_guard lock(state->mutex);
  // A small blob the store has not seen (sent whole here, or in small chunks
  // kept in the upload's row) goes into the database with its row.
  std::optional<std::string> kept;
  REGISTRY_TRY(append_locked(*state, row, body ? *body : ByteSource(), &kept));
  REGISTRY_TRY_ASSIGN(auto* blob_store, store(row.store_id));
  auto discard = [&] {
    (void)blob_store->remove_upload(row.id);
    (void)m_metadata->delete_upload(row.id);
    forget_upload(row.id);
  };
  if (!parsed) {
    discard();
    return fail(parsed.take_error());
  }
  if (!state->in_store && !kept) {
    // An empty blob while the database keeps none (limit 0): its upload is made now.
    if (auto created = blob_store->create_upload(row.id); !created) {
      return fail(translate_upload_error(created.take_error()));
    }
    state->in_store = true;
  }
  oci::Digest actual;
  if (parsed->hash_algorithm() == state->hasher.algorithm()) {
    actual = oci::Digest::from_hasher(state->hasher);
  } else if (kept) {
    util::Hasher hasher(parsed->hash_algorithm());
    hasher.update(kept->data(), kept->size());
    actual = oci::Digest::from_hasher(hasher);
  } else if (!blob_store->can_read_uploads()) {
    discard();
    return fail(ErrorCode::unsupported, "uploads to this feed's store are verified against "
                                        "sha256 digests only");
  } else {
    util::Hasher hasher(parsed->hash_algorithm());
    REGISTRY_TRY(blob_store->read_upload(row.id, [&](const char* data, size_t n) {
      hasher.update(data, n);
      return true;
    }));
    actual = oci::Digest::from_hasher(hasher);
  }
  if (!(actual == *parsed)) {
    discard();
    return fail(ErrorCode::digest_invalid, "provided digest did not match uploaded content",
                parsed->str());
  }
  uint64_t size = state->offset;
  // The slow part (fsync of the data) happens before the metadata transaction.
  if (auto synced = kept ? Result<void>() : blob_store->sync_upload(row.id); !synced) {
    return fail(translate_upload_error(synced.take_error()));
  }
  auto recorded = kept ? m_metadata->keep_small_blob(row.feed_id, row.repository_name, row.store_id,
                                                     parsed->str(), *kept, now(), row.id)
                       : commit_and_record(*m_metadata, *blob_store, row.feed_id,
                                           row.repository_name, row.store_id, row.id, *parsed,
                                           size, now());
  forget_upload(row.id);
  if (!recorded) {
    (void)m_metadata->delete_upload(row.id);
    return fail(recorded.take_error());
  }
  return BlobInfo{*parsed, size};
}

Result<void>
Registry::cancel_upload(std::string_view repository, std::string_view id)
{
  metadata::UploadRow row;
  REGISTRY_TRY_ASSIGN(auto state, upload_state(repository, id, row));
  std::lock_guard lock(state->mutex);
  REGISTRY_TRY_ASSIGN(auto* blob_store, store(row.store_id));
  REGISTRY_TRY(m_metadata->delete_upload(row.id));
  (void)blob_store->remove_upload(row.id);
  forget_upload(row.id);
  return ok();
}

Result<BlobInfo>
Registry::push_blob(std::string_view repository, std::string_view digest, const ByteSource& body)
{
  REGISTRY_TRY(oci::Digest::parse(digest));
  REGISTRY_TRY_ASSIGN(auto upload, start_upload(repository));
  auto result = complete_upload(repository, upload.id, digest, &body);
  if (!result) {
    (void)cancel_upload(repository, upload.id);
  }
  return result;
}

Result<std::optional<BlobInfo>>
Registry::mount_blob(std::string_view repository, std::string_view from, std::string_view digest)
{
  REGISTRY_TRY_ASSIGN(auto parsed, oci::Digest::parse(digest));
  REGISTRY_TRY_ASSIGN(auto target, resolve(repository));
  auto source = resolve(from);
  if (!source || !source->row) {
    return std::optional<BlobInfo>();
  }
  REGISTRY_TRY_ASSIGN(bool mounted, m_metadata->mount_blob(source->row->id, target.feed.id,
                                                           target.full, parsed.str(), now()));
  if (!mounted) {
    return std::optional<BlobInfo>();
  }
  REGISTRY_TRY_ASSIGN(auto blob, m_metadata->find_blob(target.feed.store_id, parsed.str()));
  if (!blob) {
    return std::optional<BlobInfo>();
  }
  return std::optional<BlobInfo>(BlobInfo{parsed, blob->size});
}

Result<size_t>
Registry::purge_uploads(int64_t older_than, const std::string& feed)
{
  REGISTRY_TRY_ASSIGN(auto uploads, m_metadata->list_uploads());
  size_t purged = 0;
  std::string prefix = feed.empty() ? "" : feed + "/";
  for (const auto& row : uploads) {
    if (row.updated_at > older_than || row.repository_name.rfind(prefix, 0) != 0) {
      continue;
    }
    REGISTRY_TRY_ASSIGN(auto* blob_store, store(row.store_id));
    std::shared_ptr<UploadState> state;
    {
      std::lock_guard lock(m_uploads_mutex);
      if (auto it = m_uploads.find(row.id); it != m_uploads.end()) {
        state = it->second;
      }
    }
    // Wait for a request still writing to this upload; it then finds it gone.
    std::unique_lock<std::mutex> busy;
    if (state) {
      busy = std::unique_lock<std::mutex>(state->mutex);
    }
    REGISTRY_TRY(m_metadata->delete_upload(row.id));
    (void)blob_store->remove_upload(row.id);
    forget_upload(row.id);
    ++purged;
  }
  return purged;
}

// --- staged blobs ---

Result<StagedBlob>
Registry::stage_blob(const std::string& feed, const oci::Digest& digest, const ByteSource& body,
                     Error* body_error)
{
  REGISTRY_TRY_ASSIGN(auto feed_row, get_feed(feed));
  REGISTRY_TRY_ASSIGN(auto* blob_store, store(feed_row.store_id));
  StagedBlob staged{digest, 0, feed_row.id, feed_row.store_id, {}, {}, false};
  REGISTRY_TRY_ASSIGN(auto existing, m_metadata->find_blob(feed_row.store_id, digest.str()));
  staged.existed = existing.has_value();
  util::Hasher hasher(digest.hash_algorithm());
  auto failed_body = [&]() -> Unexpected {
    if (body_error && body_error->message.size()) {
      return fail(*body_error);
    }
    return fail(ErrorCode::io_error, "reading the blob failed", digest.str());
  };
  if (existing && !existing->in_database()) {
    // Counts as use, so gc leaves it alone while the import runs (grace period).
    (void)m_metadata->touch_blob(existing->id, now());
    bool complete = body([&](const char* data, size_t n) {
      hasher.update(data, n);
      staged.size += n;
      return true;
    });
    if (!complete) {
      return failed_body();
    }
    if (hasher.hex_digest() != digest.hex()) {
      return fail(ErrorCode::digest_invalid, "content does not match its digest", digest.str());
    }
    return staged;
  }
  // New bytes, or small ones the database keeps: those stay in memory (only
  // their row can bring them back if gc removes it before the link).
  std::string id = util::random_uuid();
  if (m_small_blob_limit > 0) {
    staged.kept.emplace();
  }
  auto drop = [&] { (void)blob_store->remove_upload(id); };
  if (!staged.kept) {
    REGISTRY_TRY(blob_store->create_upload(id));
  }
  auto complete = write_upload(*blob_store, id, body, hasher, staged.size,
                               staged.kept ? &staged.kept : nullptr, m_small_blob_limit);
  if (!complete) {
    drop();
    return fail(complete.take_error());
  }
  if (!*complete) {
    drop();
    return failed_body();
  }
  if (hasher.hex_digest() != digest.hex()) {
    drop();
    return fail(ErrorCode::digest_invalid, "content does not match its digest", digest.str());
  }
  if (staged.kept) {
    return staged;
  }
  if (auto synced = blob_store->sync_upload(id); !synced) {
    drop();
    return fail(synced.take_error());
  }
  staged.upload_id = id;
  return staged;
}

Result<BlobInfo>
Registry::link_staged_blob(std::string_view repository, StagedBlob& staged)
{
  REGISTRY_TRY_ASSIGN(auto repo, resolve(repository));
  if (repo.feed.id != staged.feed_id || repo.feed.store_id != staged.store_id) {
    return fail(ErrorCode::invalid_argument, "staged blob belongs to another feed",
                staged.digest.str());
  }
  if (staged.kept) {
    REGISTRY_TRY(m_metadata->keep_small_blob(repo.feed.id, repo.full, staged.store_id,
                                             staged.digest.str(), *staged.kept, now()));
    return BlobInfo{staged.digest, staged.size};
  }
  REGISTRY_TRY_ASSIGN(auto* blob_store, store(staged.store_id));
  if (!staged.upload_id.empty()) {
    REGISTRY_TRY(commit_and_record(*m_metadata, *blob_store, repo.feed.id, repo.full,
                                   staged.store_id, staged.upload_id, staged.digest, staged.size,
                                   now()));
    staged.upload_id.clear();
    return BlobInfo{staged.digest, staged.size};
  }
  REGISTRY_TRY_ASSIGN(auto row, m_metadata->find_blob(staged.store_id, staged.digest.str()));
  if (!row || row->in_database()) {
    // Gone, or removed and pushed again as a small blob since it was staged
    // (its bytes were only hashed here, so the database cannot keep them).
    return fail(ErrorCode::blob_unknown, "blob was removed from the store during the import",
                staged.digest.str());
  }
  std::string existing_key = row->object_key;
  // Runs inside the transaction that records the link, serialised with gc's
  // removals: the bytes are there when the link is written.
  auto place = [&]() -> Result<std::string> {
    auto info = blob_store->stat_blob(existing_key);
    if (!info) {
      return fail(ErrorCode::blob_unknown, "blob was removed from the store during the import",
                  staged.digest.str());
    }
    return existing_key;
  };
  REGISTRY_TRY(m_metadata->commit_blob(repo.feed.id, repo.full, staged.store_id,
                                       staged.digest.str(), staged.size, place, now()));
  return BlobInfo{staged.digest, staged.size};
}

void
Registry::discard_staged_blob(StagedBlob& staged)
{
  if (staged.upload_id.empty()) {
    return;
  }
  if (auto blob_store = store(staged.store_id)) {
    (void)(*blob_store)->remove_upload(staged.upload_id);
  }
  staged.upload_id.clear();
}

} // namespace registry::service
