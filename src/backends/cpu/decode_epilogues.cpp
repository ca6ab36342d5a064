#include "backends/cpu/decode_epilogues.h"

#include <algorithm>
#include <numeric>
#include <optional>

namespace mixserve::cpu {
namespace {

// A tensor's bytes.
struct Range {
  const uint8_t* begin = nullptr;
  const uint8_t* end = nullptr;
  bool operator==(const Range&) const = default;
  bool overlaps(const Range& o) const { return begin < o.end && o.begin < end; }
};

Range range_of(const hal::Tensor* t) {
  const auto* p = static_cast<const uint8_t*>(t->host_data());
  return {p, p + t->bytes()};
}

// Memory written at the rows of one product's shares: its output, and what fused ops wrote from it.
struct Aligned {
  Range range;
  size_t product;
};

// Elements of an f32 tensor in host memory (the outputs of a job for one token and what its fused
// ops read and write are all such vectors); nullopt for any other tensor.
std::optional<int64_t> f32_elements(const hal::Tensor* t) {
  if (t == nullptr || t->dtype != DType::kF32 || t->host_data() == nullptr) return std::nullopt;
  return t->elements();
}

class Planner {
 public:
  explicit Planner(std::span<const hal::Op> products) {
    for (size_t p = 0; p < products.size(); ++p) {
      const hal::Op& op = products[p];
      aligned_.push_back({range_of(op.dst), p});
      rows_.push_back(op.src[0]->rows());
      shared_.push_back(range_of(op.src[0]));
    }
    shared_.push_back(range_of(products.front().src[1]));
  }

  // Whether `op` can run as an epilogue; if so, records it.
  bool take(const hal::Op& op) {
    switch (op.kind) {
      case hal::OpKind::kAdd: return take_add(op);
      case hal::OpKind::kRope: return take_rope(op);
      case hal::OpKind::kStoreKV: return take_store(op);
      case hal::OpKind::kSwiGLU: return take_swiglu(op);
      default: return false;
    }
  }

  // Whether the product `op` can take its input converted by the threads.
  bool take_conversion(const hal::Op& op) {
    if (op.kind != hal::OpKind::kMatMul || op.src[0] == nullptr || op.src[1] == nullptr) return false;
    const auto p = aligned_product(op.src[1]);
    if (!p || op.src[1]->rows() != 1 || op.src[0]->ne[0] != rows_[*p] || op.dst->rows() != 1) return false;
    const auto align = conversion_alignment(op.src[0]->dtype);
    if (!align) return false;
    need_align(*align);
    plan_.converts_for = &op;
    plan_.converts_product = *p;
    return true;
  }

  DecodeEpilogues finish() { return std::move(plan_); }

 private:
  // The product whose shares the whole of `t` is written at, if any.
  std::optional<size_t> aligned_product(const hal::Tensor* t) const {
    if (!f32_elements(t)) return std::nullopt;
    const Range r = range_of(t);
    for (const Aligned& a : aligned_) {
      if (a.range == r && t->elements() == rows_[a.product]) return a.product;
    }
    return std::nullopt;
  }

  // Whether `t` is read-only in the job: no product, thread or fused op writes any of it.
  bool untouched(const hal::Tensor* t) const {
    const Range r = range_of(t);
    return std::none_of(aligned_.begin(), aligned_.end(), [&](const Aligned& a) { return a.range.overlaps(r); });
  }

  // Whether a fused op of product p may write `t` (an f32 row of its width) at p's rows: it is p's
  // own memory, or memory nothing else in the job reads or writes.
  bool writable(const hal::Tensor* t, size_t p) const {
    if (!f32_elements(t) || t->elements() != rows_[p]) return false;
    if (aligned_product(t) == p) return true;
    const Range r = range_of(t);
    // Another product's shares would read it at other rows, on other threads.
    const auto read_elsewhere = [&](const Aligned& a) { return a.product != p && a.range.overlaps(r); };
    return untouched(t) &&
           std::none_of(shared_.begin(), shared_.end(), [&](const Range& s) { return s.overlaps(r); }) &&
           std::none_of(read_.begin(), read_.end(), read_elsewhere);
  }

