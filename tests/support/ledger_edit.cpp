#include "support/ledger_edit.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

namespace mixserve::testing {

void edit_ledger_behind_triggers(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  ASSERT_EQ(
      sqlite3_prepare_v2(db, "SELECT sql FROM sqlite_master WHERE name = 'records_no_update'", -1, &stmt, nullptr),
      SQLITE_OK);
  ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
  const std::string trigger = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
  sqlite3_finalize(stmt);
  char* err = nullptr;
  const auto all = "DROP TRIGGER records_no_update; " + sql + "; " + trigger;
  ASSERT_EQ(sqlite3_exec(db, all.c_str(), nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
  sqlite3_close(db);
}

}  // namespace mixserve::testing
