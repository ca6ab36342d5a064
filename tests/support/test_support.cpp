#include "support/test_support.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>

#include "model/synth.h"
#include "model/vocab.h"

namespace mixserve::testing {

std::unique_ptr<Model> load_tiny_model(const TempDir& dir, DType type, int n_threads, const std::string& devices) {
  SynthOptions synth;
  synth.shape = synth_preset("tiny");
  synth.type = type;
  synth.vocab = builtin_vocab();
  const std::string path = dir.file("tiny.gguf");
  write_synth_model(synth, path);
  LoadOptions options;
  options.device = devices;
  options.n_threads = n_threads;
  return Model::load(path, options);
}

std::filesystem::path shared_data(const std::string& relative) {
  std::filesystem::path path = std::filesystem::path(MIXSERVE_SHARED_DIR) / "data" / relative;
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return {};
  return path;
}

std::string TempDir::write(const std::string& name, const std::string& text) const {
  const std::string path = file(name);
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

TempDir::TempDir() {
  std::random_device rd;
  const auto base = std::filesystem::temp_directory_path();
  for (;;) {
    path_ = base / ("mixserve-test-" + std::to_string(getpid()) + "-" + std::to_string(rd()));
    if (std::filesystem::create_directory(path_)) break;
  }
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

namespace {
std::string slurp(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}
}  // namespace

CommandResult run_command(const std::string& command_line) {
  TempDir dir;
  const std::string full = command_line + " >" + dir.file("out") + " 2>" + dir.file("err") + " </dev/null";
  const int status = std::system(full.c_str());
  CommandResult result;
  result.exit_code = (status != -1 && WIFEXITED(status)) ? WEXITSTATUS(status) : -1;
  result.out = slurp(dir.path() / "out");
  result.err = slurp(dir.path() / "err");
  return result;
}

std::vector<float> normal_floats(int64_t n, uint32_t seed, float scale) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = dist(rng);
  return v;
}

}  // namespace mixserve::testing
