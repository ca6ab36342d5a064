// SQLite storage of the compliance ledger: schema, durable appends, chain verification.
#include "policy/ledger.h"

#include <sqlite3.h>

#include <array>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <utility>

#include "common/error.h"

namespace mixserve::policy {
namespace {

// 'MXLG': marks the SQLite file as a mixserve ledger (PRAGMA application_id).
constexpr int kApplicationId = 0x4D584C47;
constexpr int kFormatVersion = 1;
constexpr int kBusyTimeoutMs = 30000;

// The exact schema; verify() compares sqlite_master against it, so any added, dropped or altered table,
// index, view or trigger is reported. The triggers stop accidental UPDATE/DELETE; they do not stop a
// determined editor (who can drop them), which is what the hash chain is for.
struct SchemaObject {
  const char* type;
  const char* name;
  const char* sql;
};
constexpr std::array<SchemaObject, 5> kSchema = {{
    {"table", "head",
     "CREATE TABLE head (id INTEGER PRIMARY KEY CHECK (id = 1), count INTEGER NOT NULL, last_hash TEXT NOT NULL)"},
    {"trigger", "head_no_delete",
     "CREATE TRIGGER head_no_delete BEFORE DELETE ON head BEGIN SELECT RAISE(ABORT, 'the ledger head cannot be "
     "deleted'); END"},
    {"table", "records",
     "CREATE TABLE records (seq INTEGER PRIMARY KEY, time TEXT NOT NULL, kind TEXT NOT NULL, payload TEXT NOT "
     "NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)"},
    {"trigger", "records_no_delete",
     "CREATE TRIGGER records_no_delete BEFORE DELETE ON records BEGIN SELECT RAISE(ABORT, 'ledger records are "
     "append-only'); END"},
    {"trigger", "records_no_update",
     "CREATE TRIGGER records_no_update BEFORE UPDATE ON records BEGIN SELECT RAISE(ABORT, 'ledger records are "
     "append-only'); END"},
}};

[[noreturn]] void fail_sqlite(sqlite3* db, int rc, const std::string& path, const std::string& what) {
  const std::string detail = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  const int primary = rc & 0xff;
  if (primary == SQLITE_NOTADB || primary == SQLITE_CORRUPT) {
    fail(ErrorCode::kDataLoss, "ledger ", path, ": ", what, ": ", detail);
  }
  if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED || primary == SQLITE_CANTOPEN || primary == SQLITE_READONLY ||
      primary == SQLITE_PERM || primary == SQLITE_FULL || primary == SQLITE_IOERR) {
    fail(ErrorCode::kUnavailable, "ledger ", path, ": ", what, ": ", detail);
  }
  fail(ErrorCode::kInternal, "ledger ", path, ": ", what, ": ", detail);
}

// A prepared statement, finalized on scope exit.
class Statement {
 public:
  Statement(sqlite3* db, const std::string& path, const char* sql) : db_(db), path_(path) {
    const int rc = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
    if (rc != SQLITE_OK) fail_sqlite(db, rc, path, std::string("preparing '") + sql + "'");
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  void bind(int index, int64_t value) { check(sqlite3_bind_int64(stmt_, index, value)); }
  void bind(int index, const std::string& value) {
    check(sqlite3_bind_text(stmt_, index, value.data(), static_cast<int>(value.size()), SQLITE_TRANSIENT));
  }
  /// True while a row is available.
  bool step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    fail_sqlite(db_, rc, path_, "executing statement");
  }
  int64_t int_at(int column) const { return sqlite3_column_int64(stmt_, column); }
  bool is_text(int column) const { return sqlite3_column_type(stmt_, column) == SQLITE_TEXT; }
  bool is_integer(int column) const { return sqlite3_column_type(stmt_, column) == SQLITE_INTEGER; }
  std::string text_at(int column) const {
    const auto* p = sqlite3_column_text(stmt_, column);
    return p == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(p), sqlite3_column_bytes(stmt_, column));
  }

 private:
  void check(int rc) {
    if (rc != SQLITE_OK) fail_sqlite(db_, rc, path_, "binding a parameter");
  }
  sqlite3* db_;
  const std::string& path_;
  sqlite3_stmt* stmt_ = nullptr;
};

