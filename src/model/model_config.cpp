#include "model/model_config.h"

#include "common/error.h"
#include "model/architecture.h"
#include "model/gguf.h"

namespace mixserve {
namespace {

int64_t require_int(const gguf::File& file, const std::string& key) {
  auto value = file.get_int(key);
  if (!value) fail(ErrorCode::kDataLoss, file.path(), ": missing metadata key '", key, "'");
  if (*value <= 0 || *value > (int64_t{1} << 32)) {
    fail(ErrorCode::kDataLoss, file.path(), ": metadata key '", key, "' has implausible value ", *value);
  }
  return *value;
}

}  // namespace

ModelConfig read_model_config(const gguf::File& file) {
  ModelConfig c;
  auto arch_name = file.get_string("general.architecture");
  if (!arch_name) fail(ErrorCode::kDataLoss, file.path(), ": missing metadata key 'general.architecture'");
  const Architecture& arch = find_architecture(*arch_name);
  const std::string p = *arch_name + ".";
  c.arch = *arch_name;
  c.name = file.get_string("general.name").value_or("");
  c.n_embd = require_int(file, p + "embedding_length");
  c.n_layer = require_int(file, p + "block_count");
  c.n_head = require_int(file, p + "attention.head_count");
  c.n_head_kv = file.get_int(p + "attention.head_count_kv").value_or(c.n_head);
  c.n_ff = require_int(file, p + "feed_forward_length");
  c.n_ctx_train = require_int(file, p + "context_length");
  if (c.n_head_kv <= 0 || c.n_head % c.n_head_kv != 0) {
    fail(ErrorCode::kDataLoss, file.path(), ": head_count ", c.n_head, " is not a multiple of head_count_kv ",
         c.n_head_kv);
  }
  if (c.n_embd % c.n_head != 0) {
    fail(ErrorCode::kDataLoss, file.path(), ": embedding_length ", c.n_embd, " is not a multiple of head_count ",
         c.n_head);
  }
  c.head_dim = c.n_embd / c.n_head;
  c.n_rot = file.get_int(p + "rope.dimension_count").value_or(c.head_dim);
  if (c.n_rot <= 0 || c.n_rot > c.head_dim || c.n_rot % 2 != 0) {
    fail(ErrorCode::kDataLoss, file.path(), ": rope.dimension_count ", c.n_rot, " must be even and <= head size ",
         c.head_dim);
  }
  c.rms_eps = static_cast<float>(file.get_float(p + "attention.layer_norm_rms_epsilon").value_or(arch.default_rms_eps));
  c.rope_freq_base = static_cast<float>(file.get_float(p + "rope.freq_base").value_or(arch.default_rope_base));
  if (!(c.rms_eps > 0.0f) || !(c.rope_freq_base > 1.0f)) {
    fail(ErrorCode::kDataLoss, file.path(), ": rms epsilon ", c.rms_eps, " or rope.freq_base ", c.rope_freq_base,
         " out of range");
  }
  c.rope_neox = arch.rope_neox;
  c.qkv_bias = arch.qkv_bias;
  c.tied_output = file.find_tensor("output.weight") == nullptr;
  const auto* embd = file.find_tensor("token_embd.weight");
  if (embd == nullptr) fail(ErrorCode::kDataLoss, file.path(), ": missing tensor 'token_embd.weight'");
  c.n_vocab = embd->dims.size() >= 2 ? embd->dims[1] : 0;
  return c;
}

}  // namespace mixserve
