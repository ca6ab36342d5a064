// Byte-level BPE tokenizer: reference vectors (gpt-2, deepseek-llm; llama-spm through the same
// factory), decoding, multilingual round trips, Baichuan, special tokens, BOS/EOS, malformed merges,
// GGUF round trip, the byte alphabet, and the merge loop against GPT-2's published algorithm.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include "common/error.h"
#include "common/log.h"
#include "common/utf8.h"
#include "model/gguf.h"
#include "model/tokenizer.h"
#include "model/tokenizer_bpe.h"
#include "model/tokenizer_spm.h"
#include "model/vocab.h"
#include "support/test_support.h"
#include "support/vocab_test_vectors.h"

namespace mixserve {
namespace {

Vocab load_vocab(const std::filesystem::path& path) {
  return Vocab::from_gguf(gguf::File::open(path.string()));
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
      "\xD9\x85\xD8\xB1\xD8\xAD\xD8\xA8\xD8\xA7 \xD8\xA8\xD8\xA7\xD9\x84\xD8\xB9\xD8\xA7\xD9\x84\xD9\x85",
      "\xF0\x9F\x98\x80\xF0\x9F\x8E\x89 \xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD family "
      "\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7",
      "e\xCC\x81 Zo\xC3\xAB na\xC3\xAFve a\xCC\x88\xCC\x84 \xE1\xBA\xA1\xCC\x82",
      "int main() {\n\treturn 0;\n}\n",
      "def f(x):\r\n    return [x ** 2 for x in range(10)]  # squares\r\n",
      "\t\ttabs\t and  double  spaces\n\n\nand newlines   ",
      "\xCE\x95\xCE\xBB\xCE\xBB\xCE\xB7\xCE\xBD\xCE\xB9\xCE\xBA\xCE\xAC, \xD1\x80\xD1\x83\xD1\x81\xD1\x81\xD0\xBA"
      "\xD0\xB8\xD0\xB9, \xE0\xA4\xB9\xE0\xA4\xBF\xE0\xA4\xA8\xE0\xA5\x8D\xE0\xA4\xA6\xE0\xA5\x80, \xE6\x97\xA5"
      "\xE6\x9C\xAC\xE8\xAA\x9E, \xED\x95\x9C\xEA\xB5\xAD\xEC\x96\xB4",
      "zero\xE2\x80\x8Bwidth, non\xC2\xA0"
      "breaking, \xEF\xBB\xBF"
      "bom, \xF4\x8F\xBF\xBF max",
      "<|endoftext|> and <\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C> look special",
      "  \n \t \r\n  ",
      "numbers 1 12 123 1234 12345 3.14159 1,000,000 \xD9\xA1\xD9\xA2\xD9\xA3",
      "I'm sure they'll say we'VE done it, isn't it?",
  };
  return kCorpus;
}

// --- Reference vectors ----------------------------------------------------------------------------

class ReferenceVectors : public ::testing::TestWithParam<std::string> {};

TEST_P(ReferenceVectors, EncodeReproducesEveryVectorAndDecodeRestoresTheText) {
  const std::string rel = "vocab/ggml-vocab-" + GetParam() + ".gguf";
  MIXSERVE_SHARED_OR_SKIP(path, rel);
  const auto tok = Tokenizer::create(load_vocab(path));
  const auto vectors = testing::load_vocab_test_vectors(path);
  ASSERT_EQ(vectors.size(), 46u);
  size_t passed = 0;
  for (size_t i = 0; i < vectors.size(); ++i) {
    const auto got = tok->encode(vectors[i].text, /*add_special=*/false, /*parse_special=*/false);
    EXPECT_EQ(testing::ids_to_string(got), testing::ids_to_string(vectors[i].ids)) << "vector " << i << ": " << vectors[i].text;
    EXPECT_EQ(tok->encode(vectors[i].text, false, true), got) << "vector " << i;  // no control text in them
    EXPECT_EQ(tok->decode(vectors[i].ids), vectors[i].text) << "vector " << i;  // independent of encode
    passed += got == vectors[i].ids;
  }
  std::cout << "[ tokenizer ] " << GetParam() << " reference vectors: " << passed << "/" << vectors.size() << " pass\n";
}

INSTANTIATE_TEST_SUITE_P(Vocabularies, ReferenceVectors, ::testing::Values("gpt-2", "deepseek-llm", "llama-spm"));

TEST(TokenizerBpe, FactoryPicksByModelAndNamesUnsupportedOnes) {
  MIXSERVE_SHARED_OR_SKIP(path, "vocab/ggml-vocab-gpt-2.gguf");
  Vocab v = load_vocab(path);
  EXPECT_EQ(v.model, "gpt2");
  EXPECT_EQ(v.pre, "gpt-2");
  EXPECT_EQ(v.merges.size(), 50000u);
  EXPECT_NE(dynamic_cast<const BpeTokenizer*>(Tokenizer::create(v).get()), nullptr);
  v.model = "bert";
  try {
    Tokenizer::create(v);
    FAIL() << "expected kUnimplemented";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnimplemented);
    EXPECT_NE(std::string(e.what()).find("'bert'"), std::string::npos) << e.what();
  }
}

