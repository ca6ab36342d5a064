// ProgressBar and Stopwatch tests: output written to a temporary FILE*.
#include "common/progress_bar.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <string>
#include <thread>

#include "common/timer.h"

namespace mixserve {
namespace {

// A temporary file that the bar writes to; contents() reads back everything written so far.
class Capture {
 public:
  Capture() : file_(std::tmpfile()) {}
  ~Capture() {
    if (file_ != nullptr) std::fclose(file_);
  }
  Capture(const Capture&) = delete;
  Capture& operator=(const Capture&) = delete;
  std::FILE* file() const { return file_; }
  std::string contents() const {
    std::fflush(file_);
    const long end = std::ftell(file_);
    std::string text(static_cast<size_t>(end), '\0');
    std::rewind(file_);
    const size_t got = std::fread(text.data(), 1, text.size(), file_);
    text.resize(got);
    std::fseek(file_, 0, SEEK_END);
    return text;
  }

 private:
  std::FILE* file_;
};

// True when `text` holds "<number with one decimal> <unit>/s" with a binary unit.
bool has_rate(const std::string& text) {
  for (const char* unit : {" B/s", " KiB/s", " MiB/s", " GiB/s", " TiB/s"}) {
    const size_t at = text.find(unit);
    if (at != std::string::npos && at >= 3 && text[at - 2] == '.' && std::isdigit(text[at - 1]) &&
        std::isdigit(text[at - 3])) {
      return true;
    }
  }
  return false;
}

// Seconds in "...done in X.XX s...", or -1 when absent or malformed.
double done_seconds(const std::string& text) {
  const size_t at = text.find("done in ");
  if (at == std::string::npos) return -1.0;
  const size_t start = at + 8;
  size_t end = start;
  while (end < text.size() && (std::isdigit(static_cast<unsigned char>(text[end])) || text[end] == '.')) ++end;
  const std::string number = text.substr(start, end - start);
  const size_t dot = number.find('.');
  if (dot == std::string::npos || dot == 0 || number.size() - dot != 3) return -1.0;  // "X.XX"
  if (text.compare(end, 2, " s") != 0) return -1.0;
  return std::stod(number);
}

size_t count_char(const std::string& s, char c) { return static_cast<size_t>(std::count(s.begin(), s.end(), c)); }

TEST(ProgressBar, NotATerminalPrintsOnlyTheFinalLine) {
  Capture out;
  ASSERT_NE(out.file(), nullptr);
  {
    ProgressBar bar("loading model", 1 << 20, out.file());
    EXPECT_FALSE(bar.interactive());
    for (int i = 0; i <= 100; ++i) bar.update(i / 100.0);
    EXPECT_EQ(out.contents(), "");
    bar.finish();
    bar.finish();  // idempotent
    bar.update(0.5);  // ignored after finish
  }
  const std::string text = out.contents();
  EXPECT_EQ(text.rfind("loading model: done in ", 0), 0u) << text;
  EXPECT_GE(done_seconds(text), 0.0) << text;
  EXPECT_LT(done_seconds(text), 10.0) << text;
  EXPECT_EQ(count_char(text, '\n'), 1u);
  EXPECT_EQ(text.back(), '\n');
}

TEST(ProgressBar, NotATerminalUnfinishedPrintsNothing) {
  Capture out;
  {
    ProgressBar bar("x", 0, out.file());
    bar.update(0.3);
  }
  EXPECT_EQ(out.contents(), "");
}

TEST(ProgressBar, ForcedTerminalDrawsBarPercentAndRate) {
  Capture out;
  ProgressBar bar("load", 100u << 20, out.file(), /*force_tty=*/true);
  EXPECT_TRUE(bar.interactive());
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  bar.update(0.5);
  const std::string first = out.contents();
  EXPECT_EQ(first.rfind("\rload [", 0), 0u) << first;
  EXPECT_NE(first.find(std::string(15, '#') + std::string(15, '.') + "]  50.0%"), std::string::npos) << first;
  EXPECT_TRUE(has_rate(first)) << first;
  EXPECT_EQ(count_char(first, '\n'), 0u);
  bar.update(1.0);
  bar.finish();
  const std::string text = out.contents();
  EXPECT_EQ(text.back(), '\n');
  EXPECT_EQ(count_char(text, '\n'), 1u);
  const std::string last = text.substr(text.rfind('\r'));
  EXPECT_NE(last.find(std::string(30, '#') + "] 100.0%"), std::string::npos) << last;
  EXPECT_GE(done_seconds(last), 0.0) << last;
}

TEST(ProgressBar, RedrawsAtMostTenTimesASecond) {
  Capture out;
  Stopwatch clock;
  ProgressBar bar("t", 0, out.file(), true);
  for (int i = 0; i < 200000; ++i) bar.update(i / 200000.0);
  const double elapsed = clock.seconds();
  const std::string text = out.contents();
  const size_t redraws = count_char(text, '\r');
  EXPECT_GE(redraws, 1u);
  EXPECT_LE(static_cast<double>(redraws), 2.0 + elapsed / 0.1) << "elapsed " << elapsed << " s";
  EXPECT_EQ(text.find("B/s"), std::string::npos);  // total unknown: no rate
}

TEST(ProgressBar, ClampsAndIgnoresNaN) {
  Capture out;
  {
    ProgressBar bar("c", 0, out.file(), true);
    bar.update(std::nan(""));
    EXPECT_EQ(out.contents(), "");
    bar.update(-3.0);
  }
  std::string text = out.contents();
  EXPECT_NE(text.find("[" + std::string(30, '.') + "]   0.0%"), std::string::npos) << text;
  EXPECT_EQ(text.back(), '\n');  // destroyed unfinished on a terminal: the line is ended
  EXPECT_EQ(text.find("done"), std::string::npos);
  Capture out2;
  {
    ProgressBar bar("c", 0, out2.file(), true);
    bar.update(7.5);
    bar.finish();
  }
  text = out2.contents();
  EXPECT_NE(text.find("] 100.0%"), std::string::npos) << text;
}

TEST(Stopwatch, MeasuresElapsedSeconds) {
  Stopwatch w;
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const double t = w.seconds();
  EXPECT_GE(t, 0.019);
  EXPECT_LT(t, 10.0);
  EXPECT_NEAR(w.milliseconds(), w.seconds() * 1e3, 50.0);
  w.reset();
  EXPECT_LT(w.seconds(), t);
}

}  // namespace
}  // namespace mixserve
