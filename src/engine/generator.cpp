#include "engine/generator.h"

#include "common/error.h"
#include "common/timer.h"

namespace mixserve {

GenerateResult generate(Session& session, const Tokenizer& tokenizer, const std::vector<int32_t>& prompt,
                        const GenerateOptions& options, const std::function<void(std::string_view)>& on_text) {
  if (prompt.empty()) fail(ErrorCode::kInvalidArgument, "the prompt has no tokens");
  if (session.n_past() + static_cast<int64_t>(prompt.size()) > session.n_ctx()) {
    fail(ErrorCode::kResourceExhausted, "the prompt has ", prompt.size(), " tokens but the context holds ",
         session.n_ctx() - session.n_past());
  }
  Completion completion(tokenizer, options, prompt);
  GenerateResult result;
  result.prompt_tokens = static_cast<int64_t>(prompt.size());
  auto emit = [&](const std::string& text) {
    if (!text.empty() && on_text) on_text(text);
  };

  Stopwatch prefill;
  std::vector<float> logits = completion.done() ? std::vector<float>() : session.eval(prompt);
  result.prefill_seconds = prefill.seconds();

  Stopwatch decode;
  while (!completion.done()) {
    emit(completion.advance(logits));
    if (completion.done()) break;
    if (session.n_past() >= session.n_ctx()) {  // context full: ends as "length"
      emit(completion.end_length());
      break;
    }
    const int32_t token = completion.tokens().back();
    logits = session.eval(std::span<const int32_t>(&token, 1));
  }
  result.text = completion.text();
  result.tokens = completion.tokens();
  result.finish = completion.finish();
  result.decode_seconds = decode.seconds();
  return result;
}

}  // namespace mixserve
