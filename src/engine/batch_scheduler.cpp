#include "engine/batch_scheduler.h"

#include <algorithm>

#include "common/error.h"
#include "common/timer.h"

namespace mixserve {

struct BatchScheduler::Request {
  uint64_t id = 0;
  RequestCallbacks callbacks;
  std::unique_ptr<Completion> completion;
  std::vector<int32_t> context;  // prompt + generated tokens: what the KV cache must hold
  int64_t prompt_tokens = 0;
  SeqId seq = 0;                 // 0 while queued
  size_t fed = 0;                // tokens of context already in the KV cache
  int64_t cached_tokens = 0;
  Stopwatch clock;               // since submit
  double queue_seconds = -1;
  double first_token_seconds = -1;
};

BatchScheduler::BatchScheduler(const Model& model, const SchedulerOptions& options)
    : model_(model), options_(options), runner_(model, options.batch) {
  if (options.max_seqs <= 0 || options.max_queue < 0 || options.prefill_chunk <= 0) {
    fail(ErrorCode::kInvalidArgument, "scheduler limits must be positive (max_seqs ", options.max_seqs,
         ", max_queue ", options.max_queue, ", prefill_chunk ", options.prefill_chunk, ")");
  }
  options_.batch = runner_.options();  // resolved defaults
  counters_.kv = runner_.kv_stats();
}

BatchScheduler::~BatchScheduler() = default;

uint64_t BatchScheduler::submit(std::vector<int32_t> prompt, const GenerateOptions& options, RequestCallbacks callbacks) {
  if (prompt.empty()) fail(ErrorCode::kInvalidArgument, "the prompt has no tokens");
  const int64_t limit = options_.batch.max_seq_len;
  if (static_cast<int64_t>(prompt.size()) > limit) {
    fail(ErrorCode::kInvalidArgument, "the prompt has ", prompt.size(), " tokens; this server's context limit is ",
         limit, " tokens");
  }
  for (int32_t t : prompt) {
    if (t < 0 || t >= model_.config().n_vocab) fail(ErrorCode::kInvalidArgument, "token id ", t, " is out of range");
  }
  auto r = std::make_unique<Request>();
  r->completion = std::make_unique<Completion>(model_.tokenizer(), options, prompt);
  r->callbacks = std::move(callbacks);
  r->prompt_tokens = static_cast<int64_t>(prompt.size());
  r->context = std::move(prompt);
  std::lock_guard lock(mutex_);
  if (static_cast<int64_t>(queue_.size()) >= options_.max_queue) {
    fail(ErrorCode::kResourceExhausted, "the request queue is full (", options_.max_queue, " waiting)");
  }
  r->id = next_id_++;
  const uint64_t id = r->id;
  queue_.push_back(std::move(r));
  work_.notify_one();
  return id;
}

void BatchScheduler::cancel(uint64_t id) {
  std::lock_guard lock(mutex_);
  cancelled_.push_back(id);
  work_.notify_one();
}

void BatchScheduler::notify() {
  std::lock_guard lock(mutex_);
  work_.notify_all();
}

void BatchScheduler::wait_for_work(const std::atomic<bool>& stop) {
  std::unique_lock lock(mutex_);
  work_.wait(lock, [&] { return stop.load() || !queue_.empty() || !cancelled_.empty(); });
}

SchedulerStats BatchScheduler::stats() const {
  std::lock_guard lock(mutex_);
  SchedulerStats s = counters_;
  s.queued = static_cast<int64_t>(queue_.size());
  return s;
}

void BatchScheduler::finish(Request& r, bool cancelled, const std::string& error) {
  if (r.seq != 0) runner_.remove_sequence(r.seq);
  r.seq = 0;
  RequestResult result;
  result.tokens = r.completion->tokens();
  result.logprobs = r.completion->logprobs();
  result.text = r.completion->text();
  result.finish = cancelled ? FinishReason::kStop : r.completion->finish();
  result.cancelled = cancelled;
  result.error = error;
  result.prompt_tokens = r.prompt_tokens;
  result.cached_tokens = r.cached_tokens;
  result.queue_seconds = std::max(0.0, r.queue_seconds);
  result.first_token_seconds = std::max(0.0, r.first_token_seconds);
  result.total_seconds = r.clock.seconds();
  if (r.callbacks.on_done) r.callbacks.on_done(result);
}

void BatchScheduler::abort_all(const std::string& error) {
  std::deque<std::unique_ptr<Request>> queued;
  {
    std::lock_guard lock(mutex_);
    queued.swap(queue_);
  }
  for (auto& r : running_) finish(*r, true, error);
  running_.clear();
  for (auto& r : queued) finish(*r, true, error);
  std::lock_guard lock(mutex_);
  counters_.running = 0;
  counters_.kv = runner_.kv_stats();
}

void BatchScheduler::admit() {
  while (static_cast<int64_t>(running_.size()) < options_.max_seqs) {
    std::unique_ptr<Request> r;
    {
      std::lock_guard lock(mutex_);
      if (queue_.empty()) return;
      r = std::move(queue_.front());
      queue_.pop_front();
    }
    if (r->completion->done()) {  // max_tokens = 0
      finish(*r, false);
      continue;
    }
    r->seq = runner_.add_sequence();
    r->fed = static_cast<size_t>(runner_.reuse_prefix(r->seq, r->context));
    if (r->queue_seconds < 0) {
      r->queue_seconds = r->clock.seconds();
      r->cached_tokens = static_cast<int64_t>(r->fed);
    }
    const auto first = std::min<int64_t>(options_.prefill_chunk, static_cast<int64_t>(r->context.size() - r->fed));
    if (runner_.blocks_needed(r->seq, first) > runner_.kv_available() && !running_.empty()) {
      runner_.remove_sequence(r->seq);  // no room yet: wait at the head of the queue
      r->seq = 0;
      std::lock_guard lock(mutex_);
      queue_.push_front(std::move(r));
      return;
    }
    running_.push_back(std::move(r));
  }
}

bool BatchScheduler::step() {
  std::vector<uint64_t> cancelled;
  {
    std::lock_guard lock(mutex_);
    cancelled.swap(cancelled_);
  }
  for (uint64_t id : cancelled) {
    for (auto it = running_.begin(); it != running_.end(); ++it) {
      if ((*it)->id != id) continue;
      finish(**it, true);
      running_.erase(it);
      break;
    }
    std::unique_ptr<Request> queued;
    {
      std::lock_guard lock(mutex_);
      auto it = std::find_if(queue_.begin(), queue_.end(), [&](const auto& r) { return r->id == id; });
      if (it != queue_.end()) {
        queued = std::move(*it);
        queue_.erase(it);
      }
    }
    if (queued) finish(*queued, true);
  }
  admit();
  if (running_.empty()) {
    std::lock_guard lock(mutex_);
    counters_.running = 0;
    counters_.kv = runner_.kv_stats();
    return !queue_.empty();
  }

  // Plan: decoding sequences first (one token each), then prompt chunks in the remaining budget.
  // When the KV cache cannot hold the plan, the most recently admitted sequence is preempted: its
  // blocks are freed and it goes back to the head of the queue, to be recomputed (mostly from the
  // prefix cache) when room returns.
  std::vector<StepInput> inputs;
  std::vector<Request*> owners;
  while (true) {
    inputs.clear();
    owners.clear();
    int64_t budget = options_.batch.max_batch_tokens, blocks = 0;
    for (int pass = 0; pass < 2; ++pass) {
      for (auto& r : running_) {
        const auto left = static_cast<int64_t>(r->context.size() - r->fed);
        const bool decoding = left == 1 && r->fed >= static_cast<size_t>(r->prompt_tokens);
        if ((pass == 0) != decoding || budget == 0) continue;
        const int64_t n = std::min({left, options_.prefill_chunk, budget});
        StepInput in{.seq = r->seq, .tokens = {}, .logits = n == left};
        in.tokens.assign(r->context.begin() + static_cast<std::ptrdiff_t>(r->fed),
                         r->context.begin() + static_cast<std::ptrdiff_t>(r->fed) + n);
        blocks += runner_.blocks_needed(r->seq, n);
        budget -= n;
        inputs.push_back(std::move(in));
        owners.push_back(r.get());
      }
    }
    if (blocks <= runner_.kv_available()) break;
    std::unique_ptr<Request> victim = std::move(running_.back());
    running_.pop_back();
    runner_.remove_sequence(victim->seq);
    victim->seq = 0;
    victim->fed = 0;
    if (running_.empty()) {
      // Alone and still too big for the cache: it cannot continue.
      const std::string tail = victim->completion->done() ? "" : victim->completion->end_length();
      if (!tail.empty() && victim->callbacks.on_text) victim->callbacks.on_text(tail);
      finish(*victim, false);
      return true;
    }
    std::lock_guard lock(mutex_);
    ++counters_.preemptions;
    queue_.push_front(std::move(victim));
  }

  const auto logits = runner_.step(inputs);
  uint64_t prompt_n = 0, generated_n = 0;
  size_t k = 0;
  std::vector<Request*> done;
  for (size_t i = 0; i < inputs.size(); ++i) {
    Request& r = *owners[i];
    const bool prefill = r.fed < static_cast<size_t>(r.prompt_tokens);
    r.fed += inputs[i].tokens.size();
    if (prefill) prompt_n += inputs[i].tokens.size();
    if (!inputs[i].logits) continue;
    const size_t generated_before = r.completion->tokens().size();
    std::string text = r.completion->advance(logits[k++]);
    if (r.first_token_seconds < 0) r.first_token_seconds = r.clock.seconds();
    if (!r.completion->tokens().empty() && !r.completion->done()) {
      r.context.push_back(r.completion->tokens().back());
      if (static_cast<int64_t>(r.context.size()) > options_.batch.max_seq_len) text += r.completion->end_length();
    }
    generated_n += r.completion->tokens().size() > generated_before ? 1 : 0;
    if (!text.empty() && r.callbacks.on_text) r.callbacks.on_text(text);
    if (r.completion->done()) done.push_back(&r);
  }
  for (Request* r : done) {
    finish(*r, false);
    std::erase_if(running_, [&](const auto& p) { return p.get() == r; });
  }
  std::lock_guard lock(mutex_);
  counters_.prompt_tokens += prompt_n;
  counters_.generated_tokens += generated_n;
  ++counters_.steps;
  counters_.running = static_cast<int64_t>(running_.size());
  counters_.kv = runner_.kv_stats();
  counters_.devices = runner_.scheduler_stats();
  return true;
}

}  // namespace mixserve
