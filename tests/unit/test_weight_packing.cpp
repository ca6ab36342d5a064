// Tests of the CPU backend's packed Q4_0/Q8_0 rows (backends/cpu/weight_packing.h): the layout as
// documented, pack/unpack round trips, products on packed rows bit-identical to the same rows
// unpacked for every batch size and row split, no read outside the weights, and a model that
// decodes the same tokens with and without packing.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "backends/cpu/matmul_kernels.h"
#include "backends/cpu/weight_packing.h"
#include "common/error.h"
#include "engine/model.h"
#include "engine/session.h"
#include "model/synth.h"
#include "model/vocab.h"
#include "quant/quant.h"
#include "support/guarded_buffer.h"
#include "support/test_support.h"

namespace mixserve::cpu {
namespace {

// `rows` quantised rows of k elements, row_bytes apart (the padding filled with a marker).
std::vector<uint8_t> weights(DType type, int64_t k, int64_t rows, size_t row_bytes, uint32_t seed) {
  std::vector<uint8_t> w(row_bytes * static_cast<size_t>(rows), 0xA5);
  for (int64_t r = 0; r < rows; ++r) {
    const auto row = testing::normal_floats(k, seed + static_cast<uint32_t>(r));
    quant::quantize_row(type, row.data(), w.data() + row_bytes * static_cast<size_t>(r), k);
  }
  return w;
}

std::vector<uint8_t> activations(DType type, int64_t k, int64_t n_tok, uint32_t seed) {
  const size_t row = *dtype_row_bytes(activation_type(type), k);
  std::vector<uint8_t> x(row * static_cast<size_t>(n_tok));
  const auto xf = testing::normal_floats(k * n_tok, seed);
  for (int64_t t = 0; t < n_tok; ++t) {
    convert_activation(type, xf.data() + t * k, x.data() + row * static_cast<size_t>(t), k);
  }
  return x;
}

TEST(WeightPacking, OnlyQ4AndQ8RowsOfAWholeGroupOrMoreArePackable) {
  EXPECT_TRUE(packable_rows(DType::kQ4_0, 512));
  EXPECT_TRUE(packable_rows(DType::kQ8_0, 5632));
  EXPECT_TRUE(packable_rows(DType::kQ4_0, 544));   // 17 blocks: a group and one block after it
  EXPECT_TRUE(packable_rows(DType::kQ8_0, 896));   // Qwen2-0.5B's width: 28 blocks
  EXPECT_FALSE(packable_rows(DType::kQ4_0, 480));  // 15 blocks: no whole group
  EXPECT_FALSE(packable_rows(DType::kQ8_0, 530));  // not whole blocks
  EXPECT_FALSE(packable_rows(DType::kQ4_0, 0));
  EXPECT_FALSE(packable_rows(DType::kF32, 512));
  EXPECT_FALSE(packable_rows(DType::kBF16, 2048));
  std::vector<uint8_t> w(18 * 15);
  EXPECT_THROW(pack_rows(DType::kQ4_0, 480, w.data(), w.size(), 1), Error);
}

// Every byte of a packed group where weight_packing.h says it is.
TEST(WeightPacking, PackedGroupsFollowTheDocumentedLayout) {
  for (DType type : {DType::kQ4_0, DType::kQ8_0}) {
    const bool q4 = type == DType::kQ4_0;
    const size_t block = q4 ? sizeof(quant::BlockQ4_0) : sizeof(quant::BlockQ8_0);
    const size_t qs = q4 ? 16 : 32;
    const int32_t* order = q4 ? kPackedOrderQ4 : kPackedOrderQ8;
    const int64_t k = 1024 + 96;  // two groups, then a partial group of 3 blocks
    const size_t row_bytes = *dtype_row_bytes(type, k);
    const auto plain = weights(type, k, 1, row_bytes, 7);
    auto packed = plain;
    pack_rows(type, k, packed.data(), row_bytes, 1);
    // The partial group: the present positions' scales, then per register their dwords, in slots.
    const uint8_t* tail = packed.data() + 32 * block;
    size_t slot = 0;
    for (size_t p = 0; p < 16; ++p) {
      if (order[p] >= 3) continue;
      const uint8_t* blk = plain.data() + (32 + static_cast<size_t>(order[p])) * block;
      EXPECT_EQ(std::memcmp(tail + 2 * slot, blk, 2), 0) << dtype_name(type) << " partial group scale, slot " << slot;
      for (size_t j = 0; j < qs / 4; ++j) {
        for (size_t c = 0; c < 4; ++c) {
          const auto want = static_cast<uint8_t>(blk[2 + 4 * j + c] + (q4 ? 0 : 128));
          ASSERT_EQ(tail[2 * 3 + 4 * 3 * j + 4 * slot + c], want)
              << dtype_name(type) << " partial group register " << j << " slot " << slot << " byte " << c;
        }
      }
      ++slot;
    }
    EXPECT_EQ(slot, 3u);
    for (size_t g = 0; g < 2; ++g) {
      const uint8_t* src = plain.data() + g * 16 * block;
      const uint8_t* dst = packed.data() + g * 16 * block;
      for (size_t p = 0; p < 16; ++p) {
        const uint8_t* blk = src + static_cast<size_t>(order[p]) * block;
        EXPECT_EQ(std::memcmp(dst + 2 * p, blk, 2), 0) << dtype_name(type) << " scale at position " << p;
        for (size_t j = 0; j < qs / 4; ++j) {
          for (size_t c = 0; c < 4; ++c) {
            const auto want = static_cast<uint8_t>(blk[2 + 4 * j + c] + (q4 ? 0 : 128));
            ASSERT_EQ(dst[32 + 64 * j + 4 * p + c], want)
                << dtype_name(type) << " group " << g << " register " << j << " dword " << p << " byte " << c;
          }
        }
      }
    }
  }
}

TEST(WeightPacking, UnpackRestoresEveryByte) {
  std::mt19937 rng(3);
  for (DType type : {DType::kQ4_0, DType::kQ8_0}) {
    for (int64_t k : {512, 544, 736, 896, 992, 2048, 4864, 5632}) {
      // Any bytes at all (not only valid blocks), and rows with padding that must stay untouched.
      const size_t row_bytes = *dtype_row_bytes(type, k) + 64;
      std::vector<uint8_t> w(row_bytes * 5);
      for (auto& b : w) b = static_cast<uint8_t>(rng());
      const auto original = w;
      pack_rows(type, k, w.data(), row_bytes, 5);
      EXPECT_NE(w, original) << dtype_name(type) << " k=" << k;
      for (int64_t r = 0; r < 5; ++r) {
        const size_t pad = static_cast<size_t>(r) * row_bytes + row_bytes - 64;
        ASSERT_EQ(std::memcmp(w.data() + pad, original.data() + pad, 64), 0) << "padding of row " << r;
      }
      unpack_rows(type, k, w.data(), row_bytes, 5);
      EXPECT_EQ(w, original) << dtype_name(type) << " k=" << k;
    }
  }
}

#define SKIP_WITHOUT_PACKED_KERNELS()                                                                       \
  if (!packed_matmul_available(DType::kQ4_0, 512, sizeof(quant::BlockQ4_0) * 16)) {                         \
    GTEST_SKIP() << "this CPU has no packed kernels (they need AVX2 or AVX-512 VNNI; MIXSERVE_CPU_ISA may cap it)"; \
  }

// Every batch size (1 token, 2..16 tokens in registers with and without chunks of k, the tiles
// beyond), over uneven row ranges: packed and unpacked rows give the same bits.
TEST(WeightPacking, PackedProductsAreBitIdenticalToUnpacked) {
  SKIP_WITHOUT_PACKED_KERNELS();
  constexpr int64_t kRows = 37;
  for (DType type : {DType::kQ4_0, DType::kQ8_0}) {
    // Whole groups only, and rows that end in partial groups of 1, 12, 8, 15 and 7 blocks (12 and 8:
    // Qwen2-0.5B's 896 and 4864), where this CPU's kernels take them.
    for (int64_t k : {512, 2048, 5632, 544, 896, 4864, 992, 736}) {
      const size_t row_bytes = *dtype_row_bytes(type, k);
      if (k % 512 != 0 && !packed_matmul_available(type, k, row_bytes)) {
        std::printf("[  SKIPPED ] %s k=%lld: this CPU's packed kernels take whole groups only\n",
                    std::string(dtype_name(type)).c_str(), static_cast<long long>(k));
        continue;
      }
      const auto plain = weights(type, k, kRows, row_bytes, static_cast<uint32_t>(k));
      auto packed = plain;
      pack_rows(type, k, packed.data(), row_bytes, kRows);
      ASSERT_TRUE(packed_matmul_available(type, k, row_bytes));
      const size_t x_row = *dtype_row_bytes(activation_type(type), k);
      for (int64_t n : {1, 2, 3, 5, 8, 9, 15, 16, 17, 40}) {
        const auto x = activations(type, k, n, static_cast<uint32_t>(n));
        std::vector<float> want(static_cast<size_t>(kRows * n), NAN), got(want.size(), NAN);
        matmul_rows(type, k, plain.data(), row_bytes, 0, kRows, x.data(), x_row, n, want.data(), kRows);
        for (auto [r0, r1] : {std::pair<int64_t, int64_t>{0, 5}, {5, 21}, {21, kRows}}) {
          matmul_packed_rows(type, k, packed.data(), row_bytes, r0, r1, x.data(), x_row, n, got.data(), kRows);
        }
        ASSERT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0)
            << dtype_name(type) << " k=" << k << " n_tok=" << n;
      }
    }
  }
}

TEST(WeightPacking, PackedKernelsNeverReadOutsideTheWeights) {
  SKIP_WITHOUT_PACKED_KERNELS();
  constexpr int64_t kRows = 17;
  for (auto [type, k] : {std::pair{DType::kQ4_0, int64_t{1024}}, std::pair{DType::kQ8_0, int64_t{1024}},
                         std::pair{DType::kQ4_0, int64_t{1120}}, std::pair{DType::kQ8_0, int64_t{1120}},
                         std::pair{DType::kQ4_0, int64_t{544}}, std::pair{DType::kQ8_0, int64_t{544}},
                         std::pair{DType::kQ4_0, int64_t{992}}, std::pair{DType::kQ8_0, int64_t{992}}}) {
    // 1120, 544, 992: whole groups, then partial groups of 3, 1 and 15 blocks
    const size_t row_bytes = *dtype_row_bytes(type, k);
    if (!packed_matmul_available(type, k, row_bytes)) continue;  // whole groups only on this CPU
    auto plain = weights(type, k, kRows, row_bytes, 11);
    auto packed = plain;
    pack_rows(type, k, packed.data(), row_bytes, kRows);
    const size_t x_row = *dtype_row_bytes(activation_type(type), k);
    for (auto side : {testing::GuardedBuffer::kAfter, testing::GuardedBuffer::kBefore}) {
      testing::GuardedBuffer w(packed.size(), side);
      ASSERT_NE(w.data(), nullptr);
      std::memcpy(w.data(), packed.data(), packed.size());
      for (int64_t n : {1, 4, 16, 33}) {
        const auto x = activations(type, k, n, 5);
        std::vector<float> want(static_cast<size_t>(kRows * n)), got(want.size());
        matmul_rows(type, k, plain.data(), row_bytes, 0, kRows, x.data(), x_row, n, want.data(), kRows);
        matmul_packed_rows(type, k, w.data(), row_bytes, 0, kRows, x.data(), x_row, n, got.data(), kRows);
        ASSERT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0)
            << dtype_name(type) << " k=" << k << " n_tok=" << n;
      }
    }
  }
}

