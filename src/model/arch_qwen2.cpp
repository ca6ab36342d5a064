// Qwen2 / Qwen2.5: the Llama block with biases on the Q/K/V projections and NeoX-style RoPE
// (rotating dimension i with i + n_rot/2), rope base 1e6 by default in released models.
#include "model/architecture.h"

namespace mixserve {

const Architecture& qwen2_architecture() {
  static const Architecture arch{
      .name = "qwen2",
      .rope_neox = true,
      .qkv_bias = true,
      .default_rms_eps = 1e-6f,
      .default_rope_base = 1000000.0f,
      .description = "Qwen2, Qwen2.5 (QKV bias, NeoX RoPE)",
  };
  return arch;
}

}  // namespace mixserve
