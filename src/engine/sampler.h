// Token sampling from logits: greedy, temperature, top-k, top-p, min-p, repetition penalty, seed.
#pragma once

#include <cstdint>
#include <deque>
#include <random>
#include <span>
#include <vector>

namespace mixserve {

/// Sampling settings (OpenAI / llama.cpp meanings). temperature <= 0 means greedy.
struct SamplingParams {
  float temperature = 0.8f;     ///< logits are divided by this; <= 0: argmax
  int32_t top_k = 40;           ///< keep the k most likely; 0: all (negative is rejected)
  float top_p = 0.95f;          ///< keep the smallest set with this cumulative probability; 1 = all
  float min_p = 0.05f;          ///< drop tokens below min_p * p(max); 0 = off
  float repeat_penalty = 1.0f;  ///< > 1 discourages tokens among the last repeat_last_n; 1 = off
  int32_t repeat_last_n = 64;   ///< window of the repetition penalty
  uint64_t seed = 0;            ///< RNG seed: same seed, same logits -> same tokens
};

/// Throws kInvalidArgument naming the field when a setting is out of range.
void validate(const SamplingParams& params);

/// Picks the next token from logits; remembers accepted tokens for the repetition penalty.
class Sampler {
 public:
  /// A sampler for `params` (validated).
  explicit Sampler(const SamplingParams& params);
  /// Chooses a token id from `logits` (one per vocabulary entry). Ties in greedy mode go to the
  /// lowest id.
  int32_t sample(std::span<const float> logits);
  /// Records a token (prompt or generated) for the repetition penalty.
  void accept(int32_t token);

 private:
  SamplingParams params_;
  std::mt19937_64 rng_;
  std::deque<int32_t> recent_;
  std::vector<std::pair<float, int32_t>> candidates_;  // reused scratch
};

}  // namespace mixserve
