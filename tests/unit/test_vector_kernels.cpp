// Vector kernels: every variant usable on this CPU against plain double-precision references
// written here (not the scalar kernel), on odd sizes, tails and extreme values; plus the public
// functions' argument checks.
//
// Tolerances, with u = 2^-24 (float unit roundoff, half an ulp):
// - add: correctly rounded, so exact.
// - rms_norm: the sum of squares is kept in double by every variant, leaving the rounding of the
//   scale and two products: <= 3u, checked against 8u relative.
// - swiglu: exp (<= 2 ulp = 4u) feeds 1 + e (relative error no larger than e's), then a division
//   and a product: <= ~7u, checked against 16u relative.
// - rope: cos/sin rounded once (u each) then x0 c - x1 s (two roundings): the error is <= ~5u of
//   the pair's norm |(x0, x1)| (cancellation makes per-element relative error meaningless).
// - softmax: exp 4u, then the float sum: each accumulator lane adds at most ceil(n/32) terms, so
//   its relative error is <= (n/32 + 8)u; reciprocal and product add 2u: checked against
//   (n/16 + 16)u relative, plus 1e-37 absolute for results that underflow into subnormals.
// - attention_head: score error <= (d + 8)u * scale * sum_i |q_i k_ji| (dot product bound),
//   which moves each weight by twice that relatively; the weighted sum of n_kv terms adds
//   (n_kv + 8)u relative to sum_j p_j |v_jd|: out_d is checked against the sum of the two.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "backends/cpu/vector_kernels.h"
#include "backends/cpu/vector_variants.h"
#include "common/error.h"

namespace mixserve::cpu {
namespace {

constexpr double kU = 1.0 / (1 << 24);  // float unit roundoff
constexpr float kInf = std::numeric_limits<float>::infinity();
const std::vector<int64_t> kSizes = {1, 3, 7, 15, 16, 17, 31, 33, 100, 4097};

std::vector<const VectorKernelTable*> variants() {
  std::vector<const VectorKernelTable*> out = {&kVectorKernelsScalar};
  if (const auto* t = vector_kernels_avx2()) out.push_back(t);
  if (const auto* t = vector_kernels_avx512()) out.push_back(t);
  return out;
}

std::vector<float> random_vec(int64_t n, float lo, float hi, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = dist(rng);
  return v;
}

// Distance in representable floats between a and b (0 = equal; same-sign finite values).
int64_t ulp_distance(float a, float b) {
  auto ordered = [](float f) {
    int32_t i;
    std::memcpy(&i, &f, sizeof(i));
    return i < 0 ? -static_cast<int64_t>(i & 0x7fffffff) : static_cast<int64_t>(i);
  };
  const int64_t d = ordered(a) - ordered(b);
  return d < 0 ? -d : d;
}

// ---- references (double) ----------------------------------------------------------------------

std::vector<double> ref_softmax(const std::vector<float>& x) {
  double max = -std::numeric_limits<double>::infinity();
  for (float v : x) max = std::max(max, static_cast<double>(v));
  std::vector<double> out(x.size());
  double sum = 0.0;
  for (size_t i = 0; i < x.size(); ++i) sum += out[i] = std::exp(static_cast<double>(x[i]) - max);
  for (auto& v : out) v /= sum;
  return out;
}

void expect_softmax_close(const VectorKernelTable& t, const std::vector<float>& in) {
  std::vector<float> y = in;
  t.softmax(y.data(), static_cast<int64_t>(y.size()));
  const auto ref = ref_softmax(in);
  const double rtol = (static_cast<double>(in.size()) / 16.0 + 16.0) * kU;
  double total = 0.0;
  for (size_t i = 0; i < in.size(); ++i) {
    ASSERT_NEAR(y[i], ref[i], rtol * ref[i] + 1e-37) << "i=" << i << " n=" << in.size();
    total += y[i];
  }
  EXPECT_NEAR(total, 1.0, rtol * 2);
}

// ---- exp -------------------------------------------------------------------------------------

TEST(VectorKernels, ExpIsAccurateOverTheWholeRange) {
  std::vector<float> x;
  for (double v = -104.0; v <= 89.0; v += 0.000731) x.push_back(static_cast<float>(v));
  for (float v : {0.0f, -0.0f, 1e-30f, -1e-30f, 88.72f, 88.7228f, -87.33f, -87.34f, -103.97f, -103.98f, 1.0f, -1.0f,
                  0.34657359f, -0.34657359f}) {
    x.push_back(v);
  }
  for (const auto* t : variants()) {
    SCOPED_TRACE(t->name);
    std::vector<float> y(x.size());
    t->exp(x.data(), y.data(), static_cast<int64_t>(x.size()));
    int64_t worst = 0;
    float worst_x = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      const auto ref = static_cast<float>(std::exp(static_cast<double>(x[i])));
      const int64_t d = ulp_distance(y[i], ref);
      if (d > worst) worst = d, worst_x = x[i];
    }
    // Documented bound of the SIMD exp: 2 ulp (glibc's expf is within 1).
    EXPECT_LE(worst, 2) << "worst at x=" << worst_x;
  }
}

TEST(VectorKernels, ExpSpecialValues) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> x = {-kInf, kInf, nan, 89.0f, 100.0f, -105.0f, -1e30f, 0.0f, 88.7f};
  for (const auto* t : variants()) {
    SCOPED_TRACE(t->name);
    std::vector<float> y(x.size());
    t->exp(x.data(), y.data(), static_cast<int64_t>(x.size()));
    EXPECT_EQ(y[0], 0.0f);
    EXPECT_EQ(y[1], kInf);
    EXPECT_TRUE(std::isnan(y[2]));
    EXPECT_EQ(y[3], kInf);
    EXPECT_EQ(y[4], kInf);
    EXPECT_EQ(y[5], 0.0f);
    EXPECT_EQ(y[6], 0.0f);
    EXPECT_EQ(y[7], 1.0f);
    EXPECT_TRUE(std::isfinite(y[8]));
  }
}

