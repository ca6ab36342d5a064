// AVX2/FMA/F16C matmul kernels: activation quantisation, float weights here, quantised weights in
// matmul_quant_avx2.cpp. Tiles of R rows x T tokens share loads, but every output keeps its
// own accumulator and sees the same instruction sequence whatever the tile shape, so results never
// depend on n_tok, r0 or r1. Only intrinsics and functions of this file are used here (no shared
// inline templates), so no AVX2 code can leak into generic code through the linker.
#include <immintrin.h>

#include "backends/cpu/lane_reduce_avx2.h"
#include "backends/cpu/matmul_variants.h"
#include "quant/quant.h"

namespace mixserve::cpu {
namespace {

using quant::BlockQ8_0;
constexpr int64_t kQK = quant::kQK;

int64_t min_i64(int64_t a, int64_t b) { return a < b ? a : b; }
int64_t max_i64(int64_t a, int64_t b) { return a > b ? a : b; }

// Fixed-order horizontal sum (the same in every kernel of this file).
inline float hsum(__m256 v) {
  __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s4 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  s4 = _mm_add_ss(s4, _mm_movehdup_ps(s4));
  return _mm_cvtss_f32(s4);
}

// ---- Activation quantisation: byte-identical to quant::quantize_row(Q8_0) for finite input.

// round(v) with halves away from zero, as std::round: trunc, then step by one if |frac| >= 0.5.
inline __m256i round_away(__m256 v) {
  const __m256 sign = _mm256_and_ps(v, _mm256_set1_ps(-0.0f));
  const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m256 frac = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), _mm256_sub_ps(v, t));
  const __m256 step = _mm256_and_ps(_mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ),
                                    _mm256_or_ps(sign, _mm256_set1_ps(1.0f)));
  return _mm256_cvtps_epi32(_mm256_add_ps(t, step));
}

// One block's values v (scale id) into out.
inline void store_q8(const __m256 (&v)[4], __m256 vid, BlockQ8_0& out) {
  const __m256i i01 = _mm256_packs_epi32(round_away(_mm256_mul_ps(v[0], vid)), round_away(_mm256_mul_ps(v[1], vid)));
  const __m256i i23 = _mm256_packs_epi32(round_away(_mm256_mul_ps(v[2], vid)), round_away(_mm256_mul_ps(v[3], vid)));
  // packs works per 128-bit lane: restore element order with a final dword permutation.
  const __m256i q =
      _mm256_permutevar8x32_epi32(_mm256_packs_epi16(i01, i23), _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out.qs), q);
}

// Eight blocks at a time: their scales d = amax / 127 and 1 / d computed as one vector each (the
// same IEEE divisions as the scalar code, so the same bits), converted to fp16 together (F16C
// rounds to nearest even, as quant::f32_to_fp16). Zen 3 VM, rows of 2048 and 5632 values, best of
// 50 x 1000 calls: one block at a time, with a call of f32_to_fp16 per block, 13.8 ns per block;
// with F16C alone 12.9; this 8.2-9.7.
void quantize_q8_0(const float* x, BlockQ8_0* out, int64_t nb) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  const auto block_max = [&](const float* p) {
    __m256 m = _mm256_setzero_ps();
    for (int i = 0; i < 4; ++i) m = _mm256_max_ps(m, _mm256_and_ps(_mm256_loadu_ps(p + 8 * i), abs_mask));
    return m;
  };
  int64_t b = 0;
  for (; b + 8 <= nb; b += 8) {
    __m256 m[8];
    for (int i = 0; i < 8; ++i) m[i] = block_max(x + (b + i) * kQK);
    const __m256 d = _mm256_div_ps(combine_lanes8(m, [](__m256 l, __m256 r) { return _mm256_max_ps(l, r); }),
                                   _mm256_set1_ps(127.0f));
    const __m256 nonzero = _mm256_cmp_ps(d, _mm256_setzero_ps(), _CMP_NEQ_UQ);
    const __m256 id = _mm256_and_ps(_mm256_div_ps(_mm256_set1_ps(1.0f), d), nonzero);
    alignas(16) uint16_t dh[8];
    _mm_store_si128(reinterpret_cast<__m128i*>(dh), _mm256_cvtps_ph(d, _MM_FROUND_TO_NEAREST_INT));
    alignas(32) float ids[8];
    _mm256_store_ps(ids, id);
    for (int i = 0; i < 8; ++i) {
      const float* p = x + (b + i) * kQK;
      const __m256 v[4] = {_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8), _mm256_loadu_ps(p + 16),
                           _mm256_loadu_ps(p + 24)};
      out[b + i].d = dh[i];
      store_q8(v, _mm256_set1_ps(ids[i]), out[b + i]);
    }
  }
  for (; b < nb; ++b) {
    const float* p = x + b * kQK;
    const __m256 m = block_max(p);
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float d = _mm_cvtss_f32(m4) / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    out[b].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
    const __m256 v[4] = {_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8), _mm256_loadu_ps(p + 16), _mm256_loadu_ps(p + 24)};
    store_q8(v, _mm256_set1_ps(id), out[b]);
  }
}

