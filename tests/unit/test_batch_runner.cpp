// BatchRunner: sequences evaluated together in one paged KV cache give bit-identical logits to each
// sequence evaluated alone in a Session (the CPU kernels compute every output row the same way
// whatever the batch), with prefill chunks and decode tokens mixed in one step, blocks interleaved
// between sequences, prefixes reused from the cache, and across devices.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "common/error.h"
#include "engine/batch_runner.h"
#include "engine/session.h"
#include "model/synth.h"
#include "support/subset_device.h"
#include "support/test_support.h"

namespace mixserve {
namespace {

int32_t argmax(const std::vector<float>& v) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

std::vector<int32_t> random_prompt(std::mt19937& rng, size_t n, int32_t vocab) {
  std::vector<int32_t> p(n);
  for (auto& t : p) t = static_cast<int32_t>(rng() % static_cast<uint32_t>(vocab));
  return p;
}

// Greedy continuation of `prompt` in a Session: the logits after the prompt and after each token.
std::vector<std::vector<float>> alone(const Model& model, const std::vector<int32_t>& prompt, int n_decode) {
  Session session(model, {.n_ctx = 128, .n_batch = 7});
  std::vector<std::vector<float>> out{session.eval(prompt)};
  for (int i = 0; i < n_decode; ++i) {
    const int32_t t = argmax(out.back());
    out.push_back(session.eval(std::span<const int32_t>(&t, 1)));
  }
  return out;
}

class BatchRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::registered_subset_device();
    SynthOptions options;
    options.shape = synth_preset("tiny");
    options.type = DType::kQ8_0;
    options.vocab = builtin_vocab();
    path_ = dir_.file("tiny.gguf");
    write_synth_model(options, path_);
    model_ = load("cpu");
  }
  std::unique_ptr<Model> load(const std::string& devices) const {
    LoadOptions o;
    o.device = devices;
    o.n_threads = 2;
    return Model::load(path_, o);
  }

  // Runs `prompts` concurrently: each step gives every unfinished prompt a prefill chunk of up to
  // `chunk` tokens, or one decode token once its prompt is in; sequences start at staggered steps.
  std::vector<std::vector<std::vector<float>>> together(const Model& model, const std::vector<std::vector<int32_t>>& prompts,
                                                        int n_decode, int64_t chunk, BatchOptions options) {
    BatchRunner runner(model, options);
    std::vector<SeqId> ids(prompts.size(), 0);
    std::vector<size_t> fed(prompts.size(), 0);
    std::vector<std::vector<std::vector<float>>> out(prompts.size());
    for (int step = 0;; ++step) {
      std::vector<StepInput> inputs;
      std::vector<size_t> who;
      for (size_t i = 0; i < prompts.size(); ++i) {
        if (static_cast<int>(i) > step) continue;  // staggered arrivals
        if (ids[i] == 0) ids[i] = runner.add_sequence();
        if (static_cast<int>(out[i].size()) == n_decode + 1) continue;
        StepInput in{.seq = ids[i], .tokens = {}, .logits = false};
        if (fed[i] < prompts[i].size()) {
          const size_t n = std::min<size_t>(static_cast<size_t>(chunk), prompts[i].size() - fed[i]);
          in.tokens.assign(prompts[i].begin() + static_cast<std::ptrdiff_t>(fed[i]),
                           prompts[i].begin() + static_cast<std::ptrdiff_t>(fed[i] + n));
          fed[i] += n;
          in.logits = fed[i] == prompts[i].size();
        } else {
          in.tokens = {argmax(out[i].back())};
          in.logits = true;
        }
        inputs.push_back(in);
        who.push_back(i);
      }
      if (inputs.empty()) break;
      const auto logits = runner.step(inputs);
      size_t k = 0;
      for (size_t j = 0; j < inputs.size(); ++j) {
        if (inputs[j].logits) out[who[j]].push_back(logits[k++]);
      }
      EXPECT_EQ(k, logits.size());
    }
    for (SeqId id : ids) runner.remove_sequence(id);
    EXPECT_EQ(runner.kv_stats().used, 0);
    last_stats_ = runner.scheduler_stats();
    return out;
  }