// ---- rms_norm ----------------------------------------------------------------------------------

TEST(VectorKernels, RmsNormMatchesReference) {
  for (const auto* t : variants()) {
    for (int64_t n : kSizes) {
      for (float amplitude : {1.0f, 1e-20f, 1e18f}) {
        SCOPED_TRACE(std::string(t->name) + " n=" + std::to_string(n) + " amplitude=" + std::to_string(amplitude));
        const auto x = random_vec(n, -amplitude, amplitude, static_cast<uint32_t>(n));
        const auto w = random_vec(n, 0.5f, 1.5f, static_cast<uint32_t>(n + 1));
        const float eps = 1e-6f;
        double sum = 0.0;
        for (float v : x) sum += static_cast<double>(v) * v;
        const double scale = 1.0 / std::sqrt(sum / static_cast<double>(n) + eps);
        std::vector<float> y(static_cast<size_t>(n));
        t->rms_norm(x.data(), w.data(), y.data(), n, eps);
        std::vector<float> in_place = x;
        t->rms_norm(in_place.data(), w.data(), in_place.data(), n, eps);
        for (int64_t i = 0; i < n; ++i) {
          const double ref = x[i] * scale * w[i];
          ASSERT_NEAR(y[i], ref, 8 * kU * std::abs(ref)) << "i=" << i;
          ASSERT_EQ(in_place[i], y[i]) << "aliasing y = x changed the result at i=" << i;
        }
      }
    }
  }
}

TEST(VectorKernels, RmsNormOfZerosIsZero) {
  for (const auto* t : variants()) {
    const std::vector<float> x(33, 0.0f), w(33, 1.0f);
    std::vector<float> y(33, 5.0f);
    t->rms_norm(x.data(), w.data(), y.data(), 33, 1e-5f);
    for (float v : y) EXPECT_EQ(v, 0.0f) << t->name;
  }
}

// ---- rope ------------------------------------------------------------------------------------

struct RopeCase {
  int64_t head_dim;
  int64_t n_rot;
};

