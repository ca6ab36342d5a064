// Tests of the CPU matmul kernels: every variant this CPU runs (scalar, avx2, avx512) against
// quant::dot_reference, the bit-identity contract (batch size, row ranges), agreement between
// variants, byte-identical activation quantisation, and argument errors of the public entry points.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "backends/cpu/matmul_kernels.h"
#include "backends/cpu/matmul_variants.h"
#include "common/error.h"
#include "quant/quant.h"
#include "support/guarded_buffer.h"
#include "support/test_support.h"

namespace mixserve::cpu {
namespace {

constexpr DType kTypes[] = {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0};

bool is_quantised(DType t) { return t == DType::kQ8_0 || t == DType::kQ4_0; }

// A weight matrix and a batch of activations in one format, plus the float originals.
struct Problem {
  DType wtype;
  int64_t k, rows, n_tok;
  size_t w_row, x_row;
  std::vector<uint8_t> w;
  std::vector<float> xf;  // original activations
};

Problem make_problem(DType wtype, int64_t k, int64_t rows, int64_t n_tok, uint32_t seed) {
  Problem p{wtype, k, rows, n_tok, *dtype_row_bytes(wtype, k),
            *dtype_row_bytes(activation_type(wtype), k), {}, {}};
  p.w.resize(p.w_row * static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    auto row = testing::normal_floats(k, seed * 1000 + static_cast<uint32_t>(r));
    // A few rows far from unit scale exercise the per-block scales.
    if (r % 5 == 2) {
      for (auto& v : row) v *= 37.0f;
    }
    quant::quantize_row(wtype, row.data(), p.w.data() + p.w_row * static_cast<size_t>(r), k);
  }
  if (wtype == DType::kQ8_0) {
    // Files may hold -128, which our quantiser never writes: make sure every kernel copes.
    std::mt19937 rng(seed);
    for (int i = 0; i < 20; ++i) {
      const size_t blk = rng() % (p.w.size() / 34);
      p.w[blk * 34 + 2 + rng() % 32] = 0x80;
    }
  }
  p.xf = testing::normal_floats(k * n_tok, seed + 17);
  return p;
}

std::vector<uint8_t> convert(const MatmulKernelTable& v, const Problem& p) {
  std::vector<uint8_t> x(p.x_row * static_cast<size_t>(p.n_tok));
  for (int64_t t = 0; t < p.n_tok; ++t) {
    v.convert_activation(p.wtype, p.xf.data() + t * p.k, x.data() + p.x_row * static_cast<size_t>(t), p.k);
  }
  return x;
}

std::vector<float> run(const MatmulKernelTable& v, const Problem& p, const std::vector<uint8_t>& x) {
  std::vector<float> y(static_cast<size_t>(p.rows * p.n_tok), NAN);
  v.matmul_rows(p.wtype, p.k, p.w.data(), p.w_row, 0, p.rows, x.data(), p.x_row, p.n_tok, y.data(), p.rows);
  return y;
}

// Reference values and error bounds for output (r, t).
struct Expected {
  double value;      // weights x the activations the kernel saw (after Q8_0 rounding)
  double orig;       // weights x the original float activations
  double acc_bound;  // float accumulation error bound
  double act_bound;  // bound on |value - orig| from the Q8_0 activation rounding
};

Expected expected(const Problem& p, const std::vector<uint8_t>& x, int64_t r, int64_t t) {
  const uint8_t* row = p.w.data() + p.w_row * static_cast<size_t>(r);
  const float* xt = p.xf.data() + t * p.k;
  std::vector<float> wd(static_cast<size_t>(p.k)), xd(static_cast<size_t>(p.k));
  quant::dequantize_row(p.wtype, row, wd.data(), p.k);
  quant::dequantize_row(activation_type(p.wtype), x.data() + p.x_row * static_cast<size_t>(t), xd.data(), p.k);
  Expected e{};
  e.value = quant::dot_reference(p.wtype, row, xd.data(), p.k);
  e.orig = quant::dot_reference(p.wtype, row, xt, p.k);
  double abs_sum = 0.0;
  for (int64_t j = 0; j < p.k; ++j) abs_sum += std::fabs(static_cast<double>(wd[j]) * xd[j]);
  // Each output is a float sum of at most n terms (blocks, or k/4 partial sums) plus a lane
  // reduction and one product rounding per term: |err| <= gamma(n) * sum |w x| (Higham, ch. 3).
  const double n = is_quantised(p.wtype) ? p.k / 32.0 + 24 : p.k / 4.0 + 24;
  e.acc_bound = n * std::ldexp(1.0, -24) / (1 - n * std::ldexp(1.0, -24)) * abs_sum + 1e-30;
  if (is_quantised(p.wtype)) {
    // Q8_0 activations: |x - x'| <= d/2 + 127 |d - fp16(d)| <= d (0.5 + 127 * 2^-11), d = amax/127.
    for (int64_t b = 0; b < p.k / 32; ++b) {
      double amax = 0.0, wsum = 0.0;
      for (int64_t j = 32 * b; j < 32 * b + 32; ++j) {
        amax = std::max(amax, std::fabs(static_cast<double>(xt[j])));
        wsum += std::fabs(static_cast<double>(wd[j]));
      }
      e.act_bound += amax / 127.0 * (0.5 + 127.0 * std::ldexp(1.0, -11)) * 1.0001 * wsum;
    }
  }
  return e;
}

std::string describe(const MatmulKernelTable& v, const Problem& p) {
  return std::string(v.name) + " " + std::string(dtype_name(p.wtype)) + " k=" + std::to_string(p.k) +
         " rows=" + std::to_string(p.rows) + " n_tok=" + std::to_string(p.n_tok);
}

std::vector<int64_t> ks_for(DType t) {
  // 512 and 2048: whole groups of 16 blocks (the decode kernels' end-of-row loads); 4128: a lone
  // last block after whole groups.
  if (is_quantised(t)) return {32, 64, 96, 512, 2048, 4096 + 32};
  return {1, 7, 16, 17, 33, 64, 96, 4096 + 32};
}

TEST(MatmulKernels, EveryVariantMatchesTheReference) {
  for (const MatmulKernelTable* v : usable_matmul_kernels()) {
    for (DType type : kTypes) {
      for (int64_t k : ks_for(type)) {
        for (int64_t rows : {1, 3, 17, 33}) {
          for (int64_t n_tok : {1, 2, 3, 5, 8, 13}) {
            if (k > 1000 && rows * n_tok > 100) continue;  // keep the big-k cases quick
            const Problem p = make_problem(type, k, rows, n_tok, static_cast<uint32_t>(k + rows * 7 + n_tok));
            const auto x = convert(*v, p);
            const auto y = run(*v, p, x);
            for (int64_t t = 0; t < n_tok; ++t) {
              for (int64_t r = 0; r < rows; ++r) {
                const Expected e = expected(p, x, r, t);
                const double got = y[static_cast<size_t>(t * rows + r)];
                ASSERT_LE(std::fabs(got - e.value), e.acc_bound)
                    << describe(*v, p) << " r=" << r << " t=" << t << " want " << e.value;
                ASSERT_LE(std::fabs(got - e.orig), e.acc_bound + e.act_bound)
                    << describe(*v, p) << " r=" << r << " t=" << t << " want " << e.orig;
              }
            }
          }
        }
      }
    }
  }
}

// Computes 37 rows x 13 tokens at once, then one token at a time and in uneven batches over uneven
// row ranges; every output must match bit for bit.
void check_bit_identity(const MatmulKernelTable& v, DType type, int64_t k) {
  const Problem p = make_problem(type, k, 37, 13, 99);
  const auto x = convert(v, p);
  const auto full = run(v, p, x);
  const std::string what = std::string(v.name) + " " + std::string(dtype_name(type)) + " k=" + std::to_string(k);
  std::vector<float> y(full.size(), NAN);
  for (int64_t t = 0; t < p.n_tok; ++t) {
    const int64_t cut = (t * 5) % p.rows;
    for (auto [r0, r1] : {std::pair<int64_t, int64_t>{0, cut}, {cut, p.rows}}) {
      v.matmul_rows(type, k, p.w.data(), p.w_row, r0, r1, x.data() + p.x_row * static_cast<size_t>(t), p.x_row,
                    1, y.data() + t * p.rows, p.rows);
    }
  }
  ASSERT_EQ(std::memcmp(y.data(), full.data(), y.size() * sizeof(float)), 0) << what << " one token at a time";
  std::fill(y.begin(), y.end(), NAN);
  const int64_t cuts[] = {0, 1, 6, 7, 18, 30, 37};
  for (int64_t t0 : {0, 5}) {
    const int64_t nt = t0 == 0 ? 5 : p.n_tok - 5;
    for (int i = 0; i + 1 < 7; ++i) {
      v.matmul_rows(type, k, p.w.data(), p.w_row, cuts[i], cuts[i + 1], x.data() + p.x_row * static_cast<size_t>(t0),
                    p.x_row, nt, y.data() + t0 * p.rows, p.rows);
    }
  }
  ASSERT_EQ(std::memcmp(y.data(), full.data(), y.size() * sizeof(float)), 0) << what << " in uneven batches";
}

TEST(MatmulKernels, OutputsAreBitIdenticalForAnyBatchAndRowSplit) {
  for (const MatmulKernelTable* v : usable_matmul_kernels()) {
    for (DType type : kTypes) {
      if (is_quantised(type)) {
        check_bit_identity(*v, type, 512);
        check_bit_identity(*v, type, 4096 + 32);
      } else {
        check_bit_identity(*v, type, 4096 + 13);
      }
    }
  }
}

// Every batch size the batched kernels specialise (1..16 tokens in registers, one or two passes,
// then the row tiles) against one token at a time, over odd row ranges and k with a lone partial
// group of blocks: the outputs must match bit for bit.
TEST(MatmulKernels, EveryBatchSizeMatchesOneTokenAtATime) {
  constexpr int64_t kRows = 37, kTokens = 24;
  for (const MatmulKernelTable* v : usable_matmul_kernels()) {
    for (DType type : {DType::kQ4_0, DType::kQ8_0}) {
      // 13 blocks: one partial group; 131 blocks: 8 whole groups and 3 blocks (two passes from 8
      // tokens on in the AVX-512 kernel); 5632: TinyLlama's ffn_down width.
      for (int64_t k : {13 * 32, 131 * 32, 5632}) {
        const Problem p = make_problem(type, k, kRows, kTokens, static_cast<uint32_t>(k + 3));
        const auto x = convert(*v, p);
        std::vector<float> single(static_cast<size_t>(kRows * kTokens), NAN);
        for (int64_t t = 0; t < kTokens; ++t) {
          v->matmul_rows(type, k, p.w.data(), p.w_row, 0, kRows, x.data() + p.x_row * static_cast<size_t>(t), p.x_row,
                         1, single.data() + t * kRows, kRows);
        }
        for (int64_t n = 2; n <= kTokens; ++n) {
          if (n > 18 && n < kTokens) continue;
          std::vector<float> y(static_cast<size_t>(kRows * n), NAN);
          for (auto [r0, r1] : {std::pair<int64_t, int64_t>{0, 7}, {7, kRows}}) {
            v->matmul_rows(type, k, p.w.data(), p.w_row, r0, r1, x.data(), p.x_row, n, y.data(), kRows);
          }
          ASSERT_EQ(std::memcmp(y.data(), single.data(), y.size() * sizeof(float)), 0)
              << v->name << " " << dtype_name(type) << " k=" << k << " n_tok=" << n;
        }
      }
    }
  }
}

TEST(MatmulKernels, KernelsNeverReadOutsideTheirInputs) {
  // Weights and activations flush against an inaccessible page on either side: a read past
  // either end crashes the test. Results must still match the reference.
  for (const MatmulKernelTable* v : usable_matmul_kernels()) {
    for (DType type : kTypes) {
      const std::vector<int64_t> ks = is_quantised(type) ? std::vector<int64_t>{32, 64, 96, 512, 4128}
                                                         : std::vector<int64_t>{1, 17, 33, 512};
      for (int64_t k : ks) {
        for (auto side : {testing::GuardedBuffer::kAfter, testing::GuardedBuffer::kBefore}) {
          for (int64_t n_tok : {1, 2, 5}) {
            const Problem p = make_problem(type, k, 17, n_tok, static_cast<uint32_t>(k + n_tok));
            const auto xs = convert(*v, p);
            testing::GuardedBuffer w(p.w.size(), side), x(xs.size(), side);
            ASSERT_NE(w.data(), nullptr);
            ASSERT_NE(x.data(), nullptr);
            std::memcpy(w.data(), p.w.data(), p.w.size());
            std::memcpy(x.data(), xs.data(), xs.size());
            std::vector<float> y(static_cast<size_t>(17 * n_tok), NAN);
            v->matmul_rows(type, k, w.data(), p.w_row, 0, 17, x.data(), p.x_row, n_tok, y.data(), 17);
            for (int64_t t = 0; t < n_tok; ++t) {
              for (int64_t r = 0; r < 17; ++r) {
                const Expected e = expected(p, xs, r, t);
                ASSERT_LE(std::fabs(y[static_cast<size_t>(t * 17 + r)] - e.value), e.acc_bound) << describe(*v, p);
              }
            }
          }
        }
      }
    }
  }
}

TEST(MatmulKernels, VariantsAgreeWithEachOther) {
  const auto variants = usable_matmul_kernels();
  for (DType type : kTypes) {
    const Problem p = make_problem(type, 2048 + 96, 21, 6, 5);
    const auto x = convert(*variants[0], p);
    const auto base = run(*variants[0], p, x);
    for (size_t i = 1; i < variants.size(); ++i) {
      EXPECT_EQ(convert(*variants[i], p), x) << variants[i]->name;
      const auto y = run(*variants[i], p, x);
      for (int64_t t = 0; t < p.n_tok; ++t) {
        for (int64_t r = 0; r < p.rows; ++r) {
          const size_t at = static_cast<size_t>(t * p.rows + r);
          // Both are within acc_bound of the same exact value.
          EXPECT_LE(std::fabs(y[at] - base[at]), 2 * expected(p, x, r, t).acc_bound)
              << variants[i]->name << " vs scalar " << dtype_name(type) << " r=" << r << " t=" << t;
        }
      }
    }
  }
}

// Weights and activations at the ends of their ranges, where the SIMD kernels' 16-bit partial sums
// come closest to overflowing (Q4_0: 8 products of nibble 15 and |x| 127 per lane pair; Q8_0: -128
// times 127): every variant must still give the exact sum.
TEST(MatmulKernels, QuantisedProductsAreExactAtTheIntegerExtremes) {
  const uint8_t q4_bytes[3] = {0xFF, 0x00, 0xF0};                          // nibbles 15/15, 0/0, 0/15
  const uint8_t q8_bytes[3][2] = {{127, 127}, {0x80, 0x80}, {127, 0x80}};  // 127, -128, alternating
  for (DType type : {DType::kQ4_0, DType::kQ8_0}) {
    const size_t block = type == DType::kQ4_0 ? 18 : 34;
    for (int64_t k : {512, 2048 + 96}) {
      for (int64_t n_tok : {1, 3}) {
        Problem p{type, k, 3, n_tok, *dtype_row_bytes(type, k), *dtype_row_bytes(activation_type(type), k), {}, {}};
        p.w.resize(p.w_row * 3);
        for (size_t r = 0; r < 3; ++r) {
          for (size_t b = 0; b < static_cast<size_t>(k / 32); ++b) {
            uint8_t* blk = p.w.data() + r * p.w_row + b * block;
            blk[0] = 0x00;  // fp16 1.0
            blk[1] = 0x3C;
            for (size_t i = 2; i < block; ++i) blk[i] = type == DType::kQ4_0 ? q4_bytes[r] : q8_bytes[r][i % 2];
          }
        }
        // Token 0: all +1 (quantised to 127), token 1: all -1, token 2: alternating signs.
        p.xf.resize(static_cast<size_t>(k * n_tok));
        for (int64_t t = 0; t < n_tok; ++t) {
          for (int64_t j = 0; j < k; ++j) {
            p.xf[static_cast<size_t>(t * k + j)] = t == 0 ? 1.0f : t == 1 ? -1.0f : (j % 2 ? 1.0f : -1.0f);
          }
        }
        for (const MatmulKernelTable* v : usable_matmul_kernels()) {
          const auto x = convert(*v, p);
          const auto y = run(*v, p, x);
          for (int64_t t = 0; t < n_tok; ++t) {
            for (int64_t r = 0; r < 3; ++r) {
              const Expected e = expected(p, x, r, t);
              EXPECT_LE(std::fabs(y[static_cast<size_t>(t * 3 + r)] - e.value), e.acc_bound)
                  << describe(*v, p) << " r=" << r << " t=" << t << " got " << y[static_cast<size_t>(t * 3 + r)]
                  << " want " << e.value;
            }
          }
        }
      }
    }
  }
}

// The AVX2 and AVX-512 kernels for Q4_0/Q8_0 follow one arithmetic (matmul_quant_avx512.h), so a
// machine's results do not depend on which of them it runs. Needs a CPU with both.
TEST(MatmulKernels, SimdVariantsGiveIdenticalQuantisedProducts) {
  const MatmulKernelTable* avx2 = matmul_kernels_avx2();
  const MatmulKernelTable* avx512 = matmul_kernels_avx512();
  if (avx2 == nullptr || avx512 == nullptr) {
    GTEST_SKIP() << "needs a CPU with both AVX2 and AVX-512 VNNI (or MIXSERVE_CPU_ISA caps it)";
  }
  for (DType type : {DType::kQ4_0, DType::kQ8_0}) {
    for (int64_t k : {512, 2048 + 96, 5632}) {
      for (int64_t n_tok : {1, 3, 16, 40}) {
        const Problem p = make_problem(type, k, 21, n_tok, static_cast<uint32_t>(k + n_tok));
        const auto x = convert(*avx2, p);
        const auto a = run(*avx2, p, x);
        const auto b = run(*avx512, p, x);
        ASSERT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0)
            << dtype_name(type) << " k=" << k << " n_tok=" << n_tok;
      }
    }
  }
}

TEST(MatmulKernels, ActivationQuantisationIsByteIdenticalAcrossVariants) {
  // Blocks of values on the rounding ties (amax = 127 makes d = 1), tiny ones, zeros, a scale that
  // is an fp16 subnormal, one beyond fp16's range, then random blocks, then the special blocks
  // again: 19 blocks, so that the special ones fall both in kernels' groups of 8 blocks and in the
  // tail after them.
  std::vector<float> special(32 * 5, 0.0f);
  for (int i = 0; i < 32; ++i) {
    special[i] = (i == 0) ? 127.0f : static_cast<float>(i % 9) - 4.5f;
    special[32 + i] = 1e-30f * static_cast<float>(i - 16);
    special[96 + i] = 3e-4f * static_cast<float>(i - 13);      // d about 3e-5: an fp16 subnormal
    special[128 + i] = 1.25e7f * static_cast<float>(i - 20);  // d about 2e6: fp16 infinity
  }
  std::vector<float> x(special);
  const auto r = testing::normal_floats(32 * 9, 3);
  x.insert(x.end(), r.begin(), r.end());
  x.insert(x.end(), special.begin(), special.end());
  const int64_t k = static_cast<int64_t>(x.size());
  std::vector<uint8_t> want(*dtype_row_bytes(DType::kQ8_0, k));
  quant::quantize_row(DType::kQ8_0, x.data(), want.data(), k);
  for (const MatmulKernelTable* v : usable_matmul_kernels()) {
    for (DType type : {DType::kQ8_0, DType::kQ4_0}) {
      std::vector<uint8_t> got(want.size(), 0xAA);
      v->convert_activation(type, x.data(), got.data(), k);
      EXPECT_EQ(got, want) << v->name;
    }
    std::vector<float> f(x.size());
    v->convert_activation(DType::kF16, x.data(), f.data(), k);
    EXPECT_EQ(f, x) << v->name;
  }
}

template <typename Fn>
ErrorCode code_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.code();
  }
  return ErrorCode::kInternal;
}

