// The f16 and Q8_0 KV caches' kernels, in every variant usable on this CPU: to_half rounds exactly
// as the reference conversion (quant::f32_to_fp16); attention over f16 or Q8_0 rows gives the bits
// of the f32 kernel over the same values as floats (as quant::dequantize_row gives them: the
// kernels convert as they load, so nothing else may differ).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "backends/cpu/vector_kernels.h"
#include "backends/cpu/vector_variants.h"
#include "common/dtype.h"
#include "common/error.h"
#include "quant/quant.h"

namespace mixserve::cpu {
namespace {

std::vector<const VectorKernelTable*> variants() {
  std::vector<const VectorKernelTable*> out = {&kVectorKernelsScalar};
  if (const auto* t = vector_kernels_avx2()) out.push_back(t);
  if (const auto* t = vector_kernels_avx512()) out.push_back(t);
  return out;
}

bool is_nan_half(uint16_t h) {
  return (h & 0x7C00) == 0x7C00 && (h & 0x03FF) != 0;
}

// Values that exercise every rounding case of the conversion: wide random magnitudes, halfway
// cases between neighbouring halves, the edges of the normal and subnormal ranges, overflow.
std::vector<float> conversion_inputs() {
  std::vector<float> x = {0.0f,
                          -0.0f,
                          1.0f,
                          -1.0f,
                          65504.0f,
                          65519.99f,
                          65520.0f,
                          -65520.0f,
                          1e9f,
                          6.103515625e-05f,  // smallest normal half
                          5.9604645e-08f,    // smallest subnormal half
                          2.9802322e-08f,    // half of it: a tie, rounds to even (zero)
                          4.4703484e-08f,    // 0.75 of it: rounds up
                          1e-10f,
                          std::numeric_limits<float>::infinity(),
                          -std::numeric_limits<float>::infinity(),
                          std::numeric_limits<float>::denorm_min()};
  for (uint16_t h = 0; h < 0x7C00; h += 37) {  // ties: halfway between half h and h + 1
    const float a = quant::fp16_to_f32(h);
    const float b = quant::fp16_to_f32(static_cast<uint16_t>(h + 1));
    x.push_back((a + b) / 2.0f);
    x.push_back(-(a + b) / 2.0f);
  }
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> exponent(-30.0f, 18.0f);
  std::uniform_real_distribution<float> mantissa(-1.0f, 1.0f);
  for (int i = 0; i < 4000; ++i) x.push_back(mantissa(rng) * std::exp2(exponent(rng)));
  return x;
}

TEST(KvCacheF16, ToHalfRoundsAsTheReference) {
  const auto x = conversion_inputs();
  for (const auto* t : variants()) {
    for (size_t n : {size_t{1}, size_t{7}, size_t{15}, size_t{16}, size_t{17}, x.size()}) {
      std::vector<Half> y(n + 1, Half{0x1234});
      t->to_half(x.data(), y.data(), static_cast<int64_t>(n));
      for (size_t i = 0; i < n; ++i) {
        ASSERT_EQ(y[i].bits, quant::f32_to_fp16(x[i])) << t->name << " x=" << x[i] << " n=" << n;
      }
      EXPECT_EQ(y[n].bits, 0x1234) << t->name << " wrote past the end";
    }
    const float nan = std::numeric_limits<float>::quiet_NaN();
    Half h{};
    t->to_half(&nan, &h, 1);
    EXPECT_TRUE(is_nan_half(h.bits)) << t->name;
  }
}

// Rows of f16 values and the same values as floats.
struct HalfRows {
  std::vector<Half> half;
  std::vector<float> wide;
};

HalfRows random_rows(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
  HalfRows r;
  for (int64_t i = 0; i < n; ++i) {
    const uint16_t h = quant::f32_to_fp16(dist(rng));
    r.half.push_back(Half{h});
    r.wide.push_back(quant::fp16_to_f32(h));
  }
  return r;
}

// One case of the attention comparisons: n_heads x n_tokens queries over n_kv rows (stride apart),
// in blocks of `rows` rows.
struct AttentionCase {
  int64_t head_dim, n_heads, n_tokens, n_kv, rows, stride;
};

// The queries of `c` through the f32 kernels over blocks kf/vf and through a cache type's kernels
// (`queries` and `head`, the variant's entries for that type) over blocks kp/vp, which hold the same
// values: the same bits, from both the grouped and the one-query entry.
template <class P, class Queries, class Head>
void expect_f32_bits(const VectorKernelTable& t, const AttentionCase& c, const std::vector<const float*>& kf,
                     const std::vector<const float*>& vf, const std::vector<P>& kp, const std::vector<P>& vp,
                     Queries queries, Head head) {
  AttentionQueries a;
  a.n_heads = c.n_heads;
  a.n_tokens = c.n_tokens;
  a.head_stride = c.head_dim;
  a.token_stride = c.n_heads * c.head_dim;
  a.n_kv = c.n_kv;
  std::mt19937 rng(static_cast<uint32_t>(c.n_heads * 100 + c.n_tokens));
  std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
  std::vector<float> q(static_cast<size_t>(c.n_tokens * a.token_stride));
  for (auto& x : q) x = dist(rng);
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  std::vector<float> want(q.size(), 42.0f), got(q.size() + 1, 42.0f);
  std::vector<float> scratch(static_cast<size_t>(c.n_tokens * c.n_heads * (c.n_kv + c.n_tokens - 1)));
  a.q = q.data();
  a.out = want.data();
  t.attention_queries(a, kf.data(), vf.data(), c.rows, c.stride, c.head_dim, scale, scratch.data());
  a.out = got.data();
  queries(a, kp.data(), vp.data(), c.rows, c.stride, c.head_dim, scale, scratch.data());
  ASSERT_EQ(std::memcmp(got.data(), want.data(), want.size() * sizeof(float)), 0);
  EXPECT_EQ(got.back(), 42.0f) << "wrote past the last query";
  t.attention_head(q.data(), kf.data(), vf.data(), c.rows, c.stride, c.head_dim, c.n_kv, scale, want.data(),
                   scratch.data());
  head(q.data(), kp.data(), vp.data(), c.rows, c.stride, c.head_dim, c.n_kv, scale, got.data(), scratch.data());
  ASSERT_EQ(std::memcmp(got.data(), want.data(), static_cast<size_t>(c.head_dim) * sizeof(float)), 0);
}

// Every case of the sweep: head dims, query shapes, lengths, one block or blocks of 16 rows.
template <class Fn>
void for_each_case(const std::vector<int64_t>& head_dims, const std::vector<int64_t>& lengths, Fn fn) {
  for (int64_t head_dim : head_dims) {
    for (const auto& [n_heads, n_tokens] :
         {std::pair<int64_t, int64_t>{1, 1}, {8, 1}, {3, 1}, {8, 4}, {1, 7}, {16, 1}}) {
      for (int64_t n_kv : lengths) {
        for (int64_t block : {int64_t{0}, int64_t{16}}) {  // 0: one block holding every row
          SCOPED_TRACE(" head_dim=" + std::to_string(head_dim) + " heads=" + std::to_string(n_heads) + " tokens=" +
                       std::to_string(n_tokens) + " n_kv=" + std::to_string(n_kv) + " block=" + std::to_string(block));
          const int64_t total = n_kv + n_tokens - 1;
          fn(AttentionCase{head_dim, n_heads, n_tokens, n_kv, block == 0 ? total : block, 0}, total);
        }
      }
    }
  }
}

TEST(KvCacheF16, AttentionEqualsF32OverTheSameValues) {
  for (const auto* t : variants()) {
    SCOPED_TRACE(t->name);
    for_each_case({8, 17, 64, 100}, {1, 5, 64, 65, 257, 300}, [&](AttentionCase c, int64_t total) {
      c.stride = 4 * c.head_dim + 1;  // the rows of other KV heads in between
      const HalfRows k = random_rows(total * c.stride, static_cast<uint32_t>(total * 3 + c.head_dim));
      const HalfRows v = random_rows(total * c.stride, static_cast<uint32_t>(total * 5 + c.head_dim));
      std::vector<const float*> kf, vf;
      std::vector<const Half*> kh, vh;
      for (int64_t j = 0; j < total; j += c.rows) {
        kf.push_back(k.wide.data() + j * c.stride);
        vf.push_back(v.wide.data() + j * c.stride);
        kh.push_back(k.half.data() + j * c.stride);
        vh.push_back(v.half.data() + j * c.stride);
      }
      expect_f32_bits(*t, c, kf, vf, kh, vh, t->attention_queries_f16, t->attention_head_f16);
    });
  }
}

// Rows of Q8_0 blocks (quantised from random values) and their values as floats.
struct Q8Rows {
  std::vector<uint8_t> bytes;
  std::vector<float> wide;
  Q8Row at(int64_t element) const { return Q8Row{bytes.data(), 0} + element; }
};

Q8Rows random_q8_rows(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) v = dist(rng);
  Q8Rows r;
  r.bytes.resize(*dtype_row_bytes(DType::kQ8_0, n));
  quant::quantize_row(DType::kQ8_0, x.data(), r.bytes.data(), n);
  r.wide.resize(x.size());
  quant::dequantize_row(DType::kQ8_0, r.bytes.data(), r.wide.data(), n);
  return r;
}

TEST(KvCacheQ8_0, AttentionEqualsF32OverTheSameValues) {
  for (const auto* t : variants()) {
    SCOPED_TRACE(t->name);
    // 288: past the key tile, keys read in place.
    for_each_case({32, 64, 128, 288}, {1, 5, 64, 65, 300}, [&](AttentionCase c, int64_t total) {
      c.stride = 4 * c.head_dim;  // four KV heads per row, each a whole number of blocks
      const Q8Rows k = random_q8_rows(total * c.stride, static_cast<uint32_t>(total * 7 + c.head_dim));
      const Q8Rows v = random_q8_rows(total * c.stride, static_cast<uint32_t>(total * 11 + c.head_dim));
      std::vector<const float*> kf, vf;
      std::vector<Q8Row> kq, vq;
      for (int64_t j = 0; j < total; j += c.rows) {
        const int64_t head = 2 * c.head_dim;  // the third KV head of each row
        kf.push_back(k.wide.data() + j * c.stride + head);
        vf.push_back(v.wide.data() + j * c.stride + head);
        kq.push_back(k.at(j * c.stride + head));
        vq.push_back(v.at(j * c.stride + head));
      }
      expect_f32_bits(*t, c, kf, vf, kq, vq, t->attention_queries_q8_0, t->attention_head_q8_0);
    });
  }
}

TEST(KvCacheQ8_0, RowsMustStartAtBlocks) {
  const Q8Rows k = random_q8_rows(64 * 8, 1), v = random_q8_rows(64 * 8, 2);
  std::vector<float> q(64, 0.5f), out(64), scratch(8);
  const Q8Row kb = k.at(0), vb = v.at(0);
  attention_head_paged(q.data(), &kb, &vb, 8, 64, 64, 8, 0.125f, out.data(), scratch.data());
  EXPECT_THROW(attention_head_paged(q.data(), &kb, &vb, 8, 48, 48, 8, 0.125f, out.data(), scratch.data()), Error);
  const Q8Row mid = k.at(16);  // inside a block
  EXPECT_THROW(attention_head_paged(q.data(), &mid, &vb, 8, 64, 64, 8, 0.125f, out.data(), scratch.data()), Error);
}

TEST(KvCacheF16, PublicFunctionsCheckTheirArguments) {
  std::vector<float> q(64, 0.5f), out(64), scratch(8);
  std::vector<Half> k(64 * 8, Half{quant::f32_to_fp16(0.25f)}), v(64 * 8, Half{quant::f32_to_fp16(1.5f)});
  const Half* kb = k.data();
  const Half* vb = v.data();
  attention_head_paged(q.data(), &kb, &vb, 8, 64, 64, 8, 0.125f, out.data(), scratch.data());
  for (float x : out) ASSERT_EQ(x, 1.5f);  // equal keys: the average of equal values
  const Half* null_block = nullptr;
  EXPECT_THROW(attention_head_paged(q.data(), &null_block, &vb, 8, 64, 64, 8, 0.125f, out.data(), scratch.data()),
               Error);
  AttentionQueries a{.q = q.data(), .out = out.data(), .n_kv = 8};
  EXPECT_THROW(attention_queries_paged(a, &kb, &vb, 8, 32, 64, 0.125f, scratch.data()), Error);  // stride < head_dim
  EXPECT_THROW(to_half(nullptr, k.data(), 4), Error);
  to_half(q.data(), k.data(), 0);  // nothing to do
}

}  // namespace
}  // namespace mixserve::cpu