TEST(VectorKernels, RopeMatchesReferenceBothArrangements) {
  const std::vector<RopeCase> cases = {{2, 2},   {6, 6},    {7, 6},     {14, 14}, {16, 16},  {17, 10},
                                       {18, 18}, {33, 32},  {33, 16},   {34, 34}, {64, 64},  {64, 32},
                                       {80, 80}, {100, 98}, {128, 128}, {128, 2}, {128, 64}, {130, 130}};
  const int64_t n_heads = 3;
  for (const auto* t : variants()) {
    for (const RopeCase& c : cases) {
      for (int64_t pos : {0L, 1L, 7L, 4096L, 100000L}) {
        for (float base : {10000.0f, 1000000.0f}) {
          for (bool neox : {false, true}) {
            SCOPED_TRACE(std::string(t->name) + " head_dim=" + std::to_string(c.head_dim) +
                         " n_rot=" + std::to_string(c.n_rot) + " pos=" + std::to_string(pos) +
                         " base=" + std::to_string(base) + (neox ? " neox" : " normal"));
            const auto x =
                random_vec(n_heads * c.head_dim, -3.0f, 3.0f, static_cast<uint32_t>(c.head_dim * 7 + c.n_rot + pos));
            std::vector<float> y = x;
            t->rope(y.data(), c.head_dim, n_heads, c.n_rot, pos, base, neox);
            const int64_t half = c.n_rot / 2;
            for (int64_t h = 0; h < n_heads; ++h) {
              const int64_t o = h * c.head_dim;
              for (int64_t i = 0; i < half; ++i) {
                const int64_t ia = o + (neox ? i : 2 * i);
                const int64_t ib = o + (neox ? i + half : 2 * i + 1);
                const double theta = static_cast<double>(pos) *
                                     std::pow(static_cast<double>(base), -2.0 * static_cast<double>(i) / c.n_rot);
                const double x0 = x[ia], x1 = x[ib];
                const double ra = x0 * std::cos(theta) - x1 * std::sin(theta);
                const double rb = x1 * std::cos(theta) + x0 * std::sin(theta);
                const double tol = 8 * kU * std::hypot(x0, x1);
                ASSERT_NEAR(y[ia], ra, tol) << "head " << h << " pair " << i;
                ASSERT_NEAR(y[ib], rb, tol) << "head " << h << " pair " << i;
                if (pos == 0) {
                  ASSERT_EQ(y[ia], x[ia]);
                  ASSERT_EQ(y[ib], x[ib]);
                }
              }
              for (int64_t d = c.n_rot; d < c.head_dim; ++d) {
                ASSERT_EQ(y[o + d], x[o + d]) << "dim " << d << " beyond n_rot changed";
              }
            }
          }
        }
      }
    }
  }
}

// ---- softmax ---------------------------------------------------------------------------------

TEST(VectorKernels, SoftmaxMatchesReferenceOnRandomLogits) {
  for (const auto* t : variants()) {
    for (int64_t n : kSizes) {
      SCOPED_TRACE(std::string(t->name) + " n=" + std::to_string(n));
      expect_softmax_close(*t, random_vec(n, -10.0f, 10.0f, static_cast<uint32_t>(n * 3)));
    }
  }
}

TEST(VectorKernels, SoftmaxExtremeValues) {
  for (const auto* t : variants()) {
    for (int64_t n : kSizes) {
      SCOPED_TRACE(std::string(t->name) + " n=" + std::to_string(n));
      // Large logits: only differences matter; exp(x) alone would overflow.
      auto big = random_vec(n, 1e4f, 1e4f + 30.0f, static_cast<uint32_t>(n));
      expect_softmax_close(*t, big);
      // Wide spread: most results underflow to subnormals or zero.
      expect_softmax_close(*t, random_vec(n, -200.0f, 0.0f, static_cast<uint32_t>(n + 5)));
      // All equal: exactly-representable 1/n up to rounding.
      std::vector<float> same(static_cast<size_t>(n), 3.25f);
      t->softmax(same.data(), n);
      for (float v : same) ASSERT_NEAR(v, 1.0 / static_cast<double>(n), 4 * kU / n);
      // Masked (-inf) entries get exactly 0; the rest still sum to 1.
      auto masked = random_vec(n, -5.0f, 5.0f, static_cast<uint32_t>(n + 9));
      for (int64_t i = 0; i < n; i += 3) masked[i] = -kInf;
      if (n > 1) {
        expect_softmax_close(*t, masked);
        std::vector<float> y = masked;
        t->softmax(y.data(), n);
        for (int64_t i = 0; i < n; i += 3) ASSERT_EQ(y[i], 0.0f);
      }
      // Everything masked: all zeros rather than NaN.
      std::vector<float> all_masked(static_cast<size_t>(n), -kInf);
      t->softmax(all_masked.data(), n);
      for (float v : all_masked) ASSERT_EQ(v, 0.0f);
      // NaN poisons the whole row (it must not be silently dropped by the max).
      std::vector<float> with_nan = random_vec(n, -1.0f, 1.0f, 3);
      with_nan[static_cast<size_t>(n / 2)] = std::numeric_limits<float>::quiet_NaN();
      t->softmax(with_nan.data(), n);
      for (float v : with_nan) ASSERT_TRUE(std::isnan(v));
    }
    std::vector<float> one = {-123.0f};
    t->softmax(one.data(), 1);
    EXPECT_EQ(one[0], 1.0f) << t->name;
  }
}