void exec(sqlite3* db, const std::string& path, const char* sql) {
  char* message = nullptr;
  const int rc = sqlite3_exec(db, sql, nullptr, nullptr, &message);
  if (rc != SQLITE_OK) {
    const std::string detail = message != nullptr ? message : sqlite3_errstr(rc);
    sqlite3_free(message);
    fail_sqlite(db, rc, path, std::string("'") + sql + "': " + detail);
  }
}

int64_t pragma_int(sqlite3* db, const std::string& path, const char* sql) {
  Statement s(db, path, sql);
  return s.step() ? s.int_at(0) : 0;
}

// Rolls back an open transaction unless committed.
class Transaction {
 public:
  /// `immediate` takes the write lock at once (appends); otherwise it is taken on the first write.
  Transaction(sqlite3* db, const std::string& path, bool immediate = true) : db_(db), path_(path) {
    exec(db, path, immediate ? "BEGIN IMMEDIATE" : "BEGIN");
  }
  ~Transaction() {
    if (!done_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  void commit() {
    exec(db_, path_, "COMMIT");
    done_ = true;
  }

 private:
  sqlite3* db_;
  const std::string& path_;
  bool done_ = false;
};

bool is_hex_hash(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// Creates the schema in an empty database, or checks that a non-empty one is a ledger.
void initialise(sqlite3* db, const std::string& path, LedgerOpenMode mode) {
  // Opening an existing ledger (verify, show) only reads, so it does not wait for writers.
  Transaction tx(db, path, mode == LedgerOpenMode::kCreate);
  const int64_t app_id = pragma_int(db, path, "PRAGMA application_id");
  const int64_t objects = pragma_int(db, path, "SELECT count(*) FROM sqlite_master");
  if (app_id == kApplicationId) {
    const int64_t version = pragma_int(db, path, "PRAGMA user_version");
    if (version != kFormatVersion) {
      fail(ErrorCode::kDataLoss, "ledger ", path, " has format version ", version, "; this build reads version ",
           kFormatVersion);
    }
    return;  // the schema itself is checked by verify()
  }
  if (app_id != 0 || objects != 0) {
    fail(ErrorCode::kDataLoss, path, " is an SQLite database but not a mixserve ledger");
  }
  for (const auto& object : kSchema) exec(db, path, object.sql);
  exec(db, path, ("INSERT INTO head (id, count, last_hash) VALUES (1, 0, '" + genesis_hash() + "')").c_str());
  exec(db, path, ("PRAGMA application_id = " + std::to_string(kApplicationId)).c_str());
  exec(db, path, ("PRAGMA user_version = " + std::to_string(kFormatVersion)).c_str());
  tx.commit();
}

// Returns a description of the first difference between the stored schema and kSchema, or "".
std::string schema_problem(sqlite3* db, const std::string& path) {
  if (pragma_int(db, path, "PRAGMA application_id") != kApplicationId) return "application_id is not a ledger's";
  if (pragma_int(db, path, "PRAGMA user_version") != kFormatVersion) return "format version (user_version) changed";
  Statement s(db, path, "SELECT type, name, sql FROM sqlite_master ORDER BY name");
  while (s.step()) {
    const std::string type = s.text_at(0), name = s.text_at(1), sql = s.text_at(2);
    const SchemaObject* expected = nullptr;
    for (const auto& object : kSchema) {
      if (name == object.name) expected = &object;
    }
    if (expected == nullptr) return "unexpected schema object " + type + " '" + name + "'";
    if (type != expected->type || sql != expected->sql) return "schema of " + type + " '" + name + "' was altered";
  }
  for (const auto& object : kSchema) {
    Statement find(db, path, "SELECT 1 FROM sqlite_master WHERE name = ?1");
    find.bind(1, std::string(object.name));
    if (!find.step()) return std::string(object.type) + " '" + object.name + "' is missing";
  }
  return "";
}

LedgerHead read_head(sqlite3* db, const std::string& path) {
  Statement s(db, path, "SELECT count, last_hash FROM head WHERE id = 1");
  if (!s.step()) fail(ErrorCode::kDataLoss, "ledger ", path, " has no head row");
  return LedgerHead{s.int_at(0), s.text_at(1)};
}

}  // namespace

Ledger Ledger::open(const std::string& path, LedgerOpenMode mode) {
  if (path.empty()) fail(ErrorCode::kInvalidArgument, "ledger path is empty");
  std::error_code ec;
  if (mode == LedgerOpenMode::kExisting && !std::filesystem::exists(path, ec)) {
    fail(ErrorCode::kNotFound, "ledger ", path, " does not exist");
  }
  sqlite3* db = nullptr;
  const int flags = SQLITE_OPEN_READWRITE | (mode == LedgerOpenMode::kCreate ? SQLITE_OPEN_CREATE : 0);
  const int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
  Ledger ledger(path, db);  // owns db from here, even on failure
  if (rc != SQLITE_OK) fail_sqlite(db, rc, path, "opening");
  sqlite3_busy_timeout(db, kBusyTimeoutMs);
  sqlite3_extended_result_codes(db, 1);
  // WAL lets readers run beside one writer; synchronous=FULL syncs the WAL at every commit, so an
  // acknowledged append survives power loss, not just a process crash.
  {
    Statement wal(db, path, "PRAGMA journal_mode = WAL");
    if (!wal.step() || wal.text_at(0) != "wal") {
      fail(ErrorCode::kUnavailable, "ledger ", path, ": cannot switch to WAL journal mode");
    }
  }
  exec(db, path, "PRAGMA synchronous = FULL");
  initialise(db, path, mode);
  return ledger;
}

Ledger::~Ledger() {
  if (db_ != nullptr) sqlite3_close_v2(db_);
}

Ledger::Ledger(Ledger&& other) noexcept : path_(std::move(other.path_)), db_(std::exchange(other.db_, nullptr)) {}

Ledger& Ledger::operator=(Ledger&& other) noexcept {
  if (this != &other) {
    if (db_ != nullptr) sqlite3_close_v2(db_);
    path_ = std::move(other.path_);
    db_ = std::exchange(other.db_, nullptr);
  }
  return *this;
}

int64_t Ledger::append(RecordKind kind, const nlohmann::json& payload) {
  return append_at(kind, payload, utc_now_iso8601());
}

int64_t Ledger::append_at(RecordKind kind, const nlohmann::json& payload, const std::string& time) {
  if (!is_ledger_time(time)) {
    fail(ErrorCode::kInvalidArgument, "ledger time '", time, "' is not of the form YYYY-MM-DDTHH:MM:SS.ffffffZ");
  }
  const std::string text = canonical_json(payload);
  const std::string kind_name(record_kind_name(kind));
  Transaction tx(db_, path_);
  const LedgerHead head = read_head(db_, path_);
  // Refuse to extend a chain whose head does not match its last record (truncated or edited tail).
  if (head.count > 0) {
    Statement last(db_, path_, "SELECT hash FROM records WHERE seq = ?1");
    last.bind(1, head.count);
    if (!last.step() || last.text_at(0) != head.last_hash) {
      fail(ErrorCode::kDataLoss, "ledger ", path_, ": head does not match record ", head.count,
           "; run 'mixserve ledger verify'");
    }
  }
  const int64_t seq = head.count + 1;
  const std::string hash = record_hash(head.last_hash, seq, time, kind_name, text);
  {
    Statement insert(db_, path_,
                     "INSERT INTO records (seq, time, kind, payload, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
    insert.bind(1, seq);
    insert.bind(2, time);
    insert.bind(3, kind_name);
    insert.bind(4, text);
    insert.bind(5, head.last_hash);
    insert.bind(6, hash);
    insert.step();
  }
  {
    Statement update(db_, path_, "UPDATE head SET count = ?1, last_hash = ?2 WHERE id = 1");
    update.bind(1, seq);
    update.bind(2, hash);
    update.step();
  }
  tx.commit();
  return seq;
}

LedgerHead Ledger::head() const { return read_head(db_, path_); }

VerifyResult Ledger::verify() const {
  VerifyResult result;
  auto bad = [&](std::optional<int64_t> seq, std::string problem) {
    result.ok = false;
    result.first_bad_seq = seq;
    result.problem = std::move(problem);
    return result;
  };
  // One read transaction, so concurrent appends do not move the head while we walk the chain.
  exec(db_, path_, "BEGIN");
  struct EndRead {
    sqlite3* db;
    ~EndRead() { sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr); }
  } end_read{db_};

  if (std::string problem = schema_problem(db_, path_); !problem.empty()) return bad(std::nullopt, "schema: " + problem);
  {
    Statement h(db_, path_, "SELECT count, last_hash FROM head");
    if (!h.step()) return bad(std::nullopt, "the head row is missing");
    if (!h.is_integer(0) || !h.is_text(1)) return bad(std::nullopt, "the head row has fields of the wrong type");
    result.head = LedgerHead{h.int_at(0), h.text_at(1)};
    if (h.step()) return bad(std::nullopt, "the head table has more than one row");
  }

  Statement s(db_, path_, "SELECT seq, time, kind, payload, prev_hash, hash FROM records ORDER BY seq");
  int64_t expected = 1;
  std::string prev = genesis_hash();
  while (s.step()) {
    const int64_t seq = s.int_at(0);
    if (seq != expected) {
      return bad(expected, expected + 1 == seq ? "record " + std::to_string(expected) + " is missing (deleted)"
                                               : "records " + std::to_string(expected) + ".." +
                                                     std::to_string(seq - 1) + " are missing (deleted)");
    }
    for (int column = 1; column <= 5; ++column) {
      if (!s.is_text(column)) return bad(seq, "a field is not text (edited)");
    }
    const std::string time = s.text_at(1), kind = s.text_at(2), payload = s.text_at(3), prev_hash = s.text_at(4),
                      hash = s.text_at(5);
    if (prev_hash != prev) {
      return bad(seq, seq == 1 ? "prev_hash is not the genesis hash (chain start edited)"
                               : "prev_hash does not match the hash of record " + std::to_string(seq - 1) +
                                     " (records deleted, reordered or re-hashed)");
    }
    if (!is_hex_hash(hash)) return bad(seq, "hash is not 64 lowercase hex characters (edited)");
    if (!is_ledger_time(time)) return bad(seq, "time '" + time + "' is malformed (edited)");
    if (!parse_record_kind(kind)) return bad(seq, "kind '" + kind + "' is not a ledger kind (edited)");
    if (record_hash(prev_hash, seq, time, kind, payload) != hash) {
      return bad(seq, "hash does not match the record's content (record edited)");
    }
    // The hash covers the payload bytes; a payload that is not canonical JSON was written by something
    // other than the ledger (with a recomputed hash) and is reported too.
    const auto parsed = nlohmann::json::parse(payload, nullptr, false);
    if (parsed.is_discarded() || canonical_json(parsed) != payload) {
      return bad(seq, "payload is not canonical JSON (written outside the ledger)");
    }
    prev = hash;
    ++expected;
    ++result.records;
  }
  const int64_t stored = expected - 1;
  if (result.head.count > stored) {
    return bad(stored + 1, "head records " + std::to_string(result.head.count) + " records but only " +
                               std::to_string(stored) + " are stored (tail truncated)");
  }
  if (result.head.count < stored) {
    return bad(result.head.count + 1, "head records " + std::to_string(result.head.count) + " records but " +
                                          std::to_string(stored) + " are stored (records added outside the ledger)");
  }
  if (result.head.last_hash != prev) {
    return bad(stored == 0 ? std::nullopt : std::optional<int64_t>(stored),
               "head hash does not match the last record's hash (head or last record edited)");
  }
  return result;
}

std::vector<LedgerRecord> Ledger::records(const std::string& from_time, const std::string& to_time) const {
  Statement s(db_, path_,
              "SELECT seq, time, kind, payload, prev_hash, hash FROM records "
              "WHERE (?1 = '' OR time >= ?1) AND (?2 = '' OR time < ?2) ORDER BY seq");
  s.bind(1, from_time);
  s.bind(2, to_time);
  std::vector<LedgerRecord> out;
  while (s.step()) {
    out.push_back(LedgerRecord{s.int_at(0), s.text_at(1), s.text_at(2), s.text_at(3), s.text_at(4), s.text_at(5)});
  }
  return out;
}

}  // namespace mixserve::policy
