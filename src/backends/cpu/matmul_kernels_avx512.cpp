// AVX-512 matmul kernels (F, BW, VL, VNNI): activation quantisation, float weights here,
// quantised weights in matmul_quant_avx512.cpp. Tiles of R rows x T tokens share weight and
// activation loads, but every output keeps its own accumulator and sees exactly the same
// instruction sequence whatever the tile shape, so results never depend on n_tok, r0 or r1.
// Shared helpers come from matmul_quant_avx512.h, whose anonymous namespace keeps every AVX-512
// function local to the AVX-512 translation units.
// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized on their own _mm512_undefined_* helpers
// when inlined (GCC bug 105593, fixed in 12.3/13); the warning says nothing about this file.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>

#include "backends/cpu/matmul_quant_avx512.h"
#include "backends/cpu/matmul_variants.h"
#include "backends/cpu/prefetch.h"
#include "quant/quant.h"

namespace mixserve::cpu {
namespace {

using quant::BlockQ8_0;
constexpr int64_t kQK = quant::kQK;

// Tokens go in panels whose activations stay in L2 while every row tile passes over them.
constexpr int64_t kPanelBytes = 384 * 1024;
constexpr int64_t kMaxPanel = 64;

// ---- Activation quantisation: byte-identical to quant::quantize_row(Q8_0) for finite input.

// round(v) with halves away from zero, as std::round: trunc, then step by one if |frac| >= 0.5.
inline __m512i round_away(__m512 v) {
  const __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m512 frac = _mm512_sub_ps(v, t);
  const __mmask16 step = _mm512_cmp_ps_mask(_mm512_abs_ps(frac), _mm512_set1_ps(0.5f), _CMP_GE_OQ);
  const __m512i sign = _mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(INT32_MIN));
  const __m512 one = _mm512_castsi512_ps(_mm512_or_si512(sign, _mm512_set1_epi32(0x3F800000)));
  return _mm512_cvtps_epi32(_mm512_mask_add_ps(t, step, t, one));
}

// Lane i of the result = max(lanes of m[i]) for 16 vectors, in a tree of lane-pair maxes: level
// by level each vector holds twice the blocks at half the partial maxes (max is exact, so the tree's
// order changes no bit).
inline __m512 block_maxes16(const __m512 (&m)[16]) {
  alignas(64) static constexpr int32_t kIndex[4][2][16] = {
      {{0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23},
       {8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31}},
      {{0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27},
       {4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31}},
      {{0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29},
       {2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31}},
      {{0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30},
       {1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31}}};
  __m512 v[16];
  for (int i = 0; i < 16; ++i) v[i] = m[i];
  int n = 16;
#pragma GCC unroll 4
  for (int level = 0; level < 4; ++level) {
    const __m512i lo = _mm512_load_si512(kIndex[level][0]);
    const __m512i hi = _mm512_load_si512(kIndex[level][1]);
    n /= 2;
#pragma GCC unroll 8
    for (int i = 0; i < n; ++i) {
      v[i] = _mm512_max_ps(_mm512_permutex2var_ps(v[2 * i], lo, v[2 * i + 1]),
                           _mm512_permutex2var_ps(v[2 * i], hi, v[2 * i + 1]));
    }
  }
  return v[0];
}

// Sixteen blocks at a time: their maxima gathered into one vector (block_maxes16), the scales
// d = amax / 127 and 1 / d computed as one vector each (the same IEEE divisions as the scalar code,
// so the same bits) and converted to fp16 together (vcvtps2ph rounds to nearest even, as
// quant::f32_to_fp16). Blocks past nb in the last group are zeros and not stored. Zen 5 VM,
// bench_matmul ConvertActivation (median of 5, twice): 2048 values 197-198 ns against 373-381 ns
// one block at a time with a call of f32_to_fp16 per block, 5632 values 548-555 against 1029-1045;
// TinyLlama Q4_0 decode, steps alternating between the two in one process (6 runs, both
// placements): median step time 0.992-0.997 of the old one's.
void quantize_q8_0(const float* x, BlockQ8_0* out, int64_t nb) {
  for (int64_t b = 0; b < nb; b += 16) {
    const int n = static_cast<int>(std::min<int64_t>(16, nb - b));
    __m512 m[16];
    for (int i = 0; i < 16; ++i) {
      m[i] = i < n ? _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(x + (b + i) * kQK)),
                                   _mm512_abs_ps(_mm512_loadu_ps(x + (b + i) * kQK + 16)))
                   : _mm512_setzero_ps();
    }
    const __m512 d = _mm512_div_ps(block_maxes16(m), _mm512_set1_ps(127.0f));
    const __mmask16 nonzero = _mm512_cmp_ps_mask(d, _mm512_setzero_ps(), _CMP_NEQ_UQ);
    alignas(64) float ids[16];
    _mm512_store_ps(ids, _mm512_maskz_div_ps(nonzero, _mm512_set1_ps(1.0f), d));
    alignas(32) uint16_t dh[16];
    _mm256_store_si256(reinterpret_cast<__m256i*>(dh), _mm512_cvtps_ph(d, _MM_FROUND_TO_NEAREST_INT));
    for (int i = 0; i < n; ++i) {
      const float* p = x + (b + i) * kQK;
      const __m512 vid = _mm512_set1_ps(ids[i]);
      out[b + i].d = dh[i];
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out[b + i].qs),
                       _mm512_cvtsepi32_epi8(round_away(_mm512_mul_ps(_mm512_loadu_ps(p), vid))));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out[b + i].qs + 16),
                       _mm512_cvtsepi32_epi8(round_away(_mm512_mul_ps(_mm512_loadu_ps(p + 16), vid))));
    }
  }
}