// ---- swiglu and add ----------------------------------------------------------------------------

TEST(VectorKernels, SwigluMatchesReference) {
  for (const auto* t : variants()) {
    for (int64_t n : kSizes) {
      SCOPED_TRACE(std::string(t->name) + " n=" + std::to_string(n));
      auto g = random_vec(n, -20.0f, 20.0f, static_cast<uint32_t>(n));
      const auto u = random_vec(n, -3.0f, 3.0f, static_cast<uint32_t>(n + 1));
      const float extremes[] = {-1e30f, 1e30f, -100.0f, 100.0f, -88.9f, 87.0f, 0.0f, -0.0f};
      for (int64_t i = 0; i < n && i < 8; ++i) g[i * 97 % n] = extremes[i];
      std::vector<float> y(static_cast<size_t>(n));
      t->swiglu(g.data(), u.data(), y.data(), n);
      std::vector<float> alias_gate = g, alias_up = u;
      t->swiglu(alias_gate.data(), u.data(), alias_gate.data(), n);
      t->swiglu(g.data(), alias_up.data(), alias_up.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        const double gd = g[i];
        const double ref = gd / (1.0 + std::exp(-gd)) * u[i];
        ASSERT_NEAR(y[i], ref, 16 * kU * std::abs(ref) + 1e-37) << "g=" << g[i] << " up=" << u[i];
        ASSERT_EQ(alias_gate[i], y[i]);
        ASSERT_EQ(alias_up[i], y[i]);
      }
    }
  }
}

TEST(VectorKernels, AddIsExact) {
  for (const auto* t : variants()) {
    for (int64_t n : kSizes) {
      SCOPED_TRACE(std::string(t->name) + " n=" + std::to_string(n));
      const auto a = random_vec(n, -1e3f, 1e3f, static_cast<uint32_t>(n));
      const auto b = random_vec(n, -1.0f, 1.0f, static_cast<uint32_t>(n + 2));
      std::vector<float> y(static_cast<size_t>(n) + 1, 42.0f);
      t->add(a.data(), b.data(), y.data(), n);
      std::vector<float> alias = a;
      t->add(alias.data(), b.data(), alias.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_EQ(y[i], static_cast<float>(static_cast<double>(a[i]) + b[i]));
        ASSERT_EQ(alias[i], y[i]);
      }
      EXPECT_EQ(y[static_cast<size_t>(n)], 42.0f) << "wrote past the end";
    }
  }
}

// ---- attention_head --------------------------------------------------------------------------

struct AttentionData {
  int64_t head_dim, n_kv, stride;
  float scale;
  std::vector<float> q, k, v;
};

AttentionData make_attention(int64_t head_dim, int64_t n_kv, int64_t stride, float scale, uint32_t seed) {
  AttentionData a{head_dim,
                  n_kv,
                  stride,
                  scale,
                  random_vec(head_dim, -1.0f, 1.0f, seed),
                  random_vec(n_kv * stride, -1.0f, 1.0f, seed + 1),
                  random_vec(n_kv * stride, -1.0f, 1.0f, seed + 2)};
  return a;
}

