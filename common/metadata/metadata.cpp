#include "common/metadata/metadata.hpp"

#include "common/util/log.hpp"
#include "common/util/strings.hpp"

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Exception.h>
#include <SQLiteCpp/Statement.h>
#include <SQLiteCpp/Transaction.h>
#include <SQLiteCpp/VariadicBind.h>
#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <unordered_map>

namespace registry::metadata {

namespace {

// Numbered migrations; PRAGMA user_version records how many have been applied.
// Append only: never edit a migration that has shipped.
const char* const k_migrations[] = {
  // 1: the initial schema
  R"sql(
CREATE TABLE stores (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  type TEXT NOT NULL,
  config TEXT NOT NULL DEFAULT '{}'
);
INSERT INTO stores (id, name, type, config) VALUES (1, 'default', 'filesystem', '{}');

CREATE TABLE feeds (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  description TEXT NOT NULL DEFAULT '',
  store_id INTEGER NOT NULL REFERENCES stores(id),
  anonymous_access TEXT NOT NULL DEFAULT 'pull',
  created_at INTEGER NOT NULL
);

CREATE TABLE repositories (
  id INTEGER PRIMARY KEY,
  feed_id INTEGER NOT NULL REFERENCES feeds(id) ON DELETE CASCADE,
  name TEXT NOT NULL UNIQUE,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE INDEX repositories_feed ON repositories(feed_id, name);

CREATE TABLE blobs (
  id INTEGER PRIMARY KEY,
  store_id INTEGER NOT NULL REFERENCES stores(id),
  digest TEXT NOT NULL,
  size INTEGER NOT NULL,
  object_key TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  last_touched_at INTEGER NOT NULL,
  UNIQUE (store_id, digest)
);
CREATE INDEX blobs_touched ON blobs(store_id, last_touched_at);

CREATE TABLE repository_blobs (
  repository_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
  blob_id INTEGER NOT NULL REFERENCES blobs(id) ON DELETE CASCADE,
  linked_at INTEGER NOT NULL,
  PRIMARY KEY (repository_id, blob_id)
) WITHOUT ROWID;
CREATE INDEX repository_blobs_blob ON repository_blobs(blob_id);

CREATE TABLE manifests (
  id INTEGER PRIMARY KEY,
  repository_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
  digest TEXT NOT NULL,
  media_type TEXT NOT NULL,
  artifact_type TEXT NOT NULL DEFAULT '',
  subject_digest TEXT NOT NULL DEFAULT '',
  annotations TEXT NOT NULL DEFAULT '',
  size INTEGER NOT NULL,
  bytes BLOB NOT NULL,
  pushed_at INTEGER NOT NULL,
  UNIQUE (repository_id, digest)
);
CREATE INDEX manifests_subject ON manifests(repository_id, subject_digest)
  WHERE subject_digest <> '';

-- kind: 0 = blob (config, layer), 1 = child manifest (index entry)
CREATE TABLE manifest_references (
  manifest_id INTEGER NOT NULL REFERENCES manifests(id) ON DELETE CASCADE,
  kind INTEGER NOT NULL,
  digest TEXT NOT NULL,
  PRIMARY KEY (manifest_id, kind, digest)
) WITHOUT ROWID;
CREATE INDEX manifest_references_digest ON manifest_references(digest, kind);

CREATE TABLE tags (
  repository_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  manifest_id INTEGER NOT NULL REFERENCES manifests(id) ON DELETE CASCADE,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (repository_id, name)
) WITHOUT ROWID;
CREATE INDEX tags_manifest ON tags(manifest_id);

CREATE TABLE uploads (
  id TEXT PRIMARY KEY,
  feed_id INTEGER NOT NULL REFERENCES feeds(id) ON DELETE CASCADE,
  repository TEXT NOT NULL,
  store_id INTEGER NOT NULL REFERENCES stores(id),
  started_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);

CREATE TABLE events (
  id INTEGER PRIMARY KEY,
  at INTEGER NOT NULL,
  kind TEXT NOT NULL,
  subject TEXT NOT NULL,
  detail TEXT NOT NULL DEFAULT ''
);
)sql",
  // 2: locks for the garbage collector; blob lookup by object key (fsck)
  R"sql(
CREATE TABLE locks (
  name TEXT PRIMARY KEY,
  holder TEXT NOT NULL,
  acquired_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
);
CREATE INDEX blobs_key ON blobs(store_id, object_key);
)sql",
  // 3: users (passwords as PBKDF2 hashes only)
  R"sql(
CREATE TABLE users (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  password_hash TEXT NOT NULL,
  disabled INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL
);
)sql",
  // 4: server admins, feed-scoped privileges, API keys (hashes only)
  R"sql(
ALTER TABLE users ADD COLUMN admin INTEGER NOT NULL DEFAULT 0;
UPDATE users SET admin = 1 WHERE id = (SELECT min(id) FROM users);
CREATE TABLE grants (
  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  feed_id INTEGER NOT NULL DEFAULT 0,
  privilege TEXT NOT NULL,
  PRIMARY KEY (user_id, feed_id, privilege)
) WITHOUT ROWID;
CREATE TABLE api_keys (
  id INTEGER PRIMARY KEY,
  prefix TEXT NOT NULL UNIQUE,
  key_hash TEXT NOT NULL UNIQUE,
  user_id INTEGER REFERENCES users(id) ON DELETE CASCADE,
  feed_id INTEGER REFERENCES feeds(id) ON DELETE CASCADE,
  privileges TEXT NOT NULL DEFAULT '',
  description TEXT NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL DEFAULT 0,
  last_used_at INTEGER NOT NULL DEFAULT 0
);
)sql",
  // 5: the audit trail names who acted and on which feed
  R"sql(
ALTER TABLE events ADD COLUMN actor TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN feed TEXT NOT NULL DEFAULT '';
CREATE INDEX events_at ON events(at);
CREATE INDEX events_feed ON events(feed, at);
)sql",
  // 6: connectors (upstream registries a feed caches); where cached manifests came from
  R"sql(
CREATE TABLE connectors (
  id INTEGER PRIMARY KEY,
  feed_id INTEGER NOT NULL REFERENCES feeds(id) ON DELETE CASCADE,
  position INTEGER NOT NULL,
  url TEXT NOT NULL,
  username TEXT NOT NULL DEFAULT '',
  password TEXT NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL,
  UNIQUE (feed_id, url)
);
CREATE INDEX connectors_feed ON connectors(feed_id, position);
ALTER TABLE manifests ADD COLUMN origin TEXT NOT NULL DEFAULT '';
)sql",
  // 7: how long a connector's cached tags stay fresh before revalidation
  R"sql(
ALTER TABLE connectors ADD COLUMN ttl INTEGER NOT NULL DEFAULT 300;
)sql",
  // 8: cache retention per feed (seconds, 0 = keep forever) and when cached
  // manifests were last pulled. Pulls before this upgrade were not recorded:
  // existing cached manifests count as pulled now, so enabling retention
  // right after the upgrade does not expire content that is in daily use.
  R"sql(
ALTER TABLE feeds ADD COLUMN cache_retention INTEGER NOT NULL DEFAULT 0;
ALTER TABLE manifests ADD COLUMN last_pulled_at INTEGER NOT NULL DEFAULT 0;
UPDATE manifests SET last_pulled_at = CAST(strftime('%s', 'now') AS INTEGER) WHERE origin <> '';
CREATE INDEX manifests_cached ON manifests(last_pulled_at) WHERE origin <> '';
)sql",
  // 9: the bytes of small blobs, kept beside their row (object_key '(database)')
  R"sql(
CREATE TABLE blob_contents (
  blob_id INTEGER PRIMARY KEY REFERENCES blobs(id) ON DELETE CASCADE,
  bytes BLOB NOT NULL
);
)sql",
  // 10: the first bytes of an upload, until they outgrow the small-blob limit
  R"sql(
ALTER TABLE uploads ADD COLUMN head BLOB;
)sql",
};

constexpr int k_schema_version = static_cast<int>(sizeof k_migrations / sizeof k_migrations[0]);

Unexpected
db_failure(const std::exception& e)
{
  util::log_error(std::string("database error: ") + e.what());
  if (auto* sq = dynamic_cast<const SQLite::Exception*>(&e)) {
    if (sq->getErrorCode() == SQLITE_BUSY || sq->getErrorCode() == SQLITE_LOCKED) {
      return fail(ErrorCode::too_many_requests, "the registry database is busy; retry");
    }
  }
  return fail(ErrorCode::io_error, "metadata database failure");
}

std::string
column_string(SQLite::Statement& q, int i)
{
  auto col = q.getColumn(i);
  if (col.isNull()) {
    return {};
  }
  return std::string(static_cast<const char*>(col.getBlob()), static_cast<size_t>(col.getBytes()));
}

// The first row `q` yields, as `read` makes it; nullopt when there is none.
template<typename Read>
auto
first_row(SQLite::Statement& q, Read&& read) -> std::optional<decltype(read(q))>
{
  if (q.executeStep()) {
    return read(q);
  }
  return std::nullopt;
}

// Every row `q` yields, as `read` makes it.
template<typename Read>
auto
all_rows(SQLite::Statement& q, Read&& read) -> std::vector<decltype(read(q))>
{
  std::vector<decltype(read(q))> out;
  while (q.executeStep()) {
    out.push_back(read(q));
  }
  return out;
}

FeedRow
read_feed(SQLite::Statement& q)
{
  return FeedRow{q.getColumn(0).getInt64(), column_string(q, 1), column_string(q, 2),
                 q.getColumn(3).getInt64(), column_string(q, 4), q.getColumn(5).getInt64(),
                 q.getColumn(6).getInt64()};
}
const char* const k_feed_columns
  = "id, name, description, store_id, anonymous_access, created_at, cache_retention";

BlobRow
read_blob(SQLite::Statement& q)
{
  return BlobRow{q.getColumn(0).getInt64(),
                 q.getColumn(1).getInt64(),
                 column_string(q, 2),
                 static_cast<uint64_t>(q.getColumn(3).getInt64()),
                 column_string(q, 4),
                 q.getColumn(5).getInt64(),
                 q.getColumn(6).getInt64()};
}
const char* const k_blob_columns
  = "b.id, b.store_id, b.digest, b.size, b.object_key, b.created_at, b.last_touched_at";

ManifestRow
read_manifest(SQLite::Statement& q, bool with_bytes)
{
  ManifestRow m;
  m.id = q.getColumn(0).getInt64();
  m.repository_id = q.getColumn(1).getInt64();
  m.digest = column_string(q, 2);
  m.media_type = column_string(q, 3);
  m.artifact_type = column_string(q, 4);
  m.subject_digest = column_string(q, 5);
  m.annotations_json = column_string(q, 6);
  m.size = static_cast<uint64_t>(q.getColumn(7).getInt64());
  m.pushed_at = q.getColumn(8).getInt64();
  m.origin = column_string(q, 9);
  m.last_pulled_at = q.getColumn(10).getInt64();
  if (with_bytes) {
    m.bytes = column_string(q, 11);
  }
  return m;
}