  testing::TempDir dir_;
  std::string path_;
  std::unique_ptr<Model> model_;
  hal::SchedulerStats last_stats_;
};

TEST_F(BatchRunnerTest, ManySequencesTogetherEqualEachAlone) {
  std::mt19937 rng(3);
  std::vector<std::vector<int32_t>> prompts;
  for (size_t n : {1, 5, 13, 2, 21, 8}) prompts.push_back(random_prompt(rng, n, model_->config().n_vocab));
  // Small blocks, so the sequences' blocks interleave and attention gathers non-contiguous tables.
  const auto got = together(*model_, prompts, 10, 4, {.max_batch_tokens = 64, .max_seq_len = 64, .block_size = 4});
  for (size_t i = 0; i < prompts.size(); ++i) {
    const auto want = alone(*model_, prompts[i], 10);
    ASSERT_EQ(got[i].size(), want.size());
    for (size_t s = 0; s < want.size(); ++s) ASSERT_EQ(got[i][s], want[s]) << "prompt " << i << " step " << s;
  }
}

// The same with f16 and Q8_0 caches (a model whose heads are whole Q8_0 blocks of 32 dims): blocks
// of 4 rows, read in place, and of 6, which attention gathers into consecutive rows first.
TEST_F(BatchRunnerTest, ManySequencesTogetherEqualEachAloneWithF16AndQ8Caches) {
  SynthOptions options;
  options.shape = parse_synth_shape("embd=128,layers=2,heads=4,kv_heads=2,ff=320,ctx=128");
  options.type = DType::kQ8_0;
  options.vocab = builtin_vocab();
  const std::string path = dir_.file("heads32.gguf");
  write_synth_model(options, path);
  const auto load_with = [&](DType cache_type) {
    LoadOptions o;
    o.n_threads = 2;
    o.cache_type = cache_type;
    return Model::load(path, o);
  };
  const auto exact = load_with(DType::kF32);
  std::mt19937 rng(4);
  std::vector<std::vector<int32_t>> prompts;
  for (size_t n : {1, 7, 13, 3}) prompts.push_back(random_prompt(rng, n, exact->config().n_vocab));
  for (DType cache_type : {DType::kF16, DType::kQ8_0}) {
    const auto model = load_with(cache_type);
    for (int32_t block : {4, 6}) {
      const auto got =
          together(*model, prompts, 8, 4, {.max_batch_tokens = 64, .max_seq_len = 64, .block_size = block});
      for (size_t i = 0; i < prompts.size(); ++i) {
        const auto want = alone(*model, prompts[i], 8);
        ASSERT_EQ(got[i].size(), want.size());
        for (size_t s = 0; s < want.size(); ++s) {
          ASSERT_EQ(got[i][s], want[s]) << dtype_name(cache_type) << " block " << block << " prompt " << i << " step "
                                        << s;
        }
      }
    }
    // And the rounding shows: the f32 cache's logits differ.
    EXPECT_NE(alone(*exact, prompts[1], 0), alone(*model, prompts[1], 0)) << dtype_name(cache_type);
  }
}

TEST_F(BatchRunnerTest, SplitAcrossDevicesEqualsCpu) {
  std::mt19937 rng(5);
  std::vector<std::vector<int32_t>> prompts;
  for (size_t n : {3, 9, 6}) prompts.push_back(random_prompt(rng, n, model_->config().n_vocab));
  const BatchOptions o{.max_batch_tokens = 32, .max_seq_len = 48, .block_size = 4};
  const auto cpu = together(*model_, prompts, 6, 5, o);
  auto split_model = load("subset:0,cpu");
  const auto split = together(*split_model, prompts, 6, 5, o);
  EXPECT_EQ(split, cpu);
  EXPECT_GT(last_stats_.copies, 0u);
}