// The variant's attention over rows stored one after the other (one block holding them all).
void attention_contiguous(const VectorKernelTable& t, const float* q, const float* k, const float* v, int64_t stride,
                          int64_t head_dim, int64_t n_kv, float scale, float* out, float* scratch) {
  t.attention_head(q, &k, &v, std::max<int64_t>(n_kv, 1), stride, head_dim, n_kv, scale, out, scratch);
}

void expect_attention_close(const VectorKernelTable& t, const AttentionData& a) {
  std::vector<double> s(static_cast<size_t>(a.n_kv));
  double max_abs_dot = 0.0;
  for (int64_t j = 0; j < a.n_kv; ++j) {
    double dot = 0.0, abs_dot = 0.0;
    for (int64_t d = 0; d < a.head_dim; ++d) {
      dot += static_cast<double>(a.q[d]) * a.k[j * a.stride + d];
      abs_dot += std::abs(static_cast<double>(a.q[d]) * a.k[j * a.stride + d]);
    }
    s[j] = dot * a.scale;
    max_abs_dot = std::max(max_abs_dot, abs_dot);
  }
  const double max = *std::max_element(s.begin(), s.end());
  double sum = 0.0;
  for (auto& v : s) sum += v = std::exp(v - max);
  for (auto& v : s) v /= sum;
  const double score_err = (a.head_dim + 8) * kU * std::abs(a.scale) * max_abs_dot;
  std::vector<float> out(static_cast<size_t>(a.head_dim) + 1, 42.0f);
  std::vector<float> scratch(static_cast<size_t>(a.n_kv));
  attention_contiguous(t, a.q.data(), a.k.data(), a.v.data(), a.stride, a.head_dim, a.n_kv, a.scale, out.data(),
                       scratch.data());
  for (int64_t d = 0; d < a.head_dim; ++d) {
    double ref = 0.0, mag = 0.0;
    for (int64_t j = 0; j < a.n_kv; ++j) {
      ref += s[j] * a.v[j * a.stride + d];
      mag += s[j] * std::abs(a.v[j * a.stride + d]);
    }
    const double tol = (4 * score_err + (a.n_kv + 8) * kU + 8 * kU) * mag;
    ASSERT_NEAR(out[d], ref, tol) << "dim " << d;
  }
  EXPECT_EQ(out[static_cast<size_t>(a.head_dim)], 42.0f) << "wrote past head_dim";
}

TEST(VectorKernels, AttentionHeadMatchesReference) {
  for (const auto* t : variants()) {
    for (int64_t head_dim : {1, 3, 7, 16, 17, 33, 64, 100, 128}) {
      for (int64_t n_kv : {1, 2, 3, 5, 17, 100, 513}) {
        for (int64_t stride : {head_dim, 3 * head_dim + 1}) {
          SCOPED_TRACE(std::string(t->name) + " head_dim=" + std::to_string(head_dim) +
                       " n_kv=" + std::to_string(n_kv) + " stride=" + std::to_string(stride));
          const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
          expect_attention_close(
              *t, make_attention(head_dim, n_kv, stride, scale, static_cast<uint32_t>(head_dim * 1000 + n_kv)));
        }
      }
    }
  }
}

TEST(VectorKernels, AttentionHeadExtremes) {
  for (const auto* t : variants()) {
    SCOPED_TRACE(t->name);
    // A large scale makes the weights peaky (scores in the hundreds).
    expect_attention_close(*t, make_attention(64, 257, 64, 40.0f, 11));
    // One key: the output is exactly that value row.
    auto one = make_attention(33, 1, 40, 0.125f, 12);
    std::vector<float> out(33), scratch(1);
    attention_contiguous(*t, one.q.data(), one.k.data(), one.v.data(), 40, 33, 1, 0.125f, out.data(), scratch.data());
    for (int64_t d = 0; d < 33; ++d) ASSERT_EQ(out[d], one.v[d]);
    // Identical keys: the plain average of the values.
    auto same = make_attention(17, 31, 17, 0.3f, 13);
    for (int64_t j = 1; j < 31; ++j) {
      std::copy(same.k.begin(), same.k.begin() + 17, same.k.begin() + j * 17);
    }
    expect_attention_close(*t, same);
  }
}

