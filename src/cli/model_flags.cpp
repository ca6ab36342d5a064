#include "cli/model_flags.h"

#include <cstdio>
#include <filesystem>

#include "cli/format.h"
#include "common/error.h"
#include "common/progress_bar.h"

namespace mixserve::cli {

void ModelFlags::add_to(CLI::App* cmd) {
  cmd->add_option("-m,--model", path, "model file (GGUF)")->required();
  cmd->add_option("--device", device,
                  "device ids from `mixserve devices` in priority order (e.g. opencl:0,cpu), or 'list'; an op "
                  "a device cannot run falls back to the next, the CPU last")
      ->capture_default_str();
  cmd->add_option("--split", split,
                  "layer split: layers=FIRST-LAST:DEVICE,... (e.g. layers=0-11:opencl:0,12-21:cpu)");
  cmd->add_flag("--no-fallback", no_fallback,
                "fail instead of running an op on another device than its first choice "
                "(also MIXSERVE_NO_FALLBACK=1)");
  cmd->add_option("-t,--threads", threads, "CPU threads (0 = all usable cores)")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
  cmd->add_flag("--mmap", mmap,
                "read weights in place from the mapped file (instant load, less memory, slower decode) "
                "instead of copying them into memory backed by huge pages");
  cmd->add_flag("--no-pack", no_pack,
                "keep copied weights in the GGUF layout instead of the layout the device's kernels read "
                "fastest (CPU with AVX2 or AVX-512 VNNI: packed Q4_0/Q8_0 rows); results are identical either way");
  cmd->add_option("--cache-type", cache_type,
                  "KV cache elements (llama.cpp's -ctk/-ctv): f32; f16 for half the cache memory and the bytes "
                  "attention reads, keys and values rounded to f16; q8_0 for 0.27x, rounded to 8 bits a block of "
                  "32 (heads of a multiple of 32 dims)")
      ->check(CLI::IsMember({"f32", "f16", "q8_0"}))
      ->capture_default_str();
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
  options.split = split;
  options.allow_fallback = !no_fallback;
  options.n_threads = threads;
  options.use_mmap = mmap;
  options.pack_weights = !no_pack;
  options.cache_type = *dtype_from_name(cache_type);  // checked by the flag: f32 or f16
  options.progress = [&bar](double fraction) { bar.update(fraction); };
  auto model = Model::load(path, options);
  bar.finish();
  if (model->placement().devices.size() > 1 || model->op_table().fallbacks() > 0) {
    std::fprintf(stderr, "devices: %s\n%s", model->placement().describe().c_str(), model->op_table().format().c_str());
  }
  return model;
}

}  // namespace mixserve::cli
