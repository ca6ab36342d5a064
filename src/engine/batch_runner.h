// Continuous batching at the engine level: many sequences share one paged KV cache, and each step
// evaluates a chunk of tokens from any number of them in one forward pass (matrix products over all
// tokens at once). The request scheduler of the server decides what goes into each step.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <vector>

#include "engine/kv_blocks.h"
#include "engine/model.h"
#include "hal/scheduler.h"

namespace mixserve {

/// Sizes of a batch runner.
struct BatchOptions {
  int64_t max_batch_tokens = 512;  ///< tokens evaluated per step (all sequences together)
  int64_t max_seq_len = 0;         ///< tokens per sequence (0 = the model's training context)
  int64_t kv_blocks = 0;           ///< blocks in the KV cache (0 = enough for 4 full-length sequences)
  int32_t block_size = 16;         ///< token rows per block
  bool prefix_cache = true;        ///< keep full blocks of finished sequences for prompt reuse
};

/// Handle of a sequence in a batch runner.
using SeqId = int64_t;

/// One sequence's part of a step.
struct StepInput {
  SeqId seq = 0;                 ///< sequence (from add_sequence)
  std::vector<int32_t> tokens;   ///< tokens appended to it in this step (at least one)
  bool logits = false;           ///< return the logits of its last token
};

/// Runs batched forward steps over sequences in a paged KV cache.
class BatchRunner {
 public:
  /// A runner for `model` (which must outlive it). Throws kInvalidArgument for bad sizes and
  /// kResourceExhausted when the cache cannot be allocated.
  BatchRunner(const Model& model, const BatchOptions& options = {});
  ~BatchRunner();

  /// Starts an empty sequence.
  SeqId add_sequence();
  /// Attaches cached blocks holding the longest prefix of `prompt` seen before (whole blocks only,
  /// always leaving the last prompt token to evaluate) to an empty sequence; returns the tokens
  /// covered, which the caller skips. 0 when the prefix cache is off or has nothing.
  int64_t reuse_prefix(SeqId seq, std::span<const int32_t> prompt);
  /// Ends a sequence: its blocks are released at once (full ones stay in the prefix cache).
  void remove_sequence(SeqId seq);
  /// Tokens in the sequence's cache.
  int64_t n_past(SeqId seq) const;

  /// Blocks a sequence needs to grow by `n` tokens (beyond those it holds).
  int64_t blocks_needed(SeqId seq, int64_t n) const;
  /// Evaluates one step. Returns, in input order, the logits (n_vocab floats) of each input that
  /// asked for them. Throws kInvalidArgument (unknown sequence, bad token, empty input, too many
  /// tokens, sequence too long) or kResourceExhausted (no free KV blocks) before changing anything.
  std::vector<std::vector<float>> step(std::span<const StepInput> inputs);

  /// KV-cache block counts (for admission control and metrics).
  KvBlockStats kv_stats() const { return pool_.stats(); }
  /// Blocks that can still be handed out.
  int64_t kv_available() const { return pool_.available(); }
  /// The runner's sizes.
  const BatchOptions& options() const { return options_; }
  /// What the device scheduler did so far.
  const hal::SchedulerStats& scheduler_stats() const;

 private:
  struct Sequence {
    std::vector<int32_t> tokens;   // every token in the cache, in order
    std::vector<int32_t> blocks;   // block table
    uint64_t last_hash = 0;        // identity of the last published full block (prefix chain)
    size_t published = 0;          // full blocks already offered to the prefix cache
  };
  struct State;
  Sequence& sequence(SeqId seq);
  const Sequence& sequence(SeqId seq) const;
  /// Offers the sequence's newly completed full blocks to the prefix cache.
  void publish_full_blocks(Sequence& s);

  const Model& model_;
  BatchOptions options_;
  KvBlockPool pool_;
  std::map<SeqId, Sequence> sequences_;
  SeqId next_id_ = 1;
  std::unique_ptr<State> state_;
};

}  // namespace mixserve
