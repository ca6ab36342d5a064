// BPE pre-tokenizers: every pattern set on hand-written inputs whose splits were derived by hand
// from the regex semantics, the transcription of the patterns against PRETOKENIZERS.txt, the
// sequence/isolated-split semantics, invalid UTF-8, long inputs, threads and the unknown-name fallback.
#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "common/error.h"
#include "common/log.h"
#include "model/pretokenizer.h"
#include "support/test_support.h"

namespace mixserve {
namespace {

using Pieces = std::vector<std::string>;

Pieces split(const PreTokenizer& pre, std::string_view text) {
  std::vector<std::string_view> views;
  pre.split(text, views);
  std::string joined;
  Pieces out;
  for (std::string_view v : views) {
    EXPECT_FALSE(v.empty()) << "empty piece";
    joined += v;
    out.emplace_back(v);
  }
  EXPECT_EQ(joined, text) << "pieces must cover the text exactly";
  return out;
}

Pieces split(std::string_view name, std::string_view text) {
  return split(PreTokenizer::for_name(name), text);
}

// --- Split semantics on custom patterns ---------------------------------------------------------

TEST(PreTokenizer, KeepsMatchesAndTheTextBetweenThem) {
  const PreTokenizer pre("t", {"b+"});
  EXPECT_EQ(split(pre, "aabbbcbb"), (Pieces{"aa", "bbb", "c", "bb"}));
  EXPECT_EQ(split(pre, "bbb"), (Pieces{"bbb"}));
  EXPECT_EQ(split(pre, "ccc"), (Pieces{"ccc"}));
  EXPECT_EQ(split(pre, ""), (Pieces{}));
}

TEST(PreTokenizer, AppliesPatternsInSequenceToEachPiece) {
  // The first pattern isolates commas; the second then splits each piece at 'x' on its own.
  const PreTokenizer pre("t", {",", "x"});
  EXPECT_EQ(split(pre, "axb,xx,"), (Pieces{"a", "x", "b", ",", "x", "x", ","}));
  // `$` is the end of the piece being split, not of the whole text.
  const PreTokenizer anchored("t", {"\\|", "a$"});
  EXPECT_EQ(split(anchored, "aba|ba|aa"), (Pieces{"ab", "a", "|", "b", "a", "|", "a", "a"}));
}

TEST(PreTokenizer, EmptyMatchesSplitNothing) {
  const PreTokenizer pre("t", {"a*"});
  EXPECT_EQ(split(pre, "bab"), (Pieces{"b", "a", "b"}));
  EXPECT_EQ(split(pre, "\xE4\xBD\xA0\xE5\xA5\xBD"), (Pieces{"\xE4\xBD\xA0\xE5\xA5\xBD"}));
}

TEST(PreTokenizer, BadPatternIsInvalidArgumentNamingIt) {
  try {
    PreTokenizer pre("mine", {"ok", "(unclosed"});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("'mine': pattern 1"), std::string::npos) << e.what();
  }
  EXPECT_THROW(PreTokenizer("none", {}), Error);
}

// --- Built-in pattern sets (expected splits derived by hand from each regex) ----------------

TEST(PreTokenizerGpt2, ContractionsLettersDigitsPunctuationSpaces) {
  EXPECT_EQ(split("gpt-2", "Hello world's 2024"), (Pieces{"Hello", " world", "'s", " 2024"}));
  // Only lowercase contractions; an apostrophe before capitals is punctuation.
  EXPECT_EQ(split("gpt-2", "I'VE  done"), (Pieces{"I", "'", "VE", " ", " done"}));
  EXPECT_EQ(split("gpt-2", "we're they'll"), (Pieces{"we", "'re", " they", "'ll"}));
  EXPECT_EQ(split("gpt-2", "12345 678"), (Pieces{"12345", " 678"}));  // digit runs are unlimited
  EXPECT_EQ(split("gpt-2", "Hi!!! ..."), (Pieces{"Hi", "!!!", " ..."}));
  EXPECT_EQ(split("gpt-2", "end   "), (Pieces{"end", "   "}));  // trailing spaces stay together
  // "\s+(?!\S)" leaves the last whitespace before a word to that word; a lone "\n" before a letter
  // matches nothing and stays as text between matches.
  EXPECT_EQ(split("gpt-2", "a\n\nb"), (Pieces{"a", "\n", "\n", "b"}));
  EXPECT_EQ(split("gpt-2", "a \tb"), (Pieces{"a", " ", "\t", "b"}));
  EXPECT_EQ(split("gpt-2", "\xE4\xBD\xA0\xE5\xA5\xBD \xE4\xB8\x96\xE7\x95\x8C"),
            (Pieces{"\xE4\xBD\xA0\xE5\xA5\xBD", " \xE4\xB8\x96\xE7\x95\x8C"}));  // CJK letters
  // Aliases use the same patterns.
  for (const char* alias : {"mpt", "olmo", "jais", "phi-2", "roberta-bpe"}) {
    EXPECT_EQ(split(alias, "I'VE  done"), (Pieces{"I", "'", "VE", " ", " done"})) << alias;
  }
}

TEST(PreTokenizerLlama3, DigitsInThreesCaseInsensitiveContractionsNewlines) {
  EXPECT_EQ(split("llama3", "I'VE 12345 abc"), (Pieces{"I", "'VE", " ", "123", "45", " abc"}));
  EXPECT_EQ(split("llama3", "1"), (Pieces{"1"}));
  EXPECT_EQ(split("llama3", "1234"), (Pieces{"123", "4"}));
  EXPECT_EQ(split("llama3", "1234567"), (Pieces{"123", "456", "7"}));
  EXPECT_EQ(split("llama3", "we'Re"), (Pieces{"we", "'Re"}));
  EXPECT_EQ(split("llama3", "a\n\n  b"), (Pieces{"a", "\n\n", " ", " b"}));
  EXPECT_EQ(split("llama3", "x;\n\ny"), (Pieces{"x", ";\n\n", "y"}));  // punctuation keeps its newlines
  EXPECT_EQ(split("llama3", "a  "), (Pieces{"a", "  "}));
  EXPECT_EQ(split("llama3", "(hello)"), (Pieces{"(hello", ")"}));  // one non-letter may lead a word
  EXPECT_EQ(split("llama3", "\xE4\xBD\xA0\xE5\xA5\xBD \xE4\xB8\x96\xE7\x95\x8C"),
            (Pieces{"\xE4\xBD\xA0\xE5\xA5\xBD", " \xE4\xB8\x96\xE7\x95\x8C"}));
  EXPECT_TRUE(PreTokenizer::for_name("llama-bpe").ignore_merges());
  EXPECT_TRUE(PreTokenizer::for_name("llama-v3").ignore_merges());
  for (const char* alias : {"falcon3", "dbrx", "smaug-bpe"}) {
    EXPECT_EQ(split(alias, "I'VE 12345 abc"), (Pieces{"I", "'VE", " ", "123", "45", " abc"})) << alias;
    EXPECT_FALSE(PreTokenizer::for_name(alias).ignore_merges()) << alias;
  }
}

TEST(PreTokenizerQwen2, SingleDigits) {
  for (const char* name : {"qwen2", "deepseek-r1-qwen", "stablelm2"}) {
    EXPECT_EQ(split(name, "I'VE 12345 abc"), (Pieces{"I", "'VE", " ", "1", "2", "3", "4", "5", " abc"})) << name;
    EXPECT_EQ(split(name, "a\n\n  b"), (Pieces{"a", "\n\n", " ", " b"})) << name;
    EXPECT_FALSE(PreTokenizer::for_name(name).ignore_merges());
  }
}

TEST(PreTokenizerDeepseekLlm, ScriptClassesPunctuationCjkDigits) {
  EXPECT_EQ(split("deepseek-llm", "Hello, world!\n"), (Pieces{"Hello", ",", " world", "!", "\n"}));
  EXPECT_EQ(split("deepseek-llm", "price 123 456"), (Pieces{"price", " ", "123", " ", "456"}));
  // U+FF0C FULLWIDTH COMMA is in the punctuation class; CJK runs stay whole.
  EXPECT_EQ(split("deepseek-llm", "\xE4\xBD\xA0\xE5\xA5\xBD\xEF\xBC\x8C\xE4\xB8\x96\xE7\x95\x8C"),
            (Pieces{"\xE4\xBD\xA0\xE5\xA5\xBD", "\xEF\xBC\x8C", "\xE4\xB8\x96\xE7\x95\x8C"}));
  EXPECT_EQ(split("deepseek-llm", "ab  "), (Pieces{"ab", "  "}));  // \s+$ at the end of a piece
  EXPECT_EQ(split("deepseek-llm", "a  b"), (Pieces{"a", " ", " b"}));
  EXPECT_EQ(split("deepseek-llm", "a\r\nb"), (Pieces{"a", "\r", "\n", "b"}));
  EXPECT_EQ(split("deepseek-llm", "don't"), (Pieces{"don", "'", "t"}));
  EXPECT_EQ(split("deepseek-llm", "\xED\x95\x9C\xEA\xB5\xAD\xEC\x96\xB4"),
            (Pieces{"\xED\x95\x9C\xEA\xB5\xAD\xEC\x96\xB4"}));  // Hangul: one run
  // U+00B5 is in pattern 2's letter class, so "µs" is one match there; pattern 3's class ":-~"
  // also holds ASCII letters and splits that piece again, as every later pattern splits every piece.
  EXPECT_EQ(split("deepseek-llm", "1\xC2\xB5s"), (Pieces{"1", "\xC2\xB5", "s"}));
  EXPECT_EQ(split("deepseek-llm", "\xC2\xB5"), (Pieces{"\xC2\xB5"}));
  EXPECT_EQ(split("deepseek-llm", "\xD0\x9F\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82 \xD0\xBC\xD0\xB8\xD1\x80"),
            (Pieces{"\xD0\x9F\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82", " \xD0\xBC\xD0\xB8\xD1\x80"}));  // Cyrillic
  EXPECT_EQ(split("deepseek-llm", "a\xF0\x9F\x98\x80" "b"), (Pieces{"a", "\xF0\x9F\x98\x80", "b"}));  // emoji
}

TEST(PreTokenizerDeepseekV3, DigitsCjkKanaAndPunctuationLedWords) {
  EXPECT_EQ(split("deepseek-v3", "abc 12345 def"), (Pieces{"abc", " ", "123", "45", " def"}));
  EXPECT_EQ(split("deepseek-v3", ".Net x"), (Pieces{".Net", " x"}));
  // 日本語のテキスト: ideographs, hiragana and katakana form one run.
  const std::string japanese =
      "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\xE3\x81\xAE\xE3\x83\x86\xE3\x82\xAD\xE3\x82\xB9\xE3\x83\x88";
  EXPECT_EQ(split("deepseek-v3", japanese), (Pieces{japanese}));
  EXPECT_EQ(split("deepseek-v3", "cafe\xCC\x81 ok"), (Pieces{"cafe\xCC\x81", " ok"}));  // marks join letters
  EXPECT_EQ(split("deepseek-v3", "x!!\n\ny"), (Pieces{"x", "!!\n\n", "y"}));
}

TEST(PreTokenizerDeepseekCoder, CodeSplitsIntoSingleDigits) {
  EXPECT_EQ(split("deepseek-coder", "def f(x):\n    return 42"),
            (Pieces{"def", " f", "(", "x", "):", "\n", "   ", " return", " ", "4", "2"}));
  // " 你好" matches "\s?\p{L}+", then the CJK pattern splits that piece into its space and the run.
  EXPECT_EQ(split("deepseek-coder", " \xE4\xBD\xA0\xE5\xA5\xBD"), (Pieces{" ", "\xE4\xBD\xA0\xE5\xA5\xBD"}));
  EXPECT_EQ(split("deepseek-coder", " \xD0\xBC\xD0\xB8\xD1\x80"), (Pieces{" \xD0\xBC\xD0\xB8\xD1\x80"}));
  EXPECT_EQ(split("deepseek-coder", "a+b"), (Pieces{"a", "+", "b"}));  // '+' is a symbol, not punctuation
}

TEST(PreTokenizerFalcon, PunctuationFirstThenDigitTriples) {
  EXPECT_EQ(split("falcon", "Hello, world! 1234567"),
            (Pieces{"Hello", ",", " world", "!", " ", "123", "456", "7"}));
  EXPECT_EQ(split("falcon", "x$=y"), (Pieces{"x", "$=", "y"}));
  EXPECT_EQ(split("falcon", "I'm"), (Pieces{"I", "'", "m"}));
}

TEST(PreTokenizerStarcoder, EveryDigitAlone) {
  for (const char* name : {"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva"}) {
    EXPECT_EQ(split(name, "abc 123"), (Pieces{"abc", " ", "1", "2", "3"})) << name;
    EXPECT_EQ(split(name, "x's"), (Pieces{"x", "'s"})) << name;
  }
}

// --- Robustness ---------------------------------------------------------------------------------

TEST(PreTokenizer, InvalidUtf8StaysBetweenMatches) {
  EXPECT_EQ(split("gpt-2", "ab\xFF" "cd"), (Pieces{"ab", "\xFF", "cd"}));
  EXPECT_EQ(split("llama3", "\xC3(x"), (Pieces{"\xC3", "(x"}));
  std::mt19937 rng(7);
  for (int round = 0; round < 200; ++round) {
    std::string text(rng() % 64, '\0');
    for (char& c : text) c = static_cast<char>(rng());
    for (std::string_view name : PreTokenizer::known_names()) split(name, text);  // covers exactly
  }
}

TEST(PreTokenizer, LongRunsDoNotExhaustTheMatcher) {
  const std::string spaces(1 << 20, ' ');
  for (std::string_view name : {"gpt-2", "llama3", "deepseek-llm", "deepseek-v3"}) {
    const Pieces pieces = split(name, spaces + "x");
    EXPECT_LE(pieces.size(), 3u) << name;
  }
  EXPECT_EQ(split("gpt-2", std::string(1 << 20, 'a')).size(), 1u);
  EXPECT_EQ(split("llama3", std::string(300000, '7')).size(), 100000u);
}

TEST(PreTokenizer, ConcurrentSplitsAgree) {
  const std::string text = "Hello, world! 12345 \xE4\xBD\xA0\xE5\xA5\xBD  \n\n tail   ";
  const Pieces expected = split("deepseek-llm", text);
  std::vector<Pieces> results(4);
  std::vector<std::thread> threads;
  for (auto& r : results) {
    threads.emplace_back([&r, &text] {
      for (int i = 0; i < 200; ++i) {
        std::vector<std::string_view> views;
        PreTokenizer::for_name("deepseek-llm").split(text, views);
        r.assign(views.begin(), views.end());
      }
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& r : results) EXPECT_EQ(r, expected);
}

// --- Names and fallback --------------------------------------------------------------------------

TEST(PreTokenizer, UnknownNameWarnsAndFallsBackToGpt2) {
  const LogLevel saved = log_level();
  set_log_level(LogLevel::kInfo);
  for (std::string name : {"no-such-pre", ""}) {
    ::testing::internal::CaptureStderr();
    const PreTokenizer& pre = PreTokenizer::for_name(name);
    const std::string err = ::testing::internal::GetCapturedStderr();
    EXPECT_EQ(pre.name(), "gpt-2");
    EXPECT_NE(err.find("'" + name + "'"), std::string::npos) << err;
    EXPECT_NE(err.find("falling back to the 'gpt-2'"), std::string::npos) << err;
    EXPECT_FALSE(PreTokenizer::is_known(name));
    EXPECT_EQ(split(pre, "I'VE  done"), (Pieces{"I", "'", "VE", " ", " done"}));
  }
  ::testing::internal::CaptureStderr();
  PreTokenizer::for_name("qwen2");
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "") << "known names must not warn";
  set_log_level(saved);
}

// Unescapes a C string literal body (the escapes PRETOKENIZERS.txt uses).
std::string c_unescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\' || i + 1 == s.size()) {
      out += s[i];
      continue;
    }
    const char c = s[++i];
    out += c == 'r' ? '\r' : c == 'n' ? '\n' : c == 't' ? '\t' : c;
  }
  return out;
}