void convert_activation_avx512(DType wtype, const float* x, void* dst, int64_t k) {
  if (wtype == DType::kQ8_0 || wtype == DType::kQ4_0) {
    quantize_q8_0(x, static_cast<BlockQ8_0*>(dst), k / kQK);
  } else {
    __builtin_memcpy(dst, x, static_cast<size_t>(k) * sizeof(float));
  }
}

// ---- Float weights (F32, F16, BF16) x F32 activations: acc += w[j..j+16) * x[j..j+16).

struct F32Weights {
  static constexpr int64_t kBytes = 4;  // per element
  static __m512 load(const uint8_t* row, int64_t j) {
    return _mm512_loadu_ps(reinterpret_cast<const float*>(row) + j);
  }
  static __m512 load_tail(const uint8_t* row, int64_t j, __mmask16 m) {
    return _mm512_maskz_loadu_ps(m, reinterpret_cast<const float*>(row) + j);
  }
};

struct F16Weights {
  static constexpr int64_t kBytes = 2;  // per element
  static __m512 load(const uint8_t* row, int64_t j) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 2 * j)));
  }
  static __m512 load_tail(const uint8_t* row, int64_t j, __mmask16 m) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, row + 2 * j));
  }
};

struct BF16Weights {
  static constexpr int64_t kBytes = 2;  // per element
  static __m512 widen(__m256i h) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
  static __m512 load(const uint8_t* row, int64_t j) {
    return widen(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 2 * j)));
  }
  static __m512 load_tail(const uint8_t* row, int64_t j, __mmask16 m) {
    return widen(_mm256_maskz_loadu_epi16(m, row + 2 * j));
  }
};

// One token: the next tile's rows (R rows further) are prefetched, non-temporal, at the column being
// read, one line per 64 bytes of row: the tile's R adjacent rows are one region the hardware
// prefetchers did not keep ahead of (Zen 5 VM, F16 decode, steps alternating in one process at
// 51 GB/s probes: products 0.95 of the time for TinyLlama, 0.88-0.96 for Qwen2-0.5B's 896-wide rows;
// prefetching each row 4 KiB ahead instead helped the 896-wide rows but cost TinyLlama's 4 KiB rows
// 4-6%, as it fetched the next row of the same tile).
template <class W, int R, int T>
void f_tile(const uint8_t* w, size_t wrb, const uint8_t* x, size_t xrb, int64_t k, float* y, int64_t ys,
            bool prefetch_next) {
  __m512 acc[R][T];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) acc[r][t] = _mm512_setzero_ps();
  }
  int64_t j = 0;
  for (; j + 16 <= k; j += 16) {
    __m512 wv[R];
    if (T == 1 && prefetch_next && j * W::kBytes % 64 == 0) {
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) prefetch_nta(w + (R + r) * wrb + j * W::kBytes);
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) wv[r] = W::load(w + r * wrb, j);
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      const __m512 xv = _mm512_loadu_ps(reinterpret_cast<const float*>(x + t * xrb) + j);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) acc[r][t] = _mm512_fmadd_ps(wv[r], xv, acc[r][t]);
    }
  }
  if (j < k) {
    const auto m = static_cast<__mmask16>((1u << (k - j)) - 1);
    __m512 wv[R];
    for (int r = 0; r < R; ++r) wv[r] = W::load_tail(w + r * wrb, j, m);
    for (int t = 0; t < T; ++t) {
      const __m512 xv = _mm512_maskz_loadu_ps(m, reinterpret_cast<const float*>(x + t * xrb) + j);
      for (int r = 0; r < R; ++r) acc[r][t] = _mm512_fmadd_ps(wv[r], xv, acc[r][t]);
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int t = 0; t < T; ++t) y[t * ys + r] = hsum(acc[r][t]);
  }
}

