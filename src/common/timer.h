// Wall-clock stopwatch on the monotonic steady_clock, for the CLI, benchmarks and progress output.
#pragma once

#include <chrono>

namespace mixserve {

/// Measures elapsed time since construction or the last reset(); unaffected by clock changes.
class Stopwatch {
 public:
  /// Starts timing now.
  Stopwatch() : start_(std::chrono::steady_clock::now()) {}
  /// Restarts timing from now.
  void reset() { start_ = std::chrono::steady_clock::now(); }
  /// Seconds elapsed since the start (>= 0).
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }
  /// Milliseconds elapsed since the start (>= 0).
  double milliseconds() const { return seconds() * 1e3; }

 private:
  std::chrono::steady_clock::time_point start_;
};

}  // namespace mixserve
