// Time per kind of op on a stream: what `mixserve bench --profile` reports (like ggml's per-op
// timings), so that a step's time can be split between the matrix products and everything else.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "hal/op.h"

namespace mixserve::hal {

/// Number of op kinds (one past OpKind::kStoreKV, the last).
inline constexpr size_t kOpKindCount = static_cast<size_t>(OpKind::kStoreKV) + 1;

/// Ops run and wall-clock seconds spent per op kind. A stream measures each op (or group of ops it
/// runs as one job, all of one kind) from its start to its end on the stream's thread, worker
/// threads included: the sum is the time the stream spent running ops.
struct OpProfile {
  std::array<uint64_t, kOpKindCount> ops{};
  std::array<double, kOpKindCount> seconds{};

  void add(OpKind kind, uint64_t n_ops, double s) {
    ops[static_cast<size_t>(kind)] += n_ops;
    seconds[static_cast<size_t>(kind)] += s;
  }
  double total_seconds() const {
    double t = 0;
    for (double s : seconds) t += s;
    return t;
  }
};

}  // namespace mixserve::hal
