// SentencePiece tokenizer and vocabulary: reference test vectors, round trips, special tokens,
// byte fallback, invalid UTF-8, the builtin vocabulary and GGUF vocabulary validation.
#include <gtest/gtest.h>

#include <ctime>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include "common/error.h"
#include "model/gguf.h"
#include "model/tokenizer.h"
#include "model/tokenizer_spm.h"
#include "model/vocab.h"
#include "support/test_support.h"
#include "support/vocab_test_vectors.h"

namespace mixserve {
namespace {

const std::string kSpaceMark = "\xE2\x96\x81";

std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& path) {
  const gguf::File file = gguf::File::open(path.string());
  return Tokenizer::create(Vocab::from_gguf(file));
}


// Text a round trip must reproduce: scripts, emoji with joiners, combining marks, code, whitespace.
const std::vector<std::string>& corpus() {
  static const std::vector<std::string> kCorpus = {
      "",
      " ",
      "   ",
      "\n",
      "Hello, world! This is a test.",
      "  leading spaces and trailing spaces   ",
      "\xE4\xBD\xA0\xE5\xA5\xBD\xEF\xBC\x8C\xE4\xB8\x96\xE7\x95\x8C\xEF\xBC\x81 "
      "\xE4\xBB\x8A\xE5\xA4\xA9\xE5\xA4\xA9\xE6\xB0\x94\xE5\xBE\x88\xE5\xA5\xBD\xE3\x80\x82",
      "\xD9\x85\xD8\xB1\xD8\xAD\xD8\xA8\xD8\xA7 \xD8\xA8\xD8\xA7\xD9\x84\xD8\xB9\xD8\xA7\xD9\x84"
      "\xD9\x85",
      "\xF0\x9F\x98\x80\xF0\x9F\x8E\x89 \xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD family "
      "\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7",
      "e\xCC\x81 Zo\xC3\xAB na\xC3\xAFve a\xCC\x88\xCC\x84 \xE1\xBA\xA1\xCC\x82",
      "int main() {\n\treturn 0;\n}\n",
      "def f(x):\r\n    return [x ** 2 for x in range(10)]  # squares\r\n",
      "\t\ttabs\t and  double  spaces\n\n\nand newlines   ",
      "\xCE\x95\xCE\xBB\xCE\xBB\xCE\xB7\xCE\xBD\xCE\xB9\xCE\xBA\xCE\xAC, \xD1\x80\xD1\x83\xD1\x81"
      "\xD1\x81\xD0\xBA\xD0\xB8\xD0\xB9, \xE0\xA4\xB9\xE0\xA4\xBF\xE0\xA4\xA8\xE0\xA5\x8D\xE0\xA4"
      "\xA6\xE0\xA5\x80, \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E, \xED\x95\x9C\xEA\xB5\xAD\xEC\x96"
      "\xB4",
      "zero\xE2\x80\x8Bwidth, non\xC2\xA0"
      "breaking, \xEF\xBB\xBF"
      "bom, \xF4\x8F\xBF\xBF max",
      "<s> looks special </s> but is text; <unk> too",
      "  \n \t \r\n  ",
  };
  return kCorpus;
}

// --- Reference vectors (Llama 2 vocabulary) -------------------------------------------------

TEST(TokenizerSpmLlama, ReproducesEveryReferenceVector) {
  MIXSERVE_SHARED_OR_SKIP(path, "vocab/ggml-vocab-llama-spm.gguf");
  const auto tok = load_tokenizer(path);
  const auto vectors = testing::load_vocab_test_vectors(path);
  ASSERT_EQ(vectors.size(), 46u);
  size_t passed = 0;
  for (size_t i = 0; i < vectors.size(); ++i) {
    const auto got = tok->encode(vectors[i].text, /*add_special=*/false, /*parse_special=*/false);
    EXPECT_EQ(testing::ids_to_string(got), testing::ids_to_string(vectors[i].ids)) << "vector " << i;
    // None of the strings spells a special token, so parsing them must not change anything.
    EXPECT_EQ(tok->encode(vectors[i].text, false, true), got) << "vector " << i;
    passed += got == vectors[i].ids;
  }
  std::cout << "[ tokenizer ] llama-spm reference vectors: " << passed << "/" << vectors.size() << " pass\n";
  EXPECT_EQ(passed, vectors.size());
}

TEST(TokenizerSpmLlama, DecodesReferenceIdsAndRoundTrips) {
  MIXSERVE_SHARED_OR_SKIP(path, "vocab/ggml-vocab-llama-spm.gguf");
  const auto tok = load_tokenizer(path);
  for (const auto& v : testing::load_vocab_test_vectors(path)) {
    EXPECT_EQ(tok->decode(v.ids), v.text);  // decoding the reference ids, independent of encode
    EXPECT_EQ(tok->decode(tok->encode(v.text, false, false)), v.text);
    EXPECT_EQ(tok->decode(tok->encode(v.text, true, false)), v.text);
  }
}

TEST(TokenizerSpmLlama, CorpusRoundTrips) {
  MIXSERVE_SHARED_OR_SKIP(path, "vocab/ggml-vocab-llama-spm.gguf");
  const auto tok = load_tokenizer(path);
  for (const auto& text : corpus()) {
    for (bool add_special : {false, true}) {
      EXPECT_EQ(tok->decode(tok->encode(text, add_special, false)), text) << text;
    }
  }
}

TEST(TokenizerSpmLlama, SpecialTokensParsedOnlyWhenAsked) {
  MIXSERVE_SHARED_OR_SKIP(path, "vocab/ggml-vocab-llama-spm.gguf");
  const auto tok = load_tokenizer(path);
  const Vocab& v = tok->vocab();
  ASSERT_EQ(v.tokens[1], "<s>");
  ASSERT_EQ(v.tokens[2], "</s>");
  // 15043 = "▁Hello" (reference vector "Hello"); a fragment after a special gets the space prefix.
  EXPECT_EQ(tok->encode("<s>Hello</s>", false, true), (std::vector<int32_t>{1, 15043, 2}));
  EXPECT_EQ(tok->encode("Hello</s>", false, true), (std::vector<int32_t>{15043, 2}));
  EXPECT_EQ(tok->encode("</s>", false, true), (std::vector<int32_t>{2}));
  const auto plain = tok->encode("<s>Hello</s>", false, false);
  for (int32_t id : plain) EXPECT_TRUE(id != 1 && id != 2) << id;
  EXPECT_EQ(tok->decode(plain), "<s>Hello</s>");
  EXPECT_EQ(tok->decode(std::vector<int32_t>{1, 15043, 2}), "Hello");
  EXPECT_EQ(tok->decode(std::vector<int32_t>{1, 15043, 2}, true), "<s>Hello</s>");
}

TEST(TokenizerSpmLlama, BosEosFollowVocabularyFlags) {
  MIXSERVE_SHARED_OR_SKIP(path, "vocab/ggml-vocab-llama-spm.gguf");
  const gguf::File file = gguf::File::open(path.string());
  Vocab v = Vocab::from_gguf(file);
  EXPECT_TRUE(v.add_bos);
  EXPECT_FALSE(v.add_eos);
  const auto tok = Tokenizer::create(v);
  EXPECT_EQ(tok->encode("Hello", true, false), (std::vector<int32_t>{1, 15043}));
  EXPECT_EQ(tok->encode("", true, false), (std::vector<int32_t>{1}));
  EXPECT_TRUE(tok->encode("", false, false).empty());
  v.add_eos = true;
  EXPECT_EQ(Tokenizer::create(v)->encode("Hello", true, false), (std::vector<int32_t>{1, 15043, 2}));
  v.add_bos = false;
  EXPECT_EQ(Tokenizer::create(v)->encode("Hello", true, false), (std::vector<int32_t>{15043, 2}));
  EXPECT_EQ(Tokenizer::create(v)->encode("Hello", false, false), (std::vector<int32_t>{15043}));
}

TEST(TokenizerSpmLlama, ByteFallbackForUnseenCharacters) {
  MIXSERVE_SHARED_OR_SKIP(path, "vocab/ggml-vocab-llama-spm.gguf");
  const auto tok = load_tokenizer(path);
  const std::string rocket = "\xF0\x9F\x9A\x80";  // U+1F680, not a Llama 2 piece
  const auto ids = tok->encode(rocket, false, false);
  ASSERT_EQ(ids.size(), 5u);
  EXPECT_EQ(tok->vocab().tokens[ids[0]], kSpaceMark);
  const char* expected[] = {"<0xF0>", "<0x9F>", "<0x9A>", "<0x80>"};
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(tok->vocab().tokens[ids[i + 1]], expected[i]);
    EXPECT_EQ(tok->vocab().types[ids[i + 1]], TokenType::kByte);
  }
  EXPECT_EQ(tok->decode(ids), rocket);
}

