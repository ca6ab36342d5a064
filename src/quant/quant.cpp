#include "quant/quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/error.h"

namespace mixserve::quant {
namespace {

uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
}

float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

// Shifts `value` right by `shift` (1..31) bits, rounding to nearest with ties to even.
uint32_t shift_round_even(uint32_t value, int shift) {
  const uint32_t kept = value >> shift;
  const uint32_t rest = value & ((1u << shift) - 1);
  const uint32_t half = 1u << (shift - 1);
  return kept + ((rest > half || (rest == half && (kept & 1u))) ? 1u : 0u);
}

// Elements per block of a computable type, or throws kUnimplemented.
int64_t block_elems_of(DType type, const char* what) {
  switch (type) {
    case DType::kF32:
    case DType::kF16:
    case DType::kBF16:
      return 1;
    case DType::kQ8_0:
    case DType::kQ4_0:
      return kQK;
    default:
      fail(ErrorCode::kUnimplemented, what, ": element type ", dtype_name(type),
           " is not supported (f32, f16, bf16, q8_0 and q4_0 are)");
  }
}

void check_count(DType type, int64_t n, const char* what) {
  const int64_t block = block_elems_of(type, what);
  if (n < 0 || n % block != 0) {
    fail(ErrorCode::kInvalidArgument, what, ": ", n, " elements of ", dtype_name(type),
         " is not a non-negative multiple of the block size ", block);
  }
}

// Float (already rounded, normally in [-127, 127]) to int8; non-finite input gives 0 or +-127
// instead of undefined behaviour.
int8_t to_int8(float v) {
  if (v >= -127.0f && v <= 127.0f) return static_cast<int8_t>(v);
  return static_cast<int8_t>(v > 0.0f ? 127 : (v < 0.0f ? -127 : 0));
}

void quantize_q8_0(const float* src, BlockQ8_0* dst, int64_t n_blocks) {
  for (int64_t b = 0; b < n_blocks; ++b) {
    const float* x = src + b * kQK;
    float amax = 0.0f;
    for (int64_t j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
    // ggml's rule (ggml-quants.c, quantize_row_q8_0_ref): q = round(x / d), d = amax / 127,
    // with the division done as a multiplication by 1/d.
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    dst[b].d = f32_to_fp16(d);
    for (int64_t j = 0; j < kQK; ++j) dst[b].qs[j] = to_int8(std::round(x[j] * id));
  }
}

void quantize_q4_0(const float* src, BlockQ4_0* dst, int64_t n_blocks) {
  for (int64_t b = 0; b < n_blocks; ++b) {
    const float* x = src + b * kQK;
    float amax = 0.0f;
    float max = 0.0f;  // the element of largest magnitude, with its sign
    for (int64_t j = 0; j < kQK; ++j) {
      if (std::fabs(x[j]) > amax) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    }
    // ggml's rule (quantize_row_q4_0_ref): d = max / -8, q = min(15, trunc(x / d + 8.5)).
    const float d = max / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    dst[b].d = f32_to_fp16(d);
    for (int64_t j = 0; j < kQK / 2; ++j) {
      const auto lo = static_cast<uint8_t>(std::min(15.0f, std::trunc(x[j] * id + 8.5f)));
      const auto hi = static_cast<uint8_t>(std::min(15.0f, std::trunc(x[j + kQK / 2] * id + 8.5f)));
      dst[b].qs[j] = static_cast<uint8_t>(lo | (hi << 4));
    }
  }
}

void dequantize_q8_0(const BlockQ8_0* src, float* dst, int64_t n_blocks) {
  for (int64_t b = 0; b < n_blocks; ++b) {
    const float d = fp16_to_f32(src[b].d);
    for (int64_t j = 0; j < kQK; ++j) dst[b * kQK + j] = d * static_cast<float>(src[b].qs[j]);
  }
}

void dequantize_q4_0(const BlockQ4_0* src, float* dst, int64_t n_blocks) {
  for (int64_t b = 0; b < n_blocks; ++b) {
    const float d = fp16_to_f32(src[b].d);
    for (int64_t j = 0; j < kQK / 2; ++j) {
      const int lo = (src[b].qs[j] & 0x0F) - 8;
      const int hi = (src[b].qs[j] >> 4) - 8;
      dst[b * kQK + j] = d * static_cast<float>(lo);
      dst[b * kQK + j + kQK / 2] = d * static_cast<float>(hi);
    }
  }
}

}  // namespace

float fp16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu;
  const uint32_t mant = h & 0x3FFu;
  if (exp == 0x1F) return bits_float(sign | 0x7F800000u | (mant << 13));  // inf / NaN
  if (exp == 0) {
    // Zero or subnormal: mant * 2^-24 is exact in float.
    const float mag = static_cast<float>(mant) * 0x1p-24f;
    return sign != 0 ? -mag : mag;
  }
  return bits_float(sign | ((exp + 112u) << 23) | (mant << 13));
}

