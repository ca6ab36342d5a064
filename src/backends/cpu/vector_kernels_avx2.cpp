// AVX2+FMA variant of the vector kernels. Compiled with AVX2 enabled; reached only through
// kVectorKernelsAvx2 after vector_kernels_avx2() has checked the CPU.
#include <immintrin.h>

#include <cmath>
#include <cstdint>

#include "backends/cpu/attention_grouped.h"
#include "backends/cpu/vector_variants.h"

namespace mixserve::cpu {
namespace {

constexpr int64_t kLanes = 8;

// Lane masks for tails: loading 8 ints from kMaskTable + 8 - r enables the first r lanes.
alignas(64) constexpr int32_t kMaskTable[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

__m256i tail_mask(int64_t remaining) {
  const int64_t r = remaining >= kLanes ? kLanes : remaining;
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kMaskTable + kLanes - r));
}

float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

float hmax(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

// exp(x) for float lanes; same method and accuracy as the AVX-512 variant (see exp_ps there):
// Cody-Waite reduction, degree-7 Taylor polynomial, two-step 2^n scaling; <= 1 ulp measured.
__m256 exp_ps(__m256 x) {
  const __m256 lo = _mm256_set1_ps(-104.0f);
  const __m256 hi = _mm256_set1_ps(89.0f);
  // max/min return their second operand when one is NaN, so NaN inputs pass through.
  const __m256 t = _mm256_min_ps(hi, _mm256_max_ps(lo, x));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(t, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), t);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.428606765330187045e-6f), r);
  __m256 p = _mm256_set1_ps(1.0f / 5040.0f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  const __m256i ni = _mm256_cvtps_epi32(n);
  const __m256i n1 = _mm256_srai_epi32(ni, 1);
  const __m256i n2 = _mm256_sub_epi32(ni, n1);
  const __m256i bias = _mm256_set1_epi32(127);
  const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
  const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
  return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

void exp_avx2(const float* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) _mm256_storeu_ps(y + i, exp_ps(_mm256_loadu_ps(x + i)));
  if (i < n) {
    const __m256i m = tail_mask(n - i);
    _mm256_maskstore_ps(y + i, m, exp_ps(_mm256_maskload_ps(x + i, m)));
  }
}

double hsum_pd(__m256d v) {
  __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
  return _mm_cvtsd_f64(s);
}

// Sum of squares in double (two 4-lane halves per vector): no overflow for any finite x and an
// error far below float rounding, so y is accurate to a few float ulp whatever n is.
void rms_norm_avx2(const float* x, const float* w, float* y, int64_t n, float eps) {
  __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
  __m256d a2 = _mm256_setzero_pd(), a3 = _mm256_setzero_pd();
  int64_t i = 0;
  for (; i + 2 * kLanes <= n; i += 2 * kLanes) {
    const __m256 x0 = _mm256_loadu_ps(x + i), x1 = _mm256_loadu_ps(x + i + kLanes);
    const __m256d d0 = _mm256_cvtps_pd(_mm256_castps256_ps128(x0));
    const __m256d d1 = _mm256_cvtps_pd(_mm256_extractf128_ps(x0, 1));
    const __m256d d2 = _mm256_cvtps_pd(_mm256_castps256_ps128(x1));
    const __m256d d3 = _mm256_cvtps_pd(_mm256_extractf128_ps(x1, 1));
    a0 = _mm256_fmadd_pd(d0, d0, a0);
    a1 = _mm256_fmadd_pd(d1, d1, a1);
    a2 = _mm256_fmadd_pd(d2, d2, a2);
    a3 = _mm256_fmadd_pd(d3, d3, a3);
  }
  for (; i < n; i += kLanes) {
    const __m256 xv = _mm256_maskload_ps(x + i, tail_mask(n - i));
    const __m256d d0 = _mm256_cvtps_pd(_mm256_castps256_ps128(xv));
    const __m256d d1 = _mm256_cvtps_pd(_mm256_extractf128_ps(xv, 1));
    a0 = _mm256_fmadd_pd(d0, d0, a0);
    a1 = _mm256_fmadd_pd(d1, d1, a1);
  }
  const double sum = hsum_pd(_mm256_add_pd(_mm256_add_pd(a0, a1), _mm256_add_pd(a2, a3)));
  const __m256 scale = _mm256_set1_ps(static_cast<float>(1.0 / std::sqrt(sum / static_cast<double>(n) + eps)));
  for (i = 0; i + kLanes <= n; i += kLanes) {
    const __m256 xv = _mm256_loadu_ps(x + i);
    _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(xv, scale), _mm256_loadu_ps(w + i)));
  }
  if (i < n) {
    const __m256i m = tail_mask(n - i);
    const __m256 xv = _mm256_maskload_ps(x + i, m);
    _mm256_maskstore_ps(y + i, m, _mm256_mul_ps(_mm256_mul_ps(xv, scale), _mm256_maskload_ps(w + i, m)));
  }
}

