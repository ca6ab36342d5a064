// A model loaded onto a device: configuration, tokenizer and weights as device tensors.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "hal/device.h"
#include "model/model_config.h"
#include "model/tokenizer.h"
#include "model/weights.h"

namespace mixserve {
namespace gguf {
class File;
}

/// How to load a model.
struct LoadOptions {
  std::string device = "cpu";   ///< device id from `mixserve devices`
  int n_threads = 0;            ///< CPU threads (0 = all usable cores)
  std::function<void(double)> progress;  ///< called with the loaded fraction (may be empty)
  bool use_mmap = false;        ///< read weights in place from the mapped file (instant load, less memory);
                                ///< false copies them into device memory (on CPU: anonymous memory that
                                ///< transparent huge pages back, which decodes up to 2x faster)
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
  /// Device the weights live on.
  hal::Device& device() const { return *device_; }
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
  hal::Device* device_ = nullptr;
  std::vector<std::unique_ptr<hal::Buffer>> buffers_;
  ModelWeights weights_;
  LoadOptions options_;
};

}  // namespace mixserve