void convert_activation_avx2(DType wtype, const float* x, void* dst, int64_t k) {
  if (wtype == DType::kQ8_0 || wtype == DType::kQ4_0) {
    quantize_q8_0(x, static_cast<BlockQ8_0*>(dst), k / kQK);
  } else {
    __builtin_memcpy(dst, x, static_cast<size_t>(k) * sizeof(float));
  }
}

// ---- Float weights (F32, F16, BF16) x F32 activations: acc += w[j..j+8) * x[j..j+8).
// The k % 8 tail goes through zero-padded copies so it uses the same instructions.

struct F32Weights {
  static constexpr int kBytes = 4;
  static __m256 convert(const uint8_t* p) { return _mm256_loadu_ps(reinterpret_cast<const float*>(p)); }
};

struct F16Weights {
  static constexpr int kBytes = 2;
  static __m256 convert(const uint8_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
};

struct BF16Weights {
  static constexpr int kBytes = 2;
  static __m256 convert(const uint8_t* p) {
    const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
  }
};

template <class W, int R, int T>
void f_tile(const uint8_t* w, size_t wrb, const uint8_t* x, size_t xrb, int64_t k, float* y,
            int64_t ys) {
  __m256 acc[R][T];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
  }
  const int64_t k8 = k / 8 * 8;
  for (int64_t j = 0; j < k8; j += 8) {
    __m256 wv[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) wv[r] = W::convert(w + r * wrb + j * W::kBytes);
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      const __m256 xv = _mm256_loadu_ps(reinterpret_cast<const float*>(x + t * xrb) + j);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) acc[r][t] = _mm256_fmadd_ps(wv[r], xv, acc[r][t]);
    }
  }
  if (k8 < k) {
    const int64_t rest = k - k8;
    alignas(32) uint8_t wpad[32];
    alignas(32) float xpad[8];
    __m256 wv[R];
    for (int r = 0; r < R; ++r) {
      for (int i = 0; i < 32; ++i) wpad[i] = i < rest * W::kBytes ? w[r * wrb + k8 * W::kBytes + i] : 0;
      wv[r] = W::convert(wpad);
    }
    for (int t = 0; t < T; ++t) {
      const auto* xt = reinterpret_cast<const float*>(x + t * xrb) + k8;
      for (int i = 0; i < 8; ++i) xpad[i] = i < rest ? xt[i] : 0.0f;
      const __m256 xv = _mm256_load_ps(xpad);
      for (int r = 0; r < R; ++r) acc[r][t] = _mm256_fmadd_ps(wv[r], xv, acc[r][t]);
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int t = 0; t < T; ++t) y[t * ys + r] = hsum(acc[r][t]);
  }
}

