// BatchScheduler: every request's output is identical whether it runs alone (generate() on a
// Session) or inside a busy batch, including when the KV cache is too small and sequences are
// preempted and recomputed; queue limits, prompt limits, cancellation and streaming behave.
#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>

#include "common/error.h"
#include "engine/batch_scheduler.h"
#include "engine/generator.h"
#include "model/synth.h"
#include "support/test_support.h"

namespace mixserve {
namespace {

class BatchSchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SynthOptions options;
    options.shape = synth_preset("tiny");
    options.type = DType::kQ4_0;
    options.vocab = builtin_vocab();
    path_ = dir_.file("tiny.gguf");
    write_synth_model(options, path_);
    LoadOptions load;
    load.n_threads = 2;
    model_ = Model::load(path_, load);
  }

  std::vector<int32_t> prompt(std::mt19937& rng, size_t n) const {
    std::vector<int32_t> p(n);
    for (auto& t : p) t = 3 + static_cast<int32_t>(rng() % static_cast<uint32_t>(model_->config().n_vocab - 3));
    return p;
  }

  static GenerateOptions greedy(int64_t n) {
    GenerateOptions o;
    o.max_tokens = n;
    o.sampling.temperature = 0.0f;
    o.stop_at_eos = false;
    return o;
  }

  GenerateResult alone(const std::vector<int32_t>& p, const GenerateOptions& o) const {
    Session session(*model_, {.n_ctx = 128});
    return generate(session, model_->tokenizer(), p, o);
  }

  testing::TempDir dir_;
  std::string path_;
  std::unique_ptr<Model> model_;
};

struct Collected {
  std::string streamed;
  RequestResult result;
  int done_calls = 0;
};

RequestCallbacks collect(Collected& c) {
  return {[&c](std::string_view t) { c.streamed += t; }, [&c](const RequestResult& r) {
            c.result = r;
            ++c.done_calls;
          }};
}

TEST_F(BatchSchedulerTest, OutputIsTheSameAloneAndInABusyBatch) {
  std::mt19937 rng(11);
  BatchScheduler sched(*model_, {.max_seqs = 17, .max_queue = 32, .prefill_chunk = 8,
                                 .batch = {.max_batch_tokens = 40, .max_seq_len = 128, .block_size = 8}});
  std::vector<std::vector<int32_t>> prompts;
  std::vector<GenerateOptions> opts;
  std::vector<Collected> got(17);
  for (int i = 0; i < 17; ++i) {
    prompts.push_back(prompt(rng, 1 + rng() % 30));
    opts.push_back(greedy(4 + static_cast<int64_t>(rng() % 24)));
    sched.submit(prompts.back(), opts.back(), collect(got[static_cast<size_t>(i)]));
  }
  while (sched.step()) {
  }
  for (size_t i = 0; i < got.size(); ++i) {
    const GenerateResult want = alone(prompts[i], opts[i]);
    EXPECT_EQ(got[i].done_calls, 1);
    EXPECT_EQ(got[i].result.tokens, want.tokens) << "request " << i;
    EXPECT_EQ(got[i].result.text, want.text);
    EXPECT_EQ(got[i].streamed, want.text);
    EXPECT_EQ(got[i].result.finish, want.finish);
    EXPECT_EQ(got[i].result.prompt_tokens, static_cast<int64_t>(prompts[i].size()));
  }
  const SchedulerStats s = sched.stats();
  EXPECT_EQ(s.running, 0);
  EXPECT_EQ(s.queued, 0);
  EXPECT_EQ(s.kv.used, 0);
  EXPECT_GT(s.steps, 0u);
}

TEST_F(BatchSchedulerTest, TooSmallCachePreemptsAndRecomputesWithoutChangingOutput) {
  std::mt19937 rng(4);
  // 12 blocks of 4 rows: not enough for 6 sequences of up to ~40 tokens at once.
  BatchScheduler sched(*model_, {.max_seqs = 6, .max_queue = 8, .prefill_chunk = 16,
                                 .batch = {.max_batch_tokens = 64, .max_seq_len = 48, .kv_blocks = 12, .block_size = 4}});
  std::vector<std::vector<int32_t>> prompts;
  std::vector<Collected> got(6);
  for (size_t i = 0; i < got.size(); ++i) {
    prompts.push_back(prompt(rng, 8 + i * 3));
    sched.submit(prompts.back(), greedy(20), collect(got[i]));
  }
  while (sched.step()) {
  }
  EXPECT_GT(sched.stats().preemptions, 0u);
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].result.tokens, alone(prompts[i], greedy(20)).tokens) << "request " << i;
    EXPECT_EQ(got[i].done_calls, 1);
  }
}

