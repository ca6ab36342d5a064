// Portable matmul kernels: one output at a time, so every output is computed by the same
// sequence of operations whatever the batch or the row range.
#include <cstring>

#include "backends/cpu/matmul_variants.h"
#include "quant/quant.h"

namespace mixserve::cpu {
namespace {

using quant::BlockQ4_0;
using quant::BlockQ8_0;
using quant::kQK;

// Q8_0 weights: per block the exact integer dot product, then acc += isum * (dw * dx).
float dot_q8_0(const BlockQ8_0* w, const BlockQ8_0* x, int64_t nb) {
  float acc = 0.0f;
  for (int64_t b = 0; b < nb; ++b) {
    int32_t isum = 0;
    for (int64_t j = 0; j < kQK; ++j) isum += static_cast<int32_t>(w[b].qs[j]) * x[b].qs[j];
    const float scale = quant::fp16_to_f32(w[b].d) * quant::fp16_to_f32(x[b].d);
    acc += static_cast<float>(isum) * scale;
  }
  return acc;
}

// Q4_0 weights: element j of the block is (nibble - 8).
float dot_q4_0(const BlockQ4_0* w, const BlockQ8_0* x, int64_t nb) {
  float acc = 0.0f;
  for (int64_t b = 0; b < nb; ++b) {
    int32_t isum = 0;
    for (int64_t j = 0; j < kQK / 2; ++j) {
      isum += ((w[b].qs[j] & 0x0F) - 8) * static_cast<int32_t>(x[b].qs[j]);
      isum += ((w[b].qs[j] >> 4) - 8) * static_cast<int32_t>(x[b].qs[j + kQK / 2]);
    }
    const float scale = quant::fp16_to_f32(w[b].d) * quant::fp16_to_f32(x[b].d);
    acc += static_cast<float>(isum) * scale;
  }
  return acc;
}

// Float weights: four interleaved partial sums (for speed), combined in a fixed order.
template <typename Convert>
float dot_float(const void* w, const float* x, int64_t k, Convert convert) {
  float part[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  int64_t j = 0;
  for (; j + 4 <= k; j += 4) {
    for (int i = 0; i < 4; ++i) part[i] += convert(w, j + i) * x[j + i];
  }
  for (; j < k; ++j) part[0] += convert(w, j) * x[j];
  return (part[0] + part[1]) + (part[2] + part[3]);
}

float load_f32(const void* w, int64_t j) {
  float v;
  std::memcpy(&v, static_cast<const uint8_t*>(w) + j * 4, sizeof(v));
  return v;
}

uint16_t load_u16(const void* w, int64_t j) {
  uint16_t v;
  std::memcpy(&v, static_cast<const uint8_t*>(w) + j * 2, sizeof(v));
  return v;
}

float load_f16(const void* w, int64_t j) { return quant::fp16_to_f32(load_u16(w, j)); }
float load_bf16(const void* w, int64_t j) { return quant::bf16_to_f32(load_u16(w, j)); }

float dot_row(DType wtype, int64_t k, const void* w, const void* x) {
  switch (wtype) {
    case DType::kQ8_0:
      return dot_q8_0(static_cast<const BlockQ8_0*>(w), static_cast<const BlockQ8_0*>(x), k / kQK);
    case DType::kQ4_0:
      return dot_q4_0(static_cast<const BlockQ4_0*>(w), static_cast<const BlockQ8_0*>(x), k / kQK);
    case DType::kF16:
      return dot_float(w, static_cast<const float*>(x), k, load_f16);
    case DType::kBF16:
      return dot_float(w, static_cast<const float*>(x), k, load_bf16);
    default:
      return dot_float(w, static_cast<const float*>(x), k, load_f32);
  }
}

void convert_activation_scalar(DType wtype, const float* x, void* dst, int64_t k) {
  if (wtype == DType::kQ8_0 || wtype == DType::kQ4_0) {
    quant::quantize_row(DType::kQ8_0, x, dst, k);
  } else {
    std::memcpy(dst, x, static_cast<size_t>(k) * sizeof(float));
  }
}

void matmul_rows_scalar(DType wtype, int64_t k, const void* w, size_t w_row_bytes, int64_t r0,
                        int64_t r1, const void* x, size_t x_row_bytes, int64_t n_tok, float* y,
                        int64_t y_stride) {
  const auto* wb = static_cast<const uint8_t*>(w);
  const auto* xb = static_cast<const uint8_t*>(x);
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = wb + static_cast<size_t>(r) * w_row_bytes;
    for (int64_t t = 0; t < n_tok; ++t) {
      y[t * y_stride + r] = dot_row(wtype, k, row, xb + static_cast<size_t>(t) * x_row_bytes);
    }
  }
}

}  // namespace

const MatmulKernelTable kMatmulKernelsScalar = {"scalar", convert_activation_scalar, matmul_rows_scalar, nullptr, false,
                                                false};

}  // namespace mixserve::cpu
