// Internal to the AVX-512 quantised matmul kernels (matmul_quant_avx512.cpp for batches,
// matmul_decode_avx512.cpp for one token). Include only from *_avx512.cpp files: the inline
// helpers use AVX-512 and live in an anonymous namespace, so no copy can leak into generic code.
//
// The arithmetic of every output is fixed, so results never depend on n_tok, r0 or r1:
//   isum_b = exact integer dot product of block b (vpdpbusd: unsigned weights x signed
//   activations; Q4_0 supplies its nibbles 0..15, Q8_0 w + 128, and the matching correction,
//   -8 or -128 times the sum of the activation block's values, is added to the integer sum);
//   16 partial sums P_l: block b goes to partial l where lane_block[l] == b % 16 (a per-format
//   table, the order the decode reduction leaves blocks in), each running over its blocks in
//   increasing order from +0: P_l = fma(float(isum_b), dw_b * dx_b, P_l);
//   y = the partials added in hsum's fixed tree.
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "common/dtype.h"
#include "quant/quant.h"

namespace mixserve::cpu {
namespace {

constexpr int64_t kQKBlock = quant::kQK;
constexpr int64_t kXBlockBytes = sizeof(quant::BlockQ8_0);

/// Partial l of a Q4_0 output sums blocks b with b % 16 == kLaneBlockQ4[l].
alignas(64) constexpr int32_t kLaneBlockQ4[16] = {0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15};
/// Partial l of a Q8_0 output sums blocks b with b % 16 == kLaneBlockQ8[l].
alignas(64) constexpr int32_t kLaneBlockQ8[16] = {0, 2, 4, 6, 1, 3, 5, 7, 8, 10, 12, 14, 9, 11, 13, 15};

inline int64_t min_i64(int64_t a, int64_t b) { return a < b ? a : b; }
inline int64_t max_i64(int64_t a, int64_t b) { return a > b ? a : b; }

/// Fixed-order horizontal sum: lanes (i, i+8), then (i, i+4), (i, i+2), (0, 1).
inline float hsum(__m512 v) {
  const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
  const __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(v), hi);
  __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  s4 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  s4 = _mm_add_ss(s4, _mm_movehdup_ps(s4));
  return _mm_cvtss_f32(s4);
}

/// The fp16 at p as a float.
inline float half_to_float(const uint8_t* p) {
  uint16_t h;
  __builtin_memcpy(&h, p, sizeof(h));
  return _cvtsh_ss(h);
}

/// Sum of a Q8_0 block's 32 values.
inline int32_t block_sum(const uint8_t* blk) {
  const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
  const __m256i biased = _mm256_xor_si256(q, _mm256_set1_epi8(static_cast<char>(0x80)));
  const __m256i s4 = _mm256_sad_epu8(biased, _mm256_setzero_si256());
  const __m128i s2 = _mm_add_epi64(_mm256_castsi256_si128(s4), _mm256_extracti128_si256(s4, 1));
  return static_cast<int32_t>(_mm_cvtsi128_si64(s2) + _mm_extract_epi64(s2, 1)) - 32 * 128;
}

}  // namespace

/// One token: y[r] for r in [r0, r1) (matmul_decode_avx512.cpp). x is one Q8_0 activation row.
void decode_quant_avx512(DType wtype, int64_t k, const uint8_t* w, size_t wrb, int64_t r0, int64_t r1,
                         const uint8_t* x, float* y);

}  // namespace mixserve::cpu
