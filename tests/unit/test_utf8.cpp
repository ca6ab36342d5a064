#include <gtest/gtest.h>

#include <random>

#include "common/utf8.h"

namespace mixserve {
namespace {

TEST(Utf8, IncompleteTailLengths) {
  EXPECT_EQ(utf8_incomplete_tail(""), 0u);
  EXPECT_EQ(utf8_incomplete_tail("abc"), 0u);
  EXPECT_EQ(utf8_incomplete_tail("a\xE4"), 1u);          // first byte of a 3-byte character
  EXPECT_EQ(utf8_incomplete_tail("a\xE4\xB8"), 2u);      // two of three
  EXPECT_EQ(utf8_incomplete_tail("a\xE4\xB8\xAD"), 0u);  // complete U+4E2D
  EXPECT_EQ(utf8_incomplete_tail("\xF0\x9F\x98"), 3u);   // three of a 4-byte emoji
  EXPECT_EQ(utf8_incomplete_tail("\xF0\x9F\x98\x80"), 0u);
  EXPECT_EQ(utf8_incomplete_tail("a\x80"), 0u);          // stray continuation: passed on
  EXPECT_EQ(utf8_incomplete_tail("a\xFF"), 0u);          // never valid: passed on
}

TEST(Utf8, StreamReassemblesAnySplit) {
  const std::string text = "héllo 世界 😀 مرحبا \xFF end";
  std::mt19937 rng(1);
  for (int trial = 0; trial < 200; ++trial) {
    Utf8Stream stream;
    std::string out;
    size_t pos = 0;
    while (pos < text.size()) {
      const size_t len = std::min<size_t>(text.size() - pos, 1 + rng() % 4);
      const std::string piece = stream.push(std::string_view(text).substr(pos, len));
      // Every released chunk ends on a character boundary unless the input itself is invalid there.
      EXPECT_EQ(utf8_incomplete_tail(piece), 0u);
      out += piece;
      pos += len;
    }
    out += stream.flush();
    EXPECT_EQ(out, text);
  }
}

}  // namespace
}  // namespace mixserve