TEST(TokenizerSpmLlama, InvalidUtf8RoundTripsItsBytes) {
  MIXSERVE_SHARED_OR_SKIP(path, "vocab/ggml-vocab-llama-spm.gguf");
  const auto tok = load_tokenizer(path);
  const std::vector<std::string> bad = {"\xFF",
                                        "a\xC3",
                                        "\xC3(",
                                        "\xE0\x80\x80 overlong",
                                        "\xED\xA0\x80 surrogate",
                                        "\xF4\x90\x80\x80 too big",
                                        "\x80\x80\x80",
                                        "x\xE2\x96 y",
                                        "\xF0\x9F\x98",
                                        std::string("\0\x01", 2)};
  for (const auto& text : bad) {
    EXPECT_EQ(tok->decode(tok->encode(text, true, true)), text);
  }
  // Each invalid byte becomes its own byte token.
  const auto ids = tok->encode("\xE0\x80\x80", false, false);
  ASSERT_EQ(ids.size(), 4u);
  EXPECT_EQ(tok->vocab().tokens[ids[1]], "<0xE0>");
  EXPECT_EQ(tok->vocab().tokens[ids[3]], "<0x80>");
  std::mt19937 rng(1234);
  for (int trial = 0; trial < 300; ++trial) {
    std::string text(rng() % 40, '\0');
    for (char& c : text) c = static_cast<char>(rng());
    if (text.find(kSpaceMark) != std::string::npos) continue;  // U+2581 decodes to a space
    EXPECT_EQ(tok->decode(tok->encode(text, false, false)), text);
  }
}

