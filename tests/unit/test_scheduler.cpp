// Models split across devices: a test device with private memory and a partial op set (mat_mul,
// rms_norm, swiglu, add; CPU kernels) must give bit-identical logits to the CPU alone, because every
// value crossing a device boundary is copied exactly once and on time; the op table must name the ops
// that fell back to the CPU. The same checks run on OpenCL when a device is present (within
// tolerance: different kernels).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "common/error.h"
#include "engine/session.h"
#include "hal/registry.h"
#include "model/synth.h"
#include "support/subset_device.h"
#include "support/test_support.h"

namespace mixserve {
namespace {

struct Outcome {
  std::vector<float> logits;    // logits of every prompt token, then of each decoded token
  std::vector<int32_t> tokens;  // greedy tokens
  hal::SchedulerStats stats;
};

// Evaluates a prompt in chunks of 5 (so prefill spans several steps) and decodes greedily.
Outcome run_greedy(const Model& model, int n_decode) {
  Session session(model, {.n_ctx = 64, .n_batch = 5});
  const std::vector<int32_t> prompt = {1, 17, 42, 99, 3, 250, 7, 12, 64, 5, 77, 8};
  Outcome r;
  r.logits = session.eval(prompt, true);
  std::vector<float> last(r.logits.end() - model.config().n_vocab, r.logits.end());
  for (int i = 0; i < n_decode; ++i) {
    const auto best = static_cast<int32_t>(std::max_element(last.begin(), last.end()) - last.begin());
    r.tokens.push_back(best);
    last = session.eval(std::span<const int32_t>(&best, 1));
    r.logits.insert(r.logits.end(), last.begin(), last.end());
  }
  r.stats = session.scheduler_stats();
  return r;
}

double nmse(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += double(b[i]) * b[i];
  }
  return num / den;
}

const hal::OpTable::Row* find_row(const hal::OpTable& table, const std::string& op, const std::string& device) {
  for (const auto& row : table.rows()) {
    if (row.op == op && row.device == device) return &row;
  }
  return nullptr;
}

// Writes a tiny synthetic model and loads it with device settings.
class ModelFixture : public ::testing::Test {
 protected:
  void write(DType type) {
    testing::registered_subset_device();
    SynthOptions options;
    options.shape = synth_preset("tiny");
    options.type = type;
    options.vocab = builtin_vocab();
    path_ = dir_.file("tiny.gguf");
    write_synth_model(options, path_);
  }

  std::unique_ptr<Model> load(const std::string& devices, const std::string& split = "", bool fallback = true) const {
    LoadOptions o;
    o.device = devices;
    o.split = split;
    o.allow_fallback = fallback;
    o.n_threads = 2;
    return Model::load(path_, o);
  }