// --- Round trips ------------------------------------------------------------------------------------

TEST(TokenizerBpe, MultilingualCorpusRoundTripsForGpt2AndDeepseek) {
  for (const std::string name : {"gpt-2", "deepseek-llm"}) {
    MIXSERVE_SHARED_OR_SKIP(path, "vocab/ggml-vocab-" + name + ".gguf");
    const auto tok = Tokenizer::create(load_vocab(path));
    for (const auto& text : corpus()) {
      for (bool add_special : {false, true}) {
        EXPECT_EQ(tok->decode(tok->encode(text, add_special, false)), text) << name << ": " << text;
        // Parsed control tokens print as spelled with show_special, so this round-trips too.
        EXPECT_EQ(tok->decode(tok->encode(text, false, true), true), text) << name << ": " << text;
      }
    }
    // Byte-level BPE covers every byte sequence, valid UTF-8 or not. DeepSeek has the bytes that
    // UTF-8 never uses (C0, C1, F5..FF) only as added tokens that decode as text: those encode
    // without error but are left out of the exact comparison.
    std::mt19937 rng(11);
    for (int round = 0; round < 300; ++round) {
      std::string text(rng() % 48, '\0');
      for (char& c : text) c = static_cast<char>(rng());
      const auto ids = tok->encode(text, false, false);
      const bool has_non_utf8_byte = std::any_of(text.begin(), text.end(), [](char c) {
        const auto b = static_cast<unsigned char>(c);
        return b == 0xC0 || b == 0xC1 || b >= 0xF5;
      });
      if (name == "gpt-2" || !has_non_utf8_byte) {
        EXPECT_EQ(tok->decode(ids), text) << name << " random bytes, round " << round;
      }
    }
  }
}

TEST(TokenizerBpe, BaichuanIsSentencePieceAndRoundTrips) {
  MIXSERVE_SHARED_OR_SKIP(path, "vocab/ggml-vocab-baichuan.gguf");
  const Vocab v = load_vocab(path);
  EXPECT_EQ(v.model, "llama");  // Baichuan ships a SentencePiece vocabulary, not byte-level BPE
  EXPECT_EQ(v.size(), 64000);
  const auto tok = Tokenizer::create(v);
  ASSERT_NE(dynamic_cast<const SpmTokenizer*>(tok.get()), nullptr);
  for (const auto& text : corpus()) {
    // SentencePiece prints U+2581 as a space by design, so text holding it cannot come back.
    if (text.find("\xE2\x96\x81") != std::string::npos) continue;
    for (bool add_special : {false, true}) {
      EXPECT_EQ(tok->decode(tok->encode(text, add_special, false)), text) << text;
    }
  }
  const auto ids = tok->encode("\xE4\xBD\xA0\xE5\xA5\xBD", true, false);  // 你好
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids[0], v.bos_id);
}

