// run_benchmark's depth (llama-bench's -d): the tests start from a context already holding that
// many tokens, and the decode roofline counts the cache rows they add to every token's reads.
#include <gtest/gtest.h>

#include "common/error.h"
#include "engine/benchmark.h"
#include "support/test_support.h"

namespace mixserve {
namespace {

class BenchmarkTest : public ::testing::Test {
 protected:
  void SetUp() override { model_ = testing::load_tiny_model(dir_, DType::kQ8_0, 2); }
  BenchOptions options(int64_t depth) const {
    BenchOptions o;
    o.n_prompt = 4;
    o.n_gen = 4;
    o.repetitions = 2;
    o.depth = depth;
    return o;
  }
  testing::TempDir dir_;
  std::unique_ptr<Model> model_;
};

TEST_F(BenchmarkTest, DepthAddsItsCacheRowsToEveryDecodedToken) {
  const ModelConfig& c = model_->config();
  const BenchResult flat = run_benchmark(*model_, options(0));
  const BenchResult deep = run_benchmark(*model_, options(16));
  ASSERT_EQ(deep.prefill_tps.size(), 2u);
  ASSERT_EQ(deep.decode_tps.size(), 2u);
  EXPECT_EQ(deep.context_at_start, 16);
  EXPECT_EQ(flat.context_at_start, 0);
  for (double tps : deep.decode_tps) EXPECT_GT(tps, 0.0);
  // Keys and values, f32, of every layer and KV head, for 16 more positions.
  const double row = static_cast<double>(2 * c.n_layer * c.n_head_kv * c.head_dim) * sizeof(float);
  EXPECT_DOUBLE_EQ(deep.decode_bytes_per_token - flat.decode_bytes_per_token, 16 * row);
  // Attention over 16 more positions: 2 multiply-adds per query dimension each, per layer.
  EXPECT_DOUBLE_EQ(deep.prefill_flops_per_token - flat.prefill_flops_per_token,
                   2.0 * 2 * 16 * static_cast<double>(c.n_head * c.head_dim * c.n_layer));
}

// --profile: the ops of the measured prefill runs and of the measured decode runs, apart (the
// warm-up and the depth's tokens not counted).
TEST_F(BenchmarkTest, ProfileCountsTheMeasuredRunsOfEachTest) {
  const auto n_layer = static_cast<uint64_t>(model_->config().n_layer);
  BenchOptions o = options(8);
  o.profile = true;
  const BenchResult r = run_benchmark(*model_, o);
  ASSERT_TRUE(r.profiled);
  const auto mat_muls = [](const hal::OpProfile& p) { return p.ops[static_cast<size_t>(hal::OpKind::kMatMul)]; };
  // Per forward pass: q, k, v, o, gate, up, down per layer, then the output product.
  EXPECT_EQ(mat_muls(r.prefill_profile), 2 * (7 * n_layer + 1));     // 2 runs of one pass
  EXPECT_EQ(mat_muls(r.decode_profile), 2 * 4 * (7 * n_layer + 1));  // 2 runs of 4 tokens
  EXPECT_GT(r.prefill_profile.total_seconds(), 0.0);
}

TEST_F(BenchmarkTest, ADepthBeyondTheContextIsRefused) {
  const int64_t ctx = model_->config().n_ctx_train;
  try {
    run_benchmark(*model_, options(ctx - 3));  // + 4 tokens of each test
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("depth included"), std::string::npos) << e.what();
  }
  EXPECT_THROW(run_benchmark(*model_, options(-1)), Error);
  EXPECT_NO_THROW(run_benchmark(*model_, options(ctx - 4)));
}

}  // namespace
}  // namespace mixserve
