// The compliance ledger: an append-only, hash-chained record of fleet changes, policy evaluations,
// placements and usage samples, stored in SQLite (WAL, synchronous=FULL). Format and guarantees:
// docs/ledger.md.
//
// Hash of record n (lowercase hex SHA-256) over these bytes, '\n' being one 0x0A byte:
//   prev_hash '\n' seq '\n' time '\n' kind '\n' payload
// prev_hash: the previous record's hash as 64 lowercase hex characters (64 '0' for seq 1);
// seq: decimal ASCII without sign or leading zeros; time: "YYYY-MM-DDTHH:MM:SS.ffffffZ" (UTC);
// kind: one of the kind names below; payload: canonical JSON (compact, object keys sorted, UTF-8).
// None of the fields before the payload can hold '\n', so the layout is unambiguous.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

struct sqlite3;

namespace mixserve::policy {

/// Kinds of ledger records.
enum class RecordKind { kFleetChange, kPolicyEvaluation, kPlacement, kUsageSample, kNote };

/// "fleet_change", "policy_evaluation", "placement", "usage_sample" or "note".
std::string_view record_kind_name(RecordKind kind);
/// Parses a kind name; nullopt when it is not one of the five.
std::optional<RecordKind> parse_record_kind(std::string_view name);

/// One stored record, as read back.
struct LedgerRecord {
  int64_t seq = 0;        ///< 1, 2, 3, ... contiguous
  std::string time;       ///< UTC, "YYYY-MM-DDTHH:MM:SS.ffffffZ"
  std::string kind;       ///< kind name as stored (verify checks it is valid)
  std::string payload;    ///< canonical JSON text
  std::string prev_hash;  ///< hash of record seq-1 (64 '0' for seq 1), lowercase hex
  std::string hash;       ///< SHA-256 over the layout in this header's comment, lowercase hex
};

/// The ledger head: how many records there are and the hash of the last one.
struct LedgerHead {
  int64_t count = 0;      ///< number of records (== seq of the last record)
  std::string last_hash;  ///< hash of record `count` (64 '0' when empty)
};

/// Outcome of Ledger::verify().
struct VerifyResult {
  bool ok = true;                       ///< true when every check passed
  int64_t records = 0;                  ///< records examined
  std::optional<int64_t> first_bad_seq; ///< the first record that fails a check (nullopt for schema problems)
  std::string problem;                  ///< plain-language description of the first problem; empty when ok
  LedgerHead head;                      ///< the head as stored
};

/// The 64-character all-zero hash that seq 1 chains to.
const std::string& genesis_hash();
/// SHA-256 of `data` as 64 lowercase hex characters.
std::string sha256_hex(std::string_view data);
/// The record hash over the documented layout.
std::string record_hash(std::string_view prev_hash, int64_t seq, std::string_view time, std::string_view kind,
                        std::string_view payload);
/// Canonical JSON text of `value` (compact, keys sorted); throws kInvalidArgument for invalid UTF-8.
std::string canonical_json(const nlohmann::json& value);
/// Current UTC time as "YYYY-MM-DDTHH:MM:SS.ffffffZ".
std::string utc_now_iso8601();
/// Whether `time` has exactly the form "YYYY-MM-DDTHH:MM:SS.ffffffZ" with in-range fields.
bool is_ledger_time(std::string_view time);

/// How Ledger::open treats a missing file.
enum class LedgerOpenMode { kCreate, kExisting };

/// A ledger file. One object per thread; several processes may append to the same file at once.
class Ledger {
 public:
  /// Opens (kCreate: creating if missing) the ledger at `path`. Throws kNotFound (missing file with
  /// kExisting), kDataLoss (not SQLite, or not a mixserve ledger), kUnavailable (cannot open/lock).
  static Ledger open(const std::string& path, LedgerOpenMode mode = LedgerOpenMode::kCreate);
  ~Ledger();
  Ledger(Ledger&& other) noexcept;
  Ledger& operator=(Ledger&& other) noexcept;
  Ledger(const Ledger&) = delete;
  Ledger& operator=(const Ledger&) = delete;

  /// Appends one record in its own transaction and returns its seq once durably committed.
  /// Waits up to the busy timeout for other writers; throws kUnavailable when it cannot.
  int64_t append(RecordKind kind, const nlohmann::json& payload);
  /// Same, with the time given (tests, imports); `time` must have the documented format.
  int64_t append_at(RecordKind kind, const nlohmann::json& payload, const std::string& time);
  /// Checks the whole chain, the head and the schema; never throws for tampered content.
  VerifyResult verify() const;
  /// Records with from_time <= time < to_time (empty bound = unbounded), ordered by seq.
  std::vector<LedgerRecord> records(const std::string& from_time = "", const std::string& to_time = "") const;
  /// The stored head.
  LedgerHead head() const;
  /// The file path given to open().
  const std::string& path() const { return path_; }

 private:
  Ledger(std::string path, sqlite3* db) : path_(std::move(path)), db_(db) {}
  std::string path_;
  sqlite3* db_ = nullptr;  // owned; closed by the destructor
};

}  // namespace mixserve::policy
