// The per-sequence half of generation, shared by generate() (one sequence) and the batch scheduler
// (many): samples each next token from logits, ends on EOS, a stop string or the token limit, and
// releases text only when it is safe to show (whole UTF-8 characters, no partial stop string).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "engine/sampler.h"
#include "engine/stop_matcher.h"
#include "common/utf8.h"
#include "model/tokenizer.h"

namespace mixserve {

/// What to generate.
struct GenerateOptions {
  int64_t max_tokens = 64;          ///< upper bound on generated tokens (>= 0)
  SamplingParams sampling;          ///< sampler settings
  std::vector<std::string> stop;    ///< stop strings (not included in the output)
  bool stop_at_eos = true;          ///< end when the model emits EOS or an end-of-turn token
  int top_logprobs = -1;            ///< record log-probabilities with this many alternatives; -1 = off
};

/// Log-probability of a generated token under the model (log-softmax of the raw logits).
struct TokenLogprob {
  int32_t token = 0;                                ///< the generated token
  float logprob = 0;                                ///< its log-probability
  std::vector<std::pair<int32_t, float>> top;       ///< the most likely tokens, best first
};

/// Why generation ended (OpenAI's finish_reason).
enum class FinishReason { kStop, kLength };

/// Sampling and text state of one generated sequence.
class Completion {
 public:
  /// A completion of `prompt` (its tokens feed the repetition penalty). Throws kInvalidArgument
  /// for bad options. The tokenizer must outlive the completion.
  Completion(const Tokenizer& tokenizer, const GenerateOptions& options, std::span<const int32_t> prompt);

  /// Samples the next token from `logits` (n_vocab floats) and returns the text that became safe
  /// to show (often empty). Call only while !done().
  std::string advance(std::span<const float> logits);
  /// Ends generation early as "length" (e.g. the context is full) and returns the held-back text.
  std::string end_length();
  /// Whether generation has ended; finish() and the final text are then known.
  bool done() const { return done_; }
  /// Why it ended (valid once done()).
  FinishReason finish() const { return finish_; }
  /// Generated token ids (EOS excluded).
  const std::vector<int32_t>& tokens() const { return tokens_; }
  /// Text shown so far.
  const std::string& text() const { return text_; }
  /// Log-probabilities of the generated tokens (empty unless options.top_logprobs >= 0).
  const std::vector<TokenLogprob>& logprobs() const { return logprobs_; }

 private:
  /// Finishes with `reason`, returning the text released by flushing the hold-back buffers.
  std::string finish_with(FinishReason reason);
  /// Appends shown text to text_ and returns it.
  std::string shown(std::string text);

  const Tokenizer& tokenizer_;
  GenerateOptions options_;
  Sampler sampler_;
  StopMatcher stops_;
  std::vector<int32_t> end_ids_;  // tokens that end generation (Vocab::end_of_generation_ids)
  Utf8Stream utf8_;
  std::vector<int32_t> tokens_;
  std::vector<TokenLogprob> logprobs_;
  std::string text_;
  bool done_ = false;
  FinishReason finish_ = FinishReason::kLength;
};

}  // namespace mixserve