// Timing bounds only mean something in optimised builds without sanitizers.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || !defined(NDEBUG)
constexpr bool kCheckTiming = false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
constexpr bool kCheckTiming = false;
#else
constexpr bool kCheckTiming = true;
#endif
#else
constexpr bool kCheckTiming = true;
#endif

TEST(TokenizerSpmLlama, LongInputIsFast) {
  MIXSERVE_SHARED_OR_SKIP(path, "vocab/ggml-vocab-llama-spm.gguf");
  const auto tok = load_tokenizer(path);
  std::string text;
  while (text.size() < (1u << 20)) {
    for (const auto& s : corpus()) text += s;
  }
  // Mixed text, then the worst cases: one unbroken run of joinable characters.
  const std::vector<std::string> inputs = {text, std::string(1u << 20, ' '), std::string(1u << 20, 'a')};
  for (const auto& input : inputs) {
    const std::clock_t start = std::clock();  // CPU time: robust to a loaded machine
    const auto ids = tok->encode(input, false, false);
    const double seconds = static_cast<double>(std::clock() - start) / CLOCKS_PER_SEC;
    if (kCheckTiming) {
      EXPECT_LT(seconds, 2.0) << "1 MiB took " << seconds << " s CPU: quadratic merging?";
    }
    EXPECT_EQ(tok->decode(ids), input);
  }
}

TEST(TokenizerSpmBaichuan, LoadsAndRoundTrips) {
  MIXSERVE_SHARED_OR_SKIP(path, "vocab/ggml-vocab-baichuan.gguf");
  const auto tok = load_tokenizer(path);
  EXPECT_EQ(tok->vocab().size(), 64000);
  EXPECT_EQ(tok->vocab().bos_id, 1);
  for (const auto& text : corpus()) {
    EXPECT_EQ(tok->decode(tok->encode(text, true, false)), text) << text;
    EXPECT_EQ(tok->decode(tok->encode(text, false, false)), text) << text;
  }
  // Chinese text should use multi-character pieces, not one token per byte.
  const std::string chinese = corpus()[6];
  EXPECT_LT(tok->encode(chinese, false, false).size(), chinese.size() / 3);
}

// --- Merge algorithm against a naive reference ----------------------------------------------

// Quadratic reference: rescan all adjacent pairs each round; best score, leftmost on ties.
std::vector<int32_t> naive_encode(const Vocab& v, const std::string& text) {
  if (text.empty()) return {};  // no space prefix on empty input
  std::map<std::string, int32_t> ids;
  for (int32_t i = 0; i < v.size(); ++i) ids.emplace(v.tokens[i], i);
  std::string s = v.add_space_prefix ? kSpaceMark : "";
  for (char c : text) s += c == ' ' ? kSpaceMark : std::string(1, c);
  std::vector<std::string> symbols;
  for (size_t i = 0; i < s.size();) {
    const size_t n = s.compare(i, 3, kSpaceMark) == 0 ? 3 : 1;  // ASCII plus U+2581 only
    symbols.push_back(s.substr(i, n));
    i += n;
  }
  for (;;) {
    int best = -1;
    for (size_t i = 0; i + 1 < symbols.size(); ++i) {
      const auto it = ids.find(symbols[i] + symbols[i + 1]);
      if (it != ids.end() && (best < 0 || v.scores[it->second] > v.scores[ids.at(symbols[best] + symbols[best + 1])])) {
        best = static_cast<int>(i);
      }
    }
    if (best < 0) break;
    symbols[best] += symbols[best + 1];
    symbols.erase(symbols.begin() + best + 1);
  }
  std::vector<int32_t> out;
  for (const auto& sym : symbols) out.push_back(ids.at(sym));
  return out;
}