TEST(TokenizerBpe, PiecesAreRawBytesThatStreamBackIntoCharacters) {
  MIXSERVE_SHARED_OR_SKIP(path, "vocab/ggml-vocab-gpt-2.gguf");
  const auto tok = Tokenizer::create(load_vocab(path));
  const std::string text = "\xF0\x9F\x98\x80 ok \xE4\xBD\xA0";  // 😀 ok 你
  const auto ids = tok->encode(text, false, false);
  std::string joined;
  bool split_character = false;
  Utf8Stream stream;
  std::string streamed;
  for (int32_t id : ids) {
    const std::string piece = tok->token_to_piece(id);
    split_character |= utf8_incomplete_tail(piece) > 0;
    joined += piece;
    const std::string released = stream.push(piece);
    EXPECT_EQ(utf8_incomplete_tail(released), 0u);
    streamed += released;
  }
  streamed += stream.flush();
  EXPECT_TRUE(split_character) << "expected some token to end inside a character";
  EXPECT_EQ(joined, text);
  EXPECT_EQ(streamed, text);
  EXPECT_THROW(tok->token_to_piece(tok->vocab().size()), Error);
  EXPECT_THROW(tok->token_to_piece(-1), Error);
  const std::vector<int32_t> bad = {15496, 50257};
  EXPECT_THROW(tok->decode(bad), Error);
}

// --- Special tokens and BOS/EOS ---------------------------------------------------------------

TEST(TokenizerBpe, ControlTokensParsedOnlyWhenAsked) {
  MIXSERVE_SHARED_OR_SKIP(path, "vocab/ggml-vocab-gpt-2.gguf");
  const auto tok = Tokenizer::create(load_vocab(path));
  const std::string text = "<|endoftext|>Hello";
  EXPECT_EQ(tok->encode(text, false, true), (std::vector<int32_t>{50256, 15496}));  // 15496 = "Hello"
  const auto plain = tok->encode(text, false, false);
  EXPECT_GT(plain.size(), 2u);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 50256), 0);
  EXPECT_EQ(tok->decode(plain), text);
  EXPECT_EQ(tok->decode(std::vector<int32_t>{50256}), "");
  EXPECT_EQ(tok->decode(std::vector<int32_t>{50256}, true), "<|endoftext|>");
  // gpt-2 adds no BOS even when asked for special tokens.
  EXPECT_EQ(tok->encode("Hello", true, false), (std::vector<int32_t>{15496}));
}

TEST(TokenizerBpe, DeepseekAddsBosAndAlwaysMatchesAddedTokens) {
  MIXSERVE_SHARED_OR_SKIP(path, "vocab/ggml-vocab-deepseek-llm.gguf");
  const auto tok = Tokenizer::create(load_vocab(path));
  const Vocab& v = tok->vocab();
  EXPECT_TRUE(v.add_bos);
  EXPECT_EQ(v.bos_id, 100000);
  const auto with_bos = tok->encode("Hi", true, false);
  ASSERT_GE(with_bos.size(), 2u);
  EXPECT_EQ(with_bos[0], 100000);
  EXPECT_EQ(std::vector<int32_t>(with_bos.begin() + 1, with_bos.end()), tok->encode("Hi", false, false));
  const std::string bos_text = v.tokens[100000];
  EXPECT_EQ(tok->encode(bos_text + "Hi", false, true)[0], 100000);
  EXPECT_NE(tok->encode(bos_text + "Hi", false, false)[0], 100000);
  // "ü" is a user-defined (added) token 100014: matched with or without parse_special, as the
  // reference vector for "Führer" shows, and printed as its own text.
  ASSERT_EQ(v.tokens[100014], "\xC3\xBC");
  for (bool parse : {false, true}) {
    const auto ids = tok->encode("\xC3\xBC", false, parse);
    EXPECT_EQ(ids, std::vector<int32_t>{100014});
  }
  EXPECT_EQ(tok->token_to_piece(100014), "\xC3\xBC");
  // Byte 0xFC never occurs in UTF-8; its byte-level spelling "ü" exists only as that added token.
  EXPECT_EQ(tok->encode("\xFC", false, false), std::vector<int32_t>{100014});
}

