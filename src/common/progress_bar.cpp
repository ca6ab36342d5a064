// Progress bar drawing: throttled in-place redraws on terminals, a single summary line otherwise.
#include "common/progress_bar.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <utility>

namespace mixserve {
namespace {

constexpr double kRedrawInterval = 0.1;  // seconds: at most ~10 redraws a second
constexpr int kBarWidth = 30;

// "12.3 MiB/s": binary units, as model sizes are usually quoted in GiB.
std::string format_rate(double bytes_per_s) {
  static constexpr const char* kUnits[] = {"B/s", "KiB/s", "MiB/s", "GiB/s", "TiB/s"};
  int unit = 0;
  while (bytes_per_s >= 1024.0 && unit < 4) {
    bytes_per_s /= 1024.0;
    ++unit;
  }
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%.1f %s", bytes_per_s, kUnits[unit]);
  return buf;
}

}  // namespace

ProgressBar::ProgressBar(std::string label, uint64_t total_bytes, std::FILE* out, bool force_tty)
    : label_(std::move(label)),
      total_bytes_(total_bytes),
      out_(out != nullptr ? out : stderr),
      tty_(force_tty || ::isatty(::fileno(out_)) == 1) {}

ProgressBar::~ProgressBar() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (tty_ && drawn_ && !finished_) {
    std::fputc('\n', out_);
    std::fflush(out_);
  }
}

void ProgressBar::update(double fraction) {
  if (std::isnan(fraction)) return;
  std::lock_guard<std::mutex> lock(mutex_);
  if (finished_) return;
  fraction_ = std::clamp(fraction, 0.0, 1.0);
  if (!tty_) return;
  const double now = clock_.seconds();
  if (drawn_ && now - last_draw_s_ < kRedrawInterval) return;
  last_draw_s_ = now;
  draw_locked(false);
}

void ProgressBar::finish() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (finished_) return;
  finished_ = true;
  if (tty_) {
    draw_locked(true);
  } else {
    std::fprintf(out_, "%s: done in %.2f s\n", label_.c_str(), clock_.seconds());
    std::fflush(out_);
  }
}

void ProgressBar::draw_locked(bool final_line) {
  const double elapsed = clock_.seconds();
  const int filled = static_cast<int>(fraction_ * kBarWidth);
  std::string line = "\r" + label_ + " [";
  line.append(static_cast<std::size_t>(filled), '#');
  line.append(static_cast<std::size_t>(kBarWidth - filled), '.');
  char pct[32];
  std::snprintf(pct, sizeof(pct), "] %5.1f%%", fraction_ * 100.0);
  line += pct;
  if (total_bytes_ > 0 && elapsed > 0.0) {
    line += "  " + format_rate(fraction_ * static_cast<double>(total_bytes_) / elapsed);
  }
  if (final_line) {
    char done[48];
    std::snprintf(done, sizeof(done), "  done in %.2f s", elapsed);
    line += done;
  }
  line += "\x1b[K";  // erase what a longer previous line left behind
  if (final_line) line += '\n';
  std::fputs(line.c_str(), out_);
  std::fflush(out_);
  drawn_ = true;
}

}  // namespace mixserve
