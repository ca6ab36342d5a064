// AVX-512 (F/BW/VL) variant of the vector kernels. Compiled with AVX-512 enabled; reached only
// through kVectorKernelsAvx512 after vector_kernels_avx512() has checked the CPU.
// GCC 12's AVX-512 headers trip -Wuninitialized on their own _mm512_undefined_* helpers when
// inlined (GCC bug 105593, fixed in 12.3/13); the warning says nothing about this file.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cmath>
#include <cstdint>

#include "backends/cpu/attention_grouped.h"
#include "backends/cpu/vector_variants.h"

namespace mixserve::cpu {
namespace {

constexpr int64_t kLanes = 16;

__mmask16 tail_mask(int64_t remaining) {
  return remaining >= kLanes ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << remaining) - 1u);
}

// exp(x) for float lanes. Method: x = n ln2 + r with |r| <= ln2/2 (Cody-Waite split of ln2, fused
// multiply-adds), e^r by its degree-7 Taylor polynomial (truncation < 8e-9 relative, ~0.06 ulp),
// then scaling by 2^n in two steps so that results down into the subnormal range are right.
// Measured: at most 1 ulp from the correctly rounded result over a 264k-point sweep of [-104, 89]
// (subnormal results included); tests/unit/test_vector_kernels.cpp holds it to 2 ulp.
// exp(-inf) = 0, exp(+inf) = +inf, results above FLT_MAX are +inf, NaN stays NaN.
__m512 exp_ps(__m512 x) {
  const __m512 lo = _mm512_set1_ps(-104.0f);  // below: the result rounds to 0
  const __m512 hi = _mm512_set1_ps(89.0f);    // above: the result is +inf
  // max/min return their second operand when one is NaN, so NaN inputs pass through.
  const __m512 t = _mm512_min_ps(hi, _mm512_max_ps(lo, x));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(t, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), t);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187045e-6f), r);
  __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  // n in [-150, 128] splits into two halves in [-75, 64], each a normal power of two.
  const __m512i ni = _mm512_cvtps_epi32(n);
  const __m512i n1 = _mm512_srai_epi32(ni, 1);
  const __m512i n2 = _mm512_sub_epi32(ni, n1);
  const __m512i bias = _mm512_set1_epi32(127);
  const __m512 s1 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n1, bias), 23));
  const __m512 s2 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n2, bias), 23));
  return _mm512_mul_ps(_mm512_mul_ps(p, s1), s2);
}

void exp_avx512(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; i += kLanes) {
    const __mmask16 m = tail_mask(n - i);
    _mm512_mask_storeu_ps(y + i, m, exp_ps(_mm512_maskz_loadu_ps(m, x + i)));
  }
}

// Sum of squares in double (two 8-lane halves per vector): no overflow for any finite x and an
// error far below float rounding, so y is accurate to a few float ulp whatever n is.
void rms_norm_avx512(const float* x, const float* w, float* y, int64_t n, float eps) {
  __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd();
  __m512d a2 = _mm512_setzero_pd(), a3 = _mm512_setzero_pd();
  int64_t i = 0;
  for (; i + 2 * kLanes <= n; i += 2 * kLanes) {
    const __m512 x0 = _mm512_loadu_ps(x + i), x1 = _mm512_loadu_ps(x + i + kLanes);
    const __m512d d0 = _mm512_cvtps_pd(_mm512_castps512_ps256(x0));
    const __m512d d1 = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x0), 1)));
    const __m512d d2 = _mm512_cvtps_pd(_mm512_castps512_ps256(x1));
    const __m512d d3 = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x1), 1)));
    a0 = _mm512_fmadd_pd(d0, d0, a0);
    a1 = _mm512_fmadd_pd(d1, d1, a1);
    a2 = _mm512_fmadd_pd(d2, d2, a2);
    a3 = _mm512_fmadd_pd(d3, d3, a3);
  }
  for (; i < n; i += kLanes) {
    const __m512 xv = _mm512_maskz_loadu_ps(tail_mask(n - i), x + i);
    const __m512d d0 = _mm512_cvtps_pd(_mm512_castps512_ps256(xv));
    const __m512d d1 = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(xv), 1)));
    a0 = _mm512_fmadd_pd(d0, d0, a0);
    a1 = _mm512_fmadd_pd(d1, d1, a1);
  }
  const double sum = _mm512_reduce_add_pd(_mm512_add_pd(_mm512_add_pd(a0, a1), _mm512_add_pd(a2, a3)));
  const __m512 scale = _mm512_set1_ps(static_cast<float>(1.0 / std::sqrt(sum / static_cast<double>(n) + eps)));
  for (i = 0; i < n; i += kLanes) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 xv = _mm512_maskz_loadu_ps(m, x + i);
    const __m512 wv = _mm512_maskz_loadu_ps(m, w + i);
    _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(_mm512_mul_ps(xv, scale), wv));
  }
}

