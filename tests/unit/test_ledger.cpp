// Compliance ledger: hashing, appends, queries, and tampering with the file through the SQLite C API.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "common/error.h"
#include "policy/ledger.h"
#include "support/test_support.h"

namespace mixserve::policy {
namespace {

using testing::TempDir;

// Runs SQL on the file directly, as someone editing it with the sqlite3 tool would: the append-only
// triggers are dropped first and put back afterwards (with their original text), so only the edit
// itself is left for verify() to find.
void tamper(const std::string& path, const std::string& sql, bool restore_triggers = true) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  std::vector<std::pair<std::string, std::string>> triggers;
  sqlite3_stmt* stmt = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT name, sql FROM sqlite_master WHERE type = 'trigger'", -1, &stmt, nullptr),
            SQLITE_OK);
  while (sqlite3_step(stmt) == SQLITE_ROW) {
    triggers.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)),
                          reinterpret_cast<const char*>(sqlite3_column_text(stmt, 1)));
  }
  sqlite3_finalize(stmt);
  for (const auto& [name, text] : triggers) {
    ASSERT_EQ(sqlite3_exec(db, ("DROP TRIGGER " + name).c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
  }
  char* err = nullptr;
  ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "") << " in " << sql;
  if (restore_triggers) {
    for (const auto& [name, text] : triggers) {
      ASSERT_EQ(sqlite3_exec(db, text.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
    }
  }
  sqlite3_close(db);
}

// A ledger with `n` note records whose payloads are {"i": k}.
std::string make_ledger(const TempDir& dir, int n) {
  const std::string path = dir.file("l.db");
  auto ledger = Ledger::open(path);
  for (int k = 1; k <= n; ++k) EXPECT_EQ(ledger.append(RecordKind::kNote, {{"i", k}}), k);
  return path;
}

VerifyResult verify(const std::string& path) { return Ledger::open(path, LedgerOpenMode::kExisting).verify(); }

TEST(LedgerFormat, Sha256MatchesPublishedVectors) {
  // FIPS 180-2 appendix B test vectors.
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(LedgerFormat, RecordHashIsTheDocumentedLayout) {
  const std::string prev(64, 'a');
  EXPECT_EQ(record_hash(prev, 12, "2026-01-02T03:04:05.000006Z", "note", "{\"x\":1}"),
            sha256_hex(prev + "\n12\n2026-01-02T03:04:05.000006Z\nnote\n{\"x\":1}"));
  EXPECT_NE(record_hash(prev, 1, "t", "note", "p"), record_hash(prev, 11, "t", "note", "p"));
}

TEST(LedgerFormat, CanonicalJsonSortsKeysAndDropsWhitespace) {
  EXPECT_EQ(canonical_json(nlohmann::json::parse(R"({ "b" : 1, "a" : [1, 2, {"d": null, "c": "é"}] })")),
            "{\"a\":[1,2,{\"c\":\"é\",\"d\":null}],\"b\":1}");
  EXPECT_EQ(canonical_json(nlohmann::json("x")), "\"x\"");
  try {
    canonical_json(nlohmann::json(std::string("\xff\xfe")));
    FAIL() << "invalid UTF-8 accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  }
}

TEST(LedgerFormat, TimeFormat) {
  EXPECT_TRUE(is_ledger_time(utc_now_iso8601()));
  EXPECT_TRUE(is_ledger_time("2026-12-31T23:59:60.999999Z"));
  for (const char* bad : {"", "2026-12-31T23:59:59Z", "2026-13-01T00:00:00.000000Z", "2026-00-01T00:00:00.000000Z",
                          "2026-01-01 00:00:00.000000Z", "2026-01-01T24:00:00.000000Z", "2026-01-01T00:00:00.00000aZ",
                          "2026-01-01T00:00:00.000000z", "2026-01-32T00:00:00.000000Z"}) {
    EXPECT_FALSE(is_ledger_time(bad)) << bad;
  }
  EXPECT_EQ(parse_record_kind("usage_sample"), RecordKind::kUsageSample);
  EXPECT_EQ(record_kind_name(RecordKind::kFleetChange), "fleet_change");
  EXPECT_FALSE(parse_record_kind("Note").has_value());
}

TEST(Ledger, AppendsChainAndVerify) {
  TempDir dir;
  const std::string path = make_ledger(dir, 5);
  auto ledger = Ledger::open(path, LedgerOpenMode::kExisting);
  const auto records = ledger.records();
  ASSERT_EQ(records.size(), 5u);
  std::string prev = genesis_hash();
  for (size_t i = 0; i < records.size(); ++i) {
    const auto& r = records[i];
    EXPECT_EQ(r.seq, static_cast<int64_t>(i + 1));
    EXPECT_EQ(r.kind, "note");
    EXPECT_EQ(r.payload, "{\"i\":" + std::to_string(i + 1) + "}");
    EXPECT_EQ(r.prev_hash, prev);
    EXPECT_EQ(r.hash, sha256_hex(prev + "\n" + std::to_string(i + 1) + "\n" + r.time + "\nnote\n" + r.payload));
    prev = r.hash;
  }
  const auto v = ledger.verify();
  EXPECT_TRUE(v.ok) << v.problem;
  EXPECT_EQ(v.records, 5);
  EXPECT_EQ(v.head.count, 5);
  EXPECT_EQ(v.head.last_hash, prev);
}

TEST(Ledger, EmptyLedgerVerifies) {
  TempDir dir;
  const auto v = Ledger::open(dir.file("e.db")).verify();
  EXPECT_TRUE(v.ok) << v.problem;
  EXPECT_EQ(v.records, 0);
}

TEST(Ledger, RecordsBetweenTimes) {
  TempDir dir;
  auto ledger = Ledger::open(dir.file("t.db"));
  ledger.append_at(RecordKind::kUsageSample, {{"h", 1}}, "2026-01-01T00:00:00.000000Z");
  ledger.append_at(RecordKind::kPlacement, {{"h", 2}}, "2026-01-02T00:00:00.000000Z");
  ledger.append_at(RecordKind::kPolicyEvaluation, {{"h", 3}}, "2026-01-03T00:00:00.000000Z");
  EXPECT_EQ(ledger.records().size(), 3u);
  const auto mid = ledger.records("2026-01-02T00:00:00.000000Z", "2026-01-03T00:00:00.000000Z");
  ASSERT_EQ(mid.size(), 1u);
  EXPECT_EQ(mid[0].seq, 2);
  EXPECT_EQ(mid[0].kind, "placement");
  EXPECT_EQ(ledger.records("2026-01-02T00:00:00.000000Z").size(), 2u);
  EXPECT_EQ(ledger.records("", "2026-01-02T00:00:00.000000Z").size(), 1u);
  EXPECT_TRUE(ledger.verify().ok);
}

TEST(Ledger, TriggersRefuseInPlaceEdits) {
  TempDir dir;
  const std::string path = make_ledger(dir, 2);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  EXPECT_NE(sqlite3_exec(db, "UPDATE records SET payload = '{}' WHERE seq = 1", nullptr, nullptr, nullptr), SQLITE_OK);
  EXPECT_NE(sqlite3_exec(db, "DELETE FROM records WHERE seq = 2", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  EXPECT_TRUE(verify(path).ok);
}

struct TamperCase {
  const char* name;
  const char* sql;
  int64_t bad_seq;      // 0: a schema problem (no seq)
  const char* phrase;   // expected in the problem text
};

class LedgerTamper : public ::testing::TestWithParam<TamperCase> {};

TEST_P(LedgerTamper, IsDetectedAtTheRightRecord) {
  const auto& c = GetParam();
  TempDir dir;
  const std::string path = make_ledger(dir, 6);
  ASSERT_TRUE(verify(path).ok);
  tamper(path, c.sql);
  const auto v = verify(path);
  EXPECT_FALSE(v.ok) << c.name;
  if (c.bad_seq == 0) {
    EXPECT_FALSE(v.first_bad_seq.has_value()) << v.problem;
  } else {
    ASSERT_TRUE(v.first_bad_seq.has_value()) << v.problem;
    EXPECT_EQ(*v.first_bad_seq, c.bad_seq) << v.problem;
  }
  EXPECT_NE(v.problem.find(c.phrase), std::string::npos) << v.problem;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, LedgerTamper,
    ::testing::Values(
        TamperCase{"edit_payload", "UPDATE records SET payload = '{\"i\":33}' WHERE seq = 3", 3, "record edited"},
        TamperCase{"edit_payload_first", "UPDATE records SET payload = '{\"i\":0}' WHERE seq = 1", 1, "record edited"},
        TamperCase{"edit_hash",
                   "UPDATE records SET hash = (CASE WHEN substr(hash, 1, 1) = '0' THEN '1' ELSE '0' END) || "
                   "substr(hash, 2) WHERE seq = 3",
                   3, "record edited"},
        TamperCase{"edit_time", "UPDATE records SET time = '2020-01-01T00:00:00.000000Z' WHERE seq = 4", 4,
                   "record edited"},
        TamperCase{"edit_kind", "UPDATE records SET kind = 'placement' WHERE seq = 2", 2, "record edited"},
        TamperCase{"bogus_kind", "UPDATE records SET kind = 'bogus' WHERE seq = 2", 2, "not a ledger kind"},
        TamperCase{"payload_as_blob", "UPDATE records SET payload = x'7b7d' WHERE seq = 5", 5, "not text"},
        TamperCase{"delete_middle", "DELETE FROM records WHERE seq = 3", 3, "record 3 is missing"},
        TamperCase{"delete_two", "DELETE FROM records WHERE seq IN (2, 3)", 2, "records 2..3 are missing"},
        TamperCase{"delete_last", "DELETE FROM records WHERE seq = 6", 6, "tail truncated"},
        TamperCase{"delete_all", "DELETE FROM records", 1, "tail truncated"},
        TamperCase{"delete_last_and_head",
                   "DELETE FROM records WHERE seq = 6; UPDATE head SET count = 5", 5, "head hash"},
        TamperCase{"swap_payloads",
                   "CREATE TEMP TABLE p AS SELECT seq, payload FROM records WHERE seq IN (2, 4); "
                   "UPDATE records SET payload = (SELECT payload FROM p WHERE p.seq = 6 - records.seq) "
                   "WHERE seq IN (2, 4)",
                   2, "record edited"},
        TamperCase{"reorder_seq",
                   "UPDATE records SET seq = -3 WHERE seq = 3; UPDATE records SET seq = 3 WHERE seq = 4; "
                   "UPDATE records SET seq = 4 WHERE seq = -3",
                   3, "prev_hash does not match"},
        TamperCase{"move_first_to_end", "UPDATE records SET seq = 7 WHERE seq = 1; UPDATE head SET count = 7", 1,
                   "record 1 is missing"},
        TamperCase{"append_outside",
                   "INSERT INTO records SELECT 7, time, kind, payload, hash, hash FROM records WHERE seq = 6", 7,
                   "record edited"},
        TamperCase{"edit_head_hash", "UPDATE head SET last_hash = (SELECT hash FROM records WHERE seq = 5)", 6,
                   "head hash"},
        TamperCase{"add_table", "CREATE TABLE shadow (x)", 0, "unexpected schema object"},
        TamperCase{"add_index", "CREATE INDEX records_time ON records (time)", 0, "unexpected schema object"},
        TamperCase{"alter_table", "ALTER TABLE records ADD COLUMN note TEXT", 0, "altered"}),
    [](const ::testing::TestParamInfo<TamperCase>& param_info) { return std::string(param_info.param.name); });

TEST(LedgerTamper, EditWithRecomputedHashBreaksTheNextLink) {
  TempDir dir;
  const std::string path = make_ledger(dir, 5);
  auto records = Ledger::open(path).records();
  const auto& r = records[1];  // seq 2
  const std::string forged = record_hash(r.prev_hash, 2, r.time, r.kind, "{\"i\":99}");
  tamper(path, "UPDATE records SET payload = '{\"i\":99}', hash = '" + forged + "' WHERE seq = 2");
  const auto v = verify(path);
  EXPECT_FALSE(v.ok);
  ASSERT_TRUE(v.first_bad_seq.has_value());
  EXPECT_EQ(*v.first_bad_seq, 3) << v.problem;
  EXPECT_NE(v.problem.find("record 2"), std::string::npos) << v.problem;
}

TEST(LedgerTamper, ValidRecordAddedBehindTheHeadsBackIsReported) {
  TempDir dir;
  const std::string path = make_ledger(dir, 2);
  const auto last = Ledger::open(path).records().back();
  const std::string time = "2030-01-01T00:00:00.000000Z";
  const std::string forged = record_hash(last.hash, 3, time, "note", "{}");
  tamper(path, "INSERT INTO records VALUES (3, '" + time + "', 'note', '{}', '" + last.hash + "', '" + forged + "')");
  const auto v = verify(path);
  EXPECT_FALSE(v.ok);
  EXPECT_EQ(v.first_bad_seq.value_or(-1), 3) << v.problem;
  EXPECT_NE(v.problem.find("added outside"), std::string::npos) << v.problem;
}

TEST(LedgerTamper, ChangedFormatVersionIsRefusedOnOpen) {
  TempDir dir;
  const std::string path = make_ledger(dir, 1);
  tamper(path, "PRAGMA user_version = 7");
  try {
    Ledger::open(path, LedgerOpenMode::kExisting);
    FAIL() << "opened";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDataLoss);
    EXPECT_NE(std::string(e.what()).find("format version"), std::string::npos) << e.what();
  }
}

TEST(LedgerTamper, DroppedTriggerIsASchemaProblem) {
  TempDir dir;
  const std::string path = make_ledger(dir, 3);
  tamper(path, "SELECT 1", /*restore_triggers=*/false);
  const auto v = verify(path);
  EXPECT_FALSE(v.ok);
  EXPECT_NE(v.problem.find("schema"), std::string::npos) << v.problem;
  EXPECT_NE(v.problem.find("missing"), std::string::npos) << v.problem;
}

TEST(LedgerTamper, AppendRefusesToExtendATruncatedChain) {
  TempDir dir;
  const std::string path = make_ledger(dir, 3);
  tamper(path, "DELETE FROM records WHERE seq = 3");
  auto ledger = Ledger::open(path);
  try {
    ledger.append(RecordKind::kNote, {{"x", 1}});
    FAIL() << "appended to a truncated chain";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDataLoss);
  }
}

TEST(Ledger, BadFilesAndInputsGiveClearErrors) {
  TempDir dir;
  auto expect_code = [](ErrorCode code, auto&& fn) {
    try {
      fn();
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), code) << e.what();
    }
  };
  expect_code(ErrorCode::kNotFound, [&] { Ledger::open(dir.file("missing.db"), LedgerOpenMode::kExisting); });
  {
    std::ofstream(dir.file("garbage.db")) << std::string(5000, 'x');
  }
  expect_code(ErrorCode::kDataLoss, [&] { Ledger::open(dir.file("garbage.db")); });
  tamper(dir.file("other.db"), "CREATE TABLE t (x)");
  expect_code(ErrorCode::kDataLoss, [&] { Ledger::open(dir.file("other.db")); });
  auto ledger = Ledger::open(dir.file("ok.db"));
  expect_code(ErrorCode::kInvalidArgument, [&] { ledger.append_at(RecordKind::kNote, {}, "yesterday"); });
  expect_code(ErrorCode::kInvalidArgument,
              [&] { ledger.append(RecordKind::kNote, nlohmann::json(std::string("\xc3\x28"))); });
  EXPECT_EQ(ledger.head().count, 0);
}

TEST(Ledger, ConcurrentWritersGetDistinctContiguousSeqs) {
  TempDir dir;
  const std::string path = dir.file("c.db");
  Ledger::open(path);
  constexpr int kThreads = 4, kEach = 25;
  std::vector<std::vector<int64_t>> seqs(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      auto ledger = Ledger::open(path);
      for (int i = 0; i < kEach; ++i) seqs[t].push_back(ledger.append(RecordKind::kUsageSample, {{"t", t}, {"i", i}}));
    });
  }
  for (auto& th : threads) th.join();
  std::set<int64_t> all;
  for (const auto& s : seqs) all.insert(s.begin(), s.end());
  EXPECT_EQ(all.size(), static_cast<size_t>(kThreads * kEach));
  EXPECT_EQ(*all.begin(), 1);
  EXPECT_EQ(*all.rbegin(), kThreads * kEach);
  const auto v = Ledger::open(path).verify();
  EXPECT_TRUE(v.ok) << v.problem;
  EXPECT_EQ(v.records, kThreads * kEach);
}

}  // namespace
}  // namespace mixserve::policy
