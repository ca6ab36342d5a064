// Internal to the AVX-512 quantised matmul kernels: matmul_quant_avx512.cpp (entry, and tiles for
// batches of more than 16 tokens), matmul_small_batch_avx512.cpp (1-16 tokens). Include only from
// *_avx512.cpp files: the inline helpers use AVX-512 and live in an anonymous namespace, so no
// copy can leak into generic code.
//
// The arithmetic of every output is fixed, so results never depend on n_tok, r0, r1 or whether
// the rows are packed (weight_packing.h):
//   isum_b = exact integer dot product of block b (vpdpbusd: unsigned weights x signed
//   activations; Q4_0 supplies its nibbles 0..15, Q8_0 w + 128, and the matching correction,
//   -8 or -128 times the sum of the activation block's values, is added to the integer sum);
//   16 partial sums P_l: block b goes to partial l where lane_block[l] == b % 16 (a per-format
//   table, the order an earlier one-token reduction left blocks in), each running over its blocks in
//   increasing order from +0: P_l = fma(float(isum_b), dw_b * dx_b, P_l);
//   y = the partials added in hsum's fixed tree.
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "backends/cpu/weight_packing.h"
#include "common/dtype.h"
#include "quant/quant.h"

namespace mixserve::cpu {
namespace {

constexpr int64_t kQKBlock = quant::kQK;
constexpr int64_t kXBlockBytes = sizeof(quant::BlockQ8_0);

/// Partial l of a Q4_0 output sums blocks b with b % 16 == kLaneBlockQ4[l] (the packed layout
/// stores a group's blocks in this order, so both layouts accumulate alike).
constexpr const int32_t (&kLaneBlockQ4)[16] = kPackedOrderQ4;
/// Partial l of a Q8_0 output sums blocks b with b % 16 == kLaneBlockQ8[l].
constexpr const int32_t (&kLaneBlockQ8)[16] = kPackedOrderQ8;

inline int64_t min_i64(int64_t a, int64_t b) { return a < b ? a : b; }
inline int64_t max_i64(int64_t a, int64_t b) { return a > b ? a : b; }

inline int32_t load_i32(const uint8_t* p) {
  int32_t v;
  __builtin_memcpy(&v, p, sizeof(v));
  return v;
}

/// The first n bytes of 64 (all when n >= 64, none when n <= 0).
inline __mmask64 first_bytes(int64_t n) {
  return n >= 64 ? ~0ull : n <= 0 ? 0ull : (1ull << n) - 1;
}

/// Lane position p of a 16-row (or 16-block) transposition holds row kLaneRow[p] (the Q4_0 order).
alignas(64) constexpr int32_t kLaneRow[16] = {0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15};

/// Rows 4q..4q+3 (p points at row 4q), 16 bytes each, one per 128-bit lane; rows at or beyond
/// n_rows (counted from row 4q) read as zeros when !kFull.
template <bool kFull>
inline __m512i load_rows_x4(const uint8_t* p, size_t stride, int n_rows) {
  const auto row = [&](int l) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + l * stride)); };
  if (kFull) {
    const __m512i z = _mm512_castsi128_si512(row(0));
    return _mm512_inserti32x4(_mm512_inserti32x4(_mm512_inserti32x4(z, row(1), 1), row(2), 2), row(3), 3);
  }
  __m512i z = _mm512_setzero_si512();
  if (n_rows > 0) z = _mm512_inserti32x4(z, row(0), 0);
  if (n_rows > 1) z = _mm512_inserti32x4(z, row(1), 1);
  if (n_rows > 2) z = _mm512_inserti32x4(z, row(2), 2);
  if (n_rows > 3) z = _mm512_inserti32x4(z, row(3), 3);
  return z;
}

/// 16 bytes of each of 16 rows at p + row * stride as dword groups: u[j] lane 4L+q = dword j of
/// row 4q+L (lane p holds row kLaneRow[p]).
template <bool kFull>
inline void load_transposed(const uint8_t* p, size_t stride, int n_rows, __m512i (&u)[4]) {
  __m512i z[4];
#pragma GCC unroll 4
  for (int q = 0; q < 4; ++q) z[q] = load_rows_x4<kFull>(p + q * 4 * stride, stride, n_rows - 4 * q);
  const __m512i t0 = _mm512_unpacklo_epi32(z[0], z[1]);
  const __m512i t1 = _mm512_unpackhi_epi32(z[0], z[1]);
  const __m512i t2 = _mm512_unpacklo_epi32(z[2], z[3]);
  const __m512i t3 = _mm512_unpackhi_epi32(z[2], z[3]);
  u[0] = _mm512_unpacklo_epi64(t0, t2);
  u[1] = _mm512_unpackhi_epi64(t0, t2);
  u[2] = _mm512_unpacklo_epi64(t1, t3);
  u[3] = _mm512_unpackhi_epi64(t1, t3);
}

