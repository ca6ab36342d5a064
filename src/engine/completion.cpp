#include "engine/completion.h"

#include "common/error.h"

namespace mixserve {

Completion::Completion(const Tokenizer& tokenizer, const GenerateOptions& options, std::span<const int32_t> prompt)
    : tokenizer_(tokenizer), options_(options), sampler_(options.sampling), stops_(options.stop) {
  if (options.max_tokens < 0) fail(ErrorCode::kInvalidArgument, "max_tokens must be >= 0, got ", options.max_tokens);
  for (int32_t t : prompt) sampler_.accept(t);
  if (options.max_tokens == 0) finish_with(FinishReason::kLength);
}

std::string Completion::shown(std::string text) {
  text_ += text;
  return text;
}

std::string Completion::advance(std::span<const float> logits) {
  MIXSERVE_CHECK(!done_, "advance after the completion ended");
  const int32_t token = sampler_.sample(logits);
  if (options_.stop_at_eos && token == tokenizer_.vocab().eos_id) return finish_with(FinishReason::kStop);
  sampler_.accept(token);
  tokens_.push_back(token);
  auto r = stops_.push(utf8_.push(tokenizer_.token_to_piece(token)));
  std::string out = shown(std::move(r.emit));
  if (r.stopped) {
    done_ = true;
    finish_ = FinishReason::kStop;
  } else if (static_cast<int64_t>(tokens_.size()) == options_.max_tokens) {
    out += finish_with(FinishReason::kLength);
  }
  return out;
}

std::string Completion::end_length() {
  MIXSERVE_CHECK(!done_, "end_length after the completion ended");
  return finish_with(FinishReason::kLength);
}

std::string Completion::finish_with(FinishReason reason) {
  // Release text held back for a possible stop string or an unfinished character; a stop string
  // completed by the flush still ends the completion as "stop".
  done_ = true;
  finish_ = reason;
  auto r = stops_.push(utf8_.flush());
  std::string out = shown(std::move(r.emit));
  if (r.stopped) {
    finish_ = FinishReason::kStop;
  } else {
    out += shown(stops_.flush());
  }
  return out;
}

}  // namespace mixserve
