// Usage data for the device_hours and served_tokens bases: per node and chip, device-hours and tokens
// served over a period, read from a usage file (usage.yaml) or summed from the compliance ledger's
// usage_sample records (schema and counting rules: docs/policy.md).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "fleet/catalogue.h"
#include "fleet/fleet.h"
#include "policy/ledger.h"

namespace mixserve::policy {

/// Usage of one chip type on one node over the period.
struct UsageEntry {
  std::string node;          ///< fleet node name
  std::string chip;          ///< catalogue id
  double device_hours = 0;   ///< sum over the node's devices of this chip, hours
  double served_tokens = 0;  ///< tokens (prompt + generated) served by them
};

/// Usage over one period.
struct Usage {
  std::string from;                 ///< period start as written (informational); may be empty
  std::string to;                   ///< period end as written (informational); may be empty
  std::vector<UsageEntry> entries;  ///< in file order (from the ledger: ordered by node, then chip)
};

/// Parses usage YAML; every node must exist in `fleet` and every chip in `catalogue` (unless the
/// fleet allows unknown chips and lists it). Throws kInvalidArgument naming origin, node and key.
Usage parse_usage(const std::string& text, const std::string& origin, const fleet::Fleet& fleet,
                  const fleet::Catalogue& catalogue);
/// Reads and parses a usage file.
Usage load_usage(const std::string& path, const fleet::Fleet& fleet, const fleet::Catalogue& catalogue);

/// One usage_sample record's payload, read and checked: what one node's devices of one chip did over
/// the period [from, to].
struct UsageSample {
  int64_t seq = 0;               ///< ledger record
  std::string node;              ///< node (gateway upstream) name as written
  std::string chip;              ///< catalogue id as written
  std::string from;              ///< period start, ledger time form
  std::string to;                ///< period end, ledger time form; never before `from`
  int64_t from_micros = 0;       ///< `from` in microseconds since 1970-01-01T00:00:00Z
  int64_t to_micros = 0;         ///< `to` in microseconds since the epoch
  double served_tokens = 0;      ///< >= 0; 0 when the payload omits it
  double device_hours = 0;       ///< >= 0; 0 when the payload omits it
  std::optional<bool> domestic;  ///< as the writer classified the chip; informational, the catalogue decides
};

/// Reads a usage_sample record: `node`, `chip` (non-empty strings), `from` and `to` (UTC, ledger form or
/// YYYY-MM-DDTHH:MM:SSZ, from <= to), `served_tokens` and/or `device_hours` (finite, >= 0, at least one),
/// optional `domestic` (bool); other keys are ignored. Throws kDataLoss naming the seq and the problem.
UsageSample read_usage_sample(const LedgerRecord& record);

/// The fraction of `sample` (by time) that lies in the window [from_micros, to_micros); a nullopt bound
/// is open. A zero-length sample counts wholly when its instant lies in the window, else not at all.
double usage_overlap(const UsageSample& sample, std::optional<int64_t> from_micros, std::optional<int64_t> to_micros);

/// Usage summed from a ledger's usage_sample records, with what was counted.
struct LedgerUsage {
  Usage usage;                        ///< per (node, chip), ordered by node then chip; from/to: the window
  int64_t samples = 0;                ///< usage_sample records whose period overlaps the window
  int64_t prorated = 0;               ///< among them, those straddling a window bound (counted in part)
  std::vector<std::string> warnings;  ///< plain-language notes (writer's domestic flag overruled, ...)
};

/// Sums the usage_sample records of `ledger` whose period [from, to] overlaps the window
/// [from_time, to_time) (ledger time form; empty = unbounded), grouped by (node, chip). A sample that
/// straddles a bound counts in proportion to the part of its period inside the window, so adjacent
/// windows add up. Records written before from_time are not read (a sample is written at the end of
/// its period). The ledger must verify first, else kDataLoss naming the first bad record. A sample
/// whose node is not in `fleet`, or whose chip is neither in `catalogue` nor in fleet.unknown_chips,
/// is kInvalidArgument naming node, chip and seqs (as in a usage file). A malformed payload written in
/// the window is kDataLoss naming the seq; one written after the window end only adds a warning.
LedgerUsage usage_from_ledger(const Ledger& ledger, const std::string& from_time, const std::string& to_time,
                              const fleet::Fleet& fleet, const fleet::Catalogue& catalogue);

/// usage_from_ledger() over records already read (ordered by seq); no verify. For tests and callers
/// that hold the records.
LedgerUsage usage_from_records(const std::vector<LedgerRecord>& records, const std::string& from_time,
                               const std::string& to_time, const fleet::Fleet& fleet,
                               const fleet::Catalogue& catalogue);

}  // namespace mixserve::policy