/// The unsigned dot-product operands of 16 blocks (or of one block of 16 rows), lane p holding
/// block (row) kLaneRow[p]: a[j] for j < 4 from elements 4j..4j+3, a[4 + j] from 16+4j..16+4j+3.
/// GGUF layout: blocks (rows) at blk + i * stride; packed layout: one group of 16 blocks.
struct Q4Operands {
  static constexpr size_t kBlockBytes = sizeof(quant::BlockQ4_0);
  static constexpr int kCorr = 8;
  static constexpr const int32_t* kLaneBlock = kLaneBlockQ4;
  static constexpr int kPackedRegs = 4;
  static inline void split(const __m512i (&u)[4], __m512i (&a)[8]) {
    const __m512i low4 = _mm512_set1_epi8(0x0F);
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      a[j] = _mm512_and_si512(u[j], low4);
      a[4 + j] = _mm512_and_si512(_mm512_srli_epi16(u[j], 4), low4);
    }
  }
  template <bool kFull>
  static inline void transpose(const uint8_t* blk, size_t stride, int n_rows, __m512i (&a)[8]) {
    __m512i u[4];
    load_transposed<kFull>(blk + 2, stride, n_rows, u);
    split(u, a);
  }
  /// From a packed group's registers already loaded (u[j] = register j).
  static inline void from_regs(const __m512i (&u)[8], __m512i (&a)[8]) {
    const __m512i(&u4)[4] = reinterpret_cast<const __m512i(&)[4]>(u);
    split(u4, a);
  }
  /// From the registers of a packed group (u[j] = register j).
  static inline void from_packed(const uint8_t* regs, __m512i (&a)[8]) {
    __m512i u[4];
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      u[j] = _mm512_loadu_si512(regs + 64 * j);
      asm("" : "+v"(u[j]));  // one load for both nibbles, not a memory operand of each
    }
    split(u, a);
  }
  /// from_packed_scaled leaves a[4..7] (the high nibbles) times 2^kScaledShift: a sum of products
  /// with them shifted right by kScaledShift is exact (every term is a multiple of 16).
  static constexpr int kScaledShift = 4;
  /// As from_packed, but the high nibbles stay in place (u & 0xF0): one instruction a register
  /// instead of two.
  static inline void from_packed_scaled(const uint8_t* regs, __m512i (&a)[8]) {
    const __m512i low4 = _mm512_set1_epi8(0x0F);
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      __m512i u = _mm512_loadu_si512(regs + 64 * j);
      asm("" : "+v"(u));
      a[j] = _mm512_and_si512(u, low4);
      a[4 + j] = _mm512_andnot_si512(low4, u);
    }
  }
};

struct Q8Operands {
  static constexpr size_t kBlockBytes = sizeof(quant::BlockQ8_0);
  static constexpr int kCorr = 128;
  static constexpr const int32_t* kLaneBlock = kLaneBlockQ8;
  static constexpr int kPackedRegs = 8;
  template <bool kFull>
  static inline void transpose(const uint8_t* blk, size_t stride, int n_rows, __m512i (&a)[8]) {
    const __m512i bias = _mm512_set1_epi8(static_cast<char>(0x80));
    __m512i u[4];
    load_transposed<kFull>(blk + 2, stride, n_rows, u);
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) a[j] = _mm512_xor_si512(u[j], bias);
    load_transposed<kFull>(blk + 18, stride, n_rows, u);
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) a[4 + j] = _mm512_xor_si512(u[j], bias);
  }
  static inline void from_regs(const __m512i (&u)[8], __m512i (&a)[8]) {
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) a[j] = u[j];  // stored as q + 128
  }
  static inline void from_packed(const uint8_t* regs, __m512i (&a)[8]) {
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) a[j] = _mm512_loadu_si512(regs + 64 * j);  // stored as q + 128
  }
  static constexpr int kScaledShift = 0;
  static inline void from_packed_scaled(const uint8_t* regs, __m512i (&a)[8]) {
    from_packed(regs, a);
  }
};

/// A packed partial group of m < 16 blocks (weight_packing.h: the m scales, then register j's m
/// dwords at byte 2m + 4mj, slot s holding the block of the s-th lane, in increasing lane order,
/// whose block exists): the operands as from_packed gives them for a whole group, and the block
/// scales (returned), in the lanes of their blocks; zeros in the lanes of absent blocks. Reads
/// only the group's bytes.
template <class Ops>
inline __m512 packed_partial_group(const uint8_t* grp, int m, __m512i (&a)[8]) {
  const __mmask16 present = _mm512_cmplt_epi32_mask(_mm512_load_si512(Ops::kLaneBlock), _mm512_set1_epi32(m));
  const auto first = static_cast<__mmask16>((1u << m) - 1);
  __m512i u[8];
#pragma GCC unroll 8
  for (int j = 0; j < 8; ++j) {
    u[j] = j < Ops::kPackedRegs
               ? _mm512_maskz_expand_epi32(present, _mm512_maskz_loadu_epi32(first, grp + 2 * m + 4 * m * j))
               : _mm512_setzero_si512();
  }
  Ops::from_regs(u, a);
  return _mm512_maskz_expand_ps(present, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(first, grp)));
}

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

/// 1 to 16 tokens (matmul_small_batch_avx512.cpp): y[t * ys + r] for r in [r0, r1), weights in the
/// GGUF layout or packed (weight_packing.h). Returns false (computing nothing) when the batch is
/// better served by the tiles of matmul_quant_avx512.cpp.
bool small_batch_quant_avx512(DType wtype, bool packed, int64_t k, const uint8_t* w, size_t wrb, int64_t r0, int64_t r1,
                              const uint8_t* x, size_t xrb, int64_t n_tok, float* y, int64_t ys);

}  // namespace mixserve::cpu
