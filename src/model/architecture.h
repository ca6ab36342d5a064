// Supported model architectures. Each lives in its own file (arch_<name>.cpp) and describes how
// it differs from the shared pre-norm decoder that transformer_builder assembles.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace mixserve {

/// What distinguishes one decoder-only architecture from another.
struct Architecture {
  std::string_view name;        ///< general.architecture value
  bool rope_neox = false;       ///< rotate pairs (i, i+n/2) instead of (2i, 2i+1)
  bool qkv_bias = false;        ///< attn_q/attn_k/attn_v carry bias vectors
  float default_rms_eps = 1e-5f;  ///< when <arch>.attention.layer_norm_rms_epsilon is absent
  float default_rope_base = 10000.0f;  ///< when <arch>.rope.freq_base is absent
  std::string_view description;  ///< families covered, for `mixserve model info`
};

/// The architecture named `name`; throws kUnimplemented listing the supported names.
const Architecture& find_architecture(std::string_view name);
/// Every supported architecture.
std::vector<const Architecture*> architectures();

const Architecture& llama_architecture();
const Architecture& qwen2_architecture();

}  // namespace mixserve
