// generate(): greedy decoding equals a hand-written argmax loop over Session::eval, streaming
// delivers exactly the final text, stop strings cut at the first occurrence, limits hold.
#include <gtest/gtest.h>

#include <algorithm>

#include "common/error.h"
#include "engine/generator.h"
#include "model/synth.h"
#include "support/test_support.h"

namespace mixserve {
namespace {

class GeneratorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SynthOptions options;
    options.shape = synth_preset("tiny");
    options.type = DType::kF32;
    options.vocab = builtin_vocab();
    path_ = dir_.file("tiny.gguf");
    write_synth_model(options, path_);
    LoadOptions load;
    load.n_threads = 2;
    model_ = Model::load(path_, load);
  }

  GenerateOptions greedy(int64_t n) const {
    GenerateOptions o;
    o.max_tokens = n;
    o.sampling.temperature = 0.0f;
    o.stop_at_eos = false;
    return o;
  }

  testing::TempDir dir_;
  std::string path_;
  std::unique_ptr<Model> model_;
};

TEST_F(GeneratorTest, GreedyMatchesManualArgmaxLoop) {
  const auto prompt = model_->tokenizer().encode("the quick brown fox", true, false);
  Session session(*model_);
  const GenerateResult r = generate(session, model_->tokenizer(), prompt, greedy(20));
  ASSERT_EQ(r.tokens.size(), 20u);
  EXPECT_EQ(r.finish, FinishReason::kLength);
  EXPECT_EQ(r.prompt_tokens, static_cast<int64_t>(prompt.size()));

  Session manual(*model_);
  std::vector<float> logits = manual.eval(prompt);
  std::vector<int32_t> expected;
  for (int i = 0; i < 20; ++i) {
    const auto best = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    expected.push_back(best);
    logits = manual.eval(std::span<const int32_t>(&best, 1));
  }
  EXPECT_EQ(r.tokens, expected);
  std::string pieces;
  for (int32_t t : expected) pieces += model_->tokenizer().token_to_piece(t);
  EXPECT_EQ(r.text, pieces);
}

TEST_F(GeneratorTest, StreamedPiecesEqualFinalText) {
  const auto prompt = model_->tokenizer().encode("hello", true, false);
  Session session(*model_);
  GenerateOptions o = greedy(30);
  o.sampling.temperature = 1.0f;
  o.sampling.seed = 3;
  std::string streamed;
  const auto r = generate(session, model_->tokenizer(), prompt, o, [&](std::string_view s) { streamed += s; });
  EXPECT_EQ(streamed, r.text);
}

TEST_F(GeneratorTest, StopStringCutsAtFirstOccurrence) {
  const auto prompt = model_->tokenizer().encode("once upon", true, false);
  Session a(*model_);
  const auto full = generate(a, model_->tokenizer(), prompt, greedy(40));
  ASSERT_GT(full.text.size(), 8u);
  const std::string stop = full.text.substr(full.text.size() / 2, 3);
  GenerateOptions o = greedy(40);
  o.stop = {stop};
  Session b(*model_);
  const auto cut = generate(b, model_->tokenizer(), prompt, o);
  EXPECT_EQ(cut.finish, FinishReason::kStop);
  EXPECT_EQ(cut.text, full.text.substr(0, full.text.find(stop)));
}

TEST_F(GeneratorTest, LimitsAndErrors) {
  const auto prompt = model_->tokenizer().encode("hi", true, false);
  Session s(*model_);
  const auto none = generate(s, model_->tokenizer(), prompt, greedy(0));
  EXPECT_TRUE(none.tokens.empty());
  EXPECT_EQ(none.finish, FinishReason::kLength);
  Session s2(*model_);
  EXPECT_THROW(generate(s2, model_->tokenizer(), {}, greedy(4)), Error);
  GenerateOptions bad = greedy(4);
  bad.max_tokens = -1;
  EXPECT_THROW(generate(s2, model_->tokenizer(), prompt, bad), Error);
  // The context ends generation as "length" instead of failing.
  Session small(*model_, {.n_ctx = static_cast<int64_t>(prompt.size()) + 3});
  const auto r = generate(small, model_->tokenizer(), prompt, greedy(100));
  EXPECT_EQ(r.finish, FinishReason::kLength);
  EXPECT_EQ(r.tokens.size(), 4u);  // 3 evaluated after the prompt, plus the last sampled one
}

}  // namespace
}  // namespace mixserve
