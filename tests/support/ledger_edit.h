// Editing a ledger file behind the library's back, as someone with the sqlite3 tool would: the
// append-only trigger is dropped, `sql` runs, and the trigger is put back with its own text, so only
// the edit is left for verify() to find. For tamper-detection tests.
#pragma once

#include <string>

namespace mixserve::testing {

/// Runs `sql` on the ledger at `path` around its update trigger; fails the current test on error.
void edit_ledger_behind_triggers(const std::string& path, const std::string& sql);

}  // namespace mixserve::testing
