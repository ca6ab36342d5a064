// The weight tensors of a decoder-only transformer, named as in GGUF ("blk.N.attn_q.weight" ...).
#pragma once

#include <vector>

#include "hal/tensor.h"

namespace mixserve {

/// Weights of one transformer block. Bias tensors are null when the architecture has none.
struct LayerWeights {
  hal::Tensor attn_norm;      ///< [n_embd] f32
  hal::Tensor wq, wk, wv;     ///< [n_embd, n_head*head_dim], [n_embd, n_head_kv*head_dim] x2
  hal::Tensor bq, bk, bv;     ///< biases (qwen2), [n_head*head_dim] ... ; buffer null if absent
  hal::Tensor wo;             ///< [n_head*head_dim, n_embd]
  hal::Tensor ffn_norm;       ///< [n_embd] f32
  hal::Tensor w_gate, w_up;   ///< [n_embd, n_ff]
  hal::Tensor w_down;         ///< [n_ff, n_embd]
};

/// All weights of a model.
struct ModelWeights {
  hal::Tensor token_embd;     ///< [n_embd, n_vocab]
  std::vector<LayerWeights> layers;
  hal::Tensor output_norm;    ///< [n_embd] f32
  hal::Tensor output;         ///< [n_embd, n_vocab]; aliases token_embd when tied
};

}  // namespace mixserve