// A paged cache read in place: the rows in blocks scattered over a larger cache (in shuffled
// order) give the same bits as the same rows stored one after the other, in every variant.
TEST(VectorKernels, AttentionOverScatteredBlocksEqualsContiguous) {
  std::mt19937 rng(21);
  for (const auto* t : variants()) {
    for (int64_t head_dim : {17, 64, 100}) {
      for (int64_t block : {4, 8, 16}) {
        for (int64_t n_kv : {1, 3, 4, 5, 16, 17, 37, 100}) {
          const int64_t stride = 2 * head_dim + 3;
          const auto a = make_attention(head_dim, n_kv, stride, 0.2f, static_cast<uint32_t>(n_kv * 7 + block));
          const int64_t n_blocks = (n_kv + block - 1) / block;
          std::vector<int64_t> slots(static_cast<size_t>(2 * n_blocks + 1));
          std::iota(slots.begin(), slots.end(), 0);
          std::shuffle(slots.begin(), slots.end(), rng);
          std::vector<float> kc(slots.size() * static_cast<size_t>(block * stride), NAN);
          std::vector<float> vc(kc.size(), NAN);
          std::vector<const float*> kb, vb;
          for (int64_t b = 0; b < n_blocks; ++b) {
            float* kd = kc.data() + slots[static_cast<size_t>(b)] * block * stride;
            float* vd = vc.data() + slots[static_cast<size_t>(b)] * block * stride;
            const int64_t rows = std::min(block, n_kv - b * block);
            std::copy_n(a.k.begin() + b * block * stride, rows * stride, kd);
            std::copy_n(a.v.begin() + b * block * stride, rows * stride, vd);
            kb.push_back(kd);
            vb.push_back(vd);
          }
          std::vector<float> want(static_cast<size_t>(head_dim)), got(want.size()), scratch(static_cast<size_t>(n_kv));
          attention_contiguous(*t, a.q.data(), a.k.data(), a.v.data(), stride, head_dim, n_kv, 0.2f, want.data(),
                               scratch.data());
          t->attention_head(a.q.data(), kb.data(), vb.data(), block, stride, head_dim, n_kv, 0.2f, got.data(),
                            scratch.data());
          ASSERT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0)
              << t->name << " head_dim=" << head_dim << " block=" << block << " n_kv=" << n_kv;
        }
      }
    }
  }
}

// Grouped-query attention: queries of several tokens and heads over the same (paged) rows, token t
// attending to the first n_kv + t rows, give, query by query, the bits of one attention_head call
// each, whatever the number of heads, tokens, rows, blocks or strides.
TEST(VectorKernels, AttentionQueriesEqualOneQueryAtATime) {
  for (const auto* t : variants()) {
    for (int64_t head_dim : {8, 17, 64, 100}) {
      for (const auto& [n_heads, n_tokens] : {std::pair<int64_t, int64_t>{1, 1},
                                              {2, 1},
                                              {3, 1},
                                              {8, 1},
                                              {9, 1},
                                              {16, 1},
                                              {8, 4},
                                              {3, 5},
                                              {1, 7},
                                              {8, 9}}) {
        for (int64_t n_kv : {1, 5, 63, 64, 65, 130, 257}) {
          for (int64_t block : {int64_t{0}, int64_t{16}}) {  // 0: one block holding every row
            SCOPED_TRACE(std::string(t->name) + " head_dim=" + std::to_string(head_dim) +
                         " heads=" + std::to_string(n_heads) + " tokens=" + std::to_string(n_tokens) +
                         " n_kv=" + std::to_string(n_kv) + " block=" + std::to_string(block));
            const int64_t total = n_kv + n_tokens - 1;
            const int64_t stride = 4 * head_dim + 1;  // the rows of other KV heads in between
            const int64_t rows = block == 0 ? total : block;
            const auto k = random_vec(total * stride, -1.0f, 1.0f, static_cast<uint32_t>(total + 1));
            const auto v = random_vec(total * stride, -1.0f, 1.0f, static_cast<uint32_t>(total + 2));
            std::vector<const float*> kb, vb;
            for (int64_t j = 0; j < total; j += rows) {
              kb.push_back(k.data() + j * stride);
              vb.push_back(v.data() + j * stride);
            }
            AttentionQueries a;
            a.n_heads = n_heads;
            a.n_tokens = n_tokens;
            a.head_stride = head_dim + 3;
            a.token_stride = n_heads * a.head_stride + 5;
            a.n_kv = n_kv;
            const int64_t floats = n_tokens * a.token_stride;
            const auto q = random_vec(floats, -2.0f, 2.0f, static_cast<uint32_t>(n_heads * 100 + head_dim));
            const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
            std::vector<float> want(static_cast<size_t>(floats), 42.0f), got(want.size() + 1, 42.0f);
            std::vector<float> scratch(static_cast<size_t>(n_tokens * n_heads * total));
            for (int64_t tok = 0; tok < n_tokens; ++tok) {
              for (int64_t h = 0; h < n_heads; ++h) {
                const int64_t at = tok * a.token_stride + h * a.head_stride;
                t->attention_head(q.data() + at, kb.data(), vb.data(), rows, stride, head_dim, n_kv + tok, scale,
                                  want.data() + at, scratch.data());
              }
            }
            a.q = q.data();
            a.out = got.data();
            t->attention_queries(a, kb.data(), vb.data(), rows, stride, head_dim, scale, scratch.data());
            ASSERT_EQ(std::memcmp(got.data(), want.data(), want.size() * sizeof(float)), 0);
            EXPECT_EQ(got.back(), 42.0f) << "wrote past the last query";
          }
        }
      }
    }
  }
}

