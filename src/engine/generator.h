// Text generation for one sequence: prefill the prompt, then sample tokens until a limit, EOS or a
// stop string, streaming text as it is produced.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/completion.h"
#include "engine/session.h"

namespace mixserve {

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
