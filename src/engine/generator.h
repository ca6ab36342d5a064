// Text generation for one sequence: prefill the prompt, then sample tokens until a limit, EOS or a
// stop string, streaming text as it is produced.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/sampler.h"
#include "engine/session.h"

namespace mixserve {

/// What to generate.
struct GenerateOptions {
  int64_t max_tokens = 64;          ///< upper bound on generated tokens (>= 0)
  SamplingParams sampling;          ///< sampler settings
  std::vector<std::string> stop;    ///< stop strings (not included in the output)
  bool stop_at_eos = true;          ///< end when the model emits its EOS token
};

/// Why generation ended (OpenAI's finish_reason).
enum class FinishReason { kStop, kLength };

/// Outcome and timings of one generation.
struct GenerateResult {
  std::string text;                 ///< generated text (stop string excluded)
  std::vector<int32_t> tokens;      ///< generated token ids
  FinishReason finish = FinishReason::kLength;
  int64_t prompt_tokens = 0;        ///< tokens prefilled
  double prefill_seconds = 0.0;     ///< wall time of the prefill
  double decode_seconds = 0.0;      ///< wall time of sampling + evaluating generated tokens
};

/// Generates from `prompt` (token ids, non-empty) in `session` (which continues from its
/// current position). on_text(piece) receives text as soon as it is safe to show (may be empty).
GenerateResult generate(Session& session, const Tokenizer& tokenizer, const std::vector<int32_t>& prompt,
                        const GenerateOptions& options,
                        const std::function<void(std::string_view)>& on_text = {});

}  // namespace mixserve
