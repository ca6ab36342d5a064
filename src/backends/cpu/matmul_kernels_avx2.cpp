// AVX2/FMA/F16C matmul kernels. Tiles of R rows x T tokens share loads, but every output keeps its
// own accumulator and sees the same instruction sequence whatever the tile shape, so results never
// depend on n_tok, r0 or r1. Only intrinsics and functions of this file are used here (no shared
// inline templates), so no AVX2 code can leak into generic code through the linker.
#include <immintrin.h>

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

float half_to_float(const void* p) {
  uint16_t h;
  __builtin_memcpy(&h, p, sizeof(h));
  return _cvtsh_ss(h);
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

void quantize_q8_0(const float* x, BlockQ8_0* out, int64_t nb) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  for (int64_t b = 0; b < nb; ++b) {
    __m256 v[4];
    __m256 m = _mm256_setzero_ps();
    for (int i = 0; i < 4; ++i) {
      v[i] = _mm256_loadu_ps(x + b * kQK + 8 * i);
      m = _mm256_max_ps(m, _mm256_and_ps(v[i], abs_mask));
    }
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float d = _mm_cvtss_f32(m4) / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    out[b].d = quant::f32_to_fp16(d);
    const __m256 vid = _mm256_set1_ps(id);
    const __m256i i01 = _mm256_packs_epi32(round_away(_mm256_mul_ps(v[0], vid)),
                                           round_away(_mm256_mul_ps(v[1], vid)));
    const __m256i i23 = _mm256_packs_epi32(round_away(_mm256_mul_ps(v[2], vid)),
                                           round_away(_mm256_mul_ps(v[3], vid)));
    // packs works per 128-bit lane: restore element order with a final dword permutation.
    const __m256i q = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(i01, i23),
                                                  _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out[b].qs), q);
  }
}

void convert_activation_avx2(DType wtype, const float* x, void* dst, int64_t k) {
  if (wtype == DType::kQ8_0 || wtype == DType::kQ4_0) {
    quantize_q8_0(x, static_cast<BlockQ8_0*>(dst), k / kQK);
  } else {
    __builtin_memcpy(dst, x, static_cast<size_t>(k) * sizeof(float));
  }
}

// ---- Quantised weights (Q8_0, Q4_0) x Q8_0 activations, one block (8 int32 lanes) per step.
// Q4_0: maddubs(nibbles 0..15, x) + (-8 * sum of x per 4-byte group); Q8_0: maddubs(|w|, x * sign w).
// Then acc += float(isum) * (dw * dx).

struct alignas(32) XBlock {
  int8_t q[32];
  int32_t corr[8];  // -8 * (sum of each 4-byte group), for Q4_0
  float d[8];
};

void repack_x(const uint8_t* x, int64_t nb, XBlock* out) {
  const auto* blocks = reinterpret_cast<const BlockQ8_0*>(x);
  const __m256i ones8 = _mm256_set1_epi8(1);
  const __m256i ones16 = _mm256_set1_epi16(1);
  for (int64_t b = 0; b < nb; ++b) {
    const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blocks[b].qs));
    _mm256_store_si256(reinterpret_cast<__m256i*>(out[b].q), q);
    const __m256i sum = _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, q), ones16);
    _mm256_store_si256(reinterpret_cast<__m256i*>(out[b].corr), _mm256_slli_epi32(
        _mm256_sub_epi32(_mm256_setzero_si256(), sum), 3));
    _mm256_store_ps(out[b].d, _mm256_set1_ps(half_to_float(&blocks[b].d)));
  }
}

struct Q4Weights {
  static constexpr size_t kBlockBytes = sizeof(quant::BlockQ4_0);
  // a: the unsigned operand; sw: unused for Q4_0.
  static inline void load(const uint8_t* p, __m256i& a, __m256i& sw, __m256& dw) {
    const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2));
    const __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(raw), _mm_srli_epi16(raw, 4), 1);
    a = _mm256_and_si256(both, _mm256_set1_epi8(0x0F));
    sw = a;
    dw = _mm256_set1_ps(half_to_float(p));
  }
  static inline __m256i isum(__m256i a, __m256i, const XBlock& xb, __m256i xq) {
    const __m256i prod = _mm256_madd_epi16(_mm256_maddubs_epi16(a, xq), _mm256_set1_epi16(1));
    return _mm256_add_epi32(prod, _mm256_load_si256(reinterpret_cast<const __m256i*>(xb.corr)));
  }
};