TEST(WeightPacking, UnpackableWeightsAreRefused) {
  std::vector<uint8_t> w(18 * 17 * 2);
  std::vector<uint8_t> x(34 * 17);
  std::vector<float> y(2);
  EXPECT_THROW(matmul_packed_rows(DType::kQ4_0, 480, w.data(), 18 * 15, 0, 2, x.data(), 34 * 15, 1, y.data(), 2),
               Error);
  EXPECT_THROW(matmul_packed_rows(DType::kF32, 512, w.data(), 2048, 0, 1, x.data(), 2048, 1, y.data(), 1), Error);
}

// Greedy continuation of `prompt` in a Session: the logits after the prompt (one batch of 40
// tokens: the tiles) and after each decoded token (one token: the row kernels).
std::vector<std::vector<float>> greedy_logits(const Model& model, const std::vector<int32_t>& prompt, int n_decode) {
  Session session(model, {.n_ctx = 128, .n_batch = 64});
  std::vector<std::vector<float>> out{session.eval(prompt)};
  for (int i = 0; i < n_decode; ++i) {
    const auto& last = out.back();
    const auto t = static_cast<int32_t>(std::max_element(last.begin(), last.end()) - last.begin());
    out.push_back(session.eval(std::span<const int32_t>(&t, 1)));
  }
  return out;
}

