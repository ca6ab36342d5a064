// Hyper-parameters of a decoder-only transformer, read from GGUF metadata ("<arch>.*" keys).
#pragma once

#include <cstdint>
#include <string>

namespace mixserve {
namespace gguf {
class File;
}

/// Shape and numerics of a model; everything a forward pass needs besides the weights.
struct ModelConfig {
  std::string arch;            ///< general.architecture ("llama", "qwen2")
  std::string name;            ///< general.name, may be empty
  int64_t n_vocab = 0;         ///< vocabulary size (rows of token_embd)
  int64_t n_embd = 0;          ///< <arch>.embedding_length
  int64_t n_layer = 0;         ///< <arch>.block_count
  int64_t n_head = 0;          ///< <arch>.attention.head_count
  int64_t n_head_kv = 0;       ///< <arch>.attention.head_count_kv (default n_head)
  int64_t head_dim = 0;        ///< n_embd / n_head
  int64_t n_ff = 0;            ///< <arch>.feed_forward_length
  int64_t n_ctx_train = 0;     ///< <arch>.context_length
  int64_t n_rot = 0;           ///< <arch>.rope.dimension_count (default head_dim)
  float rms_eps = 1e-5f;       ///< <arch>.attention.layer_norm_rms_epsilon
  float rope_freq_base = 10000.0f;  ///< <arch>.rope.freq_base
  bool rope_neox = false;      ///< rotate (i, i+n/2) pairs instead of (2i, 2i+1)
  bool qkv_bias = false;       ///< attn_q/k/v have biases (qwen2)
  bool tied_output = false;    ///< no output.weight: logits use token_embd
};

/// Reads and validates the configuration of a model file; throws kDataLoss naming the key, or
/// kUnimplemented for an unsupported architecture.
ModelConfig read_model_config(const gguf::File& file);

}  // namespace mixserve
