// Synthetic models: real file layout and tokenizer, random weights (for tests, benchmarks, demos).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/dtype.h"
#include "model/vocab.h"

namespace mixserve {

/// Dimensions of a synthetic model.
struct SynthShape {
  int64_t n_embd = 0;
  int64_t n_layer = 0;
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
  int64_t n_ff = 0;
  int64_t n_ctx = 2048;
};

/// Named shapes: "tinyllama-1.1b" (2048 embd, 22 layers, 32 heads, 4 KV heads, 5632 FFN),
/// "small" (fast tests), "tiny". Throws kInvalidArgument listing the names for an unknown one.
SynthShape synth_preset(const std::string& name);
/// Parses a preset name or "embd=256,layers=2,heads=4,kv_heads=2,ff=512[,ctx=N]".
SynthShape parse_synth_shape(const std::string& spec);
/// Names of the presets.
std::vector<std::string> synth_preset_names();

/// What to generate.
struct SynthOptions {
  std::string arch = "llama";   ///< "llama" or "qwen2"
  SynthShape shape;
  DType type = DType::kQ8_0;    ///< type of the 2-D weight matrices (norms and biases stay F32)
  Vocab vocab;                  ///< tokenizer written into the file; its size is n_vocab
  bool tied_output = false;     ///< omit output.weight (logits from token_embd)
  uint64_t seed = 42;           ///< weights are a deterministic function of the seed
  float rope_freq_base = 10000.0f;
};

/// Writes a GGUF model file. progress(fraction) is called as tensors are generated (may be empty).
void write_synth_model(const SynthOptions& options, const std::string& path,
                       const std::function<void(double)>& progress = {});

}  // namespace mixserve
