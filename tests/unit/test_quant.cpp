// Tests of the scalar format routines in quant/quant.h: half/bfloat16 conversion against
// independent references, block layouts against hand-computed examples, round-trip error bounds.
#include "quant/quant.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "common/error.h"
#include "support/test_support.h"

namespace mixserve::quant {
namespace {

float bits_to_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

uint32_t float_to_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
}

// Independent value of a finite or infinite half, from the IEEE 754 binary16 definition.
double half_value(uint16_t h) {
  const int sign = (h >> 15) ? -1 : 1;
  const int exp = (h >> 10) & 0x1F;
  const int mant = h & 0x3FF;
  if (exp == 0x1F) return sign * std::numeric_limits<double>::infinity();
  if (exp == 0) return sign * std::ldexp(mant, -24);
  return sign * std::ldexp(mant + 1024, exp - 25);
}

// Nearest half to f (ties to the even bit pattern), by search over all finite halves;
// values at or beyond 65520 (half-way past the largest half) go to infinity.
uint16_t nearest_half(float f) {
  const double v = std::fabs(static_cast<double>(f));
  const uint16_t sign = std::signbit(f) ? 0x8000 : 0;
  if (v >= 65520.0) return sign | 0x7C00;
  uint16_t lo = 0;  // largest half magnitude <= v
  for (uint16_t h = 0; h < 0x7C00; ++h) {
    if (half_value(h) <= v) lo = h;
  }
  if (lo == 0x7BFF) return sign | lo;
  const double dlo = v - half_value(lo);
  const double dhi = half_value(static_cast<uint16_t>(lo + 1)) - v;
  if (dlo < dhi) return sign | lo;
  if (dhi < dlo) return sign | static_cast<uint16_t>(lo + 1);
  return sign | ((lo & 1) ? static_cast<uint16_t>(lo + 1) : lo);
}

bool is_half_nan(uint16_t h) { return (h & 0x7C00) == 0x7C00 && (h & 0x3FF) != 0; }

TEST(QuantFp16, EveryHalfDecodesToItsIeeeValueAndBack) {
  for (uint32_t h = 0; h <= 0xFFFF; ++h) {
    const auto bits = static_cast<uint16_t>(h);
    const float f = fp16_to_f32(bits);
    if (is_half_nan(bits)) {
      EXPECT_TRUE(std::isnan(f)) << h;
      EXPECT_TRUE(is_half_nan(f32_to_fp16(f))) << h;
      continue;
    }
    EXPECT_EQ(static_cast<double>(f), half_value(bits)) << h;
    EXPECT_EQ(std::signbit(f), (bits & 0x8000) != 0) << h;
    EXPECT_EQ(f32_to_fp16(f), bits) << h;
  }
}

TEST(QuantFp16, EdgeValues) {
  EXPECT_EQ(f32_to_fp16(0.0f), 0x0000);
  EXPECT_EQ(f32_to_fp16(-0.0f), 0x8000);
  EXPECT_EQ(f32_to_fp16(1.0f), 0x3C00);
  EXPECT_EQ(f32_to_fp16(-2.0f), 0xC000);
  EXPECT_EQ(f32_to_fp16(65504.0f), 0x7BFF);
  EXPECT_EQ(f32_to_fp16(65519.0f), 0x7BFF);
  EXPECT_EQ(f32_to_fp16(65520.0f), 0x7C00);  // tie with the next (odd) value: rounds to inf
  EXPECT_EQ(f32_to_fp16(1e10f), 0x7C00);
  EXPECT_EQ(f32_to_fp16(-std::numeric_limits<float>::infinity()), 0xFC00);
  EXPECT_TRUE(is_half_nan(f32_to_fp16(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_TRUE(is_half_nan(f32_to_fp16(bits_to_float(0x7F800001))));  // NaN payload below the kept bits
  // Subnormals: 2^-24 is the smallest; 2^-25 is a tie with zero (even) and rounds down.
  EXPECT_EQ(f32_to_fp16(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(f32_to_fp16(std::ldexp(1.0f, -25)), 0x0000);
  EXPECT_EQ(f32_to_fp16(-std::ldexp(1.0f, -25)), 0x8000);
  EXPECT_EQ(f32_to_fp16(std::ldexp(1.0f, -25) * 1.0001f), 0x0001);
  EXPECT_EQ(f32_to_fp16(std::ldexp(3.0f, -25)), 0x0002);  // 1.5 ulp: tie to even 2
  EXPECT_EQ(f32_to_fp16(std::ldexp(5.0f, -25)), 0x0002);  // 2.5 ulp: tie to even 2
  EXPECT_EQ(f32_to_fp16(std::ldexp(1023.0f, -24)), 0x03FF);
  EXPECT_EQ(f32_to_fp16(std::ldexp(1.0f, -14)), 0x0400);
  EXPECT_EQ(f32_to_fp16(std::ldexp(2047.0f, -25)), 0x0400);  // rounds up into the normal range
  EXPECT_EQ(f32_to_fp16(1e-30f), 0x0000);
  // Normal ties: 1 + 2^-11 is between 1 (even) and 1 + 2^-10; 1 + 3*2^-11 goes up to even.
  EXPECT_EQ(f32_to_fp16(1.0f + std::ldexp(1.0f, -11)), 0x3C00);
  EXPECT_EQ(f32_to_fp16(1.0f + std::ldexp(3.0f, -11)), 0x3C02);
  EXPECT_EQ(fp16_to_f32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(fp16_to_f32(0x7C00), std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(fp16_to_f32(0x7E00)));
}

TEST(QuantFp16, RandomFloatsRoundToTheNearestHalf) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> exp_dist(-30, 17);
  std::uniform_real_distribution<float> mant_dist(1.0f, 2.0f);
  for (int i = 0; i < 300; ++i) {
    float f = std::ldexp(mant_dist(rng), exp_dist(rng));
    if (i % 2) f = -f;
    EXPECT_EQ(f32_to_fp16(f), nearest_half(f)) << f;
  }
}

TEST(QuantBf16, ConversionAndRounding) {
  for (uint32_t h = 0; h <= 0xFFFF; ++h) {
    const auto bits = static_cast<uint16_t>(h);
    const float f = bf16_to_f32(bits);
    EXPECT_EQ(float_to_bits(f), h << 16);
    if (!std::isnan(f)) {
      EXPECT_EQ(f32_to_bf16(f), bits);
    }
  }
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3F80);
  EXPECT_EQ(f32_to_bf16(bits_to_float(0x3F808000)), 0x3F80);  // tie: stays even
  EXPECT_EQ(f32_to_bf16(bits_to_float(0x3F818000)), 0x3F82);  // tie: up to even
  EXPECT_EQ(f32_to_bf16(bits_to_float(0x3F808001)), 0x3F81);
  EXPECT_EQ(f32_to_bf16(bits_to_float(0x3F807FFF)), 0x3F80);
  EXPECT_EQ(f32_to_bf16(bits_to_float(0x7F7FFFFF)), 0x7F80);  // largest float rounds to inf
  EXPECT_EQ(f32_to_bf16(-std::numeric_limits<float>::infinity()), 0xFF80);
  EXPECT_EQ(f32_to_bf16(bits_to_float(0x00018000)), 0x0002);  // subnormal tie up to even
  EXPECT_EQ(f32_to_bf16(bits_to_float(0x00008000)), 0x0000);  // subnormal tie down to even
  const uint16_t nan = f32_to_bf16(bits_to_float(0x7F800001));  // low payload only
  EXPECT_EQ(nan & 0x7F80, 0x7F80);
  EXPECT_NE(nan & 0x7F, 0);
}

std::vector<uint8_t> quantized(DType type, const std::vector<float>& x) {
  std::vector<uint8_t> out(*dtype_row_bytes(type, static_cast<int64_t>(x.size())));
  quantize_row(type, x.data(), out.data(), static_cast<int64_t>(x.size()));
  return out;
}

std::vector<float> round_trip(DType type, const std::vector<float>& x) {
  const auto q = quantized(type, x);
  std::vector<float> back(x.size());
  dequantize_row(type, q.data(), back.data(), static_cast<int64_t>(x.size()));
  return back;
}

TEST(QuantRoundTrip, FloatFormats) {
  const auto x = testing::normal_floats(1024, 1, 3.0f);
  EXPECT_EQ(round_trip(DType::kF32, x), x);
  const auto h = round_trip(DType::kF16, x);
  const auto b = round_trip(DType::kBF16, x);
  for (size_t i = 0; i < x.size(); ++i) {
    // Half has 11 significant bits, bfloat16 8: relative error at most half an ulp.
    const float tol_h = std::max(std::fabs(x[i]) * std::ldexp(1.0f, -11), std::ldexp(1.0f, -25));
    EXPECT_LE(std::fabs(h[i] - x[i]), tol_h) << i;
    EXPECT_LE(std::fabs(b[i] - x[i]), std::fabs(x[i]) * std::ldexp(1.0f, -8)) << i;
  }
}

TEST(QuantRoundTrip, Q8_0ErrorWithinHalfAStep) {
  auto x = testing::normal_floats(32 * 64, 2, 2.0f);
  for (int i = 0; i < 32; ++i) x[32 * 5 + i] = 0.0f;  // an all-zero block
  const auto back = round_trip(DType::kQ8_0, x);
  for (size_t b = 0; b < x.size() / 32; ++b) {
    float amax = 0.0f;
    for (size_t j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b * 32 + j]));
    const float d = amax / 127.0f;
    // Half a step from rounding q, plus the scale's own fp16 rounding times |q| <= 127.
    const float tol = d * (0.5f + 127.0f * std::ldexp(1.0f, -11)) * 1.001f;
    for (size_t j = 0; j < 32; ++j) EXPECT_LE(std::fabs(back[b * 32 + j] - x[b * 32 + j]), tol);
  }
  for (int i = 0; i < 32; ++i) EXPECT_EQ(back[32 * 5 + i], 0.0f);
}

TEST(QuantRoundTrip, Q4_0ErrorWithinOneStep) {
  const auto x = testing::normal_floats(32 * 64, 3, 2.0f);
  const auto back = round_trip(DType::kQ4_0, x);
  for (size_t b = 0; b < x.size() / 32; ++b) {
    float amax = 0.0f;
    for (size_t j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b * 32 + j]));
    const float d = amax / 8.0f;
    // Half a step from rounding, a full step for -max (16 clamps to 15), plus the scale rounding.
    const float tol = d * (1.0f + 16.0f * std::ldexp(1.0f, -11)) * 1.001f;
    for (size_t j = 0; j < 32; ++j) EXPECT_LE(std::fabs(back[b * 32 + j] - x[b * 32 + j]), tol);
  }
}

TEST(QuantLayout, Q8_0HandComputedBlock) {
  // amax = 127 gives d = 1 exactly, so q = round(x) with halves away from zero.
  std::vector<float> x(32, 0.0f);
  x[0] = 127.0f;
  x[1] = -127.0f;
  x[2] = 0.4f;
  x[3] = 0.6f;
  x[4] = -0.5f;
  x[5] = 2.5f;
  x[6] = -3.5f;
  x[31] = 100.49f;
  const auto q = quantized(DType::kQ8_0, x);
  ASSERT_EQ(q.size(), 34u);
  EXPECT_EQ(q[0], 0x00);  // d = fp16(1.0) = 0x3C00, little endian
  EXPECT_EQ(q[1], 0x3C);
  const int8_t expect[8] = {127, -127, 0, 1, -1, 3, -4, 0};
  for (int i = 0; i < 8; ++i) EXPECT_EQ(static_cast<int8_t>(q[2 + i]), expect[i]) << i;
  EXPECT_EQ(static_cast<int8_t>(q[2 + 31]), 100);
}

TEST(QuantLayout, Q4_0HandComputedBlocks) {
  // Block 0: largest magnitude is -8, so d = -8 / -8 = 1 and q = min(15, trunc(x + 8.5)).
  // Block 1: largest magnitude is +4, so d = 4 / -8 = -0.5 and q = min(15, trunc(-2x + 8.5)).
  std::vector<float> x(64, 0.0f);
  x[0] = 0.0f;    // 8
  x[1] = 7.0f;    // 15
  x[2] = 7.9f;    // 16.4 -> clamped to 15
  x[3] = -7.6f;   // 0
  x[4] = 0.49f;   // 8
  x[5] = -8.0f;   // 0
  x[16] = 1.0f;   // 9, high nibble of qs[0]
  x[31] = -3.0f;  // 5, high nibble of qs[15]
  x[32] = 4.0f;   // 0
  x[33] = -4.0f;  // 16.5 -> 15
  x[34] = 1.0f;   // 6
  x[48] = -1.2f;  // 10.9 -> 10, high nibble of block 1 qs[0]
  const auto q = quantized(DType::kQ4_0, x);
  ASSERT_EQ(q.size(), 36u);
  EXPECT_EQ(q[0], 0x00);
  EXPECT_EQ(q[1], 0x3C);  // fp16(1.0)
  EXPECT_EQ(q[2 + 0], 0x98);
  EXPECT_EQ(q[2 + 1], 0x8F);  // x[1] = 15 low, x[17] = 0 -> 8 high
  EXPECT_EQ(q[2 + 2], 0x8F);
  EXPECT_EQ(q[2 + 3], 0x80);
  EXPECT_EQ(q[2 + 4], 0x88);
  EXPECT_EQ(q[2 + 5], 0x80);
  EXPECT_EQ(q[2 + 15], 0x58);
  EXPECT_EQ(q[18], 0x00);
  EXPECT_EQ(q[19], 0xB8);  // fp16(-0.5)
  EXPECT_EQ(q[20 + 0], 0xA0);
  EXPECT_EQ(q[20 + 1], 0x8F);
  EXPECT_EQ(q[20 + 2], 0x86);
  std::vector<float> back(64);
  dequantize_row(DType::kQ4_0, q.data(), back.data(), 64);
  EXPECT_EQ(back[0], 0.0f);
  EXPECT_EQ(back[1], 7.0f);
  EXPECT_EQ(back[3], -8.0f);
  EXPECT_EQ(back[16], 1.0f);
  EXPECT_EQ(back[31], -3.0f);
  EXPECT_EQ(back[32], 4.0f);
  EXPECT_EQ(back[33], -3.5f);  // (15 - 8) * -0.5
  EXPECT_EQ(back[48], -1.0f);
}

// Naive double dot product decoding each block straight from its bytes.
double naive_dot(DType type, const std::vector<uint8_t>& row, const std::vector<float>& x) {
  double acc = 0.0;
  const auto n = static_cast<int64_t>(x.size());
  for (int64_t i = 0; i < n; ++i) {
    double w = 0.0;
    if (type == DType::kQ8_0) {
      const uint8_t* blk = row.data() + (i / 32) * 34;
      w = half_value(static_cast<uint16_t>(blk[0] | (blk[1] << 8))) * static_cast<int8_t>(blk[2 + i % 32]);
    } else if (type == DType::kQ4_0) {
      const uint8_t* blk = row.data() + (i / 32) * 18;
      const int j = static_cast<int>(i % 32);
      const int nib = j < 16 ? (blk[2 + j] & 0x0F) : (blk[2 + j - 16] >> 4);
      w = half_value(static_cast<uint16_t>(blk[0] | (blk[1] << 8))) * (nib - 8);
    } else if (type == DType::kF16) {
      w = half_value(static_cast<uint16_t>(row[2 * i] | (row[2 * i + 1] << 8)));
    } else if (type == DType::kBF16) {
      w = bits_to_float(static_cast<uint32_t>(row[2 * i] | (row[2 * i + 1] << 8)) << 16);
    } else {
      float f;
      std::memcpy(&f, row.data() + 4 * i, 4);
      w = f;
    }
    acc += w * static_cast<double>(x[i]);
  }
  return acc;
}

TEST(QuantDot, ReferenceMatchesNaiveDouble) {
  for (DType type : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0}) {
    for (int64_t n : {32, 96, 256, 288, 1056}) {
      const auto w = testing::normal_floats(n, static_cast<uint32_t>(n), 1.5f);
      const auto x = testing::normal_floats(n, static_cast<uint32_t>(n + 1));
      const auto row = quantized(type, w);
      const double ref = naive_dot(type, row, x);
      EXPECT_NEAR(dot_reference(type, row.data(), x.data(), n), ref, 1e-9 * (1.0 + std::fabs(ref)))
          << dtype_name(type) << " n=" << n;
    }
  }
}