// The byte-level spelling of a byte, from the definition (independent of the code under test).
std::string spell(unsigned b) {
  const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
  unsigned cp = b;
  if (!printable) {
    cp = 256;
    for (unsigned x = 0; x < b; ++x) {
      cp += !((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF));
    }
  }
  std::string s;
  if (cp < 0x80) {
    s.push_back(static_cast<char>(cp));
  } else {
    s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
  return s;
}

// A small byte-level vocabulary: the 256 byte spellings, then pieces added by `merges`.
Vocab small_vocab(const std::vector<std::string>& merges) {
  Vocab v;
  v.model = "gpt2";
  v.pre = "gpt-2";
  v.add_bos = false;
  v.add_space_prefix = false;
  for (unsigned b = 0; b < 256; ++b) v.tokens.push_back(spell(b));
  std::set<std::string> have(v.tokens.begin(), v.tokens.end());
  for (const auto& m : merges) {
    const size_t space = m.find(' ', 1);
    const std::string joined = m.substr(0, space) + m.substr(space + 1);
    if (have.insert(joined).second) v.tokens.push_back(joined);
  }
  v.merges = merges;
  v.scores.assign(v.tokens.size(), 0.0f);
  v.types.assign(v.tokens.size(), TokenType::kNormal);
  return v;
}

int32_t add_token(Vocab& v, const std::string& text, TokenType type) {
  v.tokens.push_back(text);
  v.scores.push_back(0.0f);
  v.types.push_back(type);
  return v.size() - 1;
}

TEST(TokenizerBpe, LongestSpecialMatchWinsAndUserDefinedAlwaysApplies) {
  Vocab v = small_vocab({"a b"});
  const int32_t a = add_token(v, "<a>", TokenType::kControl);
  const int32_t ab = add_token(v, "<a><b>", TokenType::kControl);
  const int32_t user = add_token(v, "<u>", TokenType::kUserDefined);
  v.eos_id = a;
  v.add_eos = true;
  const auto tok = Tokenizer::create(v);
  const int32_t x = 'x';  // small_vocab: token b spells byte b
  const auto parsed = tok->encode("x<a><b>x<a><u>", false, true);
  EXPECT_EQ(parsed, (std::vector<int32_t>{x, ab, x, a, user}));
  const auto plain = tok->encode("x<a><u>", false, false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), a), 0);
  EXPECT_EQ(plain.back(), user);
  EXPECT_EQ(tok->decode(plain), "x<a><u>");
  EXPECT_EQ(tok->encode("x", true, false), (std::vector<int32_t>{x, a}));  // add_eos
}

// --- The merge loop against GPT-2's published algorithm ---------------------------------------

// encoder.py's bpe(): repeatedly take the lowest-ranked adjacent pair and merge all its
// non-overlapping occurrences left to right, until no pair has a rank.
std::vector<std::string> reference_bpe(const std::string& word, const std::map<std::pair<std::string, std::string>, int>& ranks) {
  std::vector<std::string> symbols;
  for (char c : word) symbols.push_back(spell(static_cast<unsigned char>(c)));
  for (;;) {
    int best = -1;
    std::pair<std::string, std::string> pair;
    for (size_t i = 0; i + 1 < symbols.size(); ++i) {
      const auto it = ranks.find({symbols[i], symbols[i + 1]});
      if (it != ranks.end() && (best < 0 || it->second < best)) {
        best = it->second;
        pair = it->first;
      }
    }
    if (best < 0) return symbols;
    std::vector<std::string> merged;
    for (size_t i = 0; i < symbols.size();) {
      if (i + 1 < symbols.size() && symbols[i] == pair.first && symbols[i + 1] == pair.second) {
        merged.push_back(pair.first + pair.second);
        i += 2;
      } else {
        merged.push_back(symbols[i++]);
      }
    }
    symbols = std::move(merged);
  }
}

