// Llama 2/3, Mistral, TinyLlama: pre-norm decoder, RMSNorm, SwiGLU, grouped-query attention,
// RoPE on adjacent pairs (GGUF converters permute Q/K so that this arrangement applies).
#include "model/architecture.h"

namespace mixserve {

const Architecture& llama_architecture() {
  static const Architecture arch{
      .name = "llama",
      .rope_neox = false,
      .qkv_bias = false,
      .default_rms_eps = 1e-5f,
      .default_rope_base = 10000.0f,
      .description = "Llama 2/3, Mistral, TinyLlama (GQA, tied or separate output)",
  };
  return arch;
}

}  // namespace mixserve