void rope_avx2(float* x, int64_t head_dim, int64_t n_heads, int64_t n_rot, int64_t pos, float freq_base, bool neox) {
  const RopeTable t = rope_table(pos, n_rot, freq_base);
  const int64_t half = n_rot / 2;
  for (int64_t h = 0; h < n_heads; ++h) {
    float* head = x + h * head_dim;
    if (!neox) {
      // (x0, x1) pairs: swap neighbours and use the table's (-s, +s) signs, as in the AVX-512 code.
      for (int64_t i = 0; i < n_rot; i += kLanes) {
        const __m256i m = tail_mask(n_rot - i);
        const __m256 xv = _mm256_maskload_ps(head + i, m);
        const __m256 c = _mm256_maskload_ps(t.cos_pairs + i, m);
        const __m256 s = _mm256_maskload_ps(t.sin_signed + i, m);
        const __m256 swapped = _mm256_permute_ps(xv, 0xB1);
        _mm256_maskstore_ps(head + i, m, _mm256_fmadd_ps(xv, c, _mm256_mul_ps(swapped, s)));
      }
    } else {
      for (int64_t i = 0; i < half; i += kLanes) {
        const __m256i m = tail_mask(half - i);
        const __m256 a = _mm256_maskload_ps(head + i, m);
        const __m256 b = _mm256_maskload_ps(head + half + i, m);
        const __m256 c = _mm256_maskload_ps(t.cos + i, m);
        const __m256 s = _mm256_maskload_ps(t.sin + i, m);
        _mm256_maskstore_ps(head + i, m, _mm256_fmsub_ps(a, c, _mm256_mul_ps(b, s)));
        _mm256_maskstore_ps(head + half + i, m, _mm256_fmadd_ps(b, c, _mm256_mul_ps(a, s)));
      }
    }
  }
}

void softmax_avx2(float* x, int64_t n) {
  const __m256 neg_inf = _mm256_set1_ps(-INFINITY);
  __m256 m0 = neg_inf, m1 = neg_inf, m2 = neg_inf, m3 = neg_inf;
  int64_t i = 0;
  for (; i + 4 * kLanes <= n; i += 4 * kLanes) {
    m0 = _mm256_max_ps(m0, _mm256_loadu_ps(x + i));
    m1 = _mm256_max_ps(m1, _mm256_loadu_ps(x + i + kLanes));
    m2 = _mm256_max_ps(m2, _mm256_loadu_ps(x + i + 2 * kLanes));
    m3 = _mm256_max_ps(m3, _mm256_loadu_ps(x + i + 3 * kLanes));
  }
  for (; i < n; i += kLanes) {
    const __m256i m = tail_mask(n - i);
    const __m256 xv = _mm256_blendv_ps(neg_inf, _mm256_maskload_ps(x + i, m), _mm256_castsi256_ps(m));
    m0 = _mm256_max_ps(m0, xv);
  }
  const float max = hmax(_mm256_max_ps(_mm256_max_ps(m0, m1), _mm256_max_ps(m2, m3)));
  if (max == -INFINITY) {
    softmax_all_masked(x, n);
    return;
  }
  const __m256 mv = _mm256_set1_ps(max);
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
  for (i = 0; i + 4 * kLanes <= n; i += 4 * kLanes) {
    const __m256 e0 = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), mv));
    const __m256 e1 = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i + kLanes), mv));
    const __m256 e2 = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i + 2 * kLanes), mv));
    const __m256 e3 = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i + 3 * kLanes), mv));
    _mm256_storeu_ps(x + i, e0);
    _mm256_storeu_ps(x + i + kLanes, e1);
    _mm256_storeu_ps(x + i + 2 * kLanes, e2);
    _mm256_storeu_ps(x + i + 3 * kLanes, e3);
    s0 = _mm256_add_ps(s0, e0);
    s1 = _mm256_add_ps(s1, e1);
    s2 = _mm256_add_ps(s2, e2);
    s3 = _mm256_add_ps(s3, e3);
  }
  for (; i < n; i += kLanes) {
    const __m256i m = tail_mask(n - i);
    const __m256 e = exp_ps(_mm256_sub_ps(_mm256_maskload_ps(x + i, m), mv));
    _mm256_maskstore_ps(x + i, m, e);
    s0 = _mm256_add_ps(s0, _mm256_and_ps(e, _mm256_castsi256_ps(m)));
  }
  const float sum = hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
  const __m256 inv = _mm256_set1_ps(static_cast<float>(1.0 / static_cast<double>(sum)));
  for (i = 0; i + kLanes <= n; i += kLanes) {
    _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), inv));
  }
  if (i < n) {
    const __m256i m = tail_mask(n - i);
    _mm256_maskstore_ps(x + i, m, _mm256_mul_ps(_mm256_maskload_ps(x + i, m), inv));
  }
}

// silu(g) = g * sigmoid(g), sigmoid from e = exp(-|g|) as in the scalar variant (no overflow).
__m256 swiglu8(__m256 g, __m256 u) {
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 neg_abs = _mm256_or_ps(g, _mm256_set1_ps(-0.0f));
  const __m256 e = exp_ps(neg_abs);
  const __m256 num = _mm256_blendv_ps(e, one, _mm256_cmp_ps(g, _mm256_setzero_ps(), _CMP_GE_OQ));
  const __m256 sigmoid = _mm256_div_ps(num, _mm256_add_ps(one, e));
  return _mm256_mul_ps(_mm256_mul_ps(g, sigmoid), u);
}