TEST(TokenizerBpe, MergesMatchGpt2ReferenceAlgorithmOnRandomVocabularies) {
  std::mt19937 rng(1234);
  for (int trial = 0; trial < 20; ++trial) {
    // Merges in training order: each joins two pieces that already exist.
    std::vector<std::string> pool = {"a", "b", "c", "d"};
    std::vector<std::string> merges;
    std::map<std::pair<std::string, std::string>, int> ranks;
    while (merges.size() < 40) {
      const std::string l = pool[rng() % pool.size()];
      const std::string r = pool[rng() % pool.size()];
      if (l.size() + r.size() > 8 || !ranks.emplace(std::pair{l, r}, static_cast<int>(merges.size())).second) continue;
      merges.push_back(l + " " + r);
      if (std::find(pool.begin(), pool.end(), l + r) == pool.end()) pool.push_back(l + r);
    }
    const auto tok = Tokenizer::create(small_vocab(merges));
    const Vocab& v = tok->vocab();
    for (int w = 0; w < 200; ++w) {
      std::string word(1 + rng() % 40, 'a');
      for (char& c : word) c = static_cast<char>('a' + rng() % 4);
      std::vector<std::string> got;
      for (int32_t id : tok->encode(word, false, false)) got.push_back(v.tokens[id]);
      ASSERT_EQ(got, reference_bpe(word, ranks)) << "trial " << trial << " word " << word;
    }
  }
}

TEST(TokenizerBpe, LongWordsMergeInReasonableTime) {
  MIXSERVE_SHARED_OR_SKIP(path, "vocab/ggml-vocab-gpt-2.gguf");
  const auto tok = Tokenizer::create(load_vocab(path));
  std::mt19937 rng(3);
  std::string word(1 << 20, 'a');  // one pre-token of 1 MiB
  for (char& c : word) c = static_cast<char>('a' + rng() % 26);
  const auto start = std::chrono::steady_clock::now();
  const auto ids = tok->encode(word, false, false);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(tok->decode(ids), word);
  EXPECT_LT(seconds, 10.0) << "quadratic merging?";
  EXPECT_EQ(tok->decode(tok->encode(std::string(1 << 20, ' '), false, false)), std::string(1 << 20, ' '));
}

TEST(TokenizerBpe, MissingByteUsesUnknownOrFailsClearly) {
  Vocab v = small_vocab({});
  v.tokens['!'] = "!!";  // '!' no longer has a token of its own
  auto tok = Tokenizer::create(v);
  EXPECT_THROW(tok->encode("a!b", false, false), Error);
  v.unk_id = add_token(v, "<unk>", TokenType::kUnknown);
  tok = Tokenizer::create(v);
  const int32_t a = 'a';
  const int32_t b = 'b';
  EXPECT_EQ(tok->encode("a!b", false, false), (std::vector<int32_t>{a, v.unk_id, b}));
}

// --- Vocabulary: merges and pre in GGUF, validation ----------------------------------------------

Vocab parse_vocab(const gguf::Writer& writer) {
  const std::vector<uint8_t> bytes = writer.to_bytes();
  return Vocab::from_gguf(gguf::File::parse(bytes));
}

TEST(TokenizerBpe, MalformedMergesAreRejectedNamingTheIndex) {
  struct Case {
    std::string merge;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"ab", "tokenizer.ggml.merges[1] = 'ab' is not two pieces"},
      {"a ", "tokenizer.ggml.merges[1] = 'a ' is not two pieces"},
      {"a zz", "names 'zz'"},
      {"qq b", "names 'qq'"},
      {"a c", "makes 'ac'"},
  };
  for (const auto& c : cases) {
    Vocab v = small_vocab({"a b"});
    v.merges.push_back(c.merge);
    try {
      v.validate();
      ADD_FAILURE() << "no error for merge '" << c.merge << "'";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      EXPECT_NE(std::string(e.what()).find(c.message), std::string::npos) << e.what();
    }
    EXPECT_THROW(Tokenizer::create(v), Error);
    gguf::Writer writer;
    v.to_gguf(writer);
    try {
      parse_vocab(writer);
      ADD_FAILURE() << "no error reading merge '" << c.merge << "'";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kDataLoss);
      EXPECT_NE(std::string(e.what()).find("tokenizer.ggml.merges[1]"), std::string::npos) << e.what();
    }
  }
}

