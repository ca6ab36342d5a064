// Backends against each other: every non-CPU device must reproduce the CPU backend's results
// for the ops it supports (tolerances in tolerances.h), and every device must quantise mat_mul
// activations exactly as src/quant quantize_row does for Q8_0.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>

#include "conformance/op_harness.h"
#include "conformance/tolerances.h"
#include "quant/quant.h"

namespace mixserve::conformance {
namespace {

using hal::make_op;

std::vector<hal::Device*> other_devices() {
  std::vector<hal::Device*> out;
  for (hal::Device* d : all_devices()) {
    if (d->info().backend != "cpu") out.push_back(d);
  }
  return out;
}

#define SKIP_WITHOUT_OTHER_DEVICES(devices)                                                          \
  if ((devices).empty())                                                                             \
  GTEST_SKIP() << "only the CPU is registered (OpenCL not built, or no OpenCL platform/device): " \
                  "no second backend to compare"

/// Inputs of one op as f32/encoded bytes plus the op's shapes, run on any device.
struct OpInputs {
  hal::OpKind kind;
  std::vector<std::pair<DType, std::array<int64_t, 4>>> src_types;  ///< per source
  std::vector<std::vector<uint8_t>> src_bytes;
  std::array<int64_t, 4> dst_ne;
  float f0 = 0.0f;
};

// Runs `in` on `device`; *supported = false (and the skip recorded) when the device refuses it.
std::vector<float> run_on(hal::Device& device, const OpInputs& in, const std::string& what, bool* supported) {
  auto stream = device.create_stream();
  std::vector<DeviceTensor> srcs;
  for (size_t i = 0; i < in.src_types.size(); ++i) {
    srcs.push_back(make_tensor(device, *stream, in.src_types[i].first, in.src_types[i].second, in.src_bytes[i]));
  }
  auto y = make_tensor(device, *stream, DType::kF32, in.dst_ne);
  hal::Op op = make_op(in.kind, &y.tensor, &srcs[0].tensor, srcs.size() > 1 ? &srcs[1].tensor : nullptr);
  op.f[0] = in.f0;
  *supported = runs_on(device, op, what);
  if (!*supported) return {};
  stream->run(op);
  return read_f32(*stream, y);
}

void expect_agreement(const OpInputs& in, const std::string& what, double bound) {
  bool cpu_ok = false;
  const auto want = run_on(cpu_device(), in, what, &cpu_ok);
  ASSERT_TRUE(cpu_ok) << "the CPU must support " << what;
  for (hal::Device* device : other_devices()) {
    bool ok = false;
    const auto got = run_on(*device, in, what, &ok);
    if (!ok) continue;
    const double err = nmse(got, want);
    std::printf("[  VS CPU  ] %s %s NMSE %.3g\n", device->info().id.c_str(), what.c_str(), err);
    EXPECT_LE(err, bound) << device->info().id << " " << what;
  }
}

TEST(AgreementWithCpu, MatMulAllTypes) {
  const auto others = other_devices();
  SKIP_WITHOUT_OTHER_DEVICES(others);
  for (DType type : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0}) {
    for (auto [k, n, t] : {std::array<int64_t, 3>{32, 1, 1}, {96, 67, 7}, {512, 130, 1}, {2048, 64, 4}}) {
      std::mt19937_64 rng(static_cast<uint64_t>(k + n + t));
      const auto w = random_floats(static_cast<size_t>(k * n), rng);
      const auto x = random_floats(static_cast<size_t>(k * t), rng);
      OpInputs in{hal::OpKind::kMatMul,
                  {{type, {k, n, 1, 1}}, {DType::kF32, {k, t, 1, 1}}},
                  {encode(type, w, k), encode(DType::kF32, x, k)},
                  {n, t, 1, 1}};
      const bool quantised = type == DType::kQ8_0 || type == DType::kQ4_0;
      expect_agreement(in, str_cat("mat_mul.", dtype_name(type), ".k", k, "_n", n, "_t", t),
                       quantised ? kCrossBackendQuantNmse : kFloatNmse);
    }
  }
}

TEST(AgreementWithCpu, VectorOps) {
  const auto others = other_devices();
  SKIP_WITHOUT_OTHER_DEVICES(others);
  std::mt19937_64 rng(23);
  for (auto [width, rows] : {std::array<int64_t, 2>{37, 5}, {2048, 1}, {4097, 3}}) {
    const auto a = random_floats(static_cast<size_t>(width * rows), rng, 3.0f);
    const auto b = random_floats(static_cast<size_t>(width * rows), rng);
    const auto row = random_floats(static_cast<size_t>(width), rng);
    const std::array<int64_t, 4> shape = {width, rows, 1, 1};
    const std::array<int64_t, 4> one_row = {width, 1, 1, 1};
    const std::string size = str_cat(".w", width, "_r", rows);
    OpInputs add{hal::OpKind::kAdd, {{DType::kF32, shape}, {DType::kF32, shape}},
                 {encode(DType::kF32, a, width), encode(DType::kF32, b, width)}, shape};
    expect_agreement(add, "add.f32" + size, 0.0);  // one correctly rounded f32 addition
    OpInputs bcast{hal::OpKind::kAdd, {{DType::kF32, shape}, {DType::kF32, one_row}},
                   {encode(DType::kF32, a, width), encode(DType::kF32, row, width)}, shape};
    expect_agreement(bcast, "add.f32.broadcast" + size, 0.0);
    OpInputs norm{hal::OpKind::kRmsNorm, {{DType::kF32, shape}, {DType::kF32, one_row}},
                  {encode(DType::kF32, a, width), encode(DType::kF32, row, width)}, shape, 1e-5f};
    expect_agreement(norm, "rms_norm.f32" + size, kFloatNmse);
    OpInputs glu{hal::OpKind::kSwiGLU, {{DType::kF32, shape}, {DType::kF32, shape}},
                 {encode(DType::kF32, a, width), encode(DType::kF32, b, width)}, shape};
    expect_agreement(glu, "swiglu.f32" + size, kTranscendentalNmse);
  }
}

// Identity weights (fp16 scale 1.0, one quantised 1 per row) make y = the activations after
// Q8_0 quantisation and dequantisation, exactly: one integer product, times 1.0, times the
// activation scale, plus exact zeros. So the output must equal quantize_row + dequantize_row
// bit for bit, which checks the activation rule (scale amax/127, round half away from zero,
// fp16 scale with round-to-nearest-even, subnormal scales, all-zero blocks) on every device.
std::vector<uint8_t> identity_weights(DType type, int64_t k) {
  const size_t block_bytes = dtype_info(type).block_bytes;
  const int64_t nb = k / 32;
  std::vector<uint8_t> bytes(static_cast<size_t>(k * nb) * block_bytes);
  const uint16_t one = quant::f32_to_fp16(1.0f);
  for (int64_t r = 0; r < k; ++r) {
    for (int64_t b = 0; b < nb; ++b) {
      uint8_t* blk = bytes.data() + static_cast<size_t>(r * nb + b) * block_bytes;
      std::memcpy(blk, &one, 2);
      const bool hit = r / 32 == b;
      const int64_t j = r % 32;
      if (type == DType::kQ8_0) {
        if (hit) blk[2 + j] = 1;
      } else {
        std::memset(blk + 2, 0x88, 16);  // nibble 8 = value 0
        if (hit) blk[2 + j % 16] = j < 16 ? 0x89 : 0x98;
      }
    }
  }
  return bytes;
}

std::vector<float> special_activations(int64_t k, int64_t t, std::mt19937_64& rng) {
  auto x = random_floats(static_cast<size_t>(k * t), rng);
  // Block 0 of token 0: amax 127 gives scale 1, so x * (1/d) hits exact .5 ties.
  const float ties[] = {127.0f, 2.5f, -3.5f, 0.5f, -0.5f, 1.5f, -126.5f, 64.5f};
  std::memcpy(x.data(), ties, sizeof(ties));
  for (int64_t j = 0; j < 32; ++j) x[static_cast<size_t>(32 + j)] *= 1e-5f;  // subnormal fp16 scale
  for (int64_t j = 0; j < 32; ++j) x[static_cast<size_t>(64 + j)] = 0.0f;    // all-zero block
  for (int64_t j = 0; j < 32; ++j) x[static_cast<size_t>(96 + j)] *= 3000.0f;  // large scale
  return x;
}

TEST(AgreementWithCpu, QuantisedActivationsMatchQuantizeRowExactly) {
  const int64_t k = 160, t = 3;
  std::mt19937_64 rng(29);
  const auto x = special_activations(k, t, rng);
  std::vector<float> want(x.size());
  std::vector<uint8_t> q(*dtype_row_bytes(DType::kQ8_0, k));
  for (int64_t tt = 0; tt < t; ++tt) {
    quant::quantize_row(DType::kQ8_0, x.data() + tt * k, q.data(), k);
    quant::dequantize_row(DType::kQ8_0, q.data(), want.data() + tt * k, k);
  }
  for (DType type : {DType::kQ8_0, DType::kQ4_0}) {
    OpInputs in{hal::OpKind::kMatMul,
                {{type, {k, k, 1, 1}}, {DType::kF32, {k, t, 1, 1}}},
                {identity_weights(type, k), encode(DType::kF32, x, k)},
                {k, t, 1, 1}};
    for (hal::Device* device : all_devices()) {
      bool ok = false;
      const auto got = run_on(*device, in, str_cat("mat_mul.", dtype_name(type), ".identity"), &ok);
      if (!ok) continue;
      int mismatches = 0;
      for (size_t i = 0; i < want.size(); ++i) {
        if (got[i] != want[i] && mismatches++ < 5) {
          ADD_FAILURE() << device->info().id << " " << dtype_name(type) << " element " << i << ": " << got[i]
                        << " != " << want[i] << " (x = " << x[i] << ")";
        }
      }
      EXPECT_EQ(mismatches, 0) << device->info().id << " " << dtype_name(type);
    }
  }
}

// A token's outputs must not depend on how many tokens share the call (the CPU guarantees this
// bit for bit, and prefill and decode must agree): T tokens at once equal T single-token calls.
// 71 tokens are also split between work items (a prompt's tokens go in ranges of at most 16).
TEST(AgreementWithCpu, BatchedMatMulEqualsSingleTokens) {
  const int64_t k = 96, n = 37;
  for (int64_t t : {7, 71}) {  // not multiples of any token tile
    for (DType type : {DType::kF32, DType::kF16, DType::kQ8_0, DType::kQ4_0}) {
      std::mt19937_64 rng(31);
      const auto w = random_floats(static_cast<size_t>(k * n), rng);
      const auto x = random_floats(static_cast<size_t>(k * t), rng);
      const std::string what = str_cat("mat_mul.", dtype_name(type), ".batch");
      for (hal::Device* device : all_devices()) {
        bool ok = false;
        const OpInputs batch{hal::OpKind::kMatMul,
                             {{type, {k, n, 1, 1}}, {DType::kF32, {k, t, 1, 1}}},
                             {encode(type, w, k), encode(DType::kF32, x, k)},
                             {n, t, 1, 1}};
        const auto all = run_on(*device, batch, what, &ok);
        if (!ok) continue;
        for (int64_t tt = 0; tt < t; ++tt) {
          const std::vector<float> one_x(x.begin() + tt * k, x.begin() + (tt + 1) * k);
          const OpInputs single{hal::OpKind::kMatMul,
                                {{type, {k, n, 1, 1}}, {DType::kF32, {k, 1, 1, 1}}},
                                {encode(type, w, k), encode(DType::kF32, one_x, k)},
                                {n, 1, 1, 1}};
          const auto one = run_on(*device, single, what, &ok);
          ASSERT_TRUE(ok);
          EXPECT_TRUE(std::equal(one.begin(), one.end(), all.begin() + tt * n))
              << device->info().id << " " << what << " token " << tt;
        }
      }
    }
  }
}

}  // namespace
}  // namespace mixserve::conformance