TEST_F(BatchSchedulerTest, LimitsAreClearErrors) {
  BatchScheduler sched(*model_, {.max_seqs = 1, .max_queue = 2, .batch = {.max_seq_len = 16}});
  try {
    sched.submit(std::vector<int32_t>(17, 5), greedy(1), {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("limit is 16 tokens"), std::string::npos) << e.what();
  }
  EXPECT_THROW(sched.submit({}, greedy(1), {}), Error);
  GenerateOptions bad = greedy(1);
  bad.max_tokens = -1;
  EXPECT_THROW(sched.submit({5}, bad, {}), Error);
  sched.submit({5}, greedy(1), {});
  sched.submit({6}, greedy(1), {});
  try {
    sched.submit({7}, greedy(1), {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kResourceExhausted);
  }
  EXPECT_EQ(sched.stats().queued, 2);
}

TEST_F(BatchSchedulerTest, CancelEndsRunningAndQueuedRequestsAndFreesBlocks) {
  BatchScheduler sched(*model_, {.max_seqs = 1, .max_queue = 4, .batch = {.max_seq_len = 64, .block_size = 4}});
  Collected a, b, c;
  const uint64_t ia = sched.submit({5, 6, 7}, greedy(50), collect(a));
  const uint64_t ib = sched.submit({8, 9}, greedy(50), collect(b));
  sched.submit({10}, greedy(3), collect(c));
  sched.step();
  sched.step();
  EXPECT_EQ(sched.stats().running, 1);
  sched.cancel(ia);
  sched.cancel(ib);  // still queued
  while (sched.step()) {
  }
  EXPECT_TRUE(a.result.cancelled);
  EXPECT_TRUE(b.result.cancelled);
  EXPECT_TRUE(b.result.tokens.empty());
  EXPECT_FALSE(c.result.cancelled);
  EXPECT_EQ(c.result.tokens.size(), 3u);
  EXPECT_EQ(a.done_calls + b.done_calls + c.done_calls, 3);
  EXPECT_EQ(sched.stats().kv.used, 0);
  sched.cancel(12345);  // unknown: ignored
  EXPECT_FALSE(sched.step());
}

TEST_F(BatchSchedulerTest, ZeroMaxTokensAndRepeatedPromptsUseThePrefixCache) {
  BatchScheduler sched(*model_, {.batch = {.max_seq_len = 64, .block_size = 4}});
  Collected zero, first, second;
  sched.submit({5, 6, 7}, greedy(0), collect(zero));
  std::vector<int32_t> p(21, 9);
  for (size_t i = 0; i < p.size(); ++i) p[i] = static_cast<int32_t>(10 + i);
  sched.submit(p, greedy(5), collect(first));
  while (sched.step()) {
  }
  sched.submit(p, greedy(5), collect(second));
  while (sched.step()) {
  }
  EXPECT_EQ(zero.done_calls, 1);
  EXPECT_TRUE(zero.result.tokens.empty());
  EXPECT_EQ(zero.result.finish, FinishReason::kLength);
  EXPECT_EQ(second.result.tokens, first.result.tokens);
  EXPECT_EQ(first.result.cached_tokens, 0);
  EXPECT_EQ(second.result.cached_tokens, 20);  // 5 full blocks of 4; the last prompt token is evaluated
}

TEST_F(BatchSchedulerTest, EngineThreadServesRequestsSubmittedFromOtherThreads) {
  BatchScheduler sched(*model_, {.max_seqs = 4, .max_queue = 64, .batch = {.max_seq_len = 64}});
  std::atomic<bool> stop{false};
  std::thread engine([&] {
    while (!stop) {
      if (!sched.step()) sched.wait_for_work(stop);
    }
  });
  std::atomic<int> finished{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 4; ++c) {
    clients.emplace_back([&, c] {
      for (int i = 0; i < 5; ++i) {
        sched.submit({static_cast<int32_t>(5 + c), static_cast<int32_t>(6 + i)}, greedy(3),
                     {{}, [&](const RequestResult&) { ++finished; }});
      }
    });
  }
  for (auto& t : clients) t.join();
  for (int i = 0; i < 500 && finished < 20; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  stop = true;
  sched.notify();
  engine.join();
  EXPECT_EQ(finished.load(), 20);
}

}  // namespace
}  // namespace mixserve