template <class W, int R>
void f_tile_tokens(const uint8_t* w, size_t wrb, const uint8_t* x, size_t xrb, int64_t k, int64_t n_tok, float* y,
                   int64_t ys, bool prefetch_next) {
  int64_t t = 0;
  for (; t + 4 <= n_tok; t += 4) f_tile<W, R, 4>(w, wrb, x + t * xrb, xrb, k, y + t * ys, ys, false);
  switch (n_tok - t) {
    case 3: f_tile<W, R, 3>(w, wrb, x + t * xrb, xrb, k, y + t * ys, ys, false); break;
    case 2: f_tile<W, R, 2>(w, wrb, x + t * xrb, xrb, k, y + t * ys, ys, false); break;
    case 1: f_tile<W, R, 1>(w, wrb, x + t * xrb, xrb, k, y + t * ys, ys, prefetch_next); break;
    default: break;
  }
}

template <class W>
void matmul_f(int64_t k, const uint8_t* w, size_t wrb, int64_t r0, int64_t r1, const uint8_t* x,
              size_t xrb, int64_t n_tok, float* y, int64_t ys) {
  const int64_t panel = max_i64(1, min_i64(kMaxPanel, static_cast<int64_t>(kPanelBytes) / (4 * k)));
  for (int64_t t0 = 0; t0 < n_tok; t0 += panel) {
    const int64_t tp = min_i64(panel, n_tok - t0);
    const uint8_t* xp = x + t0 * xrb;
    float* yp = y + t0 * ys;
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4) f_tile_tokens<W, 4>(w + r * wrb, wrb, xp, xrb, k, tp, yp + r, ys, r + 8 <= r1);
    for (; r < r1; ++r) f_tile_tokens<W, 1>(w + r * wrb, wrb, xp, xrb, k, tp, yp + r, ys, false);
  }
}

void matmul_rows_avx512(DType wtype, int64_t k, const void* w, size_t w_row_bytes, int64_t r0,
                        int64_t r1, const void* x, size_t x_row_bytes, int64_t n_tok, float* y,
                        int64_t y_stride) {
  const auto* wb = static_cast<const uint8_t*>(w);
  const auto* xb = static_cast<const uint8_t*>(x);
  switch (wtype) {
    case DType::kQ4_0:
    case DType::kQ8_0:
      return matmul_quant_avx512(wtype, false, k, w, w_row_bytes, r0, r1, x, x_row_bytes, n_tok, y, y_stride);
    case DType::kF16:
      return matmul_f<F16Weights>(k, wb, w_row_bytes, r0, r1, xb, x_row_bytes, n_tok, y, y_stride);
    case DType::kBF16:
      return matmul_f<BF16Weights>(k, wb, w_row_bytes, r0, r1, xb, x_row_bytes, n_tok, y, y_stride);
    default:
      return matmul_f<F32Weights>(k, wb, w_row_bytes, r0, r1, xb, x_row_bytes, n_tok, y, y_stride);
  }
}

void matmul_packed_rows_avx512(DType wtype, int64_t k, const void* w, size_t w_row_bytes, int64_t r0, int64_t r1,
                               const void* x, size_t x_row_bytes, int64_t n_tok, float* y, int64_t y_stride) {
  matmul_quant_avx512(wtype, true, k, w, w_row_bytes, r0, r1, x, x_row_bytes, n_tok, y, y_stride);
}

}  // namespace

const MatmulKernelTable kMatmulKernelsAvx512 = {
    "avx512", convert_activation_avx512, matmul_rows_avx512, matmul_packed_rows_avx512, false, true};

}  // namespace mixserve::cpu
