#include "backends/cpu/row_ops.h"

#include "backends/cpu/vector_kernels.h"
#include "common/error.h"
#include "quant/quant.h"

namespace mixserve::cpu {
namespace {

float* f32(const hal::Tensor* t) {
  return static_cast<float*>(t->host_data());
}

}  // namespace

void get_rows(const hal::Op& op) {
  const hal::Tensor& table = *op.src[0];
  const auto* ids = static_cast<const int32_t*>(op.src[1]->host_data());
  const int64_t n = op.src[1]->elements();
  const int64_t width = table.ne[0];
  MIXSERVE_CHECK(op.dst->ne[0] == width && op.dst->rows() >= n, "get_rows shape mismatch");
  for (int64_t t = 0; t < n; ++t) {
    if (ids[t] < 0 || ids[t] >= table.rows()) {
      fail(ErrorCode::kInvalidArgument, "token id ", ids[t], " is out of range [0, ", table.rows(), ")");
    }
  }
  const auto* base = static_cast<const uint8_t*>(table.host_data());
  const size_t row_bytes = table.row_bytes();
  float* out = f32(op.dst);
  for (int64_t t = 0; t < n; ++t) {
    quant::dequantize_row(table.dtype, base + static_cast<size_t>(ids[t]) * row_bytes, out + t * width, width);
  }
}

void add_rows(const hal::Op& op, int64_t begin, int64_t end) {
  const hal::Tensor& a = *op.src[0];
  const hal::Tensor& b = *op.src[1];
  const int64_t width = a.ne[0];
  MIXSERVE_CHECK(b.ne[0] == width && (b.rows() == a.rows() || b.rows() == 1), "add shapes");
  const bool broadcast = b.rows() == 1 && a.rows() != 1;
  for (int64_t r = begin; r < end; ++r) {
    cpu::add(f32(&a) + r * width, f32(&b) + (broadcast ? 0 : r * width), f32(op.dst) + r * width, width);
  }
}

void rms_norm_rows(const hal::Op& op, int64_t begin, int64_t end) {
  const int64_t width = op.src[0]->ne[0];
  MIXSERVE_CHECK(op.src[1]->elements() == width, "rms_norm weight size");
  for (int64_t r = begin; r < end; ++r) {
    cpu::rms_norm(f32(op.src[0]) + r * width, f32(op.src[1]), f32(op.dst) + r * width, width, op.f[0]);
  }
}

}  // namespace mixserve::cpu
