// One sequence being evaluated: its KV cache, position and scratch tensors.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "engine/model.h"
#include "hal/scheduler.h"

namespace mixserve {

/// Settings of a session.
struct SessionOptions {
  int64_t n_ctx = 0;        ///< context length (0 = the model's training context); KV cache size
  int64_t n_batch = 512;    ///< tokens evaluated per forward step (longer inputs are chunked)
};

/// Evaluates tokens of one sequence incrementally with a KV cache.
class Session {
 public:
  /// A session on `model` (which must outlive it). Throws kInvalidArgument if n_ctx exceeds the
  /// model's training context.
  Session(const Model& model, const SessionOptions& options = {});
  ~Session();

  /// Appends `tokens` at positions n_past().. and returns the logits (n_vocab floats per token):
  /// of every token when all_logits, else of the last one only. Throws kResourceExhausted when the
  /// context would overflow, kInvalidArgument for token ids out of range.
  std::vector<float> eval(std::span<const int32_t> tokens, bool all_logits = false);
  /// Tokens evaluated so far.
  int64_t n_past() const { return n_past_; }
  /// Context length.
  int64_t n_ctx() const { return n_ctx_; }
  /// Bytes of the KV cache (the keys and values of every layer for n_ctx() tokens), as allocated.
  size_t cache_bytes() const { return cache_bytes_; }
  /// What the device scheduler did so far (ops per device, fallbacks, copies between devices).
  const hal::SchedulerStats& scheduler_stats() const;
  /// Adds the time of every op of the following evals to *profile (nullptr: stops); false when a
  /// device of the model cannot time its ops.
  bool set_profile(hal::OpProfile* profile);
  /// Forgets all tokens (the KV cache is reused).
  void reset() { n_past_ = 0; }

 private:
  struct State;
  const Model& model_;
  int64_t n_ctx_ = 0;
  int64_t n_batch_ = 0;
  int64_t n_past_ = 0;
  size_t cache_bytes_ = 0;
  std::unique_ptr<State> state_;
};

}  // namespace mixserve