TEST(TokenizerSpm, MergesMatchNaiveReferenceOnRandomVocabularies) {
  std::mt19937 rng(42);
  const std::vector<std::string> alphabet = {"a", "b", "c", kSpaceMark};
  for (int round = 0; round < 40; ++round) {
    Vocab v;
    v.add_space_prefix = round % 2 == 0;
    std::set<std::string> seen;
    auto add = [&](const std::string& piece) {
      if (!seen.insert(piece).second) return;
      v.tokens.push_back(piece);
      v.scores.push_back(static_cast<float>(rng() % 4));  // few distinct scores: many ties
      v.types.push_back(TokenType::kNormal);
    };
    for (const auto& a : alphabet) add(a);
    for (int k = 0; k < 30; ++k) {
      std::string piece;
      for (size_t len = 2 + rng() % 4; len > 0; --len) piece += alphabet[rng() % 4];
      add(piece);
    }
    const auto tok = Tokenizer::create(v);
    for (int t = 0; t < 50; ++t) {
      std::string text;
      for (size_t len = rng() % 30; len > 0; --len) text += "abc "[rng() % 4];
      ASSERT_EQ(tok->encode(text, false, false), naive_encode(v, text))
          << "round " << round << " text '" << text << "'";
    }
  }
}

// --- Hand-built vocabularies: specials, unk, errors -------------------------------------------

Vocab tiny_vocab() {
  Vocab v;
  auto add = [&v](const std::string& text, TokenType type, float score = 0) {
    v.tokens.push_back(text);
    v.scores.push_back(score);
    v.types.push_back(type);
  };
  add("<unk>", TokenType::kUnknown);
  add("<s>", TokenType::kControl);
  add("</s>", TokenType::kControl);
  add("<a>", TokenType::kUserDefined);
  add("<ab>", TokenType::kUserDefined);
  add(kSpaceMark, TokenType::kNormal);
  add("a", TokenType::kNormal);
  add("b", TokenType::kNormal);
  add(kSpaceMark + "a", TokenType::kNormal, 1);
  v.unk_id = 0;
  v.bos_id = 1;
  v.eos_id = 2;
  return v;
}

TEST(TokenizerSpm, LongestSpecialMatchWinsAndUnkWithoutByteTokens) {
  const auto tok = Tokenizer::create(tiny_vocab());
  EXPECT_EQ(tok->encode("<ab><a>b", false, true), (std::vector<int32_t>{4, 3, 5, 7}));
  EXPECT_EQ(tok->encode("a<s>", true, true), (std::vector<int32_t>{1, 8, 1}));
  // No byte tokens: unseen characters become <unk>, one per character.
  EXPECT_EQ(tok->encode("a\xC3\xA9z", false, false), (std::vector<int32_t>{8, 0, 0}));
  EXPECT_EQ(tok->token_to_piece(0), " \xE2\x81\x87 ");
  EXPECT_EQ(tok->token_to_piece(0, true), "<unk>");
  EXPECT_EQ(tok->token_to_piece(1), "");
  EXPECT_EQ(tok->token_to_piece(1, true), "<s>");
  EXPECT_EQ(tok->token_to_piece(3), "<a>");
  EXPECT_EQ(tok->token_to_piece(8), " a");
  EXPECT_EQ(tok->decode(std::vector<int32_t>{1, 8, 6}), "aa");
  for (int32_t bad : {-1, 9, 1 << 30}) {
    try {
      tok->token_to_piece(bad);
      ADD_FAILURE() << "no error for id " << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    }
  }
}

TEST(TokenizerSpm, NoByteTokensAndNoUnkIsAnError) {
  Vocab v = tiny_vocab();
  v.types[0] = TokenType::kNormal;
  v.unk_id = -1;
  const auto tok = Tokenizer::create(v);
  EXPECT_EQ(tok->encode("a", false, false), (std::vector<int32_t>{8}));
  try {
    tok->encode("z", false, false);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  }
}

TEST(TokenizerSpm, CreateRejectsUnsupportedModelsAndBadVocabularies) {
  Vocab v = tiny_vocab();
  v.model = "bert";  // "gpt2" is byte-level BPE (test_tokenizer_bpe.cpp)
  try {
    Tokenizer::create(v);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnimplemented);
    EXPECT_NE(std::string(e.what()).find("bert"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("BPE"), std::string::npos) << e.what();
  }
  const std::vector<std::function<void(Vocab&)>> breakers = {
      [](Vocab& b) { b.scores.pop_back(); },
      [](Vocab& b) { b.types.push_back(TokenType::kNormal); },
      [](Vocab& b) { b.bos_id = b.size(); },
      [](Vocab& b) { b.unk_id = -2; },
      [](Vocab& b) { b.types[3] = static_cast<TokenType>(17); },
      [](Vocab& b) { b = Vocab(); },
  };
  for (const auto& breaker : breakers) {
    Vocab bad = tiny_vocab();
    breaker(bad);
    try {
      Tokenizer::create(bad);
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
    }
  }
}

}  // namespace
}  // namespace mixserve
