// Iteration-level scheduling of generation requests (continuous batching): requests wait in a
// bounded queue, join the running batch at token boundaries while sequences and KV blocks allow,
// and each step gives every decoding sequence one token and long prompts a chunk of the remaining
// token budget, so prefill never stalls decoding. Thread-safe submit/cancel; step() runs on one
// engine thread, where the callbacks are invoked.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string_view>
#include <vector>

#include "engine/batch_runner.h"
#include "engine/completion.h"

namespace mixserve {

/// Limits of a batch scheduler.
struct SchedulerOptions {
  int64_t max_seqs = 16;         ///< sequences decoding at once
  int64_t max_queue = 64;        ///< requests waiting beyond those (more are refused)
  int64_t prefill_chunk = 256;   ///< prompt tokens of one sequence per step
  BatchOptions batch;            ///< token budget per step, sequence length, KV cache size
};

/// How a request ended.
struct RequestResult {
  std::vector<int32_t> tokens;        ///< generated ids
  std::vector<TokenLogprob> logprobs; ///< per generated token when GenerateOptions::top_logprobs >= 0
  std::string text;                   ///< generated text (stop string excluded)
  FinishReason finish = FinishReason::kLength;
  bool cancelled = false;             ///< ended by cancel() or abort_all() (finish is then kStop)
  std::string error;                  ///< why abort_all() ended it ("" otherwise)
  int64_t prompt_tokens = 0;          ///< prompt length
  int64_t cached_tokens = 0;          ///< prompt tokens served from the prefix cache
  double queue_seconds = 0;           ///< submit -> admitted
  double first_token_seconds = 0;     ///< submit -> first generated token (time to first token)
  double total_seconds = 0;           ///< submit -> finished
};

/// Callbacks of one request, invoked on the engine thread.
struct RequestCallbacks {
  std::function<void(std::string_view)> on_text;          ///< text safe to show (may be empty: not called)
  std::function<void(const RequestResult&)> on_done;      ///< exactly once, last
};

/// Counters for /metrics and /v1/node.
struct SchedulerStats {
  int64_t queued = 0;               ///< requests waiting
  int64_t running = 0;              ///< sequences in the batch
  uint64_t prompt_tokens = 0;       ///< prompt tokens evaluated (cached ones excluded)
  uint64_t generated_tokens = 0;    ///< tokens sampled
  uint64_t steps = 0;               ///< forward steps run
  uint64_t preemptions = 0;         ///< sequences evicted from the KV cache to be recomputed later
  KvBlockStats kv;                  ///< KV-cache blocks
  hal::SchedulerStats devices;      ///< ops per device, fallbacks and copies of the device scheduler
};

/// Continuous batching over a BatchRunner.
class BatchScheduler {
 public:
  /// A scheduler for `model` (which must outlive it).
  BatchScheduler(const Model& model, const SchedulerOptions& options = {});
  ~BatchScheduler();

  /// Queues a request and returns its id. Throws kInvalidArgument (empty prompt, bad options, prompt
  /// longer than the sequence limit: the message names the limit) or kResourceExhausted (queue full).
  uint64_t submit(std::vector<int32_t> prompt, const GenerateOptions& options, RequestCallbacks callbacks);
  /// Ends a request at the next step boundary (its blocks are freed then). Unknown ids are ignored.
  void cancel(uint64_t id);
  /// Runs one step if there is work; returns false when idle.
  bool step();
  /// Ends every running and queued request with `error` (e.g. after a step failed); engine thread.
  void abort_all(const std::string& error);
  /// Waits until there is work or `stop` becomes true (for the engine thread's loop).
  void wait_for_work(const std::atomic<bool>& stop);
  /// Wakes wait_for_work (e.g. at shutdown).
  void notify();
  /// Current counters (thread-safe).
  SchedulerStats stats() const;
  /// The limits in use.
  const SchedulerOptions& options() const { return options_; }

 private:
  struct Request;
  /// Admits queued requests while sequences and KV blocks allow.
  void admit();
  /// Finishes a running request: frees its sequence and calls on_done.
  void finish(Request& r, bool cancelled, const std::string& error = "");

  const Model& model_;
  SchedulerOptions options_;
  BatchRunner runner_;
  mutable std::mutex mutex_;             // guards queue_, cancelled_, next_id_, counters read by stats()
  std::condition_variable work_;
  std::deque<std::unique_ptr<Request>> queue_;
  std::vector<uint64_t> cancelled_;
  std::vector<std::unique_ptr<Request>> running_;  // engine thread only
  uint64_t next_id_ = 1;
  SchedulerStats counters_;
};

}  // namespace mixserve
