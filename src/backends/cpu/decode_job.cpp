#include "backends/cpu/decode_job.h"

#include <algorithm>
#include <cstring>

#include "backends/cpu/matmul_kernels.h"
#include "backends/cpu/paged_cache.h"
#include "backends/cpu/vector_kernels.h"
#include "common/error.h"

namespace mixserve::cpu {
namespace {

float* f32(const hal::Tensor* t) {
  return static_cast<float*>(t->host_data());
}

// Elements [begin, end) of epilogue `op` (an add, SwiGLU, RoPE over whole heads, or a KV store
// into physical cache row `cache_row`).
void epilogue_rows(const hal::Op& op, int64_t begin, int64_t end, int64_t cache_row) {
  const int64_t n = end - begin;
  switch (op.kind) {
    case hal::OpKind::kAdd: return cpu::add(f32(op.src[0]) + begin, f32(op.src[1]) + begin, f32(op.dst) + begin, n);
    case hal::OpKind::kSwiGLU:
      return cpu::swiglu(f32(op.src[0]) + begin, f32(op.src[1]) + begin, f32(op.dst) + begin, n);
    case hal::OpKind::kRope: {
      const int64_t head_dim = op.dst->ne[0];
      return cpu::rope(f32(op.dst) + begin, head_dim, n / head_dim, op.i[1], op.i[0], op.f[0], op.i[2] == 1);
    }
    case hal::OpKind::kStoreKV: return put_cache_row(*op.dst, cache_row, f32(op.src[0]), begin, end);
    default: fail(ErrorCode::kInternal, "op ", hal::op_name(op.kind), " cannot run as a decoding epilogue");
  }
}

// Whether `next` may join the products of `group` (which starts with a matrix product): the same
// input, weights of the same type, layout and width, and no product of the group writing what a
// later one reads.
bool joins(std::span<const hal::Op> group, const hal::Op& next) {
  const hal::Op& first = group.front();
  if (next.kind != hal::OpKind::kMatMul || next.src[1] != first.src[1] || next.src[0] == nullptr ||
      first.src[0] == nullptr) {
    return false;
  }
  const hal::Tensor& w = *next.src[0];
  const hal::Tensor& w0 = *first.src[0];
  if (w.dtype != w0.dtype || w.layout != w0.layout || w.ne[0] != w0.ne[0]) return false;
  for (const hal::Op& op : group) {
    if (op.dst == next.src[1] || op.dst == next.dst || op.dst == next.src[0]) return false;
  }
  return true;
}

}  // namespace

size_t product_group_end(std::span<const hal::Op> ops, size_t i) {
  size_t j = i + 1;
  while (j < ops.size() && joins(ops.subspan(i, j - i), ops[j])) ++j;
  return j;
}

int64_t check_product_shapes(std::span<const hal::Op> group) {
  const hal::Tensor& x = *group.front().src[1];
  const int64_t k = group.front().src[0]->ne[0];
  int64_t total_rows = 0;
  for (const hal::Op& op : group) {
    const hal::Tensor& w = *op.src[0];
    MIXSERVE_CHECK(x.ne[0] == k && op.dst->ne[0] == w.rows() && op.dst->rows() == x.rows(), "mat_mul shapes ",
                   w.shape_string(), " x ", x.shape_string(), " -> ", op.dst->shape_string());
    total_rows += w.rows();
  }
  return total_rows;
}

size_t activation_row_bytes(const hal::Op& product) {
  const hal::Tensor& w = *product.src[0];
  return *dtype_row_bytes(activation_type(w.dtype), w.ne[0]);
}

void product_rows(const hal::Op& op, int64_t r0, int64_t r1, int64_t t0, int64_t t1, const uint8_t* xq,
                  size_t act_row) {
  const hal::Tensor& w = *op.src[0];
  const int64_t k = w.ne[0];
  const int64_t n_out = w.rows();
  float* y = f32(op.dst) + t0 * n_out;
  const uint8_t* xt = xq + static_cast<size_t>(t0) * act_row;
  if (w.layout == hal::TensorLayout::kDevicePacked) {
    matmul_packed_rows(w.dtype, k, w.host_data(), w.row_bytes(), r0, r1, xt, act_row, t1 - t0, y, n_out);
  } else {
    matmul_rows(w.dtype, k, w.host_data(), w.row_bytes(), r0, r1, xt, act_row, t1 - t0, y, n_out);
  }
}

std::vector<int64_t> cache_store_rows(const hal::Op& op) {
  const hal::Tensor& src = *op.src[0];
  const hal::Tensor& dst = *op.dst;
  MIXSERVE_CHECK(src.ne[0] == dst.ne[0] && op.i[0] >= 0, "store_kv shapes");
  const int64_t block = op.i[1];
  const int32_t* table = block_table(op.src[1], block, op.i[0] + src.rows(), dst.rows());
  std::vector<int64_t> rows;
  for (int64_t r = 0; r < src.rows(); ++r) rows.push_back(physical_row(table, block, op.i[0] + r));
  return rows;
}

void put_cache_row(const hal::Tensor& cache, int64_t row, const float* src, int64_t c0, int64_t c1) {
  const int64_t width = cache.ne[0];
  if (cache.dtype == DType::kF16) {
    to_half(src + c0, static_cast<Half*>(cache.host_data()) + row * width + c0, c1 - c0);
  } else if (cache.dtype == DType::kQ8_0) {
    auto* bytes = static_cast<uint8_t*>(cache.host_data()) + static_cast<size_t>(row) * cache.row_bytes();
    convert_activation(DType::kQ8_0, src + c0, bytes + *dtype_row_bytes(DType::kQ8_0, c0), c1 - c0);
  } else {
    std::memcpy(f32(&cache) + row * width + c0, src + c0, static_cast<size_t>(c1 - c0) * sizeof(float));
  }
}

void convert_activation_part(DType wtype, const float* x, uint8_t* converted, int64_t begin, int64_t end) {
  if (begin < end) {
    convert_activation(wtype, x + begin, converted + *dtype_row_bytes(activation_type(wtype), begin), end - begin);
  }
}

DecodeJob::DecodeJob(std::span<const hal::Op> products, DecodeEpilogues epilogues, const uint8_t* xq, size_t act_row,
                     int64_t n_tok, uint8_t* converted)
    : products_(products),
      epilogues_(std::move(epilogues)),
      xq_(xq),
      act_row_(act_row),
      n_tok_(n_tok),
      converted_(epilogues_.converts_for != nullptr ? converted : nullptr),
      cache_rows_(epilogues_.ops.size(), -1) {
  // Checked before the threads start: where each store writes.
  for (size_t e = 0; e < epilogues_.ops.size(); ++e) {
    const hal::Op& op = *epilogues_.ops[e].op;
    if (op.kind == hal::OpKind::kStoreKV) cache_rows_[e] = cache_store_rows(op).front();
  }
  // Each thread's rows of each product: one share of all their rows taken one after the other (so
  // a thread reads as few streams as it can), unless an epilogue pairs the rows of two products
  // (SwiGLU) or a product starts inside a share's alignment: then a share of each product.
  whole_shares_ = !epilogues_.pairs_products;
  for (const hal::Op& op : products_) {
    first_row_.push_back(total_rows_);
    whole_shares_ = whole_shares_ && total_rows_ % epilogues_.align == 0;
    total_rows_ += op.src[0]->rows();
  }
}

void DecodeJob::share_in_units(std::vector<int64_t> units) {
  MIXSERVE_CHECK(units.size() == products_.size(), "a unit for each product");
  for (const int64_t u : units) MIXSERVE_CHECK(u > 0 && u % epilogues_.align == 0, "units of whole alignments");
  units_ = std::move(units);
}

std::pair<int64_t, int64_t> DecodeJob::share(size_t p, int ith, int nth) const {
  const int64_t rows = products_[p].src[0]->rows();
  if (!units_.empty()) return decode_share(rows, units_[p], ith, nth);
  if (!whole_shares_) return decode_share(rows, epilogues_.align, ith, nth);
  const auto [begin, end] = decode_share(total_rows_, epilogues_.align, ith, nth);
  return {std::clamp(begin - first_row_[p], int64_t{0}, rows), std::clamp(end - first_row_[p], int64_t{0}, rows)};
}

std::pair<const uint8_t*, size_t> DecodeJob::share_weights(size_t p, int ith, int nth) const {
  const hal::Tensor& w = *products_[p].src[0];
  const auto [begin, end] = share(p, ith, nth);
  return {static_cast<const uint8_t*>(w.host_data()) + static_cast<size_t>(begin) * w.row_bytes(),
          static_cast<size_t>(end - begin) * w.row_bytes()};
}

void DecodeJob::run_share(int ith, int nth) const {
  for (size_t p = 0; p < products_.size(); ++p) {
    const auto [begin, end] = share(p, ith, nth);
    if (begin < end) product_rows(products_[p], begin, end, 0, n_tok_, xq_, act_row_);
  }
  for (size_t e = 0; e < epilogues_.ops.size(); ++e) {
    const auto [begin, end] = share(epilogues_.ops[e].product, ith, nth);
    if (begin < end) epilogue_rows(*epilogues_.ops[e].op, begin, end, cache_rows_[e]);
  }
  if (converted_ != nullptr) {
    const auto [begin, end] = share(epilogues_.converts_product, ith, nth);
    const hal::Op& next = *epilogues_.converts_for;
    convert_activation_part(next.src[0]->dtype, f32(next.src[1]), converted_, begin, end);
  }
}

}  // namespace mixserve::cpu
