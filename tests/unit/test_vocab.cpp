// Vocab: GGUF reading/writing and validation, and the builtin SentencePiece vocabulary.
#include <gtest/gtest.h>

#include <cstdio>
#include <functional>
#include <set>

#include "common/error.h"
#include "model/gguf.h"
#include "model/tokenizer.h"
#include "model/vocab.h"
#include "support/test_support.h"

namespace mixserve {
namespace {

const std::string kSpaceMark = "\xE2\x96\x81";

std::string unescape(const std::string& piece) {
  std::string out;
  for (size_t i = 0; i < piece.size();) {
    if (piece.compare(i, kSpaceMark.size(), kSpaceMark) == 0) {
      out += ' ';
      i += kSpaceMark.size();
    } else {
      out += piece[i++];
    }
  }
  return out;
}

// --- builtin_vocab ----------------------------------------------------------------------------

TEST(BuiltinVocab, HasControlByteAndWordTokens) {
  const Vocab v = builtin_vocab();
  EXPECT_NO_THROW(v.validate());
  EXPECT_GE(v.size(), 1000);
  EXPECT_LE(v.size(), 2000);
  EXPECT_EQ(v.model, "llama");
  EXPECT_EQ(v.tokens[v.unk_id], "<unk>");
  EXPECT_EQ(v.tokens[v.bos_id], "<s>");
  EXPECT_EQ(v.tokens[v.eos_id], "</s>");
  EXPECT_EQ(v.types[v.bos_id], TokenType::kControl);
  EXPECT_EQ(v.types[v.unk_id], TokenType::kUnknown);
  std::set<std::string> byte_tokens;
  for (int32_t i = 0; i < v.size(); ++i) {
    if (v.types[i] == TokenType::kByte) byte_tokens.insert(v.tokens[i]);
  }
  ASSERT_EQ(byte_tokens.size(), 256u);
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    EXPECT_TRUE(byte_tokens.count(name)) << name;
  }
  EXPECT_EQ(std::set<std::string>(v.tokens.begin(), v.tokens.end()).size(), v.tokens.size()) << "duplicate pieces";
  const std::set<std::string> all(v.tokens.begin(), v.tokens.end());
  for (const char* piece : {"\xE2\x96\x81the",
                            "\xE2\x96\x81"
                            "and",
                            "\xE2\x96\x81Hello", "a", "~", "ing", "\xE2\x96\x81"}) {
    EXPECT_TRUE(all.count(piece)) << piece;
  }
}

TEST(BuiltinVocab, LongerPiecesScoreHigherThanTheirPrefixes) {
  const Vocab v = builtin_vocab();
  std::map<std::string, float> score;
  for (int32_t i = 0; i < v.size(); ++i) {
    if (v.types[i] == TokenType::kNormal) score[v.tokens[i]] = v.scores[i];
  }
  for (const auto& [piece, s] : score) {
    for (size_t end = 1; end < piece.size(); ++end) {
      if ((static_cast<unsigned char>(piece[end]) & 0xC0) == 0x80) continue;
      const auto it = score.find(piece.substr(0, end));
      ASSERT_NE(it, score.end()) << "prefix of '" << piece << "' missing: merges cannot reach it";
      EXPECT_LT(it->second, s) << piece;
    }
  }
}

TEST(BuiltinVocab, EveryPieceEncodesToItself) {
  const Vocab v = builtin_vocab();
  Vocab no_prefix = v;
  no_prefix.add_space_prefix = false;
  const auto tok = Tokenizer::create(v);
  const auto tok_no_prefix = Tokenizer::create(no_prefix);
  for (int32_t id = 0; id < v.size(); ++id) {
    const std::string& piece = v.tokens[id];
    if (v.types[id] != TokenType::kNormal || piece == kSpaceMark) continue;  // "" encodes to nothing
    if (piece.rfind(kSpaceMark, 0) == 0) {
      // The encoder adds the leading space itself.
      EXPECT_EQ(tok->encode(unescape(piece).substr(1), false, false), std::vector<int32_t>{id}) << piece;
    } else {
      EXPECT_EQ(tok_no_prefix->encode(piece, false, false), std::vector<int32_t>{id}) << piece;
    }
  }
}

TEST(BuiltinVocab, EnglishTokenisesIntoWords) {
  const auto tok = Tokenizer::create(builtin_vocab());
  const std::vector<std::string> words = {"the", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog"};
  std::string text;
  for (const auto& w : words) text += (text.empty() ? "" : " ") + w;
  const auto ids = tok->encode(text, false, false);
  ASSERT_EQ(ids.size(), words.size());
  for (size_t i = 0; i < ids.size(); ++i) EXPECT_EQ(tok->vocab().tokens[ids[i]], kSpaceMark + words[i]);
  // A suffix attaches to its word; an unseen character falls back to bytes.
  const auto played = tok->encode("played", false, false);
  ASSERT_EQ(played.size(), 2u);
  EXPECT_EQ(tok->vocab().tokens[played[0]], kSpaceMark + "play");
  EXPECT_EQ(tok->vocab().tokens[played[1]], "ed");
  const auto accent = tok->encode("\xC3\xA9", false, false);
  ASSERT_EQ(accent.size(), 3u);
  EXPECT_EQ(tok->vocab().tokens[accent[1]], "<0xC3>");
  EXPECT_EQ(tok->vocab().tokens[accent[2]], "<0xA9>");
  EXPECT_EQ(tok->encode("Hello", true, false).front(), tok->vocab().bos_id);
}

TEST(BuiltinVocab, RoundTrips) {
  const auto tok = Tokenizer::create(builtin_vocab());
  const std::vector<std::string> texts = {
      "",
      " ",
      "The quick brown fox jumps over the lazy dog.",
      "  two  spaces\tand\ttabs\n\n",
      "\xE4\xBD\xA0\xE5\xA5\xBD \xD9\x85\xD8\xB1\xD8\xAD\xD8\xA8\xD8\xA7 \xF0\x9F\x98\x80 e\xCC\x81",
      "for (int i = 0; i < n; ++i) { sum += a[i]; }",
      "invalid \xFF\xC3 bytes \xED\xA0\x80"};
  for (const auto& text : texts) {
    for (bool add_special : {false, true}) {
      for (bool parse_special : {false, true}) {
        EXPECT_EQ(tok->decode(tok->encode(text, add_special, parse_special)), text) << text;
      }
    }
  }
}

// --- GGUF -------------------------------------------------------------------------------------

Vocab parse_vocab(const gguf::Writer& writer) {
  const std::vector<uint8_t> bytes = writer.to_bytes();
  const gguf::File file = gguf::File::parse(bytes);
  return Vocab::from_gguf(file);
}

TEST(VocabGguf, WriteThenReadGivesTheSameVocabulary) {
  Vocab v = builtin_vocab();
  v.pad_id = 7;
  v.add_eos = true;
  v.add_space_prefix = false;
  v.types[10] = TokenType::kUserDefined;
  v.types[11] = TokenType::kUnused;
  gguf::Writer writer;
  v.to_gguf(writer);
  const Vocab back = parse_vocab(writer);
  EXPECT_EQ(back.model, v.model);
  EXPECT_EQ(back.tokens, v.tokens);
  EXPECT_EQ(back.scores, v.scores);
  EXPECT_EQ(back.types, v.types);
  EXPECT_EQ(back.bos_id, v.bos_id);
  EXPECT_EQ(back.eos_id, v.eos_id);
  EXPECT_EQ(back.unk_id, v.unk_id);
  EXPECT_EQ(back.pad_id, 7);
  EXPECT_EQ(back.add_bos, v.add_bos);
  EXPECT_TRUE(back.add_eos);
  EXPECT_FALSE(back.add_space_prefix);
}

TEST(VocabGguf, MissingOptionalKeysGetDefaultsPerModel) {
  for (const std::string model : {"llama", "gpt2"}) {
    gguf::Writer writer;
    writer.set("tokenizer.ggml.model", gguf::make_string(model));
    writer.set("tokenizer.ggml.tokens", gguf::make_string_array({"a", "b", "c"}));
    const Vocab v = parse_vocab(writer);
    EXPECT_EQ(v.scores, std::vector<float>(3, 0.0f));
    EXPECT_EQ(v.types, std::vector<TokenType>(3, TokenType::kNormal));
    EXPECT_EQ(v.bos_id, -1);
    EXPECT_EQ(v.unk_id, -1);
    EXPECT_EQ(v.add_bos, model == "llama");
    EXPECT_EQ(v.add_space_prefix, model == "llama");
    EXPECT_FALSE(v.add_eos);
  }
}

TEST(VocabGguf, InconsistentFilesAreDataLossNamingTheKey) {
  const Vocab good = builtin_vocab();
  const int32_t n = good.size();
  struct Case {
    std::string key;  // expected in the message
    std::function<void(gguf::Writer&)> mutate;
  };
  const std::vector<Case> cases = {
      {"tokenizer.ggml.scores",
       [&](gguf::Writer& w) {
         w.set("tokenizer.ggml.scores",
               gguf::make_float32_array(std::vector<float>(good.scores.begin(), good.scores.end() - 1)));
       }},
      {"tokenizer.ggml.token_type",
       [&](gguf::Writer& w) {
         w.set("tokenizer.ggml.token_type", gguf::make_int32_array(std::vector<int32_t>(n + 1, 1)));
       }},
      {"tokenizer.ggml.token_type",
       [&](gguf::Writer& w) {
         std::vector<int32_t> types(n, 1);
         types[5] = 9;
         w.set("tokenizer.ggml.token_type", gguf::make_int32_array(types));
       }},
      {"tokenizer.ggml.bos_token_id",
       [&](gguf::Writer& w) { w.set("tokenizer.ggml.bos_token_id", gguf::make_uint32(n)); }},
      {"tokenizer.ggml.unknown_token_id",
       [&](gguf::Writer& w) { w.set("tokenizer.ggml.unknown_token_id", gguf::make_uint64(1ull << 40)); }},
      {"tokenizer.ggml.padding_token_id",
       [&](gguf::Writer& w) { w.set("tokenizer.ggml.padding_token_id", gguf::make_int32(-5)); }},
      {"tokenizer.ggml.tokens", [&](gguf::Writer& w) { w.set("tokenizer.ggml.tokens", gguf::make_uint32(3)); }},
      {"tokenizer.ggml.tokens", [&](gguf::Writer& w) { w.set("tokenizer.ggml.tokens", gguf::make_string_array({})); }},
      {"tokenizer.ggml.model", [&](gguf::Writer& w) { w.set("tokenizer.ggml.model", gguf::make_bool(true)); }},
      {"tokenizer.ggml.scores", [&](gguf::Writer& w) { w.set("tokenizer.ggml.scores", gguf::make_string("x")); }},
  };
  for (const auto& c : cases) {
    gguf::Writer writer;
    good.to_gguf(writer);
    c.mutate(writer);
    try {
      parse_vocab(writer);
      ADD_FAILURE() << "no error for a bad " << c.key;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kDataLoss) << e.what();
      EXPECT_NE(std::string(e.what()).find(c.key), std::string::npos) << e.what();
    }
  }
  for (const std::string missing : {"tokenizer.ggml.model", "tokenizer.ggml.tokens"}) {
    gguf::Writer writer;
    if (missing != "tokenizer.ggml.model") writer.set("tokenizer.ggml.model", gguf::make_string("llama"));
    if (missing != "tokenizer.ggml.tokens") {
      writer.set("tokenizer.ggml.tokens", gguf::make_string_array({"a"}));
    }
    try {
      parse_vocab(writer);
      ADD_FAILURE() << "no error without " << missing;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kDataLoss);
      EXPECT_NE(std::string(e.what()).find(missing), std::string::npos) << e.what();
    }
  }
}