// ---- public API --------------------------------------------------------------------------------

TEST(VectorKernels, DispatchUsesTheBestAvailableVariant) {
  const auto all = variants();
  EXPECT_STREQ(vector_variant(), all.back()->name);
  EXPECT_EQ(&active_vector_kernels(), all.back());
  std::vector<float> x = {1.0f, 2.0f, 3.0f};
  softmax(x.data(), 3);
  EXPECT_NEAR(x[0] + x[1] + x[2], 1.0f, 1e-6f);
  EXPECT_LT(x[0], x[1]);
}

TEST(VectorKernels, PublicFunctionsRejectBadArguments) {
  std::vector<float> a(64, 1.0f), b(64, 1.0f), c(64);
  auto expect_invalid = [](auto&& fn) {
    try {
      fn();
      ADD_FAILURE() << "no error thrown";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
    }
  };
  expect_invalid([&] { rms_norm(a.data(), b.data(), c.data(), -1, 1e-5f); });
  expect_invalid([&] { rms_norm(nullptr, b.data(), c.data(), 4, 1e-5f); });
  expect_invalid([&] { rms_norm(a.data(), b.data(), c.data(), 4, -1.0f); });
  expect_invalid([&] { rope(a.data(), 8, 2, 7, 0, 10000.0f, false); });   // odd n_rot
  expect_invalid([&] { rope(a.data(), 8, 2, 10, 0, 10000.0f, false); });  // n_rot > head_dim
  expect_invalid([&] { rope(a.data(), 0, 2, 0, 0, 10000.0f, false); });
  expect_invalid([&] { rope(a.data(), 8, 2, 8, 0, 0.0f, true); });
  expect_invalid([&] { rope(a.data(), 8, 2, 8, 0, std::nanf(""), true); });
  expect_invalid([&] { rope(nullptr, 8, 2, 8, 0, 10000.0f, true); });
  expect_invalid([&] { softmax(nullptr, 3); });
  expect_invalid([&] { softmax(a.data(), -2); });
  expect_invalid([&] { swiglu(a.data(), nullptr, c.data(), 3); });
  expect_invalid([&] { add(a.data(), b.data(), nullptr, 3); });
  expect_invalid([&] { attention_head(a.data(), b.data(), c.data(), 4, 8, 2, 1.0f, c.data(), a.data()); });
  expect_invalid([&] { attention_head(a.data(), b.data(), c.data(), 8, 0, 2, 1.0f, c.data(), a.data()); });
  expect_invalid([&] { attention_head(a.data(), b.data(), c.data(), 8, 8, -1, 1.0f, c.data(), a.data()); });
  expect_invalid([&] { attention_head(a.data(), b.data(), c.data(), 8, 8, 2, kInf, c.data(), a.data()); });
  expect_invalid([&] { attention_head(a.data(), b.data(), c.data(), 8, 8, 2, 1.0f, c.data(), nullptr); });
  {
    std::vector<float> cache(64 * 8), work(16), o(8);
    const float* blocks[] = {cache.data(), cache.data() + 48, nullptr, cache.data() + 8};
    // 6 rows per block: neither a multiple of 4 nor all of the 10 rows.
    expect_invalid([&] { attention_head_paged(a.data(), blocks, blocks, 6, 8, 8, 10, 1.0f, o.data(), work.data()); });
    // The third block is null.
    expect_invalid([&] { attention_head_paged(a.data(), blocks, blocks, 4, 8, 8, 10, 1.0f, o.data(), work.data()); });
    expect_invalid([&] { attention_head_paged(a.data(), nullptr, blocks, 4, 8, 8, 6, 1.0f, o.data(), work.data()); });
    expect_invalid([&] { attention_head_paged(a.data(), blocks, blocks, 0, 8, 8, 6, 1.0f, o.data(), work.data()); });
    EXPECT_NO_THROW(attention_head_paged(a.data(), blocks, blocks, 4, 8, 8, 8, 1.0f, o.data(), work.data()));
    EXPECT_NO_THROW(attention_head_paged(a.data(), blocks, blocks, 6, 8, 8, 6, 1.0f, o.data(), work.data()));
    // Grouped queries: at least one head and token, strides that keep them apart, scratch for all.
    std::vector<float> qs(96), os(96), big_work(64);
    const auto queries = [&](int64_t n_heads, int64_t n_tokens, int64_t head_stride, int64_t token_stride, float* w) {
      AttentionQueries q;
      q.q = qs.data();
      q.out = os.data();
      q.n_heads = n_heads;
      q.n_tokens = n_tokens;
      q.head_stride = head_stride;
      q.token_stride = token_stride;
      q.n_kv = 7;
      attention_queries_paged(q, blocks, blocks, 4, 8, 8, 1.0f, w);
    };
    expect_invalid([&] { queries(0, 1, 8, 8, big_work.data()); });
    expect_invalid([&] { queries(2, 0, 8, 16, big_work.data()); });
    expect_invalid([&] { queries(2, 1, 4, 16, big_work.data()); });
    expect_invalid([&] { queries(2, 2, 8, 12, big_work.data()); });
    expect_invalid([&] { queries(2, 2, 8, 16, nullptr); });
    expect_invalid([&] { queries(2, 3, 8, 16, big_work.data()); });  // 9 rows: the third block, null
    EXPECT_NO_THROW(queries(2, 2, 8, 16, big_work.data()));
    EXPECT_NO_THROW(queries(4, 1, 8, 8, big_work.data()));
    // Token 0 attending to no row gets zeros; token 1 still attends to its one row.
    std::fill(cache.begin(), cache.end(), 0.5f);
    std::fill(os.begin(), os.end(), 7.0f);
    AttentionQueries none;
    none.q = qs.data();
    none.out = os.data();
    none.n_tokens = 2;
    none.token_stride = 8;
    none.n_kv = 0;
    attention_queries_paged(none, blocks, blocks, 4, 8, 8, 1.0f, big_work.data());
    for (int d = 0; d < 8; ++d) EXPECT_EQ(os[static_cast<size_t>(d)], 0.0f);
    for (int d = 8; d < 16; ++d) EXPECT_EQ(os[static_cast<size_t>(d)], 0.5f);  // the one row's values
  }

  // Empty inputs are no-ops, even with null pointers.
  EXPECT_NO_THROW(softmax(nullptr, 0));
  EXPECT_NO_THROW(add(nullptr, nullptr, nullptr, 0));
  EXPECT_NO_THROW(rope(nullptr, 8, 0, 8, 5, 10000.0f, false));
  std::vector<float> before = a;
  rope(a.data(), 8, 2, 0, 5, 10000.0f, false);  // n_rot = 0 rotates nothing
  EXPECT_EQ(a, before);
  std::vector<float> out(8, 7.0f);
  attention_head(a.data(), nullptr, nullptr, 8, 8, 0, 1.0f, out.data(), nullptr);
  for (float v : out) EXPECT_EQ(v, 0.0f);
}

}  // namespace
}  // namespace mixserve::cpu
