// Block layouts of the GGUF quantised formats and scalar reference routines: conversion between
// f32 and F16/BF16/Q8_0/Q4_0, and reference dot products. Backends have their own fast kernels
// and are tested against these.
#pragma once

#include <cstdint>

#include "common/dtype.h"

namespace mixserve::quant {

/// Elements per block of Q8_0 and Q4_0.
inline constexpr int64_t kQK = 32;

/// Q8_0 block (ggml layout): 32 int8 values times an fp16 scale d. x = d * q.
struct BlockQ8_0 {
  uint16_t d;       ///< fp16 scale
  int8_t qs[kQK];   ///< quantised values
};
static_assert(sizeof(BlockQ8_0) == 34, "Q8_0 block must be 34 bytes");

/// Q4_0 block (ggml layout): 32 4-bit values, element i in the low nibble of qs[i] for i < 16
/// and in the high nibble of qs[i-16] otherwise. x = d * (q - 8).
struct BlockQ4_0 {
  uint16_t d;            ///< fp16 scale
  uint8_t qs[kQK / 2];   ///< packed nibbles
};
static_assert(sizeof(BlockQ4_0) == 18, "Q4_0 block must be 18 bytes");

/// IEEE half -> float (exact).
float fp16_to_f32(uint16_t h);
/// float -> IEEE half, round to nearest even; overflow gives inf, NaN stays NaN.
uint16_t f32_to_fp16(float f);
/// bfloat16 -> float (exact).
float bf16_to_f32(uint16_t h);
/// float -> bfloat16, round to nearest even; NaN stays NaN.
uint16_t f32_to_bf16(float f);

/// Converts n floats to `type` (F32, F16, BF16, Q8_0, Q4_0); n must be a multiple of the block
/// size (throws kInvalidArgument otherwise, or kUnimplemented for other types).
void quantize_row(DType type, const float* src, void* dst, int64_t n);
/// Converts n elements of `type` back to floats (same conditions as quantize_row).
void dequantize_row(DType type, const void* src, float* dst, int64_t n);
/// Reference dot product of a row of `type` with a float vector, accumulated in double.
double dot_reference(DType type, const void* row, const float* x, int64_t n);

}  // namespace mixserve::quant
