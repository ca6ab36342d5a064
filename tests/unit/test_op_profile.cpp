// Op profiles (`mixserve bench --profile`): a CPU stream counts and times every op of the evals
// it runs while a profile is set, and nothing once it is cleared; a device whose stream cannot
// time its ops says so.
#include <gtest/gtest.h>

#include "common/timer.h"
#include "engine/session.h"
#include "hal/op_profile.h"
#include "support/subset_device.h"
#include "support/test_support.h"

namespace mixserve {
namespace {

uint64_t ops_of(const hal::OpProfile& p, hal::OpKind kind) {
  return p.ops[static_cast<size_t>(kind)];
}
double seconds_of(const hal::OpProfile& p, hal::OpKind kind) {
  return p.seconds[static_cast<size_t>(kind)];
}

class OpProfileTest : public ::testing::Test {
 protected:
  std::unique_ptr<Model> load(const std::string& devices) {
    testing::registered_subset_device();
    return testing::load_tiny_model(dir_, DType::kQ8_0, 2, devices);
  }
  testing::TempDir dir_;
};

TEST_F(OpProfileTest, CpuStreamCountsAndTimesEveryOpWhileSet) {
  const auto model = load("cpu");
  const int64_t n_layer = model->config().n_layer;
  Session session(*model, {.n_ctx = 32, .n_batch = 8});
  hal::OpProfile profile;
  ASSERT_TRUE(session.set_profile(&profile));
  const std::vector<int32_t> prompt = {1, 17, 42, 99, 3};
  Stopwatch watch;
  session.eval(prompt);
  const int32_t next = 7;
  session.eval(std::span<const int32_t>(&next, 1));
  const double wall = watch.seconds();
  // Two forward passes: per layer 7 products (q, k, v, o, gate, up, down), one attention, two
  // norms, two RoPEs, two KV stores, two residual adds, one SwiGLU; then the final norm, the
  // output product and, first, the embedding lookup.
  EXPECT_EQ(ops_of(profile, hal::OpKind::kMatMul), static_cast<uint64_t>(2 * (7 * n_layer + 1)));
  EXPECT_EQ(ops_of(profile, hal::OpKind::kAttention), static_cast<uint64_t>(2 * n_layer));
  EXPECT_EQ(ops_of(profile, hal::OpKind::kRmsNorm), static_cast<uint64_t>(2 * (2 * n_layer + 1)));
  EXPECT_EQ(ops_of(profile, hal::OpKind::kStoreKV), static_cast<uint64_t>(2 * 2 * n_layer));
  EXPECT_EQ(ops_of(profile, hal::OpKind::kSwiGLU), static_cast<uint64_t>(2 * n_layer));
  EXPECT_EQ(ops_of(profile, hal::OpKind::kGetRows), 2u);
  EXPECT_GT(seconds_of(profile, hal::OpKind::kMatMul), 0.0);
  EXPECT_GT(seconds_of(profile, hal::OpKind::kAttention), 0.0);
  EXPECT_LE(profile.total_seconds(), wall);

  const hal::OpProfile before = profile;
  ASSERT_TRUE(session.set_profile(nullptr));
  session.eval(std::span<const int32_t>(&next, 1));
  EXPECT_EQ(profile.ops, before.ops);
  EXPECT_EQ(profile.seconds, before.seconds);
}

// The products by weights: one job per eval for each group the CPU runs together (q, k and v;
// gate and up), with the bytes of its weights, and all of them the time of the mat_mul ops.
TEST_F(OpProfileTest, CpuStreamRecordsProductsByWeights) {
  const auto model = load("cpu");
  const ModelWeights& w = model->weights();
  const auto n_layer = static_cast<uint64_t>(model->config().n_layer);
  Session session(*model, {.n_ctx = 32, .n_batch = 8});
  hal::OpProfile profile;
  ASSERT_TRUE(session.set_profile(&profile));
  const std::vector<int32_t> prompt = {1, 17, 42, 99, 3};
  session.eval(prompt);
  const int32_t next = 7;
  session.eval(std::span<const int32_t>(&next, 1));

  const LayerWeights& l0 = w.layers[0];
  struct Want {
    std::string names;
    const hal::Tensor* first;
    int64_t rows;
    uint64_t bytes_per_job;
    uint64_t jobs;
  };
  const Want want[] = {
      {"attn_q+attn_k+attn_v", &l0.wq, l0.wq.rows() + l0.wk.rows() + l0.wv.rows(),
       l0.wq.bytes() + l0.wk.bytes() + l0.wv.bytes(), 2 * n_layer},
      {"attn_output", &l0.wo, l0.wo.rows(), l0.wo.bytes(), 2 * n_layer},
      {"ffn_gate+ffn_up", &l0.w_gate, l0.w_gate.rows() + l0.w_up.rows(), l0.w_gate.bytes() + l0.w_up.bytes(),
       2 * n_layer},
      {"ffn_down", &l0.w_down, l0.w_down.rows(), l0.w_down.bytes(), 2 * n_layer},
      {"output", &w.output, w.output.rows(), w.output.bytes(), 2},
  };
  ASSERT_EQ(profile.products.size(), std::size(want));
  double seconds = 0;
  for (const Want& x : want) {
    const hal::ProductShape shape{
        .weight_names = x.names, .dtype = x.first->dtype, .k = x.first->ne[0], .rows = x.rows};
    const auto it = profile.products.find(shape);
    ASSERT_NE(it, profile.products.end()) << x.names;
    EXPECT_EQ(it->second.jobs, x.jobs) << x.names;
    EXPECT_EQ(it->second.weight_bytes, x.jobs * x.bytes_per_job) << x.names;
    EXPECT_GT(it->second.seconds, 0.0) << x.names;
    seconds += it->second.seconds;
  }
  EXPECT_NEAR(seconds, seconds_of(profile, hal::OpKind::kMatMul), 1e-9 * seconds);
}

TEST_F(OpProfileTest, ADeviceThatCannotTimeItsOpsSaysSo) {
  const auto model = load("subset:0,cpu");  // the test device's stream has no timer
  Session session(*model, {.n_ctx = 32, .n_batch = 8});
  hal::OpProfile profile;
  EXPECT_FALSE(session.set_profile(&profile));
  EXPECT_TRUE(session.set_profile(nullptr));
}

}  // namespace
}  // namespace mixserve