void rope_avx512(float* x, int64_t head_dim, int64_t n_heads, int64_t n_rot, int64_t pos, float freq_base, bool neox) {
  const RopeTable t = rope_table(pos, n_rot, freq_base);
  const int64_t half = n_rot / 2;
  for (int64_t h = 0; h < n_heads; ++h) {
    float* head = x + h * head_dim;
    if (!neox) {
      // Lanes hold (x0, x1) pairs; swapping neighbours gives (x1, x0), and with the table's
      // (-s, +s) signs one FMA yields (x0 c - x1 s, x1 c + x0 s). n_rot is even: no pair splits.
      for (int64_t i = 0; i < n_rot; i += kLanes) {
        const __mmask16 m = tail_mask(n_rot - i);
        const __m512 xv = _mm512_maskz_loadu_ps(m, head + i);
        const __m512 c = _mm512_maskz_loadu_ps(m, t.cos_pairs + i);
        const __m512 s = _mm512_maskz_loadu_ps(m, t.sin_signed + i);
        const __m512 swapped = _mm512_permute_ps(xv, 0xB1);
        _mm512_mask_storeu_ps(head + i, m, _mm512_fmadd_ps(xv, c, _mm512_mul_ps(swapped, s)));
      }
    } else {
      for (int64_t i = 0; i < half; i += kLanes) {
        const __mmask16 m = tail_mask(half - i);
        const __m512 a = _mm512_maskz_loadu_ps(m, head + i);
        const __m512 b = _mm512_maskz_loadu_ps(m, head + half + i);
        const __m512 c = _mm512_maskz_loadu_ps(m, t.cos + i);
        const __m512 s = _mm512_maskz_loadu_ps(m, t.sin + i);
        _mm512_mask_storeu_ps(head + i, m, _mm512_fmsub_ps(a, c, _mm512_mul_ps(b, s)));
        _mm512_mask_storeu_ps(head + half + i, m, _mm512_fmadd_ps(b, c, _mm512_mul_ps(a, s)));
      }
    }
  }
}

void softmax_avx512(float* x, int64_t n) {
  const __m512 neg_inf = _mm512_set1_ps(-INFINITY);
  __m512 m0 = neg_inf, m1 = neg_inf, m2 = neg_inf, m3 = neg_inf;
  int64_t i = 0;
  for (; i + 4 * kLanes <= n; i += 4 * kLanes) {
    m0 = _mm512_max_ps(m0, _mm512_loadu_ps(x + i));
    m1 = _mm512_max_ps(m1, _mm512_loadu_ps(x + i + kLanes));
    m2 = _mm512_max_ps(m2, _mm512_loadu_ps(x + i + 2 * kLanes));
    m3 = _mm512_max_ps(m3, _mm512_loadu_ps(x + i + 3 * kLanes));
  }
  for (; i < n; i += kLanes) {
    m0 = _mm512_max_ps(m0, _mm512_mask_loadu_ps(neg_inf, tail_mask(n - i), x + i));
  }
  const float max = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_max_ps(m0, m1), _mm512_max_ps(m2, m3)));
  if (max == -INFINITY) {
    softmax_all_masked(x, n);
    return;
  }
  const __m512 mv = _mm512_set1_ps(max);
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
  __m512 s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
  for (i = 0; i + 4 * kLanes <= n; i += 4 * kLanes) {
    const __m512 e0 = exp_ps(_mm512_sub_ps(_mm512_loadu_ps(x + i), mv));
    const __m512 e1 = exp_ps(_mm512_sub_ps(_mm512_loadu_ps(x + i + kLanes), mv));
    const __m512 e2 = exp_ps(_mm512_sub_ps(_mm512_loadu_ps(x + i + 2 * kLanes), mv));
    const __m512 e3 = exp_ps(_mm512_sub_ps(_mm512_loadu_ps(x + i + 3 * kLanes), mv));
    _mm512_storeu_ps(x + i, e0);
    _mm512_storeu_ps(x + i + kLanes, e1);
    _mm512_storeu_ps(x + i + 2 * kLanes, e2);
    _mm512_storeu_ps(x + i + 3 * kLanes, e3);
    s0 = _mm512_add_ps(s0, e0);
    s1 = _mm512_add_ps(s1, e1);
    s2 = _mm512_add_ps(s2, e2);
    s3 = _mm512_add_ps(s3, e3);
  }
  for (; i < n; i += kLanes) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 e = exp_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), mv));
    _mm512_mask_storeu_ps(x + i, m, e);
    s0 = _mm512_mask_add_ps(s0, m, s0, e);
  }
  const float sum = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
  const __m512 inv = _mm512_set1_ps(static_cast<float>(1.0 / static_cast<double>(sum)));
  for (i = 0; i < n; i += kLanes) {
    const __mmask16 m = tail_mask(n - i);
    _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), inv));
  }
}