TEST(MatmulKernels, PublicEntryPointsRejectBadArguments) {
  std::vector<uint8_t> w(4096), x(4096);
  std::vector<float> y(64), xf(64, 1.0f);
  EXPECT_EQ(activation_type(DType::kQ4_0), DType::kQ8_0);
  EXPECT_EQ(activation_type(DType::kBF16), DType::kF32);
  EXPECT_EQ(code_of([&] { activation_type(DType::kQ4_1); }), ErrorCode::kUnimplemented);
  EXPECT_EQ(code_of([&] { convert_activation(DType::kQ8_0, xf.data(), x.data(), 33); }),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(code_of([&] { matmul_rows(DType::kQ4_0, 33, w.data(), 18, 0, 1, x.data(), 34, 1, y.data(), 1); }),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(code_of([&] { matmul_rows(DType::kQ6_K, 256, w.data(), 210, 0, 1, x.data(), 1024, 1, y.data(), 1); }),
            ErrorCode::kUnimplemented);
  EXPECT_EQ(code_of([&] { matmul_rows(DType::kF32, 8, w.data(), 32, 2, 1, x.data(), 32, 1, y.data(), 1); }),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(code_of([&] { matmul_rows(DType::kF32, 8, w.data(), 16, 0, 1, x.data(), 32, 1, y.data(), 1); }),
            ErrorCode::kInvalidArgument);  // weight stride shorter than a row
  EXPECT_EQ(code_of([&] { matmul_rows(DType::kF32, 8, w.data(), 32, 0, 4, x.data(), 32, 2, y.data(), 2); }),
            ErrorCode::kInvalidArgument);  // token outputs would overlap
  EXPECT_EQ(code_of([&] { matmul_rows(DType::kF32, 8, nullptr, 32, 0, 1, x.data(), 32, 1, y.data(), 1); }),
            ErrorCode::kInvalidArgument);
  EXPECT_NO_THROW(matmul_rows(DType::kF32, 8, w.data(), 32, 3, 3, x.data(), 32, 1, y.data(), 1));
  const std::string name = matmul_variant(DType::kQ8_0);
  EXPECT_EQ(name, usable_matmul_kernels().back()->name);
  EXPECT_EQ(name, active_matmul_kernels().name);
}

// The AVX2 and AVX-512 kernels keep each thread's last arranged activations and reuse them while
// the next call's activations have the same bytes (arranged_activations). Activations changed in
// place, by one byte anywhere, or the same bytes under the other weight format or another
// variant's kernels (all variants run here in one thread, one after the other), must give what a
// thread that never saw the old ones computes.
TEST(MatmulKernels, ActivationsChangedInPlaceAreNotMistakenForTheLastOnes) {
  for (const MatmulKernelTable* v : usable_matmul_kernels()) {
    for (int64_t n_tok : {1, 5, 12}) {  // the streamed kernel, then the register tiles
      Problem p4 = make_problem(DType::kQ4_0, 17 * 32, 19, n_tok, 5);
      Problem p8 = make_problem(DType::kQ8_0, 17 * 32, 19, n_tok, 5);
      std::vector<uint8_t> x = convert(*v, p4);
      ASSERT_EQ(x, convert(*v, p8));  // both formats multiply Q8_0 activations
      const auto fresh = [&](const Problem& p) {
        std::vector<float> y;
        std::thread([&] { y = run(*v, p, x); }).join();
        return y;
      };
      const std::string what = std::string(v->name) + " n_tok=" + std::to_string(n_tok);
      auto last = run(*v, p4, x);
      // A quant byte of the last block, a scale of the first block, a quant byte in between.
      const size_t positions[] = {x.size() - 1, 0, x.size() / 2 + 3};
      for (size_t pos : positions) {
        x[pos] = pos % 34 < 2 ? static_cast<uint8_t>(x[pos] ^ 1) : static_cast<uint8_t>(x[pos] == 5 ? 6 : 5);
        const auto y = run(*v, p4, x);
        EXPECT_NE(y, last) << what << " byte " << pos;
        EXPECT_EQ(std::memcmp(y.data(), fresh(p4).data(), y.size() * sizeof(float)), 0) << what << " byte " << pos;
        last = y;
      }
      const auto y8 = run(*v, p8, x);
      EXPECT_EQ(std::memcmp(y8.data(), fresh(p8).data(), y8.size() * sizeof(float)), 0) << what << " q8_0 after q4_0";
    }
  }
}

TEST(MatmulKernels, PublicPathMatchesReference) {
  const Problem p = make_problem(DType::kQ4_0, 256, 9, 3, 11);
  std::vector<uint8_t> x(p.x_row * 3);
  for (int64_t t = 0; t < 3; ++t) convert_activation(p.wtype, p.xf.data() + t * p.k, x.data() + p.x_row * t, p.k);
  std::vector<float> y(27);
  matmul_rows(p.wtype, p.k, p.w.data(), p.w_row, 0, 9, x.data(), p.x_row, 3, y.data(), 9);
  for (int64_t t = 0; t < 3; ++t) {
    for (int64_t r = 0; r < 9; ++r) {
      const Expected e = expected(p, x, r, t);
      EXPECT_LE(std::fabs(y[t * 9 + r] - e.value), e.acc_bound);
    }
  }
}

}  // namespace
}  // namespace mixserve::cpu
