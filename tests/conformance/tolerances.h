// Per-dtype error bounds of the conformance suite, as normalised mean squared errors
// NMSE = sum((got - want)^2) / sum(want^2) against double-precision references.
#pragma once

#include <cstdint>

#include "common/dtype.h"

namespace mixserve::conformance {

/// f32 arithmetic (add, rms_norm, f32/f16/bf16 mat_mul): f16 and bf16 weights decode exactly to
/// f32, so all that differs from the double reference is f32 rounding, ~6e-8 relative per
/// operation. Summing K = 4128 products in any order gives relative errors ~1e-6 at worst,
/// NMSE ~1e-12; 1e-10 leaves room for any summation order and still catches one wrong element
/// in ~1e5 (or a lost tail of a vector loop).
inline constexpr double kFloatNmse = 1e-10;

/// Q8_0/Q4_0 mat_mul: backends quantise the activations to Q8_0 (step max|x|/127 per 32
/// values, scale rounded to fp16), a relative error ~1/(127 * sqrt(3)) per term; over random
/// signs and many outputs that gives NMSE ~2e-5 against the dequantised weights. Bound 2e-4,
/// plus a per-output absolute bound (test_backend_ops.cpp). With few outputs the NMSE is noisy
/// (one unlucky output dominates), so below 64 outputs the bound is 1e-2.
inline constexpr double kQuantNmse = 2e-4;
/// Q8_0/Q4_0 bound when the op has fewer than 64 outputs.
inline constexpr double kQuantFewOutputsNmse = 1e-2;

/// Transcendentals (exp in silu/softmax, sin/cos in rope) are accurate to a few ulp in SIMD
/// and OpenCL implementations (OpenCL 1.2 allows 3 ulp for exp): NMSE ~1e-13; 1e-9 bound.
inline constexpr double kTranscendentalNmse = 1e-9;

/// Bound for a mat_mul with `outputs` outputs and weights of `type`.
inline double matmul_nmse_bound(DType type, int64_t outputs) {
  switch (type) {
    case DType::kQ8_0:
    case DType::kQ4_0:
      return outputs >= 64 ? kQuantNmse : kQuantFewOutputsNmse;
    default:  // f32, f16, bf16: exact weights, f32 accumulation
      return kFloatNmse;
  }
}

/// Two backends against each other. Float ops: both round in f32 but in different orders,
/// NMSE ~1e-13, bound kFloatNmse. Q8_0/Q4_0 mat_mul: both quantise the activations with the
/// same rule (src/quant quantize_row), so the integer block sums are identical and only the f32
/// accumulation order of the block products differs (~1e-13); 1e-9 is far above that yet far
/// below the ~1e-5 that a different activation rule (truncation, an unrounded scale) causes.
inline constexpr double kCrossBackendQuantNmse = 1e-9;

}  // namespace mixserve::conformance