TEST(QuantErrors, BadCountsAndTypes) {
  std::vector<float> x(64, 1.0f);
  std::vector<uint8_t> buf(1024);
  auto code_of = [](auto&& fn) {
    try {
      fn();
    } catch (const Error& e) {
      return e.code();
    }
    return ErrorCode::kInternal;
  };
  EXPECT_EQ(code_of([&] { quantize_row(DType::kQ8_0, x.data(), buf.data(), 33); }), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code_of([&] { quantize_row(DType::kQ4_0, x.data(), buf.data(), -32); }), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code_of([&] { dequantize_row(DType::kQ4_0, buf.data(), x.data(), 31); }), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code_of([&] { dot_reference(DType::kQ8_0, buf.data(), x.data(), 40); }), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code_of([&] { quantize_row(DType::kQ4_1, x.data(), buf.data(), 32); }), ErrorCode::kUnimplemented);
  EXPECT_EQ(code_of([&] { dequantize_row(DType::kQ6_K, buf.data(), x.data(), 256); }), ErrorCode::kUnimplemented);
  EXPECT_EQ(code_of([&] { dot_reference(DType::kI8, buf.data(), x.data(), 32); }), ErrorCode::kUnimplemented);
  // Plain types take any count, including zero.
  EXPECT_NO_THROW(quantize_row(DType::kF16, x.data(), buf.data(), 7));
  EXPECT_NO_THROW(quantize_row(DType::kQ8_0, x.data(), buf.data(), 0));
}

}  // namespace
}  // namespace mixserve::quant
