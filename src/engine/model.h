// A model loaded onto a device: configuration, tokenizer and weights as device tensors.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/dtype.h"
#include "hal/device.h"
#include "hal/op_table.h"
#include "hal/placement.h"
#include "model/model_config.h"
#include "model/tokenizer.h"
#include "model/weights.h"

namespace mixserve {
namespace gguf {
class File;
}

/// How to load a model.
struct LoadOptions {
  std::string device = "cpu";   ///< device ids from `mixserve devices` in priority order ("opencl:0,cpu");
                                ///< ops a device cannot run fall back to the next (the CPU is the last resort)
  std::string split;            ///< layer split, e.g. "layers=0-11:opencl:0,12-21:cpu" ("" = none)
  bool allow_fallback = true;   ///< false (or MIXSERVE_NO_FALLBACK=1): an op its first-choice device cannot
                                ///< run is a load error instead of a fallback
  int n_threads = 0;            ///< CPU threads (0 = all usable cores)
  std::function<void(double)> progress;  ///< called with the loaded fraction (may be empty)
  bool use_mmap = false;        ///< read weights in place from the mapped file (instant load, less memory);
                                ///< false copies them into device memory (on CPU: anonymous memory that
                                ///< transparent huge pages back, which decodes up to 2x faster)
  bool pack_weights = true;     ///< let devices rearrange copied matmul weights into the layout their
                                ///< kernels read fastest (CPU: packed Q4_0/Q8_0 rows); false keeps the GGUF layout
  DType cache_type = DType::kF32;  ///< element type of the KV caches of the model's sessions and batch runners:
                                   ///< F32; F16 (half the memory and the bytes attention reads); Q8_0 (0.27x,
                                   ///< for heads of a multiple of 32 dims)
};

/// An immutable, loaded model; shared by any number of Sessions.
class Model {
 public:
  /// Loads a GGUF file. Throws kNotFound (missing file), kDataLoss (malformed file or tensors
  /// missing/mis-shaped), kUnimplemented (unsupported architecture or tensor type).
  static std::unique_ptr<Model> load(const std::string& path, const LoadOptions& options = {});
  ~Model();

  /// Hyper-parameters.
  const ModelConfig& config() const { return config_; }
  /// Tokenizer from the file's metadata.
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  /// Weights on the device.
  const ModelWeights& weights() const { return weights_; }
  /// The first-choice device (first in the priority list).
  hal::Device& device() const { return *placement_.devices.front(); }
  /// Devices in priority order, layer split and fallback rule; Sessions schedule ops by it.
  const hal::PlacementPolicy& placement() const { return placement_; }
  /// Which device runs how many ops of each kind in a decode step, with fallbacks (decided at load).
  const hal::OpTable& op_table() const { return op_table_; }
  /// Options the model was loaded with.
  const LoadOptions& options() const { return options_; }
  /// Bytes of weight data read per decoded token (all matrices except the embedding table, plus
  /// one embedding row) — the numerator of the decode roofline.
  uint64_t bytes_per_token() const;
  /// Total bytes of weight data.
  uint64_t weight_bytes() const;

 private:
  Model() = default;
  ModelConfig config_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<gguf::File> file_;
  hal::PlacementPolicy placement_;
  hal::OpTable op_table_;
  std::vector<std::unique_ptr<hal::Buffer>> buffers_;
  ModelWeights weights_;
  LoadOptions options_;
};

}  // namespace mixserve