struct Q8Weights {
  static constexpr size_t kBlockBytes = sizeof(BlockQ8_0);
  static inline void load(const uint8_t* p, __m256i& a, __m256i& sw, __m256& dw) {
    sw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 2));
    a = _mm256_abs_epi8(sw);
    dw = _mm256_set1_ps(half_to_float(p));
  }
  static inline __m256i isum(__m256i a, __m256i sw, const XBlock&, __m256i xq) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(a, _mm256_sign_epi8(xq, sw)), _mm256_set1_epi16(1));
  }
};

template <class W, int R, int T>
void q_tile(const uint8_t* w, size_t wrb, const XBlock* xs, int64_t nb, float* y, int64_t ys) {
  __m256 acc[R][T];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
  }
  for (int64_t b = 0; b < nb; ++b) {
    __m256i a[R];
    __m256i sw[R];
    __m256 dw[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) W::load(w + r * wrb + b * W::kBlockBytes, a[r], sw[r], dw[r]);
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      const XBlock& xb = xs[t * nb + b];
      const __m256i xq = _mm256_load_si256(reinterpret_cast<const __m256i*>(xb.q));
      const __m256 dx = _mm256_load_ps(xb.d);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const __m256 f = _mm256_cvtepi32_ps(W::isum(a[r], sw[r], xb, xq));
        acc[r][t] = _mm256_fmadd_ps(f, _mm256_mul_ps(dw[r], dx), acc[r][t]);
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int t = 0; t < T; ++t) y[t * ys + r] = hsum(acc[r][t]);
  }
}

template <class W, int R>
void q_tile_tokens(const uint8_t* w, size_t wrb, const XBlock* xs, int64_t nb, int64_t n_tok,
                   float* y, int64_t ys) {
  int64_t t = 0;
  for (; t + 2 <= n_tok; t += 2) q_tile<W, R, 2>(w, wrb, xs + t * nb, nb, y + t * ys, ys);
  if (t < n_tok) q_tile<W, R, 1>(w, wrb, xs + t * nb, nb, y + t * ys, ys);
}

constexpr size_t kPanelBytes = 384 * 1024;
constexpr int64_t kMaxPanel = 64;

template <class W>
void matmul_q(int64_t k, const uint8_t* w, size_t wrb, int64_t r0, int64_t r1, const uint8_t* x,
              size_t xrb, int64_t n_tok, float* y, int64_t ys) {
  const int64_t nb = k / kQK;
  const auto row_bytes = static_cast<int64_t>(nb * sizeof(XBlock));
  const int64_t panel = min_i64(n_tok, max_i64(1, min_i64(kMaxPanel, kPanelBytes / row_bytes)));
  auto* xs = static_cast<XBlock*>(matmul_scratch(static_cast<size_t>(panel * row_bytes)));
  for (int64_t t0 = 0; t0 < n_tok; t0 += panel) {
    const int64_t tp = min_i64(panel, n_tok - t0);
    for (int64_t t = 0; t < tp; ++t) repack_x(x + (t0 + t) * xrb, nb, xs + t * nb);
    float* yp = y + t0 * ys;
    int64_t r = r0;
    if (tp == 1) {
      for (; r + 4 <= r1; r += 4) q_tile<W, 4, 1>(w + r * wrb, wrb, xs, nb, yp + r, ys);
    } else {
      for (; r + 2 <= r1; r += 2) q_tile_tokens<W, 2>(w + r * wrb, wrb, xs, nb, tp, yp + r, ys);
    }
    for (; r < r1; ++r) q_tile_tokens<W, 1>(w + r * wrb, wrb, xs, nb, tp, yp + r, ys);
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
      return matmul_q<Q4Weights>(k, wb, w_row_bytes, r0, r1, xb, x_row_bytes, n_tok, y, y_stride);
    case DType::kQ8_0:
      return matmul_q<Q8Weights>(k, wb, w_row_bytes, r0, r1, xb, x_row_bytes, n_tok, y, y_stride);
    case DType::kF16:
      return matmul_f<F16Weights>(k, wb, w_row_bytes, r0, r1, xb, x_row_bytes, n_tok, y, y_stride);
    case DType::kBF16:
      return matmul_f<BF16Weights>(k, wb, w_row_bytes, r0, r1, xb, x_row_bytes, n_tok, y, y_stride);
    default:
      return matmul_f<F32Weights>(k, wb, w_row_bytes, r0, r1, xb, x_row_bytes, n_tok, y, y_stride);
  }
}

}  // namespace

const MatmulKernelTable kMatmulKernelsAvx2 = {"avx2", convert_activation_avx2, matmul_rows_avx2, nullptr};

}  // namespace mixserve::cpu