std::string
manifest_columns(bool with_bytes)
{
  return std::string("m.id, m.repository_id, m.digest, m.media_type, m.artifact_type, "
                     "m.subject_digest, m.annotations, m.size, m.pushed_at, m.origin, m.last_pulled_at")
         + (with_bytes ? ", m.bytes" : "");
}

} // namespace

// A database connection with a cache of prepared statements: compiling SQL was
// half of the server's CPU for a manifest GET. Statements handed out by
// prepare() are reset when the connection goes back to the pool (or before a
// commit), so none keeps a read transaction open.
// REQUIRES: one thread at a time (a connection is leased to one caller).
class Connection : public SQLite::Database
{
public:
  using SQLite::Database::Database;

  // The prepared statement for `sql`, reset, with no bindings.
  SQLite::Statement&
  prepare(const std::string& sql)
  {
    auto& slot = m_cache[sql];
    if (!slot) {
      slot = std::make_unique<SQLite::Statement>(*this, sql);
    } else {
      slot->reset();
      slot->clearBindings();
    }
    m_used.push_back(slot.get());
    return *slot;
  }

  void
  reset_statements()
  {
    for (auto* statement : m_used) {
      try {
        statement->reset();
      } catch (const std::exception&) {
        // reset() reports the last step's error again; the statement is reset anyway
      }
    }
    m_used.clear();
  }

private:
  std::unordered_map<std::string, std::unique_ptr<SQLite::Statement>> m_cache;
  std::vector<SQLite::Statement*> m_used;
};

// A transaction begun and committed through cached statements (no SQL parsed
// per use), rolled back if left unfinished. `begin` is "BEGIN" for a read over
// several statements or "BEGIN IMMEDIATE" for a write.
class Transaction
{
public:
  Transaction(Connection& db, const std::string& begin) : m_db(db) { m_db.prepare(begin).exec(); }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction()
  {
    if (!m_done) {
      try {
        m_db.reset_statements();
        m_db.prepare("ROLLBACK").exec();
      } catch (const std::exception&) {
        // the connection reports the failure on its next use
      }
    }
  }
  void
  commit()
  {
    m_db.reset_statements();
    m_db.prepare("COMMIT").exec();
    m_done = true;
  }

private:
  Connection& m_db;
  bool m_done = false;
};

// Copies the WAL back into the database on a thread of its own. SQLite's
// automatic checkpoint runs inside the COMMIT of whichever writer crossed the
// threshold: that request then paid for copying about a thousand pages and
// two fsyncs while it held the process's write lock, so every other writer
// waited too. Here commits only report the WAL's size, and the thread copies
// in two passes: the bulk without any lock, beside readers and writers, then
// what writers appended meanwhile, under the write lock, which is what lets
// the next writer start the WAL over from its beginning instead of growing it.
class Checkpointer
{
public:
  // Same threshold as SQLite's automatic checkpoint (wal_autocheckpoint).
  static constexpr int k_pages = 1000;

  // `writers` is the lock this process's write transactions take.
  Checkpointer(const std::filesystem::path& path, std::mutex& writers)
    : m_db(path.string(), SQLite::OPEN_READWRITE | SQLite::OPEN_NOMUTEX), m_writers(writers)
  {
    m_db.setBusyTimeout(10000);
    // A connection opens the WAL when it first reads; before that, a
    // checkpoint through it does nothing. Its fsyncs are those of the
    // writers' connections (synchronous=NORMAL: the WAL before the copy, the
    // database after).
    m_db.exec("PRAGMA journal_mode=WAL");
    m_db.exec("PRAGMA synchronous=NORMAL");
    m_thread = std::thread([this] { run(); });
  }
  ~Checkpointer()
  {
    {
      std::lock_guard lock(m_mutex);
      m_stop = true;
    }
    m_wake.notify_one();
    m_thread.join();
  }
  Checkpointer(const Checkpointer&) = delete;
  Checkpointer& operator=(const Checkpointer&) = delete;

  // Installed with sqlite3_wal_hook on every pooled connection, in place of
  // the automatic checkpoint; called after each commit with the WAL's size.
  static int
  on_commit(void* self, sqlite3*, const char*, int wal_pages)
  {
    if (wal_pages >= k_pages) {
      auto* checkpointer = static_cast<Checkpointer*>(self);
      {
        std::lock_guard lock(checkpointer->m_mutex);
        checkpointer->m_due = true;
      }
      checkpointer->m_wake.notify_one();
    }
    return SQLITE_OK;
  }

private:
  void
  checkpoint()
  {
    int rc = sqlite3_wal_checkpoint_v2(m_db.getHandle(), nullptr, SQLITE_CHECKPOINT_PASSIVE,
                                       nullptr, nullptr);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
      util::log_warn(std::string("WAL checkpoint failed: ") + sqlite3_errmsg(m_db.getHandle()));
    }
  }

  void
  run()
  {
    std::unique_lock lock(m_mutex);
    while (true) {
      m_wake.wait(lock, [this] { return m_due || m_stop; });
      if (m_stop) {
        return;
      }
      m_due = false;
      lock.unlock();
      checkpoint();
      {
        std::lock_guard writing(m_writers);
        checkpoint();
      }
      // A checkpoint that a reader's old snapshot held back is asked for again
      // by the next commit: no more than one attempt per 10 ms.
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      lock.lock();
    }
  }

  SQLite::Database m_db; // this thread's own connection, never pooled
  std::mutex& m_writers;
  std::mutex m_mutex;
  std::condition_variable m_wake;
  bool m_due = false;
  bool m_stop = false;
  std::thread m_thread;
};

struct Metadata::Impl {
  std::filesystem::path path;
  bool read_only = false;
  std::mutex mutex;
  std::mutex write_mutex;
  std::vector<std::unique_ptr<Connection>> idle;
  // Set once by checkpoint_in_background(); every lease hands the connection's
  // checkpoints to it from then on. The owner is declared last, so the thread
  // stops before the pooled connections close.
  std::atomic<Checkpointer*> checkpointer{nullptr};
  std::unique_ptr<Checkpointer> checkpointer_owner;

