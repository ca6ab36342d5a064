// The plan of a graph that decodes one token as one task of the CPU stream's pool
// (backends/cpu/decode_graph.h): the phases of a layer, the graphs it leaves to the stream's op by
// op path, and an op that fails inside the task. (That it gives the bits of the graph run op by op
// is CpuDecodeFusion.LayerRunTogetherGivesTheBitsOfItsOpsOneByOne.)
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <vector>

#include "backends/cpu/decode_graph.h"
#include "common/error.h"
#include "conformance/decode_layer.h"
#include "conformance/op_harness.h"
#include "support/watchdog.h"

namespace mixserve::conformance {
namespace {

using hal::make_op;
using hal::OpKind;

class DecodeGraphPlan : public ::testing::Test {
 protected:
  DecodeGraphPlan()
      : stream_(cpu_device().create_stream({.n_threads = 2})),
        rng_(11),
        w_(make_weights(cpu_device(), *stream_, DType::kQ4_0, rng_)),
        layer_(cpu_device(), *stream_, DType::kF32) {}

  std::optional<cpu::DecodeGraph> plan(const std::vector<hal::Op>& ops, int threads = 2) {
    return cpu::DecodeGraph::plan(ops, threads, buffers_);
  }

  // An i32 tensor holding `ids`.
  DeviceTensor ids(const std::vector<int32_t>& values) {
    std::vector<uint8_t> bytes(values.size() * sizeof(int32_t));
    std::memcpy(bytes.data(), values.data(), bytes.size());
    return make_tensor(cpu_device(), *stream_, DType::kI32, {static_cast<int64_t>(values.size()), 1, 1, 1}, bytes);
  }

  std::unique_ptr<hal::Stream> stream_;
  std::mt19937_64 rng_;
  Weights w_;
  Layer layer_;
  cpu::DecodeGraphBuffers buffers_;
};

TEST_F(DecodeGraphPlan, ALayerIsSixPhases) {
  // The norm and q/k/v's input conversion (one thread); q, k and v shared out by KV heads, with
  // RoPE and the KV stores, then each thread attends with the heads of its own rows and converts
  // their outputs for the output projection; the output projection and the residual add; the
  // second norm and its conversion; gate and up with SwiGLU and the down projection's input
  // conversion; down and the residual add.
  for (bool bias : {false, true}) {
    for (int threads : {1, 2, 3}) {
      const auto graph = plan(layer_.ops(w_, 5, bias, nullptr, 0), threads);
      ASSERT_TRUE(graph.has_value()) << threads << " threads";
      EXPECT_EQ(graph->phases(), 6u) << threads << " threads";
    }
  }
  // With an op between the job and attention, attention is a phase of its own (after the op's).
  std::vector<hal::Op> ops = layer_.ops(w_, 5, false, nullptr, 0);
  const auto attention =
      std::find_if(ops.begin(), ops.end(), [](const hal::Op& op) { return op.kind == OpKind::kAttention; });
  hal::Op norm = make_op(OpKind::kRmsNorm, &layer_.proj.tensor, &layer_.x.tensor, &w_.norm.tensor);
  norm.f[0] = 1e-5f;
  ops.insert(attention, norm);
  const auto graph = plan(ops);
  ASSERT_TRUE(graph.has_value());
  EXPECT_EQ(graph->phases(), 8u);
}

TEST_F(DecodeGraphPlan, LeavesToTheStreamWhatItCannotRunAsOneTask) {
  Layer& l = layer_;
  // Products of two tokens.
  DeviceTensor two = make_tensor(cpu_device(), *stream_, DType::kF32, {kEmbd, 2, 1, 1});
  DeviceTensor out = make_tensor(cpu_device(), *stream_, DType::kF32, {kHeads * kHeadDim, 2, 1, 1});
  EXPECT_FALSE(plan({make_op(OpKind::kMatMul, &out.tensor, &w_.wq.tensor, &two.tensor)}));
  // A norm of two rows (one thread would run it, not the pool), or of one.
  EXPECT_FALSE(plan({make_op(OpKind::kRmsNorm, &two.tensor, &two.tensor, &w_.norm.tensor)}));
  EXPECT_TRUE(plan({make_op(OpKind::kRmsNorm, &l.h.tensor, &l.x.tensor, &w_.norm.tensor)}));
  // A RoPE that no job takes in (it follows a norm, not a product).
  std::vector<hal::Op> ops = l.ops(w_, 5, false, nullptr, 0);
  hal::Op rope = make_op(OpKind::kRope, &l.q_heads, &l.q_heads);
  rope.i = {5, kHeadDim, 0};
  ops.insert(ops.begin() + 1, rope);
  EXPECT_FALSE(plan(ops));
  // Attention over blocks of 3 rows out of order: preparing it copies the rows into place, before
  // the graph's own store of the new row.
  const DeviceTensor table = ids({3, 0, 2, 1});
  EXPECT_FALSE(plan(l.ops(w_, 7, false, &table.tensor, 3)));
  // The same blocks in order are read in place.
  const DeviceTensor in_order = ids({0, 1, 2, 3});
  EXPECT_TRUE(plan(l.ops(w_, 7, false, &in_order.tensor, 3)));
}

TEST_F(DecodeGraphPlan, AnOpFailingInsideReachesTheCallerAndTheStreamGoesOn) {
  testing::Watchdog dog("a failing op inside a decoding graph", std::chrono::seconds(60));
  Layer& l = layer_;
  DeviceTensor table = make_tensor(cpu_device(), *stream_, DType::kF32, {kEmbd, 8, 1, 1},
                                   encode(DType::kF32, random_floats(8 * kEmbd, rng_), kEmbd));
  for (int threads : {1, 2, 3}) {
    SCOPED_TRACE(str_cat(threads, " threads"));
    auto stream = cpu_device().create_stream({.n_threads = threads});
    const auto layer_after = [&](const DeviceTensor& token) {
      std::vector<hal::Op> ops = {make_op(OpKind::kGetRows, &l.x.tensor, &table.tensor, &token.tensor)};
      for (const hal::Op& op : l.ops(w_, 0, false, nullptr, 0)) ops.push_back(op);
      return ops;
    };
    // The lookup runs on thread 0 in the first phase; the other threads wait at its barrier.
    const DeviceTensor bad = ids({8});
    const auto bad_ops = layer_after(bad);
    ASSERT_TRUE(plan(bad_ops, threads));
    try {
      stream->run_all(bad_ops);
      ADD_FAILURE() << "a token id past the table ran";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
    }
    // The stream is still usable, and a good graph gives what the op by op run gives.
    const DeviceTensor good = ids({5});
    const auto good_ops = layer_after(good);
    stream->run_all(good_ops);
    const auto together = bytes_of(*stream, l.x);
    for (const hal::Op& op : good_ops) stream->run(op);
    // The layer adds to x: run twice from the same lookup, each pass starts from row 5 again.
    EXPECT_EQ(bytes_of(*stream, l.x), together);
  }
}

}  // namespace
}  // namespace mixserve::conformance
