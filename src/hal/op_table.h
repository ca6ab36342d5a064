// The loud part of fallback: a table of which device runs how many ops of each kind in one forward
// step, and how many of them run somewhere other than their first-choice device.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "hal/placement.h"

namespace mixserve::hal {

/// Counts of ops per (kind, device) and the fallbacks among them.
class OpTable {
 public:
  /// One line of the table.
  struct Row {
    std::string op;         ///< op name ("mat_mul")
    std::string device;     ///< device id that runs them
    std::string preferred;  ///< first-choice device of the fallbacks ("" when none fell back)
    int64_t count = 0;      ///< ops of this kind on this device per forward step
    int64_t fallbacks = 0;  ///< how many of them wanted another device
  };

  /// Records one op and where it runs.
  void add(const Op& op, const OpPlacement& placement);
  /// Rows ordered by op kind, then device.
  const std::vector<Row>& rows() const { return rows_; }
  /// Total ops that fell back.
  int64_t fallbacks() const;
  /// Total ops recorded.
  int64_t total() const;
  /// A plain-text table with a header, one row per (op, device), and a summary line.
  std::string format() const;

 private:
  std::vector<Row> rows_;
  std::vector<int> kinds_;  // op kind of each row, for ordering
};

}  // namespace mixserve::hal
