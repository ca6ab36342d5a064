// StopMatcher tests: hand-written cases plus a randomized comparison with a byte-at-a-time reference.
#include "engine/stop_matcher.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace mixserve {
namespace {

struct Outcome {
  std::string text;          // everything emitted, plus flush() when no stop was found
  bool stopped = false;
  std::vector<std::string> emits;  // per push
};

Outcome run(const std::vector<std::string>& stops, const std::vector<std::string>& pieces) {
  StopMatcher m(stops);
  Outcome out;
  for (const std::string& piece : pieces) {
    StopMatcher::Result r = m.push(piece);
    out.emits.push_back(r.emit);
    out.text += r.emit;
    if (r.stopped) {
      out.stopped = true;
      break;
    }
  }
  if (!out.stopped) out.text += m.flush();
  return out;
}

// Reference: feed the text one byte at a time; the first stop occurrence to be complete ends it
// (on a tie, the longer, earlier-starting one), and the output is the text before its start.
std::pair<std::string, bool> reference(const std::string& text, const std::vector<std::string>& stops) {
  for (size_t end = 1; end <= text.size(); ++end) {
    size_t start = std::string::npos;
    for (const std::string& s : stops) {
      if (s.empty() || s.size() > end) continue;
      if (text.compare(end - s.size(), s.size(), s) == 0) start = std::min(start, end - s.size());
    }
    if (start != std::string::npos) return {text.substr(0, start), true};
  }
  return {text, false};
}

// Reference for "as early as possible": the longest prefix of `text` (which holds no complete
// stop) that no continuation could turn into part of a stop.
size_t reference_safe_length(const std::string& text, const std::vector<std::string>& stops) {
  for (size_t i = 0; i < text.size(); ++i) {
    const std::string tail = text.substr(i);
    for (const std::string& s : stops) {
      if (!s.empty() && tail.size() < s.size() && s.compare(0, tail.size(), tail) == 0) return i;
    }
  }
  return text.size();
}

TEST(StopMatcher, NoStopsEmitsEverythingAtOnce) {
  StopMatcher m({});
  EXPECT_EQ(m.push("hello ").emit, "hello ");
  EXPECT_EQ(m.push("world").emit, "world");
  EXPECT_EQ(m.flush(), "");
  StopMatcher only_empty({"", ""});
  const auto r = only_empty.push("abc");
  EXPECT_EQ(r.emit, "abc");
  EXPECT_FALSE(r.stopped);
}

TEST(StopMatcher, StopSpanningSeveralPieces) {
  StopMatcher m({"</s>"});
  auto r = m.push("Hello <");
  EXPECT_EQ(r.emit, "Hello ");
  EXPECT_FALSE(r.stopped);
  r = m.push("/");
  EXPECT_EQ(r.emit, "");
  EXPECT_FALSE(r.stopped);
  r = m.push("s>trailing");
  EXPECT_EQ(r.emit, "");
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(m.flush(), "");
  r = m.push("more");  // after a stop nothing more comes out
  EXPECT_EQ(r.emit, "");
  EXPECT_TRUE(r.stopped);
}

TEST(StopMatcher, FalseAlarmReleasesHeldText) {
  StopMatcher m({"</s>"});
  EXPECT_EQ(m.push("a <").emit, "a ");
  EXPECT_EQ(m.push("/").emit, "");
  const auto r = m.push("b");
  EXPECT_EQ(r.emit, "</b");
  EXPECT_FALSE(r.stopped);
  EXPECT_EQ(m.push("<").emit, "");
  EXPECT_EQ(m.flush(), "<");  // held back at the end: flush returns it
}

TEST(StopMatcher, StopInTheMiddleOfAPiece) {
  const Outcome o = run({"STOP"}, {"abc", "deSTOPfgh"});
  EXPECT_TRUE(o.stopped);
  EXPECT_EQ(o.text, "abcde");
  EXPECT_EQ(o.emits, (std::vector<std::string>{"abc", "de"}));
}

TEST(StopMatcher, OverlappingPrefixes) {
  // "ab" could start "abcx": held; "d" shows it cannot.
  EXPECT_EQ(run({"abcx", "bc"}, {"a", "b", "d"}).emits, (std::vector<std::string>{"", "", "abd"}));
  // "bc" completes before "abcx" can: it wins, keeping "a".
  Outcome o = run({"abcx", "bc"}, {"ab", "c", "x"});
  EXPECT_TRUE(o.stopped);
  EXPECT_EQ(o.text, "a");
  EXPECT_EQ(run({"abcx", "bc"}, {"abcx"}).text, "a");  // same however the text is cut
  // A self-overlapping stop: "aab" inside "aaab".
  o = run({"aab"}, {"a", "a", "a", "b"});
  EXPECT_EQ(o.emits, (std::vector<std::string>{"", "", "a", ""}));
  EXPECT_TRUE(o.stopped);
}

TEST(StopMatcher, MultipleStopsEarliestWins) {
  EXPECT_EQ(run({"foo", "bar"}, {"xxbarxxfoo"}).text, "xx");
  EXPECT_EQ(run({"foo", "bar"}, {"xxfo", "oxxbar"}).text, "xx");
  EXPECT_EQ(run({"bc", "abc"}, {"zab", "c"}).text, "z");  // both end together: the longer one
  const Outcome o = run({"foo", "bar"}, {"nothing ", "here"});
  EXPECT_FALSE(o.stopped);
  EXPECT_EQ(o.text, "nothing here");
}

TEST(StopMatcher, EmptyPiecesAndUtf8) {
  const Outcome o = run({"\xE2\x80\x94"}, {"", "a\xE2", "", "\x80", "\x94", "b"});  // em dash
  EXPECT_TRUE(o.stopped);
  EXPECT_EQ(o.text, "a");
}

TEST(StopMatcher, RandomTextAgainstReference) {
  std::mt19937 rng(20240607);
  const std::string alphabet = "abcx";
  auto random_string = [&](size_t min_len, size_t max_len) {
    std::string s(std::uniform_int_distribution<size_t>(min_len, max_len)(rng), ' ');
    for (char& c : s) c = alphabet[std::uniform_int_distribution<size_t>(0, alphabet.size() - 1)(rng)];
    return s;
  };
  int stopped_cases = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    std::vector<std::string> stops;
    const int n_stops = std::uniform_int_distribution<int>(0, 3)(rng);
    for (int i = 0; i < n_stops; ++i) stops.push_back(random_string(i == 0 ? 1 : 0, 5));
    const std::string text = random_string(0, 40);
    std::vector<std::string> pieces;
    for (size_t pos = 0; pos < text.size();) {
      const size_t len = std::uniform_int_distribution<size_t>(0, 6)(rng);
      pieces.push_back(text.substr(pos, len));
      pos += len;
    }
    const auto [expected, expect_stop] = reference(text, stops);
    StopMatcher m(stops);
    std::string emitted;
    std::string fed;
    bool stopped = false;
    for (const std::string& piece : pieces) {
      fed += piece;
      const StopMatcher::Result r = m.push(piece);
      emitted += r.emit;
      ASSERT_EQ(expected.compare(0, emitted.size(), emitted), 0)
          << "emitted beyond the cut; text=" << text << " emitted=" << emitted;
      if (r.stopped) {
        stopped = true;
        break;
      }
      // Nothing safe is held back.
      ASSERT_EQ(emitted.size(), reference_safe_length(fed, stops)) << "text=" << text << " fed=" << fed;
    }
    if (!stopped) emitted += m.flush();
    ASSERT_EQ(stopped, expect_stop) << "text=" << text;
    ASSERT_EQ(emitted, expected) << "text=" << text;
    stopped_cases += stopped ? 1 : 0;
  }
  EXPECT_GT(stopped_cases, 500);  // the generator exercises both outcomes
  EXPECT_LT(stopped_cases, 2900);
}

}  // namespace
}  // namespace mixserve