uint16_t f32_to_fp16(float f) {
  const uint32_t x = float_bits(f);
  const auto sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t mag = x & 0x7FFFFFFFu;
  const uint32_t exp = mag >> 23;
  if (exp == 0xFF) {
    if (mag == 0x7F800000u) return sign | 0x7C00u;
    // NaN: keep it quiet and keep the top payload bits.
    return static_cast<uint16_t>(sign | 0x7E00u | ((mag >> 13) & 0x3FFu));
  }
  if (exp >= 143) return sign | 0x7C00u;  // >= 2^16: beyond the largest half even after rounding
  if (exp >= 113) {
    // Normal half: rebias the exponent; rounding may carry into the exponent (up to inf).
    return static_cast<uint16_t>(sign | shift_round_even(mag - (112u << 23), 13));
  }
  if (exp < 101) return sign;  // below half the smallest subnormal: rounds to zero
  // Subnormal half: value = m * 2^-24 with m = (1.mant) * 2^(exp - 126).
  const uint32_t full = (mag & 0x7FFFFFu) | 0x800000u;
  return static_cast<uint16_t>(sign | shift_round_even(full, static_cast<int>(126 - exp)));
}

float bf16_to_f32(uint16_t h) { return bits_float(static_cast<uint32_t>(h) << 16); }

uint16_t f32_to_bf16(float f) {
  const uint32_t x = float_bits(f);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((x >> 16) | 0x0040u);  // NaN
  return static_cast<uint16_t>((x + 0x7FFFu + ((x >> 16) & 1u)) >> 16);
}

void quantize_row(DType type, const float* src, void* dst, int64_t n) {
  check_count(type, n, "quantize_row");
  switch (type) {
    case DType::kF32:
      if (n > 0) std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case DType::kF16: {
      auto* out = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) out[i] = f32_to_fp16(src[i]);
      return;
    }
    case DType::kBF16: {
      auto* out = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) out[i] = f32_to_bf16(src[i]);
      return;
    }
    case DType::kQ8_0:
      quantize_q8_0(src, static_cast<BlockQ8_0*>(dst), n / kQK);
      return;
    case DType::kQ4_0:
      quantize_q4_0(src, static_cast<BlockQ4_0*>(dst), n / kQK);
      return;
    default:
      break;
  }
  fail(ErrorCode::kInternal, "quantize_row: unhandled type ", dtype_name(type));
}

void dequantize_row(DType type, const void* src, float* dst, int64_t n) {
  check_count(type, n, "dequantize_row");
  switch (type) {
    case DType::kF32:
      if (n > 0) std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case DType::kF16: {
      const auto* in = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_f32(in[i]);
      return;
    }
    case DType::kBF16: {
      const auto* in = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(in[i]);
      return;
    }
    case DType::kQ8_0:
      dequantize_q8_0(static_cast<const BlockQ8_0*>(src), dst, n / kQK);
      return;
    case DType::kQ4_0:
      dequantize_q4_0(static_cast<const BlockQ4_0*>(src), dst, n / kQK);
      return;
    default:
      break;
  }
  fail(ErrorCode::kInternal, "dequantize_row: unhandled type ", dtype_name(type));
}

double dot_reference(DType type, const void* row, const float* x, int64_t n) {
  check_count(type, n, "dot_reference");
  // Dequantise a block at a time so the scratch stays small whatever n is.
  constexpr int64_t kChunk = 256;
  float buf[kChunk];
  const size_t chunk_bytes = *dtype_row_bytes(type, kChunk);
  const auto* bytes = static_cast<const uint8_t*>(row);
  double acc = 0.0;
  for (int64_t i = 0; i < n; i += kChunk) {
    const int64_t len = std::min(kChunk, n - i);
    dequantize_row(type, bytes + static_cast<size_t>(i / kChunk) * chunk_bytes, buf, len);
    for (int64_t j = 0; j < len; ++j) acc += static_cast<double>(buf[j]) * x[i + j];
  }
  return acc;
}

}  // namespace mixserve::quant