  std::unique_ptr<Connection>
  connect()
  {
    if (read_only) {
      // No journal_mode change: WAL is a property of the file, kept by writers.
      auto db = std::make_unique<Connection>(path.string(),
                                             SQLite::OPEN_READONLY | SQLite::OPEN_NOMUTEX);
      db->setBusyTimeout(10000);
      db->exec("PRAGMA query_only=ON");
      return db;
    }
    auto db = std::make_unique<Connection>(
      path.string(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE | SQLite::OPEN_NOMUTEX);
    db->setBusyTimeout(10000);
    db->exec("PRAGMA journal_mode=WAL");
    db->exec("PRAGMA synchronous=NORMAL");
    db->exec("PRAGMA foreign_keys=ON");
    return db;
  }

  // A pooled connection, returned to the pool when the lease ends.
  class Lease
  {
  public:
    Lease(Impl& impl, std::unique_ptr<Connection> db) : m_impl(impl), m_db(std::move(db)) {}
    ~Lease()
    {
      if (m_db) {
        m_db->reset_statements();
        std::lock_guard lock(m_impl.mutex);
        if (m_impl.idle.size() < 32) {
          m_impl.idle.push_back(std::move(m_db));
        }
      }
    }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    Connection&
    operator*()
    {
      return *m_db;
    }

  private:
    Impl& m_impl;
    std::unique_ptr<Connection> m_db;
  };

  Lease
  lease()
  {
    std::unique_ptr<Connection> db;
    {
      std::lock_guard lock(mutex);
      if (!idle.empty()) {
        db = std::move(idle.back());
        idle.pop_back();
      }
    }
    if (!db) {
      db = connect();
    }
    if (Checkpointer* checkpointer_now = checkpointer.load(std::memory_order_acquire)) {
      sqlite3_wal_hook(db->getHandle(), &Checkpointer::on_commit, checkpointer_now);
    }
    return Lease(*this, std::move(db));
  }

  // Runs `fn(db)` on a pooled connection, translating database exceptions.
  template<typename F>
  auto
  run(F&& fn) -> decltype(fn(std::declval<Connection&>()))
  {
    try {
      auto l = lease();
      return fn(*l);
    } catch (const std::exception& e) {
      return db_failure(e);
    }
  }

  // Runs `fn(db)` inside one IMMEDIATE transaction; commits when it succeeds.
  template<typename F>
  auto
  write(F&& fn) -> decltype(fn(std::declval<Connection&>()))
  {
    return run([&](Connection& db) -> decltype(fn(db)) {
      // Writers of this process queue here rather than in SQLite's busy
      // handler, which sleeps and retries; other processes still meet the
      // busy timeout.
      std::lock_guard writer(write_mutex);
      Transaction tx(db, "BEGIN IMMEDIATE");
      auto result = fn(db);
      if (result.has_value()) {
        tx.commit();
      }
      return result;
    });
  }
};

namespace {

// REQUIRES: inside a write transaction.
void
insert_event(Connection& db, const EventRow& event)
{
  SQLite::Statement& q =
    db.prepare("INSERT INTO events (at, kind, actor, feed, subject, detail) VALUES (?, ?, ?, ?, ?, ?)");
  SQLite::bind(q, event.at, event.kind, event.actor, event.feed, event.subject, event.detail);
  q.exec();
}

std::optional<int64_t>
find_repository_id(Connection& db, const std::string& name)
{
  SQLite::Statement& q = db.prepare("SELECT id FROM repositories WHERE name = ?");
  q.bind(1, name);
  if (q.executeStep()) {
    return q.getColumn(0).getInt64();
  }
  return std::nullopt;
}

// REQUIRES: inside a write transaction.
Result<int64_t>
ensure_repository(Connection& db, int64_t feed_id, const std::string& name, int64_t now)
{
  {
    SQLite::Statement& feed = db.prepare("SELECT 1 FROM feeds WHERE id = ?");
    feed.bind(1, feed_id);
    if (!feed.executeStep()) {
      return fail(ErrorCode::name_unknown, "feed does not exist", name);
    }
  }
  if (auto id = find_repository_id(db, name)) {
    SQLite::Statement& touch = db.prepare("UPDATE repositories SET updated_at = ? WHERE id = ?");
    SQLite::bind(touch, now, *id);
    touch.exec();
    return *id;
  }
  SQLite::Statement& insert = db.prepare("INSERT INTO repositories (feed_id, name, created_at, updated_at) VALUES (?, ?, ?, ?)");
  SQLite::bind(insert, feed_id, name, now, now);
  insert.exec();
  return db.getLastInsertRowid();
}

// REQUIRES: inside a write transaction.
void
remove_upload_row(Connection& db, const std::string& id)
{
  SQLite::Statement& q = db.prepare("DELETE FROM uploads WHERE id = ?");
  q.bind(1, id);
  q.exec();
}

// The blob of `store_id` whose `column` (digest or object key) is `value`.
std::optional<BlobRow>
blob_in_store(Connection& db, const char* column, int64_t store_id, const std::string& value)
{
  SQLite::Statement& q = db.prepare(std::string("SELECT ") + k_blob_columns
                            + " FROM blobs b WHERE b.store_id = ? AND " + column + " = ?");
  SQLite::bind(q, store_id, value);
  return first_row(q, read_blob);
}

// The blob `digest` linked to the repository whose `column` (its id or its full
// name) is `key`, in the store of the repository's feed.
template <typename Key>
Result<std::optional<BlobRow>>
linked_blob(Connection& db, const char* column, const Key& key, const std::string& digest)
{
  SQLite::Statement& q = db.prepare(std::string("SELECT ") + k_blob_columns
                            + " FROM blobs b JOIN repository_blobs rb ON rb.blob_id = b.id "
                              "JOIN repositories r ON r.id = rb.repository_id "
                              "JOIN feeds f ON f.id = r.feed_id WHERE " + column
                            + " = ? AND b.digest = ? AND b.store_id = f.store_id");
  SQLite::bind(q, key, digest);
  return first_row(q, read_blob);
}

Result<RepositoryRow>
load_repository(Connection& db, int64_t id)
{
  SQLite::Statement& q = db.prepare("SELECT r.id, r.feed_id, f.store_id, r.name, r.created_at FROM "
                          "repositories r JOIN feeds f ON f.id = r.feed_id WHERE r.id = ?");
  q.bind(1, id);
  if (!q.executeStep()) {
    return fail(ErrorCode::name_unknown, "repository does not exist");
  }
  return RepositoryRow{q.getColumn(0).getInt64(), q.getColumn(1).getInt64(),
                       q.getColumn(2).getInt64(), column_string(q, 3), q.getColumn(4).getInt64()};
}

} // namespace

Metadata::Metadata(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}
Metadata::~Metadata() = default;

Result<std::unique_ptr<Metadata>>
Metadata::open(const std::filesystem::path& path)
{
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  try {
    auto db = impl->connect();
    Transaction tx(*db, "BEGIN IMMEDIATE");
    int version = db->execAndGet("PRAGMA user_version").getInt();
    if (version > k_schema_version) {
      return fail(ErrorCode::corrupt, "the database schema (version " + std::to_string(version)
                                        + ") is newer than this registryctl understands");
    }
    for (int v = version; v < k_schema_version; ++v) {
      db->exec(k_migrations[v]);
      db->exec("PRAGMA user_version = " + std::to_string(v + 1));
    }
    tx.commit();
    impl->idle.push_back(std::move(db));
  } catch (const std::exception& e) {
    util::log_error(std::string("cannot open database: ") + e.what());
    return fail(ErrorCode::io_error, "cannot open the metadata database " + path.string());
  }
  return std::unique_ptr<Metadata>(new Metadata(std::move(impl)));
}

int
Metadata::schema_version()
{
  auto r = m_impl->run([](Connection& db) -> Result<int> {
    return db.execAndGet("PRAGMA user_version").getInt();
  });
  return r ? *r : -1;
}

void
Metadata::checkpoint_in_background()
{
  if (m_impl->read_only) {
    return;
  }
  std::lock_guard lock(m_impl->mutex);
  if (m_impl->checkpointer_owner) {
    return;
  }
  try {
    m_impl->checkpointer_owner = std::make_unique<Checkpointer>(m_impl->path, m_impl->write_mutex);
  } catch (const std::exception& e) {
    // The commits keep checkpointing themselves, as SQLite does by default.
    util::log_warn(std::string("cannot checkpoint on a thread of its own: ") + e.what());
    return;
  }
  m_impl->checkpointer.store(m_impl->checkpointer_owner.get(), std::memory_order_release);
}

size_t
Metadata::release_idle_memory(size_t keep)
{
  std::vector<std::unique_ptr<Connection>> closing;
  {
    // Pooled connections belong to no thread while they sit here.
    std::lock_guard lock(m_impl->mutex);
    while (m_impl->idle.size() > keep) {
      closing.push_back(std::move(m_impl->idle.back()));
      m_impl->idle.pop_back();
    }
    for (auto& db : m_impl->idle) {
      sqlite3_db_release_memory(db->getHandle());
    }
  }
  return closing.size(); // closed here, outside the pool's lock
}

namespace {

// A StoreRow from "SELECT id, name, type, config FROM stores ...".
StoreRow
read_store(SQLite::Statement& q)
{
  return StoreRow{q.getColumn(0).getInt64(), column_string(q, 1), column_string(q, 2), column_string(q, 3)};
}

} // namespace

Result<std::vector<StoreRow>>
Metadata::list_stores()
{
  return m_impl->run([](Connection& db) -> Result<std::vector<StoreRow>> {
    SQLite::Statement& q = db.prepare("SELECT id, name, type, config FROM stores ORDER BY name");
    return all_rows(q, read_store);
  });
}

Result<StoreRow>
Metadata::add_store(const std::string& name, const std::string& type, const std::string& config_json)
{
  return m_impl->write([&](Connection& db) -> Result<StoreRow> {
    SQLite::Statement& exists = db.prepare("SELECT 1 FROM stores WHERE name = ?");
    exists.bind(1, name);
    if (exists.executeStep()) {
      return fail(ErrorCode::already_exists, "store '" + name + "' already exists", name);
    }
    SQLite::Statement& insert = db.prepare("INSERT INTO stores (name, type, config) VALUES (?, ?, ?)");
    SQLite::bind(insert, name, type, config_json);
    insert.exec();
    return StoreRow{db.getLastInsertRowid(), name, type, config_json};
  });
}

Result<std::optional<StoreRow>>
Metadata::find_store(const std::string& name)
{
  return m_impl->run([&](Connection& db) -> Result<std::optional<StoreRow>> {
    SQLite::Statement& q = db.prepare("SELECT id, name, type, config FROM stores WHERE name = ?");
    q.bind(1, name);
    if (!q.executeStep()) {
      return std::optional<StoreRow>();
    }
    return std::optional<StoreRow>(read_store(q));
  });
}

Result<void>
Metadata::delete_store(const std::string& name)
{
  return m_impl->write([&](Connection& db) -> Result<void> {
    SQLite::Statement& q = db.prepare(
      "SELECT s.id, (SELECT group_concat(f.name, ', ') FROM feeds f WHERE f.store_id = s.id), "
      "(SELECT count(*) FROM blobs b WHERE b.store_id = s.id) FROM stores s WHERE s.name = ?");
    q.bind(1, name);
    if (!q.executeStep()) {
      return fail(ErrorCode::name_unknown, "store '" + name + "' does not exist", name);
    }
    int64_t id = q.getColumn(0).getInt64();
    std::string feeds = column_string(q, 1);
    int64_t blobs = q.getColumn(2).getInt64();
    if (id == 1) {
      return fail(ErrorCode::conflict, "the default store cannot be deleted", name);
    }
    if (!feeds.empty()) {
      return fail(ErrorCode::conflict, "store '" + name + "' holds feeds: " + feeds
                                         + "; delete them first", name);
    }
    if (blobs > 0) {
      return fail(ErrorCode::conflict, "store '" + name + "' still has " + std::to_string(blobs)
                                         + " blobs; run 'registryctl gc' first", name);
    }
    SQLite::Statement& del = db.prepare("DELETE FROM stores WHERE id = ?");
    del.bind(1, id);
    del.exec();
    return ok();
  });
}

// --- feeds ---

Result<FeedRow>
Metadata::create_feed(const std::string& name, const std::string& description, int64_t store_id,
                      const std::string& anonymous_access, int64_t now, int64_t cache_retention)
{
  return m_impl->write([&](Connection& db) -> Result<FeedRow> {
    SQLite::Statement& exists = db.prepare("SELECT 1 FROM feeds WHERE name = ?");
    exists.bind(1, name);
    if (exists.executeStep()) {
      return fail(ErrorCode::already_exists, "feed '" + name + "' already exists", name);
    }
    SQLite::Statement& insert = db.prepare("INSERT INTO feeds (name, description, store_id, "
                                 "anonymous_access, created_at, cache_retention) VALUES (?, ?, ?, ?, ?, ?)");
    SQLite::bind(insert, name, description, store_id, anonymous_access, now, cache_retention);
    insert.exec();
    return FeedRow{db.getLastInsertRowid(), name, description, store_id, anonymous_access, now,
                   cache_retention};
  });
}

namespace {

std::optional<FeedRow>
feed_named(Connection& db, const std::string& name)
{
  SQLite::Statement& q = db.prepare(std::string("SELECT ") + k_feed_columns + " FROM feeds WHERE name = ?");
  q.bind(1, name);
  return first_row(q, read_feed);
}

std::optional<RepositoryRow>
repository_named(Connection& db, const std::string& full_name)
{
  SQLite::Statement& q = db.prepare("SELECT r.id, r.feed_id, f.store_id, r.name, r.created_at FROM "
                                    "repositories r JOIN feeds f ON f.id = r.feed_id WHERE r.name = ?");
  q.bind(1, full_name);
  return first_row(q, [](SQLite::Statement& row) {
    return RepositoryRow{row.getColumn(0).getInt64(), row.getColumn(1).getInt64(),
                         row.getColumn(2).getInt64(), column_string(row, 3), row.getColumn(4).getInt64()};
  });
}

} // namespace

Result<std::optional<FeedRow>>
Metadata::find_feed(const std::string& name)
{
  return m_impl->run([&](Connection& db) -> Result<std::optional<FeedRow>> { return feed_named(db, name); });
}

Result<std::vector<FeedRow>>
Metadata::list_feeds()
{
  return m_impl->run([&](Connection& db) -> Result<std::vector<FeedRow>> {
    SQLite::Statement& q = db.prepare(std::string("SELECT ") + k_feed_columns + " FROM feeds ORDER BY name");
    return all_rows(q, read_feed);
  });
}

Result<FeedRow>
Metadata::update_feed(const std::string& name, const std::string& description,
                      const std::string& anonymous_access, std::optional<int64_t> cache_retention)
{
  return m_impl->write([&](Connection& db) -> Result<FeedRow> {
    SQLite::Statement& update = db.prepare("UPDATE feeds SET description = ?, anonymous_access = ?, "
                                           "cache_retention = coalesce(?, cache_retention) WHERE name = ?");
    SQLite::bind(update, description, anonymous_access);
    if (cache_retention) {
      update.bind(3, *cache_retention);
    } else {
      update.bind(3);
    }
    update.bind(4, name);
    if (update.exec() == 0) {
      return fail(ErrorCode::name_unknown, "feed '" + name + "' does not exist", name);
    }
    SQLite::Statement& q = db.prepare(std::string("SELECT ") + k_feed_columns + " FROM feeds WHERE name = ?");
    q.bind(1, name);
    q.executeStep();
    return read_feed(q);
  });
}

Result<std::vector<std::string>>
Metadata::delete_feed(const std::string& name)
{
  return m_impl->write([&](Connection& db) -> Result<std::vector<std::string>> {
    std::vector<std::string> uploads;
    SQLite::Statement& q = db.prepare("SELECT u.id FROM uploads u JOIN feeds f ON f.id = u.feed_id "
                            "WHERE f.name = ?");
    q.bind(1, name);
    while (q.executeStep()) {
      uploads.push_back(column_string(q, 0));
    }
    // Grants name feeds by id without a foreign key (0 means every feed): drop
    // them with the feed, so a later feed reusing the id inherits nothing.
    SQLite::Statement& grants = db.prepare(
      "DELETE FROM grants WHERE feed_id = (SELECT id FROM feeds WHERE name = ?)");
    grants.bind(1, name);
    grants.exec();
    SQLite::Statement& del = db.prepare("DELETE FROM feeds WHERE name = ?");
    del.bind(1, name);
    if (del.exec() == 0) {
      return fail(ErrorCode::name_unknown, "feed '" + name + "' does not exist", name);
    }
    return uploads;
  });
}

// --- repositories ---

Result<std::optional<RepositoryRow>>
Metadata::find_repository(const std::string& full_name)
{
  return m_impl->run(
    [&](Connection& db) -> Result<std::optional<RepositoryRow>> { return repository_named(db, full_name); });
}

Result<FeedAndRepository>
Metadata::find_feed_and_repository(const std::string& feed_name, const std::string& full_name)
{
  return m_impl->run([&](Connection& db) -> Result<FeedAndRepository> {
    // One read transaction, not one per statement: the rows come from one
    // snapshot, and SQLite takes and drops its WAL read lock once.
    Transaction read(db, "BEGIN");
    FeedAndRepository found{feed_named(db, feed_name), std::nullopt};
    if (found.feed) {
      found.repository = repository_named(db, full_name);
    }
    read.commit();
    return found;
  });
}

Result<std::vector<std::string>>
Metadata::list_repository_names(const std::string& feed, const std::string& last, int64_t limit)
{
  return m_impl->run([&](Connection& db) -> Result<std::vector<std::string>> {
    std::vector<std::string> out;
    // Only repositories holding at least one manifest are listed: a repository
    // whose images were all deleted disappears from the catalog.
    std::string sql = "SELECT r.name FROM repositories r WHERE r.name > ? AND EXISTS "
                      "(SELECT 1 FROM manifests m WHERE m.repository_id = r.id)";
    if (!feed.empty()) {
      sql += " AND r.feed_id = (SELECT id FROM feeds WHERE name = ?)";
    }
    sql += " ORDER BY r.name LIMIT ?";
    SQLite::Statement& q = db.prepare(sql);
    int i = 1;
    q.bind(i++, last);
    if (!feed.empty()) {
      q.bind(i++, feed);
    }
    q.bind(i, limit);
    while (q.executeStep()) {
      out.push_back(column_string(q, 0));
    }
    return out;
  });
}

Result<std::vector<RepositorySummary>>
Metadata::list_repositories(const std::string& feed)
{
  return m_impl->run([&](Connection& db) -> Result<std::vector<RepositorySummary>> {
    std::vector<RepositorySummary> out;
    std::string sql
      = "SELECT r.name, (SELECT count(*) FROM tags t WHERE t.repository_id = r.id), "
        "(SELECT count(*) FROM manifests m WHERE m.repository_id = r.id), r.updated_at "
        "FROM repositories r";
    if (!feed.empty()) {
      sql += " WHERE r.feed_id = (SELECT id FROM feeds WHERE name = ?)";
    }
    sql += " ORDER BY r.name";
    SQLite::Statement& q = db.prepare(sql);
    if (!feed.empty()) {
      q.bind(1, feed);
    }
    while (q.executeStep()) {
      out.push_back({column_string(q, 0), q.getColumn(1).getInt64(), q.getColumn(2).getInt64(),
                     q.getColumn(3).getInt64()});
    }
    return out;
  });
}

// --- blobs ---

Result<std::optional<BlobRow>>
Metadata::find_linked_blob(int64_t repository_id, const std::string& digest)
{
  return m_impl->run([&](Connection& db) { return linked_blob(db, "rb.repository_id", repository_id, digest); });
}

Result<std::optional<BlobRow>>
Metadata::find_linked_blob(const std::string& repository, const std::string& digest)
{
  return m_impl->run([&](Connection& db) { return linked_blob(db, "r.name", repository, digest); });
}

Result<std::optional<BlobRow>>
Metadata::find_blob(int64_t store_id, const std::string& digest)
{
  return m_impl->run([&](Connection& db) -> Result<std::optional<BlobRow>> {
    return blob_in_store(db, "b.digest", store_id, digest);
  });
}

Result<BlobRow>
Metadata::record_blob(int64_t feed_id, const std::string& repository, int64_t store_id,
                      const std::string& digest, uint64_t size, const std::string& object_key,
                      int64_t now)
{
  return commit_blob(feed_id, repository, store_id, digest, size,
                     [&]() -> Result<std::string> { return object_key; }, now);
}

namespace {

// The blob row of `digest` in the store (inserted, or touched when it exists)
// and its link to the repository, inside the caller's write transaction.
Result<BlobRow>
upsert_blob(Connection& db, int64_t repo_id, int64_t store_id, const std::string& digest,
            uint64_t size, const std::string& object_key, int64_t now)
{
  SQLite::Statement& upsert = db.prepare("INSERT INTO blobs (store_id, digest, size, object_key, created_at, last_touched_at) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (store_id, digest) DO UPDATE SET "
        "last_touched_at = excluded.last_touched_at");
  SQLite::bind(upsert, store_id, digest, static_cast<int64_t>(size), object_key, now, now);
  upsert.exec();
  BlobRow row = *blob_in_store(db, "b.digest", store_id, digest);
  SQLite::Statement& link = db.prepare("INSERT INTO repository_blobs (repository_id, blob_id, linked_at) "
                             "VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET linked_at = excluded.linked_at");
  SQLite::bind(link, repo_id, row.id, now);
  link.exec();
  return row;
}

} // namespace

Result<BlobRow>
Metadata::commit_blob(int64_t feed_id, const std::string& repository, int64_t store_id,
                      const std::string& digest, uint64_t size,
                      const std::function<Result<std::string>()>& place_bytes, int64_t now,
                      const std::string& finished_upload)
{
  return m_impl->write([&](Connection& db) -> Result<BlobRow> {
    REGISTRY_TRY_ASSIGN(int64_t repo_id, ensure_repository(db, feed_id, repository, now));
    REGISTRY_TRY_ASSIGN(std::string object_key, place_bytes());
    if (!finished_upload.empty()) {
      remove_upload_row(db, finished_upload);
    }
    return upsert_blob(db, repo_id, store_id, digest, size, object_key, now);
  });
}

Result<BlobRow>
Metadata::keep_small_blob(int64_t feed_id, const std::string& repository, int64_t store_id,
                          const std::string& digest, std::string_view bytes, int64_t now,
                          const std::string& finished_upload)
{
  return m_impl->write([&](Connection& db) -> Result<BlobRow> {
    REGISTRY_TRY_ASSIGN(int64_t repo_id, ensure_repository(db, feed_id, repository, now));
    if (!finished_upload.empty()) {
      remove_upload_row(db, finished_upload);
    }
    REGISTRY_TRY_ASSIGN(BlobRow row, upsert_blob(db, repo_id, store_id, digest, bytes.size(),
                                                 k_database_key, now));
    if (row.in_database()) {
      SQLite::Statement& keep = db.prepare("INSERT OR IGNORE INTO blob_contents (blob_id, bytes) VALUES (?, ?)");
      keep.bind(1, row.id);
      keep.bind(2, bytes.data(), static_cast<int>(bytes.size()));
      keep.exec();
    }
    return row;
  });
}

Result<std::optional<std::string>>
Metadata::blob_content(int64_t blob_id)
{
  return m_impl->run([&](Connection& db) -> Result<std::optional<std::string>> {
    SQLite::Statement& q = db.prepare("SELECT bytes FROM blob_contents WHERE blob_id = ?");
    q.bind(1, blob_id);
    return first_row(q, [](SQLite::Statement& row) { return column_string(row, 0); });
  });
}

Result<bool>
Metadata::mount_blob(int64_t from_repository_id, int64_t feed_id, const std::string& repository,
                     const std::string& digest, int64_t now)
{
  return m_impl->write([&](Connection& db) -> Result<bool> {
    // The blob must be linked to the source and live in the target feed's store.
    SQLite::Statement& q = db.prepare("SELECT b.id FROM blobs b JOIN repository_blobs rb ON rb.blob_id = b.id "
                            "WHERE rb.repository_id = ? AND b.digest = ? "
                            "AND b.store_id = (SELECT store_id FROM feeds WHERE id = ?)");
    SQLite::bind(q, from_repository_id, digest, feed_id);
    if (!q.executeStep()) {
      return false;
    }
    int64_t blob_id = q.getColumn(0).getInt64();
    REGISTRY_TRY_ASSIGN(int64_t repo_id, ensure_repository(db, feed_id, repository, now));
    SQLite::Statement& link = db.prepare("INSERT INTO repository_blobs (repository_id, blob_id, linked_at) "
                               "VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET linked_at = excluded.linked_at");
    SQLite::bind(link, repo_id, blob_id, now);
    link.exec();
    SQLite::Statement& touch = db.prepare("UPDATE blobs SET last_touched_at = ? WHERE id = ?");
    SQLite::bind(touch, now, blob_id);
    touch.exec();
    return true;
  });
}

Result<void>
Metadata::unlink_blob(int64_t repository_id, const std::string& digest)
{
  return m_impl->write([&](Connection& db) -> Result<void> {
    SQLite::Statement& del = db.prepare("DELETE FROM repository_blobs WHERE repository_id = ? AND blob_id IN "
                              "(SELECT id FROM blobs WHERE digest = ?)");
    SQLite::bind(del, repository_id, digest);
    if (del.exec() == 0) {
      return fail(ErrorCode::blob_unknown, "blob unknown to repository", digest);
    }
    return ok();
  });
}

Result<void>
Metadata::touch_blob(int64_t blob_id, int64_t now)
{
  return m_impl->write([&](Connection& db) -> Result<void> {
    // Only write when the stamp is older than a minute: HEAD storms stay reads.
    SQLite::Statement& touch = db.prepare("UPDATE blobs SET last_touched_at = ? WHERE id = ? AND last_touched_at < ?");
    SQLite::bind(touch, now, blob_id, now - 60);
    touch.exec();
    return ok();
  });
}

// --- manifests and tags ---

Result<RepositoryRow>
Metadata::put_manifest(int64_t feed_id, const std::string& repository,
                       const NewManifest& manifest, const std::string& tag, int64_t now,
                       const EventRow* event)
{
  return m_impl->write([&](Connection& db) -> Result<RepositoryRow> {
    REGISTRY_TRY_ASSIGN(int64_t repo_id, ensure_repository(db, feed_id, repository, now));
    SQLite::Statement& blob_linked = db.prepare("SELECT b.id FROM blobs b JOIN repository_blobs rb ON rb.blob_id = b.id "
          "WHERE rb.repository_id = ? AND b.digest = ? "
          "AND b.store_id = (SELECT store_id FROM feeds WHERE id = ?)");
    SQLite::Statement& child_exists = db.prepare("SELECT 1 FROM manifests WHERE repository_id = ? AND digest = ?");
    SQLite::Statement& touch = db.prepare("UPDATE blobs SET last_touched_at = ? WHERE id = ?");
    // Cached content (an origin) is fetched lazily: its blobs and children
    // arrive when a client asks for them.
    for (const auto& ref : manifest.origin.empty() ? manifest.references : std::vector<ManifestReferenceRecord>()) {
      bool found = false;
      if (ref.kind == ManifestReferenceRecord::Kind::blob) {
        blob_linked.reset();
        SQLite::bind(blob_linked, repo_id, ref.digest, feed_id);
        if (blob_linked.executeStep()) {
          found = true;
          touch.reset();
          SQLite::bind(touch, now, blob_linked.getColumn(0).getInt64());
          touch.exec();
        }
      } else {
        child_exists.reset();
        SQLite::bind(child_exists, repo_id, ref.digest);
        found = child_exists.executeStep();
      }
      if (!found) {
        return fail(ErrorCode::manifest_blob_unknown,
                    ref.kind == ManifestReferenceRecord::Kind::blob
                      ? "manifest references a blob unknown to the repository"
                      : "index references a manifest unknown to the repository",
                    ref.digest);
      }
    }
    int64_t manifest_id = 0;
    {
      SQLite::Statement& existing = db.prepare("SELECT id FROM manifests WHERE repository_id = ? AND digest = ?");
      SQLite::bind(existing, repo_id, manifest.digest);
      if (existing.executeStep()) {
        manifest_id = existing.getColumn(0).getInt64();
      }
    }
    if (manifest_id == 0) {
      SQLite::Statement& insert = db.prepare("INSERT INTO manifests (repository_id, digest, media_type, artifact_type, "
            "subject_digest, annotations, size, bytes, pushed_at, origin, last_pulled_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
      SQLite::bind(insert, repo_id, manifest.digest, manifest.media_type, manifest.artifact_type,
                   manifest.subject_digest, manifest.annotations_json,
                   static_cast<int64_t>(manifest.bytes.size()));
      insert.bind(8, manifest.bytes.data(), static_cast<int>(manifest.bytes.size())); // a BLOB
      insert.bind(9, now);
      insert.bind(10, manifest.origin);
      // Caching happens because a client pulled it.
      insert.bind(11, manifest.origin.empty() ? int64_t{0} : now);
      insert.exec();
      manifest_id = db.getLastInsertRowid();
      SQLite::Statement& ref_insert = db.prepare("INSERT OR IGNORE INTO manifest_references "
                                       "(manifest_id, kind, digest) VALUES (?, ?, ?)");
      for (const auto& ref : manifest.references) {
        ref_insert.reset();
        SQLite::bind(ref_insert, manifest_id, ref.kind == ManifestReferenceRecord::Kind::blob ? 0 : 1,
                     ref.digest);
        ref_insert.exec();
      }
    }
    if (!tag.empty()) {
      SQLite::Statement& set_tag = db.prepare("INSERT INTO tags (repository_id, name, manifest_id, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (repository_id, name) DO UPDATE SET manifest_id = excluded.manifest_id, "
            "updated_at = excluded.updated_at");
      SQLite::bind(set_tag, repo_id, tag, manifest_id, now);
      set_tag.exec();
    }
    if (event != nullptr) {
      insert_event(db, *event);
    }
    return load_repository(db, repo_id);
  });
}

Result<std::optional<ManifestRow>>
Metadata::find_manifest(int64_t repository_id, const std::string& digest, bool with_bytes)
{
  return m_impl->run([&](Connection& db) -> Result<std::optional<ManifestRow>> {
    SQLite::Statement& q = db.prepare("SELECT " + manifest_columns(with_bytes)
                              + " FROM manifests m WHERE m.repository_id = ? AND m.digest = ?");
    SQLite::bind(q, repository_id, digest);
    return first_row(q, [&](SQLite::Statement& row) { return read_manifest(row, with_bytes); });
  });
}

Result<std::optional<ManifestRow>>
Metadata::find_tagged_manifest(int64_t repository_id, const std::string& tag, bool with_bytes)
{
  return m_impl->run([&](Connection& db) -> Result<std::optional<ManifestRow>> {
    SQLite::Statement& q = db.prepare("SELECT " + manifest_columns(with_bytes)
                              + ", t.updated_at FROM tags t JOIN manifests m ON m.id = t.manifest_id "
                                "WHERE t.repository_id = ? AND t.name = ?");
    SQLite::bind(q, repository_id, tag);
    if (q.executeStep()) {
      ManifestRow row = read_manifest(q, with_bytes);
      row.tag_updated_at = q.getColumn(with_bytes ? 12 : 11).getInt64();
      return std::optional<ManifestRow>(std::move(row));
    }
    return std::optional<ManifestRow>();
  });
}

Result<std::vector<std::string>>
Metadata::delete_manifest(int64_t repository_id, const std::string& digest, const EventRow* event)
{
  return m_impl->write([&](Connection& db) -> Result<std::vector<std::string>> {
    SQLite::Statement& find = db.prepare("SELECT id FROM manifests WHERE repository_id = ? AND digest = ?");
    SQLite::bind(find, repository_id, digest);
    if (!find.executeStep()) {
      return fail(ErrorCode::manifest_unknown, "manifest unknown", digest);
    }
    int64_t id = find.getColumn(0).getInt64();
    SQLite::Statement& parent = db.prepare("SELECT m.digest FROM manifest_references r JOIN manifests m ON m.id = r.manifest_id "
          "WHERE r.digest = ? AND r.kind = 1 AND m.repository_id = ? LIMIT 1");
    SQLite::bind(parent, digest, repository_id);
    if (parent.executeStep()) {
      return fail(ErrorCode::conflict,
                  "manifest is referenced by index " + column_string(parent, 0)
                    + "; delete the index first",
                  column_string(parent, 0));
    }
    std::vector<std::string> tags;
    SQLite::Statement& tq = db.prepare("SELECT name FROM tags WHERE manifest_id = ? ORDER BY name");
    tq.bind(1, id);
    while (tq.executeStep()) {
      tags.push_back(column_string(tq, 0));
    }
    SQLite::Statement& del = db.prepare("DELETE FROM manifests WHERE id = ?");
    del.bind(1, id);
    del.exec();
    if (event != nullptr) {
      EventRow with_tags = *event;
      if (!tags.empty()) {
        with_tags.detail = "tags " + util::join(tags, ",");
      }
      insert_event(db, with_tags);
    }
    return tags;
  });
}

Result<void>
Metadata::delete_tag(int64_t repository_id, const std::string& tag, const EventRow* event)
{
  return m_impl->write([&](Connection& db) -> Result<void> {
    SQLite::Statement& del = db.prepare("DELETE FROM tags WHERE repository_id = ? AND name = ?");
    SQLite::bind(del, repository_id, tag);
    if (del.exec() == 0) {
      return fail(ErrorCode::manifest_unknown, "tag unknown", tag);
    }
    if (event != nullptr) {
      insert_event(db, *event);
    }
    return ok();
  });
}

Result<std::vector<TagRow>>
Metadata::list_tags(int64_t repository_id, const std::string& last, int64_t limit, bool with_manifests)
{
  return m_impl->run([&](Connection& db) -> Result<std::vector<TagRow>> {
    std::vector<TagRow> out;
    out.reserve(static_cast<size_t>(std::clamp<int64_t>(limit, 0, 10000)));
    // Names only: the tags' primary key answers without touching the manifests.
    SQLite::Statement& q = db.prepare(
      with_manifests ? "SELECT t.name, m.digest, t.updated_at, m.origin FROM tags t JOIN manifests m "
                       "ON m.id = t.manifest_id WHERE t.repository_id = ? AND t.name > ? "
                       "ORDER BY t.name LIMIT ?"
                     : "SELECT name FROM tags WHERE repository_id = ? AND name > ? ORDER BY name LIMIT ?");
    SQLite::bind(q, repository_id, last, limit);
    while (q.executeStep()) {
      if (with_manifests) {
        out.push_back({column_string(q, 0), column_string(q, 1), q.getColumn(2).getInt64(), column_string(q, 3)});
      } else {
        out.push_back({column_string(q, 0), {}, 0, {}});
      }
    }
    return out;
  });
}

Result<std::vector<std::string>>
Metadata::tags_of(int64_t repository_id, const std::string& digest)
{
  return m_impl->run([&](Connection& db) -> Result<std::vector<std::string>> {
    std::vector<std::string> out;
    SQLite::Statement& q = db.prepare("SELECT t.name FROM tags t JOIN manifests m ON m.id = t.manifest_id "
                            "WHERE m.repository_id = ? AND m.digest = ? ORDER BY t.name");
    SQLite::bind(q, repository_id, digest);
    while (q.executeStep()) {
      out.push_back(column_string(q, 0));
    }
    return out;
  });
}

Result<std::vector<ManifestRow>>
Metadata::list_referrers(int64_t repository_id, const std::string& digest,
                         const std::string& artifact_type)
{
  return m_impl->run([&](Connection& db) -> Result<std::vector<ManifestRow>> {
    std::string sql = "SELECT " + manifest_columns(false)
                      + " FROM manifests m WHERE m.repository_id = ? AND m.subject_digest = ?";
    if (!artifact_type.empty()) {
      sql += " AND m.artifact_type = ?";
    }
    sql += " ORDER BY m.digest";
    SQLite::Statement& q = db.prepare(sql);
    SQLite::bind(q, repository_id, digest);
    if (!artifact_type.empty()) {
      q.bind(3, artifact_type);
    }
    return all_rows(q, [&](SQLite::Statement& row) { return read_manifest(row, false); });
  });
}

Result<std::vector<ManifestReferenceRecord>>
Metadata::manifest_references(int64_t manifest_id)
{
  return m_impl->run([&](Connection& db) -> Result<std::vector<ManifestReferenceRecord>> {
    std::vector<ManifestReferenceRecord> out;
    SQLite::Statement& q = db.prepare("SELECT kind, digest FROM manifest_references WHERE manifest_id = ?");
    q.bind(1, manifest_id);
    while (q.executeStep()) {
      out.push_back({q.getColumn(0).getInt() == 0 ? ManifestReferenceRecord::Kind::blob
                                                  : ManifestReferenceRecord::Kind::manifest,
                     column_string(q, 1)});
    }
    return out;
  });
}

// --- garbage collection and integrity ---

Result<bool>
Metadata::acquire_lock(const std::string& name, const std::string& holder, int64_t now,
                       int64_t ttl, std::string* current, const std::string& stale_holder)
{
  return m_impl->write([&](Connection& db) -> Result<bool> {
    SQLite::Statement& q = db.prepare("SELECT holder, expires_at FROM locks WHERE name = ?");
    q.bind(1, name);
    if (q.executeStep()) {
      std::string owner = column_string(q, 0);
      bool stale = !stale_holder.empty() && owner == stale_holder;
      if (owner != holder && !stale && q.getColumn(1).getInt64() > now) {
        if (current != nullptr) {
          *current = owner;
        }
        return false;
      }
    }
    SQLite::Statement& take = db.prepare("INSERT INTO locks (name, holder, acquired_at, expires_at) "
                               "VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                               "holder = excluded.holder, acquired_at = excluded.acquired_at, "
                               "expires_at = excluded.expires_at");
    SQLite::bind(take, name, holder, now, now + ttl);
    take.exec();
    return true;
  });
}

Result<void>
Metadata::release_lock(const std::string& name, const std::string& holder)
{
  return m_impl->write([&](Connection& db) -> Result<void> {
    SQLite::Statement& del = db.prepare("DELETE FROM locks WHERE name = ? AND holder = ?");
    SQLite::bind(del, name, holder);
    del.exec();
    return ok();
  });
}

namespace {
// A blob no manifest references. Conservative across stores: a reference from
// any feed keeps the digest alive everywhere.
const char* const k_unreferenced
  = "NOT EXISTS (SELECT 1 FROM manifest_references r WHERE r.digest = b.digest AND r.kind = 0)";
} // namespace

Result<std::vector<BlobRow>>
Metadata::list_unreferenced_blobs(int64_t after_id, int64_t cutoff, int64_t feed_id, int64_t limit)
{
  return m_impl->run([&](Connection& db) -> Result<std::vector<BlobRow>> {
    std::string sql = std::string("SELECT ") + k_blob_columns
                      + " FROM blobs b WHERE b.id > ? AND b.last_touched_at <= ? AND "
                      + k_unreferenced;
    if (feed_id != 0) {
      sql += " AND EXISTS (SELECT 1 FROM repository_blobs rb JOIN repositories r ON "
             "r.id = rb.repository_id WHERE rb.blob_id = b.id AND r.feed_id = ?)";
    }
    sql += " ORDER BY b.id LIMIT ?";
    SQLite::Statement& q = db.prepare(sql);
    int i = 1;
    q.bind(i++, after_id);
    q.bind(i++, cutoff);
    if (feed_id != 0) {
      q.bind(i++, feed_id);
    }
    q.bind(i, limit);
    return all_rows(q, read_blob);
  });
}

Result<std::vector<BlobRow>>
Metadata::delete_unreferenced_blobs(const std::vector<int64_t>& ids, int64_t cutoff,
                                    const std::function<Result<void>(const BlobRow&)>& remove_bytes)
{
  return m_impl->write([&](Connection& db) -> Result<std::vector<BlobRow>> {
    std::vector<BlobRow> deleted;
    SQLite::Statement& check = db.prepare(std::string("SELECT ") + k_blob_columns
                                  + " FROM blobs b WHERE b.id = ? AND b.last_touched_at <= ? AND "
                                  + k_unreferenced);
    SQLite::Statement& del = db.prepare("DELETE FROM blobs WHERE id = ?");
    for (int64_t id : ids) {
      check.reset();
      SQLite::bind(check, id, cutoff);
      if (!check.executeStep()) {
        continue; // referenced or touched meanwhile: it stays
      }
      BlobRow row = read_blob(check);
      REGISTRY_TRY(remove_bytes(row));
      del.reset();
      del.bind(1, id);
      del.exec();
      deleted.push_back(std::move(row));
    }
    return deleted;
  });
}

namespace {
const char* const k_untagged_condition
  = " NOT EXISTS (SELECT 1 FROM tags t WHERE t.manifest_id = m.id)"
    " AND NOT EXISTS (SELECT 1 FROM manifest_references r JOIN manifests p ON p.id = r.manifest_id"
    "   WHERE r.digest = m.digest AND r.kind = 1 AND p.repository_id = m.repository_id)"
    " AND NOT (m.subject_digest <> '' AND EXISTS (SELECT 1 FROM manifests s"
    "   WHERE s.repository_id = m.repository_id AND s.digest = m.subject_digest))";
} // namespace

Result<std::vector<ManifestRow>>
Metadata::list_untagged_manifests(int64_t feed_id, int64_t cutoff, int64_t after_id, int64_t limit)
{
  return m_impl->run([&](Connection& db) -> Result<std::vector<ManifestRow>> {
    std::string sql = "SELECT " + manifest_columns(false)
                      + " FROM manifests m WHERE m.id > ? AND m.pushed_at <= ? AND"
                      + k_untagged_condition;
    if (feed_id != 0) {
      sql += " AND m.repository_id IN (SELECT id FROM repositories WHERE feed_id = ?)";
    }
    sql += " ORDER BY m.id LIMIT ?";
    SQLite::Statement& q = db.prepare(sql);
    int i = 1;
    q.bind(i++, after_id);
    q.bind(i++, cutoff);
    if (feed_id != 0) {
      q.bind(i++, feed_id);
    }
    q.bind(i, limit);
    return all_rows(q, [&](SQLite::Statement& row) { return read_manifest(row, false); });
  });
}

Result<bool>
Metadata::delete_untagged_manifest(int64_t manifest_id, int64_t cutoff)
{
  return m_impl->write([&](Connection& db) -> Result<bool> {
    SQLite::Statement& del = db.prepare(std::string("DELETE FROM manifests AS m WHERE m.id = ? AND "
                                          "m.pushed_at <= ? AND")
                                + k_untagged_condition);
    SQLite::bind(del, manifest_id, cutoff);
    return del.exec() > 0;
  });
}

namespace {
// A cached manifest of a feed with a retention, not pulled within it (`?` = now).
const char* const k_stale_cached
  = " m.origin <> '' AND f.cache_retention > 0 AND m.last_pulled_at <= ? - f.cache_retention";
// Nothing else in the repository needs the manifest: no index lists it and no
// manifest names it as its subject.
const char* const k_no_dependents
  = " AND NOT EXISTS (SELECT 1 FROM manifest_references r JOIN manifests p ON p.id = r.manifest_id"
    "   WHERE r.digest = m.digest AND r.kind = 1 AND p.repository_id = m.repository_id)"
    " AND NOT EXISTS (SELECT 1 FROM manifests s"
    "   WHERE s.repository_id = m.repository_id AND s.subject_digest = m.digest)";
} // namespace

Result<std::vector<StaleManifest>>
Metadata::list_stale_cached_manifests(int64_t feed_id, int64_t now, int64_t after_id, int64_t limit)
{
  return m_impl->run([&](Connection& db) -> Result<std::vector<StaleManifest>> {
    std::vector<StaleManifest> out;
    std::string sql = "SELECT " + manifest_columns(false)
                      + ", r.name FROM manifests m JOIN repositories r ON r.id = m.repository_id "
                        "JOIN feeds f ON f.id = r.feed_id WHERE m.id > ? AND"
                      + k_stale_cached;
    if (feed_id != 0) {
      sql += " AND f.id = ?";
    }
    sql += " ORDER BY m.id LIMIT ?";
    SQLite::Statement& q = db.prepare(sql);
    int i = 1;
    q.bind(i++, after_id);
    q.bind(i++, now);
    if (feed_id != 0) {
      q.bind(i++, feed_id);
    }
    q.bind(i, limit);
    while (q.executeStep()) {
      ManifestRow row = read_manifest(q, false);
      out.push_back({std::move(row), column_string(q, 11)});
    }
    return out;
  });
}

Result<std::optional<std::vector<std::string>>>
Metadata::expire_cached_manifest(int64_t manifest_id, int64_t now)
{
  return m_impl->write([&](Connection& db) -> Result<std::optional<std::vector<std::string>>> {
    SQLite::Statement& check = db.prepare(
      std::string("SELECT m.id FROM manifests m JOIN repositories r ON r.id = m.repository_id "
                  "JOIN feeds f ON f.id = r.feed_id WHERE m.id = ? AND")
      + k_stale_cached + k_no_dependents);
    SQLite::bind(check, manifest_id, now);
    if (!check.executeStep()) {
      return std::optional<std::vector<std::string>>(); // pulled, re-pushed or needed meanwhile
    }
    std::vector<std::string> tags;
    SQLite::Statement& tq = db.prepare("SELECT name FROM tags WHERE manifest_id = ? ORDER BY name");
    tq.bind(1, manifest_id);
    while (tq.executeStep()) {
      tags.push_back(column_string(tq, 0));
    }
    // Its tags go with it (ON DELETE CASCADE), in this transaction.
    SQLite::Statement& del = db.prepare("DELETE FROM manifests WHERE id = ?");
    del.bind(1, manifest_id);
    del.exec();
    return std::optional<std::vector<std::string>>(std::move(tags));
  });
}

Result<bool>
Metadata::touch_manifest_pull(int64_t manifest_id, int64_t now, int64_t min_interval)
{
  return m_impl->write([&](Connection& db) -> Result<bool> {
    SQLite::Statement& touch = db.prepare("UPDATE manifests SET last_pulled_at = ? WHERE id = ? "
                                          "AND origin <> '' AND last_pulled_at < ?");
    SQLite::bind(touch, now, manifest_id, now - min_interval);
    return touch.exec() > 0;
  });
}

Result<std::vector<std::pair<int64_t, int64_t>>>
Metadata::manifests_referencing(const std::string& digest, bool as_manifest)
{
  return m_impl->run([&](Connection& db) -> Result<std::vector<std::pair<int64_t, int64_t>>> {
    std::vector<std::pair<int64_t, int64_t>> out;
    SQLite::Statement& q = db.prepare("SELECT m.id, m.repository_id FROM manifest_references r JOIN "
                            "manifests m ON m.id = r.manifest_id WHERE r.digest = ? AND r.kind = ?");
    SQLite::bind(q, digest, as_manifest ? 1 : 0);
    while (q.executeStep()) {
      out.emplace_back(q.getColumn(0).getInt64(), q.getColumn(1).getInt64());
    }
    return out;
  });
}

Result<std::vector<BlobRow>>
Metadata::list_blob_rows(int64_t after_id, int64_t limit)
{
  return m_impl->run([&](Connection& db) -> Result<std::vector<BlobRow>> {
    SQLite::Statement& q = db.prepare(std::string("SELECT ") + k_blob_columns
                              + " FROM blobs b WHERE b.id > ? ORDER BY b.id LIMIT ?");
    SQLite::bind(q, after_id, limit);
    return all_rows(q, read_blob);
  });
}

Result<std::optional<BlobRow>>
Metadata::find_blob_by_key(int64_t store_id, const std::string& key)
{
  return m_impl->run([&](Connection& db) -> Result<std::optional<BlobRow>> {
    return blob_in_store(db, "b.object_key", store_id, key);
  });
}

Result<bool>
Metadata::remove_unrecorded(int64_t store_id, const std::string& key,
                            const std::function<Result<void>()>& remove_bytes)
{
  return m_impl->write([&](Connection& db) -> Result<bool> {
    if (blob_in_store(db, "b.object_key", store_id, key)) {
      return false;
    }
    REGISTRY_TRY(remove_bytes());
    return true;
  });
}

Result<void>
Metadata::delete_blob_row(int64_t id)
{
  return m_impl->write([&](Connection& db) -> Result<void> {
    SQLite::Statement& del = db.prepare("DELETE FROM blobs WHERE id = ?");
    del.bind(1, id);
    del.exec();
    return ok();
  });
}

Result<std::vector<DanglingReference>>
Metadata::dangling_references(int64_t limit)
{
  return m_impl->run([&](Connection& db) -> Result<std::vector<DanglingReference>> {
    std::vector<DanglingReference> out;
    SQLite::Statement& q = db.prepare("SELECT rp.name, m.digest, r.digest, r.kind FROM manifest_references r "
          "JOIN manifests m ON m.id = r.manifest_id "
          "JOIN repositories rp ON rp.id = m.repository_id "
          "JOIN feeds f ON f.id = rp.feed_id WHERE m.origin = '' AND "
          "((r.kind = 0 AND NOT EXISTS (SELECT 1 FROM blobs b WHERE b.store_id = f.store_id "
          "  AND b.digest = r.digest)) OR "
          "(r.kind = 1 AND NOT EXISTS (SELECT 1 FROM manifests c WHERE "
          "  c.repository_id = m.repository_id AND c.digest = r.digest))) LIMIT ?");
    q.bind(1, limit);
    while (q.executeStep()) {
      out.push_back({column_string(q, 0), column_string(q, 1), column_string(q, 2),
                     q.getColumn(3).getInt() == 1});
    }
    return out;
  });
}

Result<StoreStats>
Metadata::store_stats(int64_t store_id)
{
  return m_impl->run([&](Connection& db) -> Result<StoreStats> {
    SQLite::Statement& q = db.prepare("SELECT count(*), coalesce(sum(size), 0) FROM blobs WHERE store_id = ?");
    q.bind(1, store_id);
    q.executeStep();
    return StoreStats{q.getColumn(0).getInt64(), static_cast<uint64_t>(q.getColumn(1).getInt64())};
  });
}

Result<std::vector<FeedUsage>>
Metadata::feed_usage()
{
  return m_impl->run([&](Connection& db) -> Result<std::vector<FeedUsage>> {
    SQLite::Statement& q = db.prepare(
      "SELECT f.name, (SELECT count(*) FROM repositories r WHERE r.feed_id = f.id),"
      " count(u.blob_id), coalesce(sum(u.size), 0)"
      " FROM feeds f LEFT JOIN (SELECT DISTINCT r.feed_id AS feed_id, b.id AS blob_id, b.size AS size"
      "   FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id"
      "   JOIN blobs b ON b.id = rb.blob_id) u ON u.feed_id = f.id"
      " GROUP BY f.id ORDER BY f.name");
    std::vector<FeedUsage> out;
    while (q.executeStep()) {
      out.push_back(FeedUsage{column_string(q, 0), q.getColumn(1).getInt64(), q.getColumn(2).getInt64(),
                              static_cast<uint64_t>(q.getColumn(3).getInt64())});
    }
    return out;
  });
}

// --- users ---

namespace {
UserRow
read_user(SQLite::Statement& q)
{
  return UserRow{q.getColumn(0).getInt64(), column_string(q, 1), column_string(q, 2),
                 q.getColumn(3).getInt() != 0, q.getColumn(4).getInt64(), q.getColumn(5).getInt() != 0};
}
const char* const k_user_columns = "id, name, password_hash, disabled, created_at, admin";
} // namespace

namespace {
// Whether any user exists. EXISTS stops at the first row, where count(*)
// would read the whole table.
bool
any_user(Connection& db)
{
  SQLite::Statement& q = db.prepare("SELECT EXISTS (SELECT 1 FROM users)");
  q.executeStep();
  return q.getColumn(0).getInt() != 0;
}
} // namespace

Result<UserRow>
Metadata::create_user(const std::string& name, const std::string& password_hash, int64_t now)
{
  return m_impl->write([&](Connection& db) -> Result<UserRow> {
    SQLite::Statement& exists = db.prepare("SELECT 1 FROM users WHERE name = ?");
    exists.bind(1, name);
    if (exists.executeStep()) {
      return fail(ErrorCode::already_exists, "user '" + name + "' already exists", name);
    }
    // The first user is the admin, decided in the transaction that creates
    // it: two first users added at once cannot both become admins, and the
    // first cannot be left without the flag.
    bool first = !any_user(db);
    SQLite::Statement& insert =
      db.prepare("INSERT INTO users (name, password_hash, created_at, admin) VALUES (?, ?, ?, ?)");
    SQLite::bind(insert, name, password_hash, now, first ? 1 : 0);
    insert.exec();
    return UserRow{db.getLastInsertRowid(), name, password_hash, false, now, first};
  });
}

Result<std::optional<UserRow>>
Metadata::find_user(const std::string& name)
{
  return m_impl->run([&](Connection& db) -> Result<std::optional<UserRow>> {
    SQLite::Statement& q = db.prepare(std::string("SELECT ") + k_user_columns + " FROM users WHERE name = ?");
    q.bind(1, name);
    return first_row(q, read_user);
  });
}

Result<std::vector<UserRow>>
Metadata::list_users()
{
  return m_impl->run([&](Connection& db) -> Result<std::vector<UserRow>> {
    SQLite::Statement& q = db.prepare(std::string("SELECT ") + k_user_columns + " FROM users ORDER BY name");
    return all_rows(q, read_user);
  });
}

Result<bool>
Metadata::has_users()
{
  // Asked by every request of the server (open access while there are none).
  return m_impl->run([&](Connection& db) -> Result<bool> { return any_user(db); });
}

Result<void>
Metadata::update_user(const std::string& name, const std::optional<std::string>& password_hash,
                      std::optional<bool> disabled)
{
  return m_impl->write([&](Connection& db) -> Result<void> {
    SQLite::Statement& q = db.prepare("UPDATE users SET password_hash = coalesce(?, password_hash), "
                            "disabled = coalesce(?, disabled) WHERE name = ?");
    if (password_hash) {
      q.bind(1, *password_hash);
    } else {
      q.bind(1);
    }
    if (disabled) {
      q.bind(2, *disabled ? 1 : 0);
    } else {
      q.bind(2);
    }
    q.bind(3, name);
    if (q.exec() == 0) {
      return fail(ErrorCode::not_found, "user '" + name + "' does not exist", name);
    }
    return ok();
  });
}

Result<void>
Metadata::delete_user(const std::string& name)
{
  return m_impl->write([&](Connection& db) -> Result<void> {
    SQLite::Statement& q = db.prepare("DELETE FROM users WHERE name = ?");
    q.bind(1, name);
    if (q.exec() == 0) {
      return fail(ErrorCode::not_found, "user '" + name + "' does not exist", name);
    }
    return ok();
  });
}

Result<void>
Metadata::set_admin(const std::string& name, bool admin)
{
  return m_impl->write([&](Connection& db) -> Result<void> {
    SQLite::Statement& q = db.prepare("UPDATE users SET admin = ? WHERE name = ?");
    SQLite::bind(q, admin ? 1 : 0, name);
    if (q.exec() == 0) {
      return fail(ErrorCode::not_found, "user '" + name + "' does not exist", name);
    }
    return ok();
  });
}

Result<std::optional<UserRow>>
Metadata::find_user_by_id(int64_t id)
{
  return m_impl->run([&](Connection& db) -> Result<std::optional<UserRow>> {
    SQLite::Statement& q = db.prepare(std::string("SELECT ") + k_user_columns + " FROM users WHERE id = ?");
    q.bind(1, id);
    return first_row(q, read_user);
  });
}

// --- privileges ---

Result<void>
Metadata::add_grant(int64_t user_id, int64_t feed_id, const std::string& privilege)
{
  return m_impl->write([&](Connection& db) -> Result<void> {
    SQLite::Statement& q = db.prepare(
      "INSERT OR IGNORE INTO grants (user_id, feed_id, privilege) VALUES (?, ?, ?)");
    SQLite::bind(q, user_id, feed_id, privilege);
    q.exec();
    return ok();
  });
}

Result<bool>
Metadata::remove_grant(int64_t user_id, int64_t feed_id, const std::string& privilege)
{
  return m_impl->write([&](Connection& db) -> Result<bool> {
    SQLite::Statement& q
      = db.prepare("DELETE FROM grants WHERE user_id = ? AND feed_id = ? AND privilege = ?");
    SQLite::bind(q, user_id, feed_id, privilege);
    return q.exec() > 0;
  });
}

Result<std::vector<GrantRow>>
Metadata::list_grants(const std::string& user)
{
  return m_impl->run([&](Connection& db) -> Result<std::vector<GrantRow>> {
    std::vector<GrantRow> out;
    std::string sql = "SELECT u.name, coalesce(f.name, ''), g.privilege FROM grants g "
                      "JOIN users u ON u.id = g.user_id LEFT JOIN feeds f ON f.id = g.feed_id "
                      "WHERE (g.feed_id = 0 OR f.id IS NOT NULL)";
    if (!user.empty()) {
      sql += " AND u.name = ?";
    }
    sql += " ORDER BY u.name, 2, g.privilege";
    SQLite::Statement& q = db.prepare(sql);
    if (!user.empty()) {
      q.bind(1, user);
    }
    while (q.executeStep()) {
      out.push_back({column_string(q, 0), column_string(q, 1), column_string(q, 2)});
    }
    return out;
  });
}

Result<std::vector<std::string>>
Metadata::privileges_of(int64_t user_id, int64_t feed_id)
{
  return m_impl->run([&](Connection& db) -> Result<std::vector<std::string>> {
    std::vector<std::string> out;
    SQLite::Statement& q = db.prepare(
      "SELECT privilege FROM grants WHERE user_id = ? AND (feed_id = ? OR feed_id = 0)");
    SQLite::bind(q, user_id, feed_id);
    while (q.executeStep()) {
      out.push_back(column_string(q, 0));
    }
    return out;
  });
}

// --- API keys ---

namespace {
const char* const k_key_columns
  = "k.id, k.prefix, k.key_hash, coalesce(k.user_id, 0), coalesce(u.name, ''), "
    "coalesce(k.feed_id, 0), coalesce(f.name, ''), k.privileges, k.description, k.created_at, "
    "k.expires_at, k.last_used_at FROM api_keys k LEFT JOIN users u ON u.id = k.user_id "
    "LEFT JOIN feeds f ON f.id = k.feed_id";

ApiKeyRow
read_key(SQLite::Statement& q)
{
  ApiKeyRow k;
  k.id = q.getColumn(0).getInt64();
  k.prefix = column_string(q, 1);
  k.key_hash = column_string(q, 2);
  k.user_id = q.getColumn(3).getInt64();
  k.user = column_string(q, 4);
  k.feed_id = q.getColumn(5).getInt64();
  k.feed = column_string(q, 6);
  k.privileges = column_string(q, 7);
  k.description = column_string(q, 8);
  k.created_at = q.getColumn(9).getInt64();
  k.expires_at = q.getColumn(10).getInt64();
  k.last_used_at = q.getColumn(11).getInt64();
  return k;
}
} // namespace

Result<ApiKeyRow>
Metadata::create_key(const ApiKeyRow& key)
{
  return m_impl->write([&](Connection& db) -> Result<ApiKeyRow> {
    SQLite::Statement& q = db.prepare(
      "INSERT INTO api_keys (prefix, key_hash, user_id, feed_id, privileges, description, "
      "created_at, expires_at) VALUES (?, ?, nullif(?, 0), nullif(?, 0), ?, ?, ?, ?)");
    SQLite::bind(q, key.prefix, key.key_hash, key.user_id, key.feed_id, key.privileges, key.description,
                 key.created_at, key.expires_at);
    q.exec();
    ApiKeyRow row = key;
    row.id = db.getLastInsertRowid();
    return row;
  });
}

Result<std::optional<ApiKeyRow>>
Metadata::find_key_by_hash(const std::string& key_hash)
{
  return m_impl->run([&](Connection& db) -> Result<std::optional<ApiKeyRow>> {
    SQLite::Statement& q = db.prepare(std::string("SELECT ") + k_key_columns + " WHERE k.key_hash = ?");
    q.bind(1, key_hash);
    return first_row(q, read_key);
  });
}

Result<std::vector<ApiKeyRow>>
Metadata::list_keys()
{
  return m_impl->run([&](Connection& db) -> Result<std::vector<ApiKeyRow>> {
    SQLite::Statement& q = db.prepare(std::string("SELECT ") + k_key_columns + " ORDER BY k.created_at, k.id");
    return all_rows(q, read_key);
  });
}

Result<void>
Metadata::revoke_key(const std::string& prefix)
{
  return m_impl->write([&](Connection& db) -> Result<void> {
    SQLite::Statement& q = db.prepare("DELETE FROM api_keys WHERE prefix = ?");
    q.bind(1, prefix);
    if (q.exec() == 0) {
      return fail(ErrorCode::not_found, "no API key with prefix '" + prefix + "'", prefix);
    }
    return ok();
  });
}

Result<void>
Metadata::touch_key(int64_t id, int64_t now)
{
  return m_impl->write([&](Connection& db) -> Result<void> {
    SQLite::Statement& q = db.prepare("UPDATE api_keys SET last_used_at = ? WHERE id = ?");
    SQLite::bind(q, now, id);
    q.exec();
    return ok();
  });
}

// --- uploads ---

Result<void>
Metadata::create_upload(const std::string& id, int64_t feed_id, const std::string& repository,
                        int64_t store_id, int64_t now)
{
  return m_impl->write([&](Connection& db) -> Result<void> {
    SQLite::Statement& insert = db.prepare("INSERT INTO uploads (id, feed_id, repository, store_id, "
                                 "started_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)");
    SQLite::bind(insert, id, feed_id, repository, store_id, now, now);
    insert.exec();
    return ok();
  });
}

Result<std::optional<UploadRow>>
Metadata::find_upload(const std::string& id)
{
  return m_impl->run([&](Connection& db) -> Result<std::optional<UploadRow>> {
    SQLite::Statement& q = db.prepare("SELECT id, feed_id, repository, store_id, started_at, updated_at, "
                            "head FROM uploads WHERE id = ?");
    q.bind(1, id);
    if (!q.executeStep()) {
      return std::optional<UploadRow>();
    }
    UploadRow row;
    row.id = column_string(q, 0);
    row.feed_id = q.getColumn(1).getInt64();
    row.repository_name = column_string(q, 2);
    row.store_id = q.getColumn(3).getInt64();
    row.started_at = q.getColumn(4).getInt64();
    row.updated_at = q.getColumn(5).getInt64();
    if (!q.getColumn(6).isNull()) {
      row.head = column_string(q, 6);
    }
    return std::optional<UploadRow>(row);
  });
}

Result<bool>
Metadata::set_upload_head(const std::string& id, std::optional<std::string_view> head, int64_t now)
{
  return m_impl->write([&](Connection& db) -> Result<bool> {
    SQLite::Statement& q = db.prepare("UPDATE uploads SET head = ?, updated_at = ? WHERE id = ?");
    if (head) {
      q.bind(1, head->data(), static_cast<int>(head->size()));
    } else {
      q.bind(1);
    }
    q.bind(2, now);
    q.bind(3, id);
    return q.exec() > 0;
  });
}

Result<void>
Metadata::touch_upload(const std::string& id, int64_t now)
{
  return m_impl->write([&](Connection& db) -> Result<void> {
    SQLite::Statement& q = db.prepare("UPDATE uploads SET updated_at = ? WHERE id = ?");
    SQLite::bind(q, now, id);
    q.exec();
    return ok();
  });
}

Result<void>
Metadata::delete_upload(const std::string& id)
{
  return m_impl->write([&](Connection& db) -> Result<void> {
    remove_upload_row(db, id);
    return ok();
  });
}

Result<std::vector<UploadRow>>
Metadata::list_uploads()
{
  return m_impl->run([&](Connection& db) -> Result<std::vector<UploadRow>> {
    std::vector<UploadRow> out;
    SQLite::Statement& q = db.prepare("SELECT id, feed_id, repository, store_id, started_at, updated_at "
                            "FROM uploads ORDER BY started_at");
    while (q.executeStep()) {
      UploadRow row;
      row.id = column_string(q, 0);
      row.feed_id = q.getColumn(1).getInt64();
      row.repository_name = column_string(q, 2);
      row.store_id = q.getColumn(3).getInt64();
      row.started_at = q.getColumn(4).getInt64();
      row.updated_at = q.getColumn(5).getInt64();
      out.push_back(row);
    }
    return out;
  });
}

// --- audit trail ---

Result<void>
Metadata::record_event(const EventRow& event)
{
  return m_impl->write([&](Connection& db) -> Result<void> {
    insert_event(db, event);
    return ok();
  });
}

Result<std::vector<EventRow>>
Metadata::list_events(const std::string& feed, int64_t since, int64_t limit)
{
  return m_impl->run([&](Connection& db) -> Result<std::vector<EventRow>> {
    // The newest `limit` events, returned oldest first.
    SQLite::Statement& q = db.prepare(
      feed.empty() ? "SELECT id, at, kind, actor, feed, subject, detail FROM events WHERE at >= ?1"
                     " ORDER BY at DESC, id DESC LIMIT ?2"
                   : "SELECT id, at, kind, actor, feed, subject, detail FROM events WHERE feed = ?3 AND at >= ?1"
                     " ORDER BY at DESC, id DESC LIMIT ?2");
    SQLite::bind(q, since, limit);
    if (!feed.empty()) {
      q.bind(3, feed);
    }
    std::vector<EventRow> out;
    while (q.executeStep()) {
      out.push_back(EventRow{q.getColumn(0).getInt64(), q.getColumn(1).getInt64(), column_string(q, 2),
                             column_string(q, 3), column_string(q, 4), column_string(q, 5),
                             column_string(q, 6)});
    }
    std::reverse(out.begin(), out.end());
    return out;
  });
}

// --- connectors ---

namespace {
const char* const k_connector_columns =
  "c.id, c.feed_id, f.name, c.position, c.url, c.username, c.password, c.created_at, c.ttl";
ConnectorRow
read_connector(SQLite::Statement& q)
{
  return ConnectorRow{q.getColumn(0).getInt64(), q.getColumn(1).getInt64(), column_string(q, 2),
                      q.getColumn(3).getInt64(), column_string(q, 4), column_string(q, 5),
                      column_string(q, 6), q.getColumn(7).getInt64(), q.getColumn(8).getInt64()};
}
} // namespace

Result<ConnectorRow>
Metadata::add_connector(int64_t feed_id, const std::string& url, const std::string& username,
                        const std::string& password, int64_t ttl, int64_t now)
{
  return m_impl->write([&](Connection& db) -> Result<ConnectorRow> {
    SQLite::Statement& exists = db.prepare("SELECT 1 FROM connectors WHERE feed_id = ? AND url = ?");
    SQLite::bind(exists, feed_id, url);
    if (exists.executeStep()) {
      return fail(ErrorCode::already_exists, "the feed already has connector " + url);
    }
    SQLite::Statement& insert = db.prepare(
      "INSERT INTO connectors (feed_id, position, url, username, password, created_at, ttl) VALUES "
      "(?1, (SELECT coalesce(max(position), 0) + 1 FROM connectors WHERE feed_id = ?1), ?2, ?3, ?4, ?5, ?6)");
    SQLite::bind(insert, feed_id, url, username, password, now, ttl);
    insert.exec();
    SQLite::Statement& q = db.prepare(std::string("SELECT ") + k_connector_columns
                                      + " FROM connectors c JOIN feeds f ON f.id = c.feed_id WHERE c.id = ?");
    q.bind(1, db.getLastInsertRowid());
    q.executeStep();
    return read_connector(q);
  });
}

Result<std::vector<ConnectorRow>>
Metadata::list_connectors(int64_t feed_id)
{
  return m_impl->run([&](Connection& db) -> Result<std::vector<ConnectorRow>> {
    SQLite::Statement& q = db.prepare(std::string("SELECT ") + k_connector_columns
                                      + " FROM connectors c JOIN feeds f ON f.id = c.feed_id"
                                        " WHERE ?1 = 0 OR c.feed_id = ?1 ORDER BY f.name, c.position");
    q.bind(1, feed_id);
    return all_rows(q, read_connector);
  });
}

Result<void>
Metadata::touch_tag(int64_t repository_id, const std::string& tag, int64_t now)
{
  return m_impl->write([&](Connection& db) -> Result<void> {
    SQLite::Statement& q = db.prepare("UPDATE tags SET updated_at = ? WHERE repository_id = ? AND name = ?");
    SQLite::bind(q, now, repository_id, tag);
    q.exec();
    return ok();
  });
}

Result<bool>
Metadata::remove_connector(int64_t feed_id, const std::string& url)
{
  return m_impl->write([&](Connection& db) -> Result<bool> {
    SQLite::Statement& q = db.prepare("DELETE FROM connectors WHERE feed_id = ? AND url = ?");
    SQLite::bind(q, feed_id, url);
    return q.exec() > 0;
  });
}

// --- read-only access ---

Result<std::unique_ptr<Metadata>>
Metadata::open_read_only(const std::filesystem::path& path)
{
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return fail(ErrorCode::not_found, "no metadata database at " + path.string());
  }
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->read_only = true;
  try {
    impl->idle.push_back(impl->connect());
  } catch (const std::exception& e) {
    util::log_error(std::string("cannot open database: ") + e.what());
    return fail(ErrorCode::io_error, "cannot open the metadata database " + path.string());
  }
  return std::unique_ptr<Metadata>(new Metadata(std::move(impl)));
}

int
Metadata::current_schema_version()
{
  return k_schema_version;
}

Result<Totals>
Metadata::totals()
{
  return m_impl->run([](Connection& db) -> Result<Totals> {
    // One read transaction, so the counts agree with each other.
    SQLite::Statement& q = db.prepare(
      "SELECT (SELECT count(*) FROM feeds), (SELECT count(*) FROM repositories), "
      "(SELECT count(*) FROM manifests), (SELECT count(*) FROM tags), "
      "b.n, b.bytes, (SELECT count(*) FROM uploads), b.kept, b.kept_bytes "
      // One pass over the blobs for all four of their figures.
      "FROM (SELECT count(*) AS n, coalesce(sum(size), 0) AS bytes, "
      "coalesce(sum(object_key = ?1), 0) AS kept, "
      "coalesce(sum(CASE WHEN object_key = ?1 THEN size END), 0) AS kept_bytes FROM blobs) b");
    q.bind(1, k_database_key);
    q.executeStep();
    Totals t;
    t.feeds = q.getColumn(0).getInt64();
    t.repositories = q.getColumn(1).getInt64();
    t.manifests = q.getColumn(2).getInt64();
    t.tags = q.getColumn(3).getInt64();
    t.blobs = q.getColumn(4).getInt64();
    t.blob_bytes = static_cast<uint64_t>(q.getColumn(5).getInt64());
    t.uploads = q.getColumn(6).getInt64();
    t.blobs_in_database = q.getColumn(7).getInt64();
    t.blob_bytes_in_database = static_cast<uint64_t>(q.getColumn(8).getInt64());
    q.reset();
    return t;
  });
}

} // namespace registry::metadata