// silu(g) = g * sigmoid(g), sigmoid from e = exp(-|g|) as in the scalar variant (no overflow).
void swiglu_avx512(const float* gate, const float* up, float* y, int64_t n) {
  const __m512 one = _mm512_set1_ps(1.0f);
  const __m512 zero = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += kLanes) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 g = _mm512_maskz_loadu_ps(m, gate + i);
    const __m512 u = _mm512_maskz_loadu_ps(m, up + i);
    const __m512 e = exp_ps(_mm512_sub_ps(zero, _mm512_abs_ps(g)));
    const __m512 num = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(g, zero, _CMP_GE_OQ), e, one);
    const __m512 sigmoid = _mm512_div_ps(num, _mm512_add_ps(one, e));
    _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(_mm512_mul_ps(g, sigmoid), u));
  }
}

void add_avx512(const float* a, const float* b, float* y, int64_t n) {
  for (int64_t i = 0; i < n; i += kLanes) {
    const __mmask16 m = tail_mask(n - i);
    _mm512_mask_storeu_ps(y + i, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i)));
  }
}

void to_half_avx512(const float* x, Half* y, int64_t n) {
  for (int64_t i = 0; i < n; i += kLanes) {
    const __mmask16 m = tail_mask(n - i);
    _mm256_mask_storeu_epi16(y + i, m, _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, x + i), _MM_FROUND_TO_NEAREST_INT));
  }
}

// The four sums of a0..a3 (each over its lanes: the pairs 4L+(0,2) and 4L+(1,3) of each 128-bit
// lane L, then those two, then lanes 0+2 and 1+3, then the two), times scale.
void store_sums4(__m512 a0, __m512 a1, __m512 a2, __m512 a3, float scale, float* out) {
  const __m512 t01 = _mm512_add_ps(_mm512_unpacklo_ps(a0, a1), _mm512_unpackhi_ps(a0, a1));
  const __m512 t23 = _mm512_add_ps(_mm512_unpacklo_ps(a2, a3), _mm512_unpackhi_ps(a2, a3));
  const __m512 lo = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t01), _mm512_castps_pd(t23)));
  const __m512 hi = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t01), _mm512_castps_pd(t23)));
  const __m512 s = _mm512_add_ps(lo, hi);  // 128-bit lane L: the four sums of its lanes
  const __m256 s2 =
      _mm256_add_ps(_mm512_castps512_ps256(s), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(s), 1)));
  const __m128 sums = _mm_add_ps(_mm256_castps256_ps128(s2), _mm256_extractf128_ps(s2, 1));
  _mm_storeu_ps(out, _mm_mul_ps(sums, _mm_set1_ps(scale)));
}

// The vector type of attention_grouped.h: 16 floats.
struct Avx512Floats {
  using V = __m512;
  using M = __mmask16;
  static constexpr int64_t kLanes = 16;
  static M tail(int64_t remaining) { return tail_mask(remaining); }
  static V zero() { return _mm512_setzero_ps(); }
  static V set1(float x) { return _mm512_set1_ps(x); }
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static V load_masked(const float* p, M m) { return _mm512_maskz_loadu_ps(m, p); }
  static V load(const Half* p) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
  static V load_masked(const Half* p, M m) { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p)); }
  // 16 elements of a Q8_0 block (at 0 or 16): float(q) * d, as quant::dequantize_row.
  static V load(Q8Row r) {
    return q8_values(_mm_loadu_si128(reinterpret_cast<const __m128i*>(r.block + 2 + r.at)), r.block);
  }
  static V load_masked(Q8Row r, M m) { return q8_values(_mm_maskz_loadu_epi8(m, r.block + 2 + r.at), r.block); }
  static V q8_values(__m128i q, const uint8_t* block) {
    uint16_t d;
    __builtin_memcpy(&d, block, sizeof(d));
    return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)), _mm512_set1_ps(_cvtsh_ss(d)));
  }
  static V load_aligned(const float* p) { return _mm512_load_ps(p); }
  static V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static void store_aligned(float* p, V v) { _mm512_store_ps(p, v); }
  static void store_masked(float* p, M m, V v) { _mm512_mask_storeu_ps(p, m, v); }
  static void keep(V& v) { asm("" : "+v"(v)); }
  static void store_sums4(V a0, V a1, V a2, V a3, float scale, float* out) {
    cpu::store_sums4(a0, a1, a2, a3, scale, out);
  }
  static float hsum(V v) { return _mm512_reduce_add_ps(v); }
  static void softmax(float* x, int64_t n) { softmax_avx512(x, n); }
};

}  // namespace

const VectorKernelTable kVectorKernelsAvx512 = {
    "avx512",
    rms_norm_avx512,
    rope_avx512,
    softmax_avx512,
    swiglu_avx512,
    add_avx512,
    attention_head_grouped<Avx512Floats, const float*>,
    exp_avx512,
    attention_queries_grouped<Avx512Floats, const float*>,
    attention_head_grouped<Avx512Floats, const Half*>,
    attention_queries_grouped<Avx512Floats, const Half*>,
    attention_head_grouped<Avx512Floats, Q8Row>,
    attention_queries_grouped<Avx512Floats, Q8Row>,
    to_half_avx512,
};

}  // namespace mixserve::cpu
