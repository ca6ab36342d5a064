// One-line progress bar for long operations (model loading); quiet when output is not a terminal.
#pragma once

#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>

#include "common/timer.h"

namespace mixserve {

/// Draws "label [####....]  42.0%  350.2 MiB/s" in place with '\r' on a terminal, at most about
/// 10 times a second; when the output is not a terminal it prints only "label: done in X s" at the
/// end. Thread-safe: update() may be called from any thread.
class ProgressBar {
 public:
  /// A bar titled `label`. `total_bytes` (0 = unknown, no rate shown) turns fractions into a bytes/s
  /// rate. Output goes to `out` (nullptr = stderr; not owned, must outlive the bar); `force_tty`
  /// draws the bar even when `out` is not a terminal (for tests).
  explicit ProgressBar(std::string label, uint64_t total_bytes = 0, std::FILE* out = nullptr,
                       bool force_tty = false);
  /// Ends an unfinished bar's line on a terminal (no "done" line: the work may have failed).
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  /// Reports progress as a fraction in [0, 1] (clamped; NaN ignored; ignored after finish()).
  void update(double fraction);
  /// Prints the final line with the elapsed seconds; later calls do nothing.
  void finish();
  /// True when the bar is drawn in place (a terminal, or force_tty).
  bool interactive() const { return tty_; }

 private:
  void draw_locked(bool final_line);

  std::string label_;
  uint64_t total_bytes_;
  std::FILE* out_;
  bool tty_;
  Stopwatch clock_;
  std::mutex mutex_;
  double fraction_ = 0.0;
  double last_draw_s_ = 0.0;
  bool drawn_ = false;
  bool finished_ = false;
};

}  // namespace mixserve