  testing::TempDir dir_;
  std::string path_;
};

class MultiDevice : public ModelFixture, public ::testing::WithParamInterface<DType> {
 protected:
  void SetUp() override { write(GetParam()); }
};

TEST_P(MultiDevice, PartialDeviceFirstIsBitIdenticalToCpu) {
  const Outcome cpu = run_greedy(*load("cpu"), 12);
  auto model = load("subset:0,cpu");
  const Outcome split = run_greedy(*model, 12);
  EXPECT_EQ(split.tokens, cpu.tokens);
  ASSERT_EQ(split.logits.size(), cpu.logits.size());
  EXPECT_EQ(split.logits, cpu.logits);
  EXPECT_EQ(cpu.stats.copies, 0u);
  EXPECT_GT(split.stats.copies, 0u);
  EXPECT_GT(split.stats.ops_per_device[0], 0u);
  EXPECT_GT(split.stats.ops_per_device[1], 0u);

  // Decode step of the 2-layer model: mat_mul (7 per layer + output) on the test device; rope,
  // attention, store_kv and get_rows fell back to the CPU.
  const hal::OpTable& table = model->op_table();
  const auto* mm = find_row(table, "mat_mul", "subset:0");
  ASSERT_NE(mm, nullptr) << table.format();
  EXPECT_EQ(mm->count, 2 * 7 + 1);
  EXPECT_EQ(mm->fallbacks, 0);
  for (const char* op : {"rope", "attention", "store_kv", "get_rows"}) {
    const auto* row = find_row(table, op, "cpu");
    ASSERT_NE(row, nullptr) << op << "\n" << table.format();
    EXPECT_EQ(row->fallbacks, row->count) << op;
    EXPECT_EQ(row->preferred, "subset:0");
    EXPECT_EQ(find_row(table, op, "subset:0"), nullptr) << op;
  }
  EXPECT_EQ(table.fallbacks(), 1 + 2 * (2 + 2 + 1));  // get_rows + per layer 2 rope, 2 store_kv, 1 attention
  EXPECT_NE(table.format().find("subset:0 cannot run rope"), std::string::npos) << table.format();
}

TEST_P(MultiDevice, LayerSplitIsBitIdenticalToCpu) {
  const Outcome cpu = run_greedy(*load("cpu"), 10);
  auto model = load("cpu", "layers=1-1:subset:0");
  const Outcome split = run_greedy(*model, 10);
  EXPECT_EQ(split.logits, cpu.logits);
  const auto* mm_subset = find_row(model->op_table(), "mat_mul", "subset:0");
  const auto* mm_cpu = find_row(model->op_table(), "mat_mul", "cpu");
  ASSERT_NE(mm_subset, nullptr);
  ASSERT_NE(mm_cpu, nullptr);
  EXPECT_EQ(mm_subset->count, 7);      // layer 1 only
  EXPECT_EQ(mm_cpu->count, 7 + 1);     // layer 0 and the output
  EXPECT_EQ(model->op_table().fallbacks(), 5);  // layer 1's rope x2, store_kv x2, attention
}

INSTANTIATE_TEST_SUITE_P(Types, MultiDevice, ::testing::Values(DType::kF32, DType::kQ8_0, DType::kQ4_0),
                         [](const auto& p) { return std::string(dtype_name(p.param)); });

class Placement : public ModelFixture {
 protected:
  void SetUp() override { write(DType::kF32); }
};

TEST_F(Placement, ForbiddenFallbackIsALoadErrorNamingTheOp) {
  try {
    load("subset:0,cpu", "", false);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnimplemented);
    EXPECT_NE(std::string(e.what()).find("cannot run on subset:0"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("forbidden"), std::string::npos) << e.what();
  }
  setenv("MIXSERVE_NO_FALLBACK", "1", 1);
  EXPECT_THROW(load("subset:0,cpu"), Error);
  EXPECT_NO_THROW(load("cpu"));  // nothing falls back on the CPU alone
  unsetenv("MIXSERVE_NO_FALLBACK");
  EXPECT_NO_THROW(load("subset:0,cpu"));
}

TEST_F(Placement, BadDeviceListsAndSplitsAreClearErrors) {
  auto code_of = [&](const std::string& devices, const std::string& split) {
    try {
      load(devices, split);
    } catch (const Error& e) {
      return e.code();
    }
    return ErrorCode::kInternal;  // no error: the caller's expectation fails
  };
  EXPECT_EQ(code_of("nosuch:0", ""), ErrorCode::kNotFound);
  EXPECT_EQ(code_of("cpu,,subset:0", ""), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code_of("cpu,cpu", ""), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code_of("cpu", "0-1:cpu"), ErrorCode::kInvalidArgument);            // no "layers="
  EXPECT_EQ(code_of("cpu", "layers=0-1"), ErrorCode::kInvalidArgument);         // no device
  EXPECT_EQ(code_of("cpu", "layers=1-0:cpu"), ErrorCode::kInvalidArgument);     // reversed
  EXPECT_EQ(code_of("cpu", "layers=0-1:cpu,1:subset:0"), ErrorCode::kInvalidArgument);  // overlap
  EXPECT_EQ(code_of("cpu", "layers=0-2:cpu"), ErrorCode::kInvalidArgument);     // the model has 2 layers
  EXPECT_EQ(code_of("cpu", "layers=a-1:cpu"), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code_of("cpu", "layers=0:nosuch"), ErrorCode::kNotFound);
}

// OpenCL: the same split on a real second backend, within tolerance (different kernels).
class OpenClSplit : public MultiDevice {};

TEST_P(OpenClSplit, MatchesCpuWithinTolerance) {
  bool have = false;
  for (hal::Device* d : hal::Registry::instance().devices()) have = have || d->info().id == "opencl:0";
  if (!have) GTEST_SKIP() << "no OpenCL device registered (build without OpenCL or no ICD): test skipped";
  const Outcome cpu = run_greedy(*load("cpu"), 16);
  auto model = load("opencl:0,cpu");
  const Outcome split = run_greedy(*model, 16);
  ASSERT_EQ(split.logits.size(), cpu.logits.size());
  // F32/F16 differ only by summation order; Q8_0 also quantises activations the same way on both.
  EXPECT_LT(nmse(split.logits, cpu.logits), 1e-8) << "max error allowed: float summation order";
  EXPECT_EQ(split.tokens, cpu.tokens);
  EXPECT_GT(split.stats.copies, 0u);
  const auto* rope = find_row(model->op_table(), "rope", "cpu");
  ASSERT_NE(rope, nullptr) << model->op_table().format();
  EXPECT_EQ(rope->fallbacks, rope->count);
  EXPECT_NE(find_row(model->op_table(), "mat_mul", "opencl:0"), nullptr) << model->op_table().format();
}

INSTANTIATE_TEST_SUITE_P(Types, OpenClSplit, ::testing::Values(DType::kF32, DType::kF16, DType::kQ8_0),
                         [](const auto& p) { return std::string(dtype_name(p.param)); });

}  // namespace
}  // namespace mixserve
