#include "engine/generator.h"

#include "common/error.h"
#include "common/timer.h"
#include "common/utf8.h"
#include "engine/stop_matcher.h"

namespace mixserve {

GenerateResult generate(Session& session, const Tokenizer& tokenizer, const std::vector<int32_t>& prompt,
                        const GenerateOptions& options, const std::function<void(std::string_view)>& on_text) {
  if (prompt.empty()) fail(ErrorCode::kInvalidArgument, "the prompt has no tokens");
  if (options.max_tokens < 0) fail(ErrorCode::kInvalidArgument, "max_tokens must be >= 0, got ", options.max_tokens);
  if (session.n_past() + static_cast<int64_t>(prompt.size()) > session.n_ctx()) {
    fail(ErrorCode::kResourceExhausted, "the prompt has ", prompt.size(), " tokens but the context holds ",
         session.n_ctx() - session.n_past());
  }
  Sampler sampler(options.sampling);
  for (int32_t t : prompt) sampler.accept(t);
  StopMatcher stops(options.stop);
  Utf8Stream utf8;  // pieces may split a character; show only whole characters
  GenerateResult result;
  result.prompt_tokens = static_cast<int64_t>(prompt.size());
  auto emit = [&](const std::string& text) {
    if (text.empty()) return;
    result.text += text;
    if (on_text) on_text(text);
  };

  Stopwatch prefill;
  std::vector<float> logits = session.eval(prompt);
  result.prefill_seconds = prefill.seconds();

  Stopwatch decode;
  const int32_t eos = tokenizer.vocab().eos_id;
  bool hit_eos = false;
  bool hit_stop = false;
  for (int64_t i = 0; i < options.max_tokens; ++i) {
    const int32_t token = sampler.sample(logits);
    if (options.stop_at_eos && token == eos) {
      hit_eos = true;
      break;
    }
    sampler.accept(token);
    result.tokens.push_back(token);
    auto r = stops.push(utf8.push(tokenizer.token_to_piece(token)));
    emit(r.emit);
    if (r.stopped) {
      hit_stop = true;
      break;
    }
    if (i + 1 == options.max_tokens) break;
    if (session.n_past() >= session.n_ctx()) break;  // context full: ends as "length"
    logits = session.eval(std::span<const int32_t>(&token, 1));
  }
  if (!hit_stop) {  // release text held back for a possible stop string or an unfinished character
    auto r = stops.push(utf8.flush());
    emit(r.emit);
    hit_stop = r.stopped;
    if (!hit_stop) emit(stops.flush());
  }
  result.finish = hit_eos || hit_stop ? FinishReason::kStop : FinishReason::kLength;
  result.decode_seconds = decode.seconds();
  return result;
}

}  // namespace mixserve