TEST(PreTokenizer, BuiltInPatternsMatchPretokenizersTxt) {
  MIXSERVE_SHARED_OR_SKIP(path, "vocab/PRETOKENIZERS.txt");
  std::ifstream in(path);
  std::string line;
  std::vector<std::string> names;
  std::vector<std::string> patterns;
  size_t sets = 0;
  size_t listed = 0;
  auto check_set = [&] {
    if (names.empty()) return;
    ++sets;
    listed += names.size();
    for (const std::string& name : names) {
      ASSERT_TRUE(PreTokenizer::is_known(name)) << name;
      const auto got = PreTokenizer::for_name(name).patterns();
      ASSERT_EQ(got.size(), patterns.size()) << name;
      for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], patterns[i]) << name << " pattern " << i;
    }
  };
  while (std::getline(in, line)) {
    if (line.starts_with("[")) {
      check_set();
      names.clear();
      patterns.clear();
      // "[a, b, c (also d, e)]"
      std::string list = line.substr(1, line.rfind(']') - 1);
      for (char& c : list) {
        if (c == ',' || c == '(' || c == ')') c = ' ';
      }
      std::istringstream words(list);
      for (std::string w; words >> w;) {
        if (w != "also") names.push_back(w);
      }
    } else if (const size_t q = line.find('"'); q != std::string::npos && !line.starts_with("#")) {
      const size_t end = line.rfind('"');
      patterns.push_back(c_unescape(std::string_view(line).substr(q + 1, end - q - 1)));
    }
  }
  check_set();
  EXPECT_EQ(sets, 8u);
  EXPECT_EQ(listed, 26u);
  EXPECT_EQ(PreTokenizer::known_names().size(), listed) << "a built-in name missing from the file";
}

}  // namespace
}  // namespace mixserve