void swiglu_avx2(const float* gate, const float* up, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    _mm256_storeu_ps(y + i, swiglu8(_mm256_loadu_ps(gate + i), _mm256_loadu_ps(up + i)));
  }
  if (i < n) {
    const __m256i m = tail_mask(n - i);
    _mm256_maskstore_ps(y + i, m, swiglu8(_mm256_maskload_ps(gate + i, m), _mm256_maskload_ps(up + i, m)));
  }
}

void add_avx2(const float* a, const float* b, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
  }
  if (i < n) {
    const __m256i m = tail_mask(n - i);
    _mm256_maskstore_ps(y + i, m, _mm256_add_ps(_mm256_maskload_ps(a + i, m), _mm256_maskload_ps(b + i, m)));
  }
}

void to_half_avx2(const float* x, Half* y, int64_t n) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
  }
  for (; i < n; ++i) y[i].bits = _cvtss_sh(x[i], _MM_FROUND_TO_NEAREST_INT);
}

// The four sums of a0..a3 (a_i summed over its lanes as ((0+1)+(2+3))+((4+5)+(6+7))), times scale.
void store_sums4(__m256 a0, __m256 a1, __m256 a2, __m256 a3, float scale, float* out) {
  const __m256 h01 = _mm256_hadd_ps(a0, a1);
  const __m256 h23 = _mm256_hadd_ps(a2, a3);
  const __m256 h = _mm256_hadd_ps(h01, h23);
  const __m128 sums = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  _mm_storeu_ps(out, _mm_mul_ps(sums, _mm_set1_ps(scale)));
}

// The vector type of attention_grouped.h: 8 floats.
struct Avx2Floats {
  using V = __m256;
  using M = __m256i;
  static constexpr int64_t kLanes = 8;
  static M tail(int64_t remaining) { return tail_mask(remaining); }
  static V zero() { return _mm256_setzero_ps(); }
  static V set1(float x) { return _mm256_set1_ps(x); }
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static V load_masked(const float* p, M m) { return _mm256_maskload_ps(p, m); }
  static V load(const Half* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
  // p[i] for the lanes i that m selects, zeros elsewhere, into out[0, 8): AVX2 has no masked 8- or
  // 16-bit loads, so the tails of f16 and Q8_0 rows go through a copy.
  template <class T>
  static void masked_copy(const T* p, M m, T* out) {
    const int lanes = _mm256_movemask_ps(_mm256_castsi256_ps(m));
    for (int i = 0; i < 8; ++i) out[i] = (lanes >> i) & 1 ? p[i] : T{};
  }
  static V load_masked(const Half* p, M m) {
    alignas(16) Half part[8];
    masked_copy(p, m, part);
    return _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(part)));
  }
  // 8 elements of a Q8_0 block (at 0, 8, 16 or 24): float(q) * d, as quant::dequantize_row.
  static V load(Q8Row r) {
    return q8_values(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(r.block + 2 + r.at)), r.block);
  }
  static V load_masked(Q8Row r, M m) {
    alignas(16) int8_t part[16] = {};
    masked_copy(reinterpret_cast<const int8_t*>(r.block + 2 + r.at), m, part);
    return q8_values(_mm_load_si128(reinterpret_cast<const __m128i*>(part)), r.block);
  }
  static V q8_values(__m128i q, const uint8_t* block) {
    uint16_t d;
    __builtin_memcpy(&d, block, sizeof(d));
    return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), _mm256_set1_ps(_cvtsh_ss(d)));
  }
  static V load_aligned(const float* p) { return _mm256_load_ps(p); }
  static V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static void store_aligned(float* p, V v) { _mm256_store_ps(p, v); }
  static void store_masked(float* p, M m, V v) { _mm256_maskstore_ps(p, m, v); }
  static void keep(V& v) { asm("" : "+x"(v)); }
  static void store_sums4(V a0, V a1, V a2, V a3, float scale, float* out) {
    cpu::store_sums4(a0, a1, a2, a3, scale, out);
  }
  static float hsum(V v) { return cpu::hsum(v); }
  static void softmax(float* x, int64_t n) { softmax_avx2(x, n); }
};

}  // namespace

const VectorKernelTable kVectorKernelsAvx2 = {
    "avx2",
    rms_norm_avx2,
    rope_avx2,
    softmax_avx2,
    swiglu_avx2,
    add_avx2,
    attention_head_grouped<Avx2Floats, const float*>,
    exp_avx2,
    attention_queries_grouped<Avx2Floats, const float*>,
    attention_head_grouped<Avx2Floats, const Half*>,
    attention_queries_grouped<Avx2Floats, const Half*>,
    attention_head_grouped<Avx2Floats, Q8Row>,
    attention_queries_grouped<Avx2Floats, Q8Row>,
    to_half_avx2,
};

}  // namespace mixserve::cpu
