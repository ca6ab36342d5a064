// Completion: log-probabilities are a normalised log-softmax of the raw logits (checked against a
// direct computation), the greedy token is the most likely one, and alternatives come best first.
#include <gtest/gtest.h>

#include <cmath>
#include <algorithm>
#include <random>

#include "engine/completion.h"
#include "model/vocab.h"

namespace mixserve {
namespace {

TEST(Completion, LogprobsAreLogSoftmaxOfTheLogits) {
  const auto tokenizer = Tokenizer::create(builtin_vocab());
  const auto n = static_cast<size_t>(tokenizer->vocab().size());
  GenerateOptions o;
  o.max_tokens = 3;
  o.sampling.temperature = 0.0f;
  o.stop_at_eos = false;
  o.top_logprobs = 5;
  Completion c(*tokenizer, o, std::vector<int32_t>{1});
  std::mt19937 rng(1);
  std::normal_distribution<float> dist(0.0f, 3.0f);
  for (int step = 0; step < 3; ++step) {
    std::vector<float> logits(n);
    for (auto& x : logits) x = dist(rng);
    c.advance(logits);
    const TokenLogprob& lp = c.logprobs().back();
    double z = 0;
    for (float x : logits) z += std::exp(static_cast<double>(x));
    EXPECT_NEAR(lp.logprob, logits[static_cast<size_t>(lp.token)] - std::log(z), 1e-4);
    ASSERT_EQ(lp.top.size(), 5u);
    EXPECT_EQ(lp.top[0].first, lp.token);  // greedy picks the most likely
    for (size_t i = 1; i < lp.top.size(); ++i) EXPECT_LE(lp.top[i].second, lp.top[i - 1].second);
  }
  EXPECT_TRUE(c.done());
  EXPECT_EQ(c.logprobs().size(), c.tokens().size());
}

TEST(Completion, NoLogprobsUnlessAsked) {
  const auto tokenizer = Tokenizer::create(builtin_vocab());
  GenerateOptions o;
  o.max_tokens = 1;
  o.sampling.temperature = 0.0f;
  o.stop_at_eos = false;
  Completion c(*tokenizer, o, std::vector<int32_t>{1});
  c.advance(std::vector<float>(static_cast<size_t>(tokenizer->vocab().size()), 0.0f));
  EXPECT_TRUE(c.logprobs().empty());
}

}  // namespace
}  // namespace mixserve

namespace mixserve {
namespace {

TEST(Completion, EndOfTurnTokensEndGenerationLikeEos) {
  Vocab vocab = builtin_vocab();
  vocab.tokens.push_back("<|im_end|>");
  vocab.scores.push_back(0.0f);
  vocab.types.push_back(TokenType::kControl);
  vocab.tokens.push_back("<|eot_id|>");  // plain text token: not an end marker
  vocab.scores.push_back(0.0f);
  vocab.types.push_back(TokenType::kNormal);
  const auto im_end = vocab.size() - 2;
  const auto ids = vocab.end_of_generation_ids();
  EXPECT_NE(std::find(ids.begin(), ids.end(), vocab.eos_id), ids.end());
  EXPECT_NE(std::find(ids.begin(), ids.end(), im_end), ids.end());
  EXPECT_EQ(std::find(ids.begin(), ids.end(), im_end + 1), ids.end());
  const auto tokenizer = Tokenizer::create(vocab);
  GenerateOptions o;
  o.max_tokens = 5;
  o.sampling.temperature = 0.0f;
  Completion c(*tokenizer, o, std::vector<int32_t>{1});
  std::vector<float> logits(static_cast<size_t>(vocab.size()), 0.0f);
  logits[static_cast<size_t>(im_end)] = 10.0f;
  c.advance(logits);
  EXPECT_TRUE(c.done());
  EXPECT_EQ(c.finish(), FinishReason::kStop);
  EXPECT_TRUE(c.tokens().empty());
}

}  // namespace
}  // namespace mixserve
