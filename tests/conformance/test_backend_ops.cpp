// Conformance suite (after ggml's test-backend-ops): every op x dtype x representative shape
// (odd sizes, block tails, one and many tokens, offsets inside buffers) on every registered
// device, against plain double-precision references computed here. Tolerances are normalised
// mean squared errors (NMSE), per dtype. A device whose supports_op says no skips the case and
// records it (see runs_on and test_backend_coverage.cpp); every case runs on at least the CPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>

#include "conformance/op_harness.h"
#include "conformance/tolerances.h"

namespace mixserve::conformance {
namespace {

using hal::make_op;

struct MatMulCase {
  DType type;
  int64_t k, n, t;
};

std::string case_name(const MatMulCase& c) {
  return str_cat("mat_mul.", dtype_name(c.type), ".k", c.k, "_n", c.n, "_t", c.t);
}

class MatMulConformance : public ::testing::TestWithParam<MatMulCase> {};

// Reference y[t][r] = sum_j w[r][j] x[t][j] in double over the dequantised weights.
std::vector<double> reference_matmul(const std::vector<float>& wd, const std::vector<float>& x, int64_t k, int64_t n,
                                     int64_t t) {
  std::vector<double> want(static_cast<size_t>(n * t));
  for (int64_t tt = 0; tt < t; ++tt) {
    for (int64_t r = 0; r < n; ++r) {
      double acc = 0;
      for (int64_t j = 0; j < k; ++j) acc += static_cast<double>(wd[r * k + j]) * x[tt * k + j];
      want[tt * n + r] = acc;
    }
  }
  return want;
}

// Outputs outside the bound that 8-bit activation quantisation allows (see kQuantNmse): each x_j
// moves by at most half a step amax_block/127 plus the fp16 rounding of the scale (127 * 2^-11
// steps), so |error| <= sum_j |w_j| * 0.57 * amax_block / 127 per output. A relative NMSE bound
// says little about a single output (cancellation), so this is checked as well.
int quantisation_bound_violations(const std::vector<float>& got, const std::vector<double>& want,
                                  const std::vector<float>& wd, const std::vector<float>& x, int64_t k, int64_t n,
                                  int64_t t) {
  int violations = 0;
  for (int64_t tt = 0; tt < t; ++tt) {
    for (int64_t r = 0; r < n; ++r) {
      double bound = 1e-6;
      for (int64_t b0 = 0; b0 < k; b0 += 32) {
        double amax = 0, wsum = 0;
        for (int64_t j = b0; j < b0 + 32; ++j) {
          amax = std::max(amax, std::abs(double{x[tt * k + j]}));
          wsum += std::abs(double{wd[r * k + j]});
        }
        bound += wsum * 0.57 * amax / 127.0;
      }
      if (std::abs(got[tt * n + r] - want[tt * n + r]) > bound) ++violations;
    }
  }
  return violations;
}

TEST_P(MatMulConformance, MatchesDoubleReference) {
  const MatMulCase c = GetParam();
  const auto [type, k, n, t] = c;
  int ran = 0;
  for (hal::Device* device : all_devices()) {
    SCOPED_TRACE(device->info().id);
    auto stream = device->create_stream();
    std::mt19937_64 rng(static_cast<uint64_t>(k * 131 + n * 7 + t));
    const auto w_values = random_floats(static_cast<size_t>(k * n), rng);
    const auto x_values = random_floats(static_cast<size_t>(k * t), rng);
    // Tensors sit at offsets inside their buffers, as in a model's packed weight buffer.
    auto w = make_tensor(*device, *stream, type, {k, n, 1, 1}, encode(type, w_values, k), 8);
    auto x = make_tensor(*device, *stream, DType::kF32, {k, t, 1, 1}, encode(DType::kF32, x_values, k), 4);
    auto y = make_tensor(*device, *stream, DType::kF32, {n, t, 1, 1}, {}, 12);
    const hal::Op op = make_op(hal::OpKind::kMatMul, &y.tensor, &w.tensor, &x.tensor);
    if (!runs_on(*device, op, case_name(c))) continue;
    ++ran;
    stream->run(op);
    const auto got = read_f32(*stream, y);
    EXPECT_TRUE(guards_intact(*stream, y)) << "mat_mul wrote outside its output";
    const auto wd = dequantised(type, w.host, k, n);
    const auto want = reference_matmul(wd, x_values, k, n, t);
    const double err = nmse(got, want);
    std::printf("[  NMSE    ] %s %s %.3g\n", device->info().id.c_str(), case_name(c).c_str(), err);
    EXPECT_LT(err, matmul_nmse_bound(type, n * t)) << dtype_name(type);
    if (type == DType::kQ8_0 || type == DType::kQ4_0) {
      EXPECT_EQ(quantisation_bound_violations(got, want, wd, x_values, k, n, t), 0) << dtype_name(type);
    }
  }
  EXPECT_GT(ran, 0) << "no device ran " << case_name(c);
}

std::vector<MatMulCase> matmul_cases() {
  std::vector<MatMulCase> out;
  for (DType type : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0}) {
    // Block multiples: single block, several rows/tokens, long rows with a tail of blocks, and
    // n = 300 (not a multiple of any work-group size) with one token.
    for (auto [k, n, t] : {std::array<int64_t, 3>{32, 1, 1}, {64, 17, 3}, {96, 64, 13}, {256, 33, 8},
                           {4128, 5, 2}, {512, 300, 1}}) {
      out.push_back({type, k, n, t});
    }
    if (type == DType::kQ8_0 || type == DType::kQ4_0) continue;
    // Plain types take any row length: 1, and odd lengths that leave vector tails.
    for (auto [k, n, t] : {std::array<int64_t, 3>{1, 4, 3}, {7, 3, 2}, {33, 19, 5}, {130, 65, 1}}) {
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

// The CPU stream runs consecutive products of one input as one job (run_all): the input converted
// once, the rows of all of them shared out together: when decoding, in shares (equal ones, or
// shrinking chunks when the pool has more threads than the machine has cores) that cross from one
// product into the next. Each product must still get exactly the bits it gets when run alone,
// whatever the tokens (one, a decoding batch, a prompt) and threads.
TEST(OpConformance, ProductsOfOneInputRunTogetherGiveEachOnesBits) {
  hal::Device& device = cpu_device();
  constexpr int64_t kK = 256;
  const std::array<int64_t, 3> rows = {100, 37, 29};  // no multiples of the 16-row chunks
  for (DType type : {DType::kQ8_0, DType::kQ4_0}) {
    for (int threads : {1, 2, 3, 4}) {
      for (int64_t t : {1, 3, 16, 20}) {
        SCOPED_TRACE(str_cat(dtype_name(type), ", ", threads, " threads, ", t, " tokens"));
        auto stream = device.create_stream({.n_threads = threads});
        std::mt19937_64 rng(static_cast<uint64_t>(t * 10 + threads));
        auto x = make_tensor(device, *stream, DType::kF32, {kK, t, 1, 1},
                             encode(DType::kF32, random_floats(static_cast<size_t>(kK * t), rng), kK));
        std::vector<DeviceTensor> w, together, alone;
        for (int64_t n : rows) {
          w.push_back(make_tensor(device, *stream, type, {kK, n, 1, 1},
                                  encode(type, random_floats(static_cast<size_t>(kK * n), rng), kK)));
          together.push_back(make_tensor(device, *stream, DType::kF32, {n, t, 1, 1}));
          alone.push_back(make_tensor(device, *stream, DType::kF32, {n, t, 1, 1}));
        }
        std::vector<hal::Op> ops;
        for (size_t i = 0; i < rows.size(); ++i) {
          ops.push_back(make_op(hal::OpKind::kMatMul, &together[i].tensor, &w[i].tensor, &x.tensor));
          stream->run(make_op(hal::OpKind::kMatMul, &alone[i].tensor, &w[i].tensor, &x.tensor));
        }
        stream->run_all(ops);
        for (size_t i = 0; i < rows.size(); ++i) {
          const auto got = read_f32(*stream, together[i]);
          const auto want = read_f32(*stream, alone[i]);
          ASSERT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0) << "product " << i;
          EXPECT_TRUE(guards_intact(*stream, together[i])) << "product " << i << " wrote outside its output";
        }
      }
    }
  }
}

TEST(OpConformance, GetRowsAllTypes) {
  for (DType type : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0}) {
    int ran = 0;
    for (hal::Device* device : all_devices()) {
      SCOPED_TRACE(device->info().id);
      auto stream = device->create_stream();
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
      if (!runs_on(*device, op, str_cat("get_rows.", dtype_name(type)))) continue;
      ++ran;
      stream->run(op);
      const auto got = read_f32(*stream, out);
      const auto deq = dequantised(type, table.host, d, v);
      std::vector<double> want;
      for (int32_t id : ids) want.insert(want.end(), deq.begin() + id * d, deq.begin() + (id + 1) * d);
      EXPECT_EQ(nmse(got, want), 0.0) << dtype_name(type);  // a copy of decoded rows: exact
    }
    EXPECT_GT(ran, 0) << dtype_name(type);
  }
}

struct AddCase {
  int64_t width, rows, rows_b;
  bool in_place;
};

TEST(OpConformance, AddWithAndWithoutBroadcast) {
  for (const AddCase c : {AddCase{37, 7, 7, false}, {37, 7, 1, false}, {1, 5, 1, false}, {4096, 1, 1, false},
                          {129, 3, 3, true}, {65, 4, 1, true}}) {
    const std::string what = str_cat("add.f32.w", c.width, "_r", c.rows, "_b", c.rows_b, c.in_place ? "_inplace" : "");
    int ran = 0;
    for (hal::Device* device : all_devices()) {
      SCOPED_TRACE(device->info().id + " " + what);
      auto stream = device->create_stream();
      std::mt19937_64 rng(5);
      const int64_t n = c.width;
      const auto a = random_floats(static_cast<size_t>(n * c.rows), rng);
      const auto b = random_floats(static_cast<size_t>(n * c.rows_b), rng);
      auto ta = make_tensor(*device, *stream, DType::kF32, {n, c.rows, 1, 1}, encode(DType::kF32, a, n), 4);
      auto tb = make_tensor(*device, *stream, DType::kF32, {n, c.rows_b, 1, 1}, encode(DType::kF32, b, n), 8);
      auto ty = make_tensor(*device, *stream, DType::kF32, {n, c.rows, 1, 1}, {}, 16);
      DeviceTensor& out = c.in_place ? ta : ty;
      const hal::Op op = make_op(hal::OpKind::kAdd, &out.tensor, &ta.tensor, &tb.tensor);
      if (!runs_on(*device, op, what)) continue;
      ++ran;
      stream->run(op);
      const auto got = read_f32(*stream, out);
      EXPECT_TRUE(guards_intact(*stream, out));
      std::vector<double> want(a.size());
      // The sum of two floats rounded once to float: every backend must give exactly this.
      for (size_t i = 0; i < a.size(); ++i) want[i] = a[i] + b[c.rows_b == 1 ? i % static_cast<size_t>(n) : i];
      EXPECT_EQ(nmse(got, want), 0.0);
    }
    EXPECT_GT(ran, 0) << what;
  }
}

TEST(OpConformance, RmsNormOddWidths) {
  for (int64_t n : {int64_t{1}, int64_t{17}, int64_t{64}, int64_t{257}, int64_t{2049}}) {
    for (int64_t rows : {int64_t{1}, int64_t{3}}) {
      const std::string what = str_cat("rms_norm.f32.w", n, "_r", rows);
      int ran = 0;
      for (hal::Device* device : all_devices()) {
        SCOPED_TRACE(device->info().id);
        auto stream = device->create_stream();
        std::mt19937_64 rng(9);
        const auto x = random_floats(static_cast<size_t>(n * rows), rng, 3.0f);
        const auto w = random_floats(static_cast<size_t>(n), rng);
        auto tx = make_tensor(*device, *stream, DType::kF32, {n, rows, 1, 1}, encode(DType::kF32, x, n), 4);
        auto tw = make_tensor(*device, *stream, DType::kF32, {n, 1, 1, 1}, encode(DType::kF32, w, n), 8);
        auto ty = make_tensor(*device, *stream, DType::kF32, {n, rows, 1, 1}, {}, 12);
        hal::Op op = make_op(hal::OpKind::kRmsNorm, &ty.tensor, &tx.tensor, &tw.tensor);
        op.f[0] = 1e-5f;
        if (!runs_on(*device, op, what)) continue;
        ++ran;
        stream->run(op);
        const auto got = read_f32(*stream, ty);
        EXPECT_TRUE(guards_intact(*stream, ty));
        std::vector<double> want(x.size());
        for (int64_t r = 0; r < rows; ++r) {
          double ss = 0;
          for (int64_t i = 0; i < n; ++i) ss += double{x[r * n + i]} * x[r * n + i];
          const double scale = 1.0 / std::sqrt(ss / static_cast<double>(n) + 1e-5);
          for (int64_t i = 0; i < n; ++i) want[r * n + i] = x[r * n + i] * scale * w[i];
        }
        const double err = nmse(got, want);
        std::printf("[  NMSE    ] %s %s %.3g\n", device->info().id.c_str(), what.c_str(), err);
        EXPECT_LT(err, kFloatNmse) << n;
      }
      EXPECT_GT(ran, 0) << what;
    }
  }
}

TEST(OpConformance, SwiGLU) {
  for (auto [n, rows] : {std::array<int64_t, 2>{1001, 2}, {1, 1}, {64, 5}, {4097, 1}}) {
    const std::string what = str_cat("swiglu.f32.w", n, "_r", rows);
    int ran = 0;
    for (hal::Device* device : all_devices()) {
      SCOPED_TRACE(device->info().id);
      auto stream = device->create_stream();
      std::mt19937_64 rng(13);
      auto g = random_floats(static_cast<size_t>(n * rows), rng, 4.0f);
      const auto u = random_floats(static_cast<size_t>(n * rows), rng);
      // Large |gate| must give neither NaN nor inf (exp(100) overflows float); 0 gives 0.
      const bool tails = g.size() > 3;
      if (tails) g[0] = -100.0f, g[1] = 100.0f, g[2] = 0.0f;
      auto tg = make_tensor(*device, *stream, DType::kF32, {n, rows, 1, 1}, encode(DType::kF32, g, n), 4);
      auto tu = make_tensor(*device, *stream, DType::kF32, {n, rows, 1, 1}, encode(DType::kF32, u, n), 8);
      auto ty = make_tensor(*device, *stream, DType::kF32, {n, rows, 1, 1}, {}, 12);
      const hal::Op op = make_op(hal::OpKind::kSwiGLU, &ty.tensor, &tg.tensor, &tu.tensor);
      if (!runs_on(*device, op, what)) continue;
      ++ran;
      stream->run(op);
      const auto got = read_f32(*stream, ty);
      EXPECT_TRUE(guards_intact(*stream, ty));
      std::vector<double> want(g.size());
      for (size_t i = 0; i < g.size(); ++i) want[i] = g[i] / (1.0 + std::exp(-double{g[i]})) * u[i];
      const double err = nmse(got, want);
      std::printf("[  NMSE    ] %s %s %.3g\n", device->info().id.c_str(), what.c_str(), err);
      EXPECT_LT(err, kTranscendentalNmse);
      if (tails) {
        EXPECT_EQ(got[1], 100.0f * u[1]);  // sigmoid(100) is 1 to float precision
        EXPECT_TRUE(std::isfinite(got[0]) && std::abs(got[0]) < 1e-30f) << got[0];
        EXPECT_EQ(got[2], 0.0f);
      }
    }
    EXPECT_GT(ran, 0) << what;
  }
}

}  // namespace
}  // namespace mixserve::conformance