TEST(TokenizerBpe, MergesAndPreSurviveGgufRoundTrip) {
  MIXSERVE_SHARED_OR_SKIP(path, "vocab/ggml-vocab-deepseek-llm.gguf");
  const Vocab v = load_vocab(path);
  gguf::Writer writer;
  v.to_gguf(writer);
  const Vocab back = parse_vocab(writer);
  EXPECT_EQ(back.model, "gpt2");
  EXPECT_EQ(back.pre, "deepseek-llm");
  EXPECT_EQ(back.merges, v.merges);
  EXPECT_EQ(back.tokens, v.tokens);
  EXPECT_EQ(back.types, v.types);
  EXPECT_EQ(back.add_bos, v.add_bos);
  EXPECT_FALSE(back.add_space_prefix);
  const auto tok = Tokenizer::create(back);
  for (const auto& vec : testing::load_vocab_test_vectors(path)) EXPECT_EQ(tok->encode(vec.text, false, false), vec.ids) << vec.text;
}

TEST(TokenizerBpe, UnknownPreWarnsAndFallsBackToGpt2Split) {
  MIXSERVE_SHARED_OR_SKIP(path, "vocab/ggml-vocab-gpt-2.gguf");
  Vocab v = load_vocab(path);
  v.pre = "brand-new-model";
  const LogLevel saved = log_level();
  set_log_level(LogLevel::kInfo);
  ::testing::internal::CaptureStderr();
  const auto tok = Tokenizer::create(v);
  const std::string err = ::testing::internal::GetCapturedStderr();
  set_log_level(saved);
  EXPECT_NE(err.find("'brand-new-model'"), std::string::npos) << err;
  EXPECT_NE(err.find("'gpt-2'"), std::string::npos) << err;
  const auto& bpe = dynamic_cast<const BpeTokenizer&>(*tok);
  EXPECT_EQ(bpe.pre_tokenizer().name(), "gpt-2");
  // gpt-2's own split is the fallback, so its reference vectors still hold.
  for (const auto& vec : testing::load_vocab_test_vectors(path)) EXPECT_EQ(tok->encode(vec.text, false, false), vec.ids) << vec.text;
}

// --- Byte alphabet ------------------------------------------------------------------------------

TEST(ByteLevel, AlphabetMatchesGpt2Definition) {
  EXPECT_EQ(bytes_to_byte_level(" "), "\xC4\xA0");   // U+0120 'Ġ'
  EXPECT_EQ(bytes_to_byte_level("\n"), "\xC4\x8A");  // U+010A 'Ċ'
  EXPECT_EQ(bytes_to_byte_level("\x7F"), "\xC4\xA1");  // U+0121: the 34th byte outside the printable sets
  EXPECT_EQ(bytes_to_byte_level("\xAD"), "\xC5\x83");  // U+0143: the last (68th) one
  EXPECT_EQ(bytes_to_byte_level("A~\xA1\xFF"), "A~\xC2\xA1\xC3\xBF");
  std::set<std::string> seen;
  std::string all;
  for (unsigned b = 0; b < 256; ++b) {
    const std::string one(1, static_cast<char>(b));
    EXPECT_EQ(bytes_to_byte_level(one), spell(b)) << b;
    seen.insert(bytes_to_byte_level(one));
    all += one;
  }
  EXPECT_EQ(seen.size(), 256u);
  EXPECT_EQ(byte_level_to_bytes(bytes_to_byte_level(all)), all);
  // Characters outside the alphabet pass through as their own bytes.
  EXPECT_EQ(byte_level_to_bytes("\xE4\xBD\xA0\xC5\x84x"), "\xE4\xBD\xA0\xC5\x84x");  // U+0144 is outside
}

TEST(ByteLevel, Gpt2VocabularyHoldsEveryByte) {
  MIXSERVE_SHARED_OR_SKIP(path, "vocab/ggml-vocab-gpt-2.gguf");
  const Vocab v = load_vocab(path);
  const std::set<std::string> tokens(v.tokens.begin(), v.tokens.end());
  for (unsigned b = 0; b < 256; ++b) EXPECT_TRUE(tokens.count(spell(b))) << b;
}

}  // namespace
}  // namespace mixserve
