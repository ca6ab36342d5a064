// Assembles the ops of one forward step of a pre-norm decoder-only transformer (the block shared
// by every supported architecture; ModelConfig carries the per-architecture differences).
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <span>
#include <vector>

#include "hal/op.h"
#include "model/model_config.h"
#include "model/weights.h"

namespace mixserve {

/// Device tensors a forward step reads and writes: activations with room for n_batch tokens
/// (ne[1] = n_batch) and the KV cache (per layer [n_head_kv*head_dim, n_ctx]).
struct ForwardBuffers {
  hal::Tensor ids;              ///< i32 [n_batch] token ids (input)
  hal::Tensor x;                ///< residual stream [n_embd, n_batch]
  hal::Tensor h;                ///< normalised input of a sub-block [n_embd, n_batch]
  hal::Tensor q;                ///< [n_head*head_dim, n_batch]
  hal::Tensor k, v;             ///< [n_head_kv*head_dim, n_batch]
  hal::Tensor attn;             ///< attention output [n_head*head_dim, n_batch]
  hal::Tensor proj;             ///< output projections [n_embd, n_batch]
  hal::Tensor gate, up;         ///< [n_ff, n_batch]
  hal::Tensor logits;           ///< [n_vocab, n_batch] (output)
  hal::Tensor logit_ids;        ///< i32 [n_batch]: batch rows whose logits a step gathers (input)
  std::vector<hal::Tensor> k_cache, v_cache;  ///< per layer, F32 or F16

  /// The activation tensors (everything but the caches), which share one arena.
  std::vector<hal::Tensor*> activations() {
    return {&ids, &x, &h, &q, &k, &v, &attn, &proj, &gate, &up, &logits, &logit_ids};
  }
};

/// ForwardBuffers laid out for allocation: activations back to back in one arena (offsets set),
/// each KV-cache tensor at offset 0 of a buffer of its own. No tensor has a buffer yet.
struct ForwardLayout {
  ForwardBuffers buffers;        ///< tensors with dtype, shape and offset
  size_t activation_bytes = 0;   ///< size of the activation arena
  size_t cache_bytes = 0;        ///< size of each of the 2 * n_layer cache buffers
};

/// Lays out the tensors of a forward step for up to `n_batch` tokens and a context of `n_ctx`, the
/// KV cache's elements of `cache_type` (F32, F16, or Q8_0 when head_dim is a multiple of 32; anything
/// else is kInvalidArgument).
ForwardLayout layout_forward(const ModelConfig& config, int64_t n_batch, int64_t n_ctx, DType cache_type = DType::kF32);

/// Which tokens of a step need logits (the output projection is the largest single matrix).
enum class LogitsFor { kAll, kLast, kNone };

/// The ops of one step and the tensor views they point to (stable addresses).
struct ForwardGraph {
  std::vector<hal::Op> ops;       ///< in execution order
  std::deque<hal::Tensor> views;  ///< owned views referenced by ops
  int64_t logits_rows = 0;        ///< tokens whose logits the step computes (rows of buffers.logits)
  std::vector<int32_t> logit_rows;  ///< batch row of each logits row, in order
  bool gather_logit_rows = false; ///< true: the caller must write logit_rows into buffers.logit_ids first

  /// A view of `base` with shape `ne` starting `offset` bytes in; owned by the graph.
  hal::Tensor* view(const hal::Tensor& base, std::array<int64_t, 4> ne, size_t offset = 0);
};

/// The tokens of one sequence in a batched step: consecutive rows of the batch.
struct SequenceSlice {
  int64_t n_past = 0;                        ///< tokens of the sequence already in its cache
  int64_t n_tokens = 0;                      ///< tokens of the sequence in this step
  const hal::Tensor* block_table = nullptr;  ///< i32 block ids of a paged cache; nullptr = rows 0.. of the cache
  int64_t block_size = 0;                    ///< cache rows per block (paged caches)
  LogitsFor logits = LogitsFor::kLast;       ///< which of its tokens need logits
};

/// Builds one forward step over several sequences (continuous batching): matrix products run over
/// all tokens at once; RoPE, cache stores and attention run per sequence. The ids of all slices are
/// already in buffers.ids, in slice order.
ForwardGraph build_forward(const ModelConfig& config, const ModelWeights& weights, ForwardBuffers& buffers,
                           std::span<const SequenceSlice> slices);

/// Builds the forward step for `n_tokens` tokens at positions [n_past, n_past + n_tokens), whose
/// ids are already in buffers.ids, computing the logits `logits` asks for.
ForwardGraph build_forward(const ModelConfig& config, const ModelWeights& weights, ForwardBuffers& buffers,
                           int64_t n_past, int64_t n_tokens, LogitsFor logits);

}  // namespace mixserve