TEST_F(BatchRunnerTest, SharedPrefixIsReusedAndGivesTheSameLogits) {
  std::mt19937 rng(9);
  const auto system = random_prompt(rng, 37, model_->config().n_vocab);
  auto a = system, b = system;
  a.push_back(11);
  b.insert(b.end(), {12, 13, 14});
  BatchRunner runner(*model_, {.max_batch_tokens = 64, .max_seq_len = 64, .block_size = 8});
  const SeqId sa = runner.add_sequence();
  EXPECT_EQ(runner.reuse_prefix(sa, a), 0);  // nothing cached yet
  const auto la = runner.step(std::vector<StepInput>{{.seq = sa, .tokens = a, .logits = true}});
  runner.remove_sequence(sa);
  EXPECT_EQ(runner.kv_stats().used, 0);
  EXPECT_EQ(runner.kv_stats().cached, 4);  // 38 tokens = 4 full blocks of 8 kept

  const SeqId sb = runner.add_sequence();
  const int64_t reused = runner.reuse_prefix(sb, b);
  EXPECT_EQ(reused, 32);
  EXPECT_EQ(runner.n_past(sb), 32);
  EXPECT_EQ(runner.kv_stats().prefix_hits, 4u);
  const std::vector<int32_t> rest(b.begin() + reused, b.end());
  const auto lb = runner.step(std::vector<StepInput>{{.seq = sb, .tokens = rest, .logits = true}});
  EXPECT_EQ(lb[0], alone(*model_, b, 0)[0]);
  EXPECT_EQ(la[0], alone(*model_, a, 0)[0]);
}

TEST_F(BatchRunnerTest, PromptOfWholeBlocksKeepsItsLastTokenToEvaluate) {
  std::mt19937 rng(2);
  const auto p = random_prompt(rng, 16, model_->config().n_vocab);
  BatchRunner runner(*model_, {.max_batch_tokens = 32, .max_seq_len = 32, .block_size = 8});
  const SeqId s1 = runner.add_sequence();
  runner.step(std::vector<StepInput>{{.seq = s1, .tokens = p, .logits = true}});
  runner.remove_sequence(s1);
  const SeqId s2 = runner.add_sequence();
  EXPECT_EQ(runner.reuse_prefix(s2, p), 8);  // not 16: the last token must produce logits
}

TEST_F(BatchRunnerTest, FullCacheAndBadInputsFailBeforeChangingAnything) {
  BatchRunner runner(*model_, {.max_batch_tokens = 16, .max_seq_len = 32, .kv_blocks = 3, .block_size = 4});
  const SeqId s = runner.add_sequence();
  const SeqId t = runner.add_sequence();
  runner.step(std::vector<StepInput>{{.seq = s, .tokens = std::vector<int32_t>(9, 5)}});  // 3 blocks
  EXPECT_EQ(runner.kv_available(), 0);
  try {
    runner.step(std::vector<StepInput>{{.seq = t, .tokens = {1}}});
    FAIL() << "expected kResourceExhausted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kResourceExhausted) << e.what();
  }
  EXPECT_EQ(runner.n_past(t), 0);
  runner.step(std::vector<StepInput>{{.seq = s, .tokens = {1, 2, 3}}});  // fits in its third block
  EXPECT_EQ(runner.n_past(s), 12);
  auto code_of = [&](std::vector<StepInput> in) {
    try {
      runner.step(in);
    } catch (const Error& e) {
      return e.code();
    }
    return ErrorCode::kInternal;
  };
  EXPECT_EQ(code_of({}), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code_of({{.seq = 99, .tokens = {1}}}), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code_of({{.seq = t, .tokens = {}}}), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code_of({{.seq = t, .tokens = {-1}}}), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code_of({{.seq = s, .tokens = {1}}, {.seq = s, .tokens = {2}}}), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code_of({{.seq = t, .tokens = std::vector<int32_t>(17, 1)}}), ErrorCode::kInvalidArgument);
  EXPECT_EQ(runner.n_past(s), 12);
  runner.remove_sequence(s);
  EXPECT_EQ(runner.kv_available(), 3);
  EXPECT_THROW(BatchRunner(*model_, {.block_size = 0}), Error);
  EXPECT_THROW(BatchRunner(*model_, {.max_seq_len = 1 << 20}), Error);
}

}  // namespace
}  // namespace mixserve
