// An independent, deliberately plain Llama-family forward pass for tests: reads a GGUF file through
// gguf::File only, decodes F32/F16/BF16/Q8_0/Q4_0 with its own routines (from the GGUF block layout
// specification) and computes everything in double precision with no shared kernels.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/dtype.h"
#include "model/gguf.h"

namespace mixserve::testing {

/// Hyper-parameters the reference reads from the file's metadata.
struct ReferenceConfig {
  std::string arch;          ///< "llama" or "qwen2"
  int64_t n_vocab = 0;       ///< rows of token_embd.weight
  int64_t n_embd = 0;        ///< <arch>.embedding_length
  int64_t n_layer = 0;       ///< <arch>.block_count
  int64_t n_head = 0;        ///< <arch>.attention.head_count
  int64_t n_head_kv = 0;     ///< <arch>.attention.head_count_kv (default n_head)
  int64_t head_dim = 0;      ///< n_embd / n_head
  int64_t n_ff = 0;          ///< <arch>.feed_forward_length
  int64_t n_ctx = 0;         ///< <arch>.context_length
  int64_t n_rot = 0;         ///< <arch>.rope.dimension_count (default head_dim)
  double rms_eps = 1e-5;     ///< <arch>.attention.layer_norm_rms_epsilon
  double rope_base = 10000;  ///< <arch>.rope.freq_base
  bool neox = false;         ///< qwen2: rotate pairs (i, i + n_rot/2)
  bool tied = false;         ///< no output.weight: logits from token_embd
};

/// Decodes one GGUF tensor row of n elements of `type` (F32, F16, BF16, Q8_0, Q4_0) into doubles.
/// Throws std::runtime_error for other types or sizes that are not a whole number of blocks.
std::vector<double> reference_decode(DType type, std::span<const uint8_t> bytes, int64_t n);
/// IEEE binary16 bits -> value (normals, subnormals, zeros, infinities, NaN).
double reference_fp16(uint16_t bits);
/// bfloat16 bits -> value.
double reference_bf16(uint16_t bits);
/// x rounded to the nearest IEEE binary16 value (ties to even; subnormals; beyond the range: inf).
double reference_round_fp16(double x);
/// Rounds each block of 32 values as a Q8_0 activation (d = amax/127 stored as fp16, q = round(x/d)).
/// Used to estimate the error an engine that quantises activations should show.
void reference_q8_round(std::vector<double>& x);

/// The reference model: all weights decoded to double, plus a KV cache for incremental decoding.
class ReferenceModel {
 public:
  /// Reads the configuration and every weight from `file` (which may be closed afterwards).
  /// quantize_activations: round the input of every Q8_0/Q4_0 matrix product with reference_q8_round.
  explicit ReferenceModel(const gguf::File& file, bool quantize_activations = false);

  /// Hyper-parameters.
  const ReferenceConfig& config() const { return cfg_; }
  /// Appends one token at position n_past() and returns its logits (n_vocab values).
  std::vector<double> step(int32_t token);
  /// Tokens evaluated so far.
  int64_t n_past() const { return n_past_; }
  /// Forgets the cached keys and values.
  void reset();
  /// Rounds keys and values as they enter the cache as a KV cache of `type` holds them: F32 keeps
  /// them, F16 rounds each with reference_round_fp16, Q8_0 each block of 32 with reference_q8_round.
  void set_cache_type(DType type) { cache_type_ = type; }

 private:
  struct Matrix {
    int64_t cols = 0;          // input dimension (GGUF ne[0])
    int64_t rows = 0;          // output dimension
    std::vector<double> w;     // row-major rows x cols
    bool quantised = false;    // Q8_0/Q4_0 in the file
  };
  struct Layer {
    std::vector<double> attn_norm, ffn_norm, bq, bk, bv;
    Matrix wq, wk, wv, wo, gate, up, down;
    std::vector<double> k_cache, v_cache;  // n_ctx x (n_head_kv * head_dim)
  };

  Matrix read_matrix(const gguf::File& file, const std::string& name, int64_t cols, int64_t rows) const;
  std::vector<double> matvec(const Matrix& m, std::vector<double> x) const;
  void rope(double* v, int64_t n_heads, int64_t pos) const;

  ReferenceConfig cfg_;
  bool quantize_activations_ = false;
  DType cache_type_ = DType::kF32;
  Matrix token_embd_, output_;
  std::vector<double> output_norm_;
  std::vector<Layer> layers_;
  int64_t n_past_ = 0;
};

/// Logits (n_vocab each) of every position of `tokens`, evaluated from an empty context.
std::vector<std::vector<double>> reference_logits(const gguf::File& file, const std::vector<int32_t>& tokens);

/// Greedy decoding: evaluates `prompt`, then appends n_new tokens, each the argmax (lowest id on a
/// tie) of the previous logits. Returns the n_new generated tokens. If `margins` is not null it
/// receives, per generated token, the gap between the best and second-best logit.
std::vector<int32_t> reference_greedy(const gguf::File& file, const std::vector<int32_t>& prompt, int n_new,
                                      std::vector<double>* margins = nullptr);

}  // namespace mixserve::testing
