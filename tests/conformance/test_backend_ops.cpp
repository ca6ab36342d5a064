// Conformance suite (after ggml's test-backend-ops): every op x dtype x representative shape
// (odd sizes, block tails, GQA, positions > 0) on every registered device, against plain
// double-precision references computed here. Tolerances are normalised mean squared errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "conformance/op_harness.h"
#include "hal/registry.h"
#include "quant/quant.h"

namespace mixserve::conformance {
namespace {

// NMSE bounds. Float paths accumulate in f32: error ~ 1e-7 relative per element -> NMSE ~1e-13;
// 1e-10 leaves room for different summation orders. Q8_0/Q4_0 matrix products quantise the
// activations to Q8_0 (step max|x|/127 per 32 values): relative error ~ 1/(127*sqrt(3)) per term,
// which over random signs and many outputs gives NMSE ~ 2e-5 against the dequantised weights;
// bound 2e-4 (a per-output absolute bound is checked too, see MatMulConformance).
constexpr double kFloatNmse = 1e-10;
constexpr double kQuantNmse = 2e-4;
// SIMD exp/transcendentals in softmax/silu/rope are accurate to a few ulp.
constexpr double kTranscendentalNmse = 1e-9;

std::vector<hal::Device*> all_devices() { return hal::Registry::instance().devices(); }

std::vector<float> dequantised(DType type, const std::vector<uint8_t>& bytes, int64_t row, int64_t rows) {
  std::vector<float> out(static_cast<size_t>(row * rows));
  const size_t row_bytes = *dtype_row_bytes(type, row);
  for (int64_t r = 0; r < rows; ++r) {
    quant::dequantize_row(type, bytes.data() + r * row_bytes, out.data() + r * row, row);
  }
  return out;
}

using hal::make_op;

struct MatMulCase {
  DType type;
  int64_t k, n, t;
};

class MatMulConformance : public ::testing::TestWithParam<MatMulCase> {};

TEST_P(MatMulConformance, MatchesDoubleReference) {
  const auto [type, k, n, t] = GetParam();
  for (hal::Device* device : all_devices()) {
    SCOPED_TRACE(device->info().id);
    auto stream = device->create_stream();
    std::mt19937_64 rng(k * 131 + n * 7 + t);
    const auto w_values = random_floats(static_cast<size_t>(k * n), rng);
    const auto x_values = random_floats(static_cast<size_t>(k * t), rng);
    auto w = make_tensor(*device, *stream, type, {k, n, 1, 1}, encode(type, w_values, k));
    auto x = make_tensor(*device, *stream, DType::kF32, {k, t, 1, 1}, encode(DType::kF32, x_values, k));
    auto y = make_tensor(*device, *stream, DType::kF32, {n, t, 1, 1});
    const hal::Op op = make_op(hal::OpKind::kMatMul, &y.tensor, &w.tensor, &x.tensor);
    if (!device->supports_op(op)) continue;
    stream->run(op);
    const auto got = read_f32(*stream, y);
    const auto wd = dequantised(type, w.host, k, n);
    std::vector<double> want(static_cast<size_t>(n * t));
    for (int64_t tt = 0; tt < t; ++tt) {
      for (int64_t r = 0; r < n; ++r) {
        double acc = 0;
        for (int64_t j = 0; j < k; ++j) acc += static_cast<double>(wd[r * k + j]) * x_values[tt * k + j];
        want[tt * n + r] = acc;
      }
    }
    const bool quantised = type == DType::kQ8_0 || type == DType::kQ4_0;
    if (!quantised) {
      EXPECT_LT(nmse(got, want), kFloatNmse) << dtype_name(type);
      continue;
    }
    // Backends may quantise activations to 8 bits per 32-value block (scale amax/127 stored as
    // fp16): each x_j then moves by at most ~0.5 step + the fp16 rounding of the scale
    // (127 * 2^-11 steps), so |error| <= sum_j |w_j| * 0.57 * amax_block / 127 per output.
    // A relative NMSE bound is meaningless for a single output (cancellation), so check this.
    int violations = 0;
    for (int64_t tt = 0; tt < t; ++tt) {
      for (int64_t r = 0; r < n; ++r) {
        double bound = 1e-6;
        for (int64_t b0 = 0; b0 < k; b0 += 32) {
          double amax = 0, wsum = 0;
          for (int64_t j = b0; j < b0 + 32; ++j) {
            amax = std::max(amax, std::abs(double{x_values[tt * k + j]}));
            wsum += std::abs(double{wd[r * k + j]});
          }
          bound += wsum * 0.57 * amax / 127.0;
        }
        if (std::abs(got[tt * n + r] - want[tt * n + r]) > bound) ++violations;
      }
    }
    EXPECT_EQ(violations, 0) << dtype_name(type);
    EXPECT_LT(nmse(got, want), n * t >= 64 ? kQuantNmse : 1e-2) << dtype_name(type);
  }
}

std::vector<MatMulCase> matmul_cases() {
  std::vector<MatMulCase> out;
  for (DType type : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0}) {
    for (auto [k, n, t] : {std::array<int64_t, 3>{32, 1, 1}, {64, 17, 3}, {96, 64, 13}, {256, 33, 8},
                           {4128, 5, 2}, {512, 300, 1}}) {
      out.push_back({type, k, n, t});
    }
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(AllTypes, MatMulConformance, ::testing::ValuesIn(matmul_cases()),
                         [](const auto& param_info) {
                           const auto& c = param_info.param;
                           return std::string(dtype_name(c.type)) + "_k" + std::to_string(c.k) + "_n" +
                                  std::to_string(c.n) + "_t" + std::to_string(c.t);
                         });

TEST(OpConformance, GetRowsAllTypes) {
  for (hal::Device* device : all_devices()) {
    SCOPED_TRACE(device->info().id);
    auto stream = device->create_stream();
    for (DType type : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0}) {
      std::mt19937_64 rng(3);
      const int64_t d = 96, v = 11;
      const auto values = random_floats(static_cast<size_t>(d * v), rng);
      auto table = make_tensor(*device, *stream, type, {d, v, 1, 1}, encode(type, values, d));
      const std::vector<int32_t> ids = {10, 0, 3, 3, 7};
      std::vector<uint8_t> id_bytes(ids.size() * 4);
      std::memcpy(id_bytes.data(), ids.data(), id_bytes.size());
      auto idt = make_tensor(*device, *stream, DType::kI32, {5, 1, 1, 1}, id_bytes);
      auto out = make_tensor(*device, *stream, DType::kF32, {d, 5, 1, 1});
      const hal::Op op = make_op(hal::OpKind::kGetRows, &out.tensor, &table.tensor, &idt.tensor);
      if (!device->supports_op(op)) continue;
      stream->run(op);
      const auto got = read_f32(*stream, out);
      const auto deq = dequantised(type, table.host, d, v);
      std::vector<double> want;
      for (int32_t id : ids) want.insert(want.end(), deq.begin() + id * d, deq.begin() + (id + 1) * d);
      EXPECT_EQ(nmse(got, want), 0.0) << dtype_name(type);
    }
  }
}

TEST(OpConformance, AddWithAndWithoutBroadcast) {
  for (hal::Device* device : all_devices()) {
    SCOPED_TRACE(device->info().id);
    auto stream = device->create_stream();
    std::mt19937_64 rng(5);
    for (int64_t rows_b : {int64_t{7}, int64_t{1}}) {
      const int64_t n = 37, rows = 7;
      const auto a = random_floats(static_cast<size_t>(n * rows), rng);
      const auto b = random_floats(static_cast<size_t>(n * rows_b), rng);
      auto ta = make_tensor(*device, *stream, DType::kF32, {n, rows, 1, 1}, encode(DType::kF32, a, n));
      auto tb = make_tensor(*device, *stream, DType::kF32, {n, rows_b, 1, 1}, encode(DType::kF32, b, n));
      auto ty = make_tensor(*device, *stream, DType::kF32, {n, rows, 1, 1});
      stream->run(make_op(hal::OpKind::kAdd, &ty.tensor, &ta.tensor, &tb.tensor));
      const auto got = read_f32(*stream, ty);
      std::vector<double> want(a.size());
      for (size_t i = 0; i < a.size(); ++i) want[i] = double{a[i]} + b[rows_b == 1 ? i % n : i];
      EXPECT_LT(nmse(got, want), kFloatNmse);
    }
  }
}

TEST(OpConformance, RmsNormOddWidths) {
  for (hal::Device* device : all_devices()) {
    SCOPED_TRACE(device->info().id);
    auto stream = device->create_stream();
    std::mt19937_64 rng(9);
    for (int64_t n : {int64_t{1}, int64_t{17}, int64_t{64}, int64_t{2049}}) {
      const int64_t rows = 3;
      const auto x = random_floats(static_cast<size_t>(n * rows), rng, 3.0f);
      const auto w = random_floats(static_cast<size_t>(n), rng);
      auto tx = make_tensor(*device, *stream, DType::kF32, {n, rows, 1, 1}, encode(DType::kF32, x, n));
      auto tw = make_tensor(*device, *stream, DType::kF32, {n, 1, 1, 1}, encode(DType::kF32, w, n));
      auto ty = make_tensor(*device, *stream, DType::kF32, {n, rows, 1, 1});
      hal::Op op = make_op(hal::OpKind::kRmsNorm, &ty.tensor, &tx.tensor, &tw.tensor);
      op.f[0] = 1e-5f;
      stream->run(op);
      const auto got = read_f32(*stream, ty);
      std::vector<double> want(x.size());
      for (int64_t r = 0; r < rows; ++r) {
        double ss = 0;
        for (int64_t i = 0; i < n; ++i) ss += double{x[r * n + i]} * x[r * n + i];
        const double scale = 1.0 / std::sqrt(ss / static_cast<double>(n) + 1e-5);
        for (int64_t i = 0; i < n; ++i) want[r * n + i] = x[r * n + i] * scale * w[i];
      }
      EXPECT_LT(nmse(got, want), kFloatNmse) << n;
    }
  }
}

TEST(OpConformance, RopeBothArrangements) {
  for (hal::Device* device : all_devices()) {
    SCOPED_TRACE(device->info().id);
    auto stream = device->create_stream();
    std::mt19937_64 rng(11);
    for (bool neox : {false, true}) {
      for (int64_t n_rot : {int64_t{64}, int64_t{32}}) {
        const int64_t head_dim = 64, heads = 3, tokens = 4, pos0 = 1000;
        const auto x = random_floats(static_cast<size_t>(head_dim * heads * tokens), rng);
        auto tx = make_tensor(*device, *stream, DType::kF32, {head_dim, heads, tokens, 1},
                              encode(DType::kF32, x, head_dim));
        hal::Op op = make_op(hal::OpKind::kRope, &tx.tensor, &tx.tensor);
        op.i = {pos0, n_rot, neox ? 1 : 0};
        op.f[0] = 10000.0f;
        stream->run(op);
        const auto got = read_f32(*stream, tx);
        std::vector<double> want(x.begin(), x.end());
        for (int64_t t = 0; t < tokens; ++t) {
          for (int64_t h = 0; h < heads; ++h) {
            const int64_t base = (t * heads + h) * head_dim;
            for (int64_t i = 0; i < n_rot / 2; ++i) {
              const double theta = static_cast<double>(pos0 + t) *
                                   std::pow(10000.0, -2.0 * static_cast<double>(i) / static_cast<double>(n_rot));
              const int64_t a = neox ? i : 2 * i;
              const int64_t b = neox ? i + n_rot / 2 : 2 * i + 1;
              const double x0 = x[base + a], x1 = x[base + b];
              want[base + a] = x0 * std::cos(theta) - x1 * std::sin(theta);
              want[base + b] = x0 * std::sin(theta) + x1 * std::cos(theta);
            }
          }
        }
        // Angles up to ~1000 rad in float lose ~1e-4 absolute in sin/cos unless computed carefully;
        // the kernels must compute the angle in double, which this bound checks.
        EXPECT_LT(nmse(got, want), kTranscendentalNmse) << "neox=" << neox << " n_rot=" << n_rot;
      }
    }
  }
}

TEST(OpConformance, SwiGLU) {
  for (hal::Device* device : all_devices()) {
    SCOPED_TRACE(device->info().id);
    auto stream = device->create_stream();
    std::mt19937_64 rng(13);
    const int64_t n = 1001, rows = 2;
    const auto g = random_floats(static_cast<size_t>(n * rows), rng, 4.0f);
    const auto u = random_floats(static_cast<size_t>(n * rows), rng);
    auto tg = make_tensor(*device, *stream, DType::kF32, {n, rows, 1, 1}, encode(DType::kF32, g, n));
    auto tu = make_tensor(*device, *stream, DType::kF32, {n, rows, 1, 1}, encode(DType::kF32, u, n));
    auto ty = make_tensor(*device, *stream, DType::kF32, {n, rows, 1, 1});
    stream->run(make_op(hal::OpKind::kSwiGLU, &ty.tensor, &tg.tensor, &tu.tensor));
    const auto got = read_f32(*stream, ty);
    std::vector<double> want(g.size());
    for (size_t i = 0; i < g.size(); ++i) want[i] = g[i] / (1.0 + std::exp(-double{g[i]})) * u[i];
    EXPECT_LT(nmse(got, want), kTranscendentalNmse);
  }
}

TEST(OpConformance, AttentionGroupedQueryCausal) {
  for (hal::Device* device : all_devices()) {
    SCOPED_TRACE(device->info().id);
    auto stream = device->create_stream();
    std::mt19937_64 rng(17);
    const int64_t head_dim = 64, heads = 8, kv_heads = 2, tokens = 5, pos0 = 27, ctx = 40;
    const int64_t kv_dim = head_dim * kv_heads;
    const auto q = random_floats(static_cast<size_t>(head_dim * heads * tokens), rng);
    const auto k = random_floats(static_cast<size_t>(kv_dim * ctx), rng);
    const auto v = random_floats(static_cast<size_t>(kv_dim * ctx), rng);
    auto tq = make_tensor(*device, *stream, DType::kF32, {head_dim, heads, tokens, 1}, encode(DType::kF32, q, head_dim));
    auto tk = make_tensor(*device, *stream, DType::kF32, {kv_dim, ctx, 1, 1}, encode(DType::kF32, k, kv_dim));
    auto tv = make_tensor(*device, *stream, DType::kF32, {kv_dim, ctx, 1, 1}, encode(DType::kF32, v, kv_dim));
    auto ty = make_tensor(*device, *stream, DType::kF32, {head_dim * heads, tokens, 1, 1});
    hal::Op op = make_op(hal::OpKind::kAttention, &ty.tensor, &tq.tensor, &tk.tensor, &tv.tensor);
    const float scale = 0.125f;
    op.f[0] = scale;
    op.i = {pos0, kv_heads, 0};
    stream->run(op);
    const auto got = read_f32(*stream, ty);
    std::vector<double> want(got.size());
    for (int64_t t = 0; t < tokens; ++t) {
      for (int64_t h = 0; h < heads; ++h) {
        const int64_t kvh = h / (heads / kv_heads);
        const int64_t n_kv = pos0 + t + 1;  // causal: keys up to and including this position
        std::vector<double> s(static_cast<size_t>(n_kv));
        double mx = -1e300;
        for (int64_t j = 0; j < n_kv; ++j) {
          double dot = 0;
          for (int64_t d = 0; d < head_dim; ++d) {
            dot += double{q[(t * heads + h) * head_dim + d]} * k[j * kv_dim + kvh * head_dim + d];
          }
          s[j] = dot * scale;
          mx = std::max(mx, s[j]);
        }
        double sum = 0;
        for (auto& e : s) sum += (e = std::exp(e - mx));
        for (int64_t d = 0; d < head_dim; ++d) {
          double acc = 0;
          for (int64_t j = 0; j < n_kv; ++j) acc += s[j] / sum * v[j * kv_dim + kvh * head_dim + d];
          want[(t * heads + h) * head_dim + d] = acc;
        }
      }
    }
    EXPECT_LT(nmse(got, want), kTranscendentalNmse);
  }
}

TEST(OpConformance, StoreKVWritesRowsAtPosition) {
  for (hal::Device* device : all_devices()) {
    SCOPED_TRACE(device->info().id);
    auto stream = device->create_stream();
    std::mt19937_64 rng(19);
    const int64_t width = 24, ctx = 10, n = 3, pos = 6;
    const auto src = random_floats(static_cast<size_t>(width * n), rng);
    auto ts = make_tensor(*device, *stream, DType::kF32, {width, n, 1, 1}, encode(DType::kF32, src, width));
    auto tc = make_tensor(*device, *stream, DType::kF32, {width, ctx, 1, 1});
    hal::Op op = make_op(hal::OpKind::kStoreKV, &tc.tensor, &ts.tensor);
    op.i[0] = pos;
    stream->run(op);
    const auto got = read_f32(*stream, tc);
    std::vector<double> want(static_cast<size_t>(width * ctx), 0.0);
    for (size_t i = 0; i < src.size(); ++i) want[pos * width + i] = src[i];
    EXPECT_EQ(nmse(got, want), 0.0);
  }
}

}  // namespace
}  // namespace mixserve::conformance
