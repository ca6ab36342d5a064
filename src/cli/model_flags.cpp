#include "cli/model_flags.h"

#include <filesystem>

#include "cli/format.h"
#include "common/error.h"
#include "common/progress_bar.h"

namespace mixserve::cli {

void ModelFlags::add_to(CLI::App* cmd) {
  cmd->add_option("-m,--model", path, "model file (GGUF)")->required();
  cmd->add_option("--device", device, "device id from `mixserve devices`, or 'list'")->capture_default_str();
  cmd->add_option("-t,--threads", threads, "CPU threads (0 = all usable cores)")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
  cmd->add_flag("--mmap", mmap,
                "read weights in place from the mapped file (instant load, less memory, slower decode) "
                "instead of copying them into memory backed by huge pages");
}

std::unique_ptr<Model> ModelFlags::load() const {
  if (device == "list") {
    print_devices(stdout);
    return nullptr;
  }
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  ProgressBar bar("loading " + std::filesystem::path(path).filename().string(), ec ? 0 : size);
  LoadOptions options;
  options.device = device;
  options.n_threads = threads;
  options.use_mmap = mmap;
  options.progress = [&bar](double fraction) { bar.update(fraction); };
  auto model = Model::load(path, options);
  bar.finish();
  return model;
}

}  // namespace mixserve::cli
