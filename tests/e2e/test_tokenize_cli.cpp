// End-to-end tests of `mixserve tokenize` / `mixserve detokenize`: listing and --ids output, -f
// with exact bytes, special-token parsing, BOS, errors and exit codes, and a synthetic model whose
// BPE tokenizer was copied from a vocabulary file (and that `mixserve run` can use).
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>

#include "support/test_support.h"

namespace mixserve {
namespace {

using testing::run_command;
using testing::TempDir;

const std::string kBin = MIXSERVE_BIN;

std::string write_file(const TempDir& dir, const std::string& name, const std::string& bytes) {
  const std::string path = dir.file(name);
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

TEST(TokenizeCli, ListsIdsAndPiecesOfTheGpt2Vocabulary) {
  MIXSERVE_SHARED_OR_SKIP(vocab, "vocab/ggml-vocab-gpt-2.gguf");
  const std::string base = kBin + " tokenize -m " + vocab.string() + " ";
  // "Hello world" -> 15496 995 (reference vector of the gpt-2 vocabulary).
  auto r = run_command(base + "'Hello world'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, " 15496 'Hello'\n   995 ' world'\n");
  r = run_command(base + "--ids 'Hello world'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "15496 995\n");
  r = run_command(base + "--ids --bos 'Hello world'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "50256 15496 995\n");
  // Non-printable bytes are escaped: a tab, and the two halves of a split character.
  r = run_command(base + "\"$(printf 'a\\tb')\"");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("'\\t'"), std::string::npos) << r.out;
  r = run_command(base + "\"$(printf '\\360\\237\\230\\200')\"");  // U+1F600, several byte tokens
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("'\\xF0"), std::string::npos) << r.out;
}

TEST(TokenizeCli, SpecialTokensParsedByDefaultAndOptionallyNot) {
  MIXSERVE_SHARED_OR_SKIP(vocab, "vocab/ggml-vocab-gpt-2.gguf");
  const std::string base = kBin + " tokenize -m " + vocab.string() + " --ids ";
  auto parsed = run_command(base + "'<|endoftext|>Hello'");
  ASSERT_EQ(parsed.exit_code, 0) << parsed.err;
  EXPECT_EQ(parsed.out, "50256 15496\n");
  auto plain = run_command(base + "--no-parse-special '<|endoftext|>Hello'");
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_EQ(plain.out.find("50256"), std::string::npos) << plain.out;
  EXPECT_NE(plain.out.find(" 15496"), std::string::npos) << plain.out;
  auto listed = run_command(kBin + " tokenize -m " + vocab.string() + " '<|endoftext|>'");
  EXPECT_EQ(listed.out, " 50256 '<|endoftext|>'\n");
}

TEST(TokenizeCli, FileBytesRoundTripThroughDetokenize) {
  MIXSERVE_SHARED_OR_SKIP(vocab, "vocab/ggml-vocab-deepseek-llm.gguf");
  TempDir dir;
  // Exact bytes: CRLF, a trailing newline, CJK, emoji, tabs and text that spells a control token.
  const std::string text =
      "line one\r\n\t\xE4\xBD\xA0\xE5\xA5\xBD \xF0\x9F\x98\x80  <\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81"
      "sentence\xEF\xBD\x9C>\n\n";
  const std::string input = write_file(dir, "in.txt", text);
  const auto ids = run_command(kBin + " tokenize -m " + vocab.string() + " --ids -f " + input);
  ASSERT_EQ(ids.exit_code, 0) << ids.err;
  EXPECT_NE(ids.out.find("100001"), std::string::npos) << "control token parsed: " << ids.out;
  const std::string id_list = ids.out.substr(0, ids.out.size() - 1);
  const auto back = run_command(kBin + " detokenize -m " + vocab.string() + " " + id_list);
  ASSERT_EQ(back.exit_code, 0) << back.err;
  EXPECT_EQ(back.out, text);  // stdout is captured byte for byte
  // --skip-special drops the control token's text; ids may also come as one comma-separated word.
  std::string commas = id_list;
  std::replace(commas.begin(), commas.end(), ' ', ',');
  const auto skipped = run_command(kBin + " detokenize -m " + vocab.string() + " --skip-special " + commas);
  ASSERT_EQ(skipped.exit_code, 0) << skipped.err;
  EXPECT_EQ(skipped.out.find("sentence"), std::string::npos) << skipped.out;
  EXPECT_NE(skipped.out.find("line one"), std::string::npos) << skipped.out;
}

TEST(TokenizeCli, BadInputExitsWithClearErrors) {
  MIXSERVE_SHARED_OR_SKIP(vocab, "vocab/ggml-vocab-gpt-2.gguf");
  const std::string detok = kBin + " detokenize -m " + vocab.string() + " ";
  auto r = run_command(detok + "15496 50257");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("token id 50257 is outside the vocabulary of 50257 tokens"), std::string::npos) << r.err;
  r = run_command(detok + "-- -1");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  r = run_command(detok + "12abc");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("'12abc' is not a token id"), std::string::npos) << r.err;
  r = run_command(kBin + " tokenize -m " + vocab.string());
  EXPECT_EQ(r.exit_code, 2) << r.err;
  r = run_command(kBin + " tokenize -m " + vocab.string() + " -f /nonexistent/file.txt");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("/nonexistent/file.txt"), std::string::npos) << r.err;
  r = run_command(kBin + " tokenize -m /nonexistent/model.gguf hi");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("/nonexistent/model.gguf"), std::string::npos) << r.err;
}

TEST(TokenizeCli, BuiltinVocabularyModelNeedsNoSharedData) {
  TempDir dir;
  const std::string model = dir.file("m.gguf");
  auto r = run_command(kBin + " model synth --shape tiny -o " + model);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_command(kBin + " tokenize -m " + model + " --ids --bos 'the cat'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(r.out.rfind("1 ", 0), 0u) << r.out;  // the builtin vocabulary's BOS is 1
  const auto back = run_command(kBin + " detokenize -m " + model + " --skip-special " + r.out.substr(0, r.out.size() - 1));
  ASSERT_EQ(back.exit_code, 0) << back.err;
  EXPECT_EQ(back.out, "the cat");
}

TEST(TokenizeCli, SynthModelWithGpt2VocabularyTokenizesAndRuns) {
  MIXSERVE_SHARED_OR_SKIP(vocab, "vocab/ggml-vocab-gpt-2.gguf");
  TempDir dir;
  const std::string model = dir.file("gpt2-tokenizer.gguf");
  auto r = run_command(kBin + " model synth --shape tiny --type q8_0 --vocab " + vocab.string() + " -o " + model);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string text = "Hello, world! 1234 \xE4\xBD\xA0\xE5\xA5\xBD";  // no ' (shell quoting)
  const auto from_vocab = run_command(kBin + " tokenize -m " + vocab.string() + " --ids '" + text + "'");
  const auto from_model = run_command(kBin + " tokenize -m " + model + " --ids '" + text + "'");
  ASSERT_EQ(from_model.exit_code, 0) << from_model.err;
  EXPECT_EQ(from_model.out, from_vocab.out);  // merges and pre-tokenizer were copied into the model
  r = run_command(kBin + " run -m " + model + " -p 'Hello world' -n 8 --temp 0 --ignore-eos");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("Hello world", 0), 0u) << r.out;
  EXPECT_NE(r.err.find("decode:  8 tokens"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("unknown BPE pre-tokenizer"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace mixserve