template <class W, int R>
void f_tile_tokens(const uint8_t* w, size_t wrb, const uint8_t* x, size_t xrb, int64_t k,
                   int64_t n_tok, float* y, int64_t ys) {
  int64_t t = 0;
  for (; t + 2 <= n_tok; t += 2) f_tile<W, R, 2>(w, wrb, x + t * xrb, xrb, k, y + t * ys, ys);
  if (t < n_tok) f_tile<W, R, 1>(w, wrb, x + t * xrb, xrb, k, y + t * ys, ys);
}

// Tokens go in panels whose activations stay in L2 while every row tile passes over them.
constexpr size_t kPanelBytes = 384 * 1024;
constexpr int64_t kMaxPanel = 64;

template <class W>
void matmul_f(int64_t k, const uint8_t* w, size_t wrb, int64_t r0, int64_t r1, const uint8_t* x,
              size_t xrb, int64_t n_tok, float* y, int64_t ys) {
  const int64_t panel = max_i64(1, min_i64(kMaxPanel, static_cast<int64_t>(kPanelBytes) / (4 * k)));
  for (int64_t t0 = 0; t0 < n_tok; t0 += panel) {
    const int64_t tp = min_i64(panel, n_tok - t0);
    const uint8_t* xp = x + t0 * xrb;
    float* yp = y + t0 * ys;
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4) f_tile_tokens<W, 4>(w + r * wrb, wrb, xp, xrb, k, tp, yp + r, ys);
    for (; r < r1; ++r) f_tile_tokens<W, 1>(w + r * wrb, wrb, xp, xrb, k, tp, yp + r, ys);
  }
}

void matmul_rows_avx2(DType wtype, int64_t k, const void* w, size_t w_row_bytes, int64_t r0,
                      int64_t r1, const void* x, size_t x_row_bytes, int64_t n_tok, float* y,
                      int64_t y_stride) {
  const auto* wb = static_cast<const uint8_t*>(w);
  const auto* xb = static_cast<const uint8_t*>(x);
  switch (wtype) {
    case DType::kQ4_0:
    case DType::kQ8_0:
      return matmul_quant_avx2(wtype, false, k, w, w_row_bytes, r0, r1, x, x_row_bytes, n_tok, y, y_stride);
    case DType::kF16:
      return matmul_f<F16Weights>(k, wb, w_row_bytes, r0, r1, xb, x_row_bytes, n_tok, y, y_stride);
    case DType::kBF16:
      return matmul_f<BF16Weights>(k, wb, w_row_bytes, r0, r1, xb, x_row_bytes, n_tok, y, y_stride);
    default:
      return matmul_f<F32Weights>(k, wb, w_row_bytes, r0, r1, xb, x_row_bytes, n_tok, y, y_stride);
  }
}

void matmul_packed_rows_avx2(DType wtype, int64_t k, const void* w, size_t w_row_bytes, int64_t r0, int64_t r1,
                             const void* x, size_t x_row_bytes, int64_t n_tok, float* y, int64_t y_stride) {
  matmul_quant_avx2(wtype, true, k, w, w_row_bytes, r0, r1, x, x_row_bytes, n_tok, y, y_stride);
}

// The quantised kernels arrange a small batch's activations once per thread and product
// (arranged_once in matmul_quant_avx2.cpp), so a batch's products can be split finely (cpu_stream.cpp
// has the measurements).
constexpr bool kQuantBatchSplitsFinely = true;
// The packed kernels read a row's last blocks (after its whole groups) in the GGUF layout.
constexpr bool kPackedTailBlocks = true;

}  // namespace

const MatmulKernelTable kMatmulKernelsAvx2 = {
    "avx2",           convert_activation_avx2, matmul_rows_avx2, matmul_packed_rows_avx2, kQuantBatchSplitsFinely,
    kPackedTailBlocks};

}  // namespace mixserve::cpu
