// Helpers shared by the test programs: paths to ../shared data, temp files, running the CLI.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "engine/model.h"

namespace mixserve::testing {

/// Path of ../shared/data/<relative>, or empty when ../shared is absent (callers GTEST_SKIP()).
std::filesystem::path shared_data(const std::string& relative);

/// A fresh, empty temporary directory removed when the object is destroyed.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  /// The directory.
  const std::filesystem::path& path() const { return path_; }
  /// path() / name as a string.
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  /// Writes `text` to file(name) and returns that path.
  std::string write(const std::string& name, const std::string& text) const;

 private:
  std::filesystem::path path_;
};

/// Result of running a command.
struct CommandResult {
  int exit_code = -1;   ///< process exit status (-1 if it did not exit normally)
  std::string out;      ///< stdout
  std::string err;      ///< stderr
};

/// Runs `args` through /bin/sh with stdout and stderr captured to files.
CommandResult run_command(const std::string& command_line);

/// Writes the synthetic model `mixserve model synth` makes of the "tiny" preset in `type`, with the
/// built-in vocabulary, to dir.file("tiny.gguf") and loads it on `devices` with `n_threads` CPU threads.
std::unique_ptr<Model> load_tiny_model(const TempDir& dir, DType type, int n_threads,
                                       const std::string& devices = "cpu");

/// n floats drawn from a normal distribution N(0, scale^2), the same for the same seed.
std::vector<float> normal_floats(int64_t n, uint32_t seed, float scale = 1.0f);

}  // namespace mixserve::testing

/// Skips the test with a visible reason when ../shared/data/<rel> is missing; yields its path.
#define MIXSERVE_SHARED_OR_SKIP(var, rel)                                                \
  const auto var = ::mixserve::testing::shared_data(rel);                                \
  if (var.empty()) GTEST_SKIP() << "../shared/data/" << (rel) << " absent: test skipped"