// A whole model: the copied weights packed (the default) or kept as in the file give the same
// logits bit for bit; a tied output matrix (the embedding table, read by get_rows) stays unpacked.
TEST(WeightPacking, AModelComputesIdenticallyPackedOrNot) {
  SKIP_WITHOUT_PACKED_KERNELS();
  for (DType type : {DType::kQ4_0, DType::kQ8_0}) {
    for (bool tied : {false, true}) {
      testing::TempDir dir;
      SynthOptions options;
      // Every matrix width a multiple of 512; untied, widths that are not (640: a group and 4
      // blocks; 1184: two groups and 5), packed where this CPU's kernels take them.
      options.shape = tied ? SynthShape{512, 2, 8, 2, 1024, 256} : SynthShape{640, 2, 10, 2, 1184, 256};
      options.type = type;
      options.vocab = builtin_vocab();
      options.tied_output = tied;
      const std::string path = dir.file("m.gguf");
      write_synth_model(options, path);
      LoadOptions plain_options;
      plain_options.pack_weights = false;
      const auto packed = Model::load(path);
      const auto plain = Model::load(path, plain_options);
      const std::string what = std::string(dtype_name(type)) + (tied ? " tied" : "");
      const bool tails = packed_matmul_available(type, 640, *dtype_row_bytes(type, 640));
      const auto packed_if = [&](bool whole_groups) {
        return whole_groups || tails ? hal::TensorLayout::kDevicePacked : hal::TensorLayout::kGguf;
      };
      EXPECT_EQ(packed->weights().layers[0].wq.layout, packed_if(tied)) << what;
      EXPECT_EQ(packed->weights().layers[1].w_down.layout, packed_if(tied)) << what;
      EXPECT_EQ(plain->weights().layers[0].wq.layout, hal::TensorLayout::kGguf) << what;
      EXPECT_EQ(packed->weights().token_embd.layout, hal::TensorLayout::kGguf) << what;
      EXPECT_EQ(packed->weights().output.layout, tied ? hal::TensorLayout::kGguf : packed_if(false)) << what;
      std::vector<int32_t> prompt(40);
      for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<int32_t>(1 + (i * 37) % 200);
      const auto a = greedy_logits(*packed, prompt, 12);
      const auto b = greedy_logits(*plain, prompt, 12);
      ASSERT_EQ(a.size(), b.size());
      for (size_t i = 0; i < a.size(); ++i) {
        ASSERT_EQ(a[i], b[i]) << what << ": logits of step " << i << " differ";
      }
    }
  }
}

}  // namespace
}  // namespace mixserve::cpu
