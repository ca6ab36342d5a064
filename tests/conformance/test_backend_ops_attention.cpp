// Conformance of the attention-side ops (rope, attention, store_kv) on every registered device
// against double-precision references; unsupported devices skip and record (see runs_on).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "conformance/op_harness.h"
#include "conformance/tolerances.h"

namespace mixserve::conformance {
namespace {

using hal::make_op;

TEST(OpConformance, RopeBothArrangements) {
  for (bool neox : {false, true}) {
    for (int64_t n_rot : {int64_t{64}, int64_t{32}}) {
      const std::string what = str_cat("rope.f32.", neox ? "neox" : "normal", "_rot", n_rot);
      int ran = 0;
      for (hal::Device* device : all_devices()) {
        SCOPED_TRACE(device->info().id);
        auto stream = device->create_stream();
        std::mt19937_64 rng(11);
        const int64_t head_dim = 64, heads = 3, tokens = 4, pos0 = 1000;
        const auto x = random_floats(static_cast<size_t>(head_dim * heads * tokens), rng);
        auto tx = make_tensor(*device, *stream, DType::kF32, {head_dim, heads, tokens, 1},
                              encode(DType::kF32, x, head_dim));
        hal::Op op = make_op(hal::OpKind::kRope, &tx.tensor, &tx.tensor);
        op.i = {pos0, n_rot, neox ? 1 : 0};
        op.f[0] = 10000.0f;
        if (!runs_on(*device, op, what)) continue;
        ++ran;
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
        EXPECT_LT(nmse(got, want), kTranscendentalNmse) << what;
      }
      EXPECT_GT(ran, 0) << what;
    }
  }
}

TEST(OpConformance, AttentionGroupedQueryCausal) {
  int ran = 0;
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
    if (!runs_on(*device, op, "attention.f32.gqa")) continue;
    ++ran;
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
  EXPECT_GT(ran, 0);
}

TEST(OpConformance, StoreKVWritesRowsAtPosition) {
  int ran = 0;
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
    if (!runs_on(*device, op, "store_kv.f32")) continue;
    ++ran;
    stream->run(op);
    const auto got = read_f32(*stream, tc);
    std::vector<double> want(static_cast<size_t>(width * ctx), 0.0);
    for (size_t i = 0; i < src.size(); ++i) want[pos * width + i] = src[i];
    EXPECT_EQ(nmse(got, want), 0.0);
  }
  EXPECT_GT(ran, 0);
}

}  // namespace
}  // namespace mixserve::conformance
