#include "engine/completion.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"

namespace mixserve {
namespace {

// Log-softmax of the raw logits at `token`, with the `top` most likely alternatives.
TokenLogprob log_probability(std::span<const float> logits, int32_t token, int top) {
  const float max = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (float x : logits) sum += std::exp(static_cast<double>(x) - max);
  const double log_z = max + std::log(sum);
  TokenLogprob out;
  out.token = token;
  out.logprob = static_cast<float>(logits[static_cast<size_t>(token)] - log_z);
  std::vector<int32_t> ids(logits.size());
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>(i);
  const auto n = std::min<size_t>(static_cast<size_t>(top), ids.size());
  std::partial_sort(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(n), ids.end(), [&](int32_t a, int32_t b) {
    const float la = logits[static_cast<size_t>(a)], lb = logits[static_cast<size_t>(b)];
    return la != lb ? la > lb : a < b;
  });
  for (size_t i = 0; i < n; ++i) {
    out.top.emplace_back(ids[i], static_cast<float>(logits[static_cast<size_t>(ids[i])] - log_z));
  }
  return out;
}

}  // namespace

Completion::Completion(const Tokenizer& tokenizer, const GenerateOptions& options, std::span<const int32_t> prompt)
    : tokenizer_(tokenizer),
      options_(options),
      sampler_(options.sampling),
      stops_(options.stop),
      end_ids_(tokenizer.vocab().end_of_generation_ids()) {
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
  if (options_.stop_at_eos && std::find(end_ids_.begin(), end_ids_.end(), token) != end_ids_.end()) {
    return finish_with(FinishReason::kStop);
  }
  sampler_.accept(token);
  tokens_.push_back(token);
  if (options_.top_logprobs >= 0) logprobs_.push_back(log_probability(logits, token, options_.top_logprobs));
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
