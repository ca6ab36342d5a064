// Flags shared by the commands that load a model (-m, --device, -t) and the loading itself.
#pragma once

#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "engine/model.h"

namespace mixserve::cli {

/// -m/--model, --device, -t/--threads.
struct ModelFlags {
  std::string path;            ///< GGUF file
  std::string device = "cpu";  ///< device id, or "list" to print the devices
  int threads = 0;             ///< CPU threads; 0 = all usable cores
  bool mmap = false;           ///< read weights in place from the mapped file instead of copying them

  /// Registers the flags on `cmd`.
  void add_to(CLI::App* cmd);
  /// Loads the model with a progress bar on stderr. Returns nullptr after printing the device
  /// list when --device list was given.
  std::unique_ptr<Model> load() const;
};

}  // namespace mixserve::cli
