// Flags shared by the commands that load a model (-m, --device, -t) and the loading itself.
#pragma once

#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "engine/model.h"

namespace mixserve::cli {

/// -m/--model, --device, --split, --no-fallback, -t/--threads, --mmap, --no-pack, --cache-type.
struct ModelFlags {
  std::string path;            ///< GGUF file
  std::string device = "cpu";  ///< device ids in priority order ("opencl:0,cpu"), or "list"
  std::string split;           ///< layer split "layers=0-11:opencl:0,12-21:cpu" ("" = none)
  bool no_fallback = false;    ///< an op its first-choice device cannot run is an error
  int threads = 0;             ///< CPU threads; 0 = all usable cores
  bool mmap = false;           ///< read weights in place from the mapped file instead of copying them
  bool no_pack = false;        ///< keep copied weights in the GGUF layout
  std::string cache_type = "f32";  ///< KV cache elements: f32, f16 or q8_0

  /// Registers the flags on `cmd`.
  void add_to(CLI::App* cmd);
  /// Loads the model with a progress bar on stderr and, when it spans several devices, prints the
  /// op table (which device runs which ops, and the fallbacks). Returns nullptr after printing the
  /// device list when --device list was given.
  std::unique_ptr<Model> load() const;
};

}  // namespace mixserve::cli