TEST(VocabGguf, ReadsLlamaSpmVocabulary) {
  MIXSERVE_SHARED_OR_SKIP(path, "vocab/ggml-vocab-llama-spm.gguf");
  const gguf::File file = gguf::File::open(path.string());
  const Vocab v = Vocab::from_gguf(file);
  EXPECT_EQ(v.model, "llama");
  EXPECT_EQ(v.size(), 32000);
  EXPECT_EQ(v.bos_id, 1);
  EXPECT_EQ(v.eos_id, 2);
  EXPECT_EQ(v.unk_id, 0);
  EXPECT_EQ(v.pad_id, -1);
  EXPECT_TRUE(v.add_bos);
  EXPECT_FALSE(v.add_eos);
  EXPECT_TRUE(v.add_space_prefix);
  EXPECT_EQ(v.types[3], TokenType::kByte);
  EXPECT_EQ(v.tokens[3], "<0x00>");
  EXPECT_EQ(v.tokens[258], "<0xFF>");
  // Re-writing and re-reading a real vocabulary preserves it.
  gguf::Writer writer;
  v.to_gguf(writer);
  const Vocab back = parse_vocab(writer);
  EXPECT_EQ(back.tokens, v.tokens);
  EXPECT_EQ(back.scores, v.scores);
  EXPECT_EQ(back.types, v.types);
}

}  // namespace
}  // namespace mixserve