  void record(const hal::Op& op, size_t p) {
    plan_.ops.push_back({&op, p});
    const Range r = range_of(op.dst);
    if (std::none_of(aligned_.begin(), aligned_.end(), [&](const Aligned& a) { return a.range == r; })) {
      aligned_.push_back({r, p});
    }
  }

  void need_align(int64_t rows) { plan_.align = std::lcm(plan_.align, rows); }

  // dst = src0 + src1: one of them a product's rows, the other read-only in the job (a bias, the
  // residual stream).
  bool take_add(const hal::Op& op) {
    for (int side = 0; side < 2; ++side) {
      const auto p = aligned_product(op.src[side]);
      const hal::Tensor* other = op.src[1 - side];
      if (!p || !f32_elements(other) || other->elements() != rows_[*p] || !untouched(other)) continue;
      if (!writable(op.dst, *p)) continue;
      read_.push_back({range_of(other), *p});
      record(op, *p);
      return true;
    }
    return false;
  }

  // RoPE in place on a product's rows, whole heads per share.
  bool take_rope(const hal::Op& op) {
    const auto p = aligned_product(op.dst);
    const int64_t head_dim = op.dst->ne[0];
    if (!p || op.src[0] != op.dst || head_dim <= 0 || rows_[*p] % head_dim != 0) return false;
    need_align(head_dim);
    record(op, *p);
    return true;
  }

  // One row of a product's output into a KV cache (the cache is read by no op of the job).
  bool take_store(const hal::Op& op) {
    const auto p = aligned_product(op.src[0]);
    if (!p || op.dst->ne[0] != rows_[*p] || op.dst->host_data() == nullptr) return false;
    switch (op.dst->dtype) {
      case DType::kF32:
      case DType::kF16: break;
      case DType::kQ8_0: need_align(32); break;
      default: return false;
    }
    const Range cache = range_of(op.dst);
    if (std::any_of(shared_.begin(), shared_.end(), [&](const Range& s) { return s.overlaps(cache); }) ||
        std::any_of(aligned_.begin(), aligned_.end(), [&](const Aligned& a) { return a.range.overlaps(cache); })) {
      return false;
    }
    plan_.ops.push_back({&op, *p});
    return true;
  }

  // silu(gate) * up over two products of the same rows (so the same shares).
  bool take_swiglu(const hal::Op& op) {
    const auto g = aligned_product(op.src[0]);
    const auto u = aligned_product(op.src[1]);
    if (!g || !u || rows_[*g] != rows_[*u] || !writable(op.dst, *g)) return false;
    record(op, *g);
    plan_.pairs_products = plan_.pairs_products || *g != *u;
    return true;
  }

  std::vector<Aligned> aligned_;
  std::vector<int64_t> rows_;  // of each product
  std::vector<Range> shared_;  // read by every thread: the weights and the input
  std::vector<Aligned> read_;  // read-only tensors fused ops read, at the rows of these products
  DecodeEpilogues plan_;
};

}  // namespace

DecodeEpilogues plan_decode_epilogues(std::span<const hal::Op> products, std::span<const hal::Op> next) {
  for (const hal::Op& op : products) {
    if (!f32_elements(op.dst) || op.src[0] == nullptr || op.src[0]->host_data() == nullptr || op.src[1] == nullptr ||
        op.src[1]->host_data() == nullptr) {
      return {};  // not a job of host products (the stream's checks will say why)
    }
  }
  Planner planner(products);
  size_t i = 0;
  while (i < next.size() && planner.take(next[i])) ++i;
  if (i < next.size()) planner.take_conversion(next[i]);
  return planner.finish();
}

std::optional<int64_t> conversion_alignment(DType wtype) {
  switch (wtype) {
    case DType::kQ4_0:
    case DType::kQ8_0: return 32;  // converted to Q8_0 blocks of 32
    case DType::kF32:
    case DType::kF16:
    case DType::kBF16: return 1;  // copied as f32
    default: return std::nullopt;
  }
}

std::pair<int64_t, int64_t> decode_share(int64_t rows, int64_t align, int ith, int nth) {
  const int64_t per = (rows / nth + align - 1) / align * align;
  const int64_t begin = std::min(rows, per * ith);
  return {begin, ith == nth - 1 ? rows : std::min(rows, begin + per)};
}

}  // namespace mixserve::cpu
