// Time per kind of op on a stream: what `mixserve bench --profile` reports (like ggml's per-op
// timings), so that a step's time can be split between the matrix products and everything else;
// and, for the matrix products, time and weight bytes per shape, so that each can be set against
// the machine's memory bandwidth (in decoding, a product's time is the time to read its weights).
#pragma once

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>

#include "common/dtype.h"
#include "hal/op.h"

namespace mixserve::hal {

/// Number of op kinds (one past OpKind::kStoreKV, the last).
inline constexpr size_t kOpKindCount = static_cast<size_t>(OpKind::kStoreKV) + 1;

/// A job of matrix products over the same input, as a stream runs it: its weights' names without
/// the layer (weight_names: "attn_q+attn_k+attn_v" for blk.N.attn_q.weight and the two after it,
/// when the CPU joins them), their type and width (k), and the rows of all of them together.
struct ProductShape {
  std::string weight_names;
  DType dtype = DType::kF32;
  int64_t k = 0;
  int64_t rows = 0;
  auto operator<=>(const ProductShape&) const = default;
};

/// The shape of a job of matrix products (ops of kind kMatMul with their weights in src[0]).
ProductShape product_shape(std::span<const Op> group);

/// Jobs of one ProductShape: how many ran, their weight bytes (all jobs) and wall-clock seconds.
struct ProductStats {
  uint64_t jobs = 0;
  uint64_t weight_bytes = 0;
  double seconds = 0;
};

/// Ops run and wall-clock seconds spent per op kind. A stream measures each op (or group of ops it
/// runs as one job, all of one kind) from its start to its end on the stream's thread, worker
/// threads included: the sum is the time the stream spent running ops.
struct OpProfile {
  std::array<uint64_t, kOpKindCount> ops{};
  std::array<double, kOpKindCount> seconds{};
  /// Of ops[], those a stream ran inside a job of matrix products (fused into it: their time is
  /// the job's, counted under kMatMul).
  std::array<uint64_t, kOpKindCount> fused{};
  /// The matrix products by shape (optional: a stream that only counts op kinds leaves it empty).
  std::map<ProductShape, ProductStats> products;

  void add(OpKind kind, uint64_t n_ops, double s) {
    ops[static_cast<size_t>(kind)] += n_ops;
    seconds[static_cast<size_t>(kind)] += s;
  }
  void add_fused(OpKind kind) {
    ++ops[static_cast<size_t>(kind)];
    ++fused[static_cast<size_t>(kind)];
  }
  void add_products(const ProductShape& shape, uint64_t weight_bytes, double s) {
    ProductStats& p = products[shape];
    ++p.jobs;
    p.weight_bytes += weight_bytes;
    p.seconds += s;
  }
  double total_seconds() const {
    double t = 0;
    for (double s : seconds) t += s;
    return t;
  }
};

}  // namespace mixserve::hal
