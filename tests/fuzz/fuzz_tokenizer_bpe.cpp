// libFuzzer target: arbitrary bytes through the byte-level BPE tokenizer. Uses the gpt-2
// vocabulary from ../shared/data/vocab when present (MIXSERVE_SHARED_DIR overrides where ../shared
// is), else a small vocabulary built here (256 byte pieces, a few merges, a control and an added
// token). encode with and without special-token parsing and decode must never crash or throw, ids
// must be in range, and decode(encode(x)) must give back x exactly: byte-level BPE covers every byte,
// so this holds for invalid UTF-8 too (and for parsed control tokens, printed with show_special).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <utility>

#include "model/gguf.h"
#include "model/tokenizer.h"
#include "model/tokenizer_bpe.h"
#include "model/vocab.h"

namespace {

std::filesystem::path shared_dir() {
  if (const char* env = std::getenv("MIXSERVE_SHARED_DIR")) return env;
  // tests/fuzz/ lives in the repository; ../shared sits beside the repository root.
  return std::filesystem::path(__FILE__).parent_path().parent_path().parent_path().parent_path() / "shared";
}

mixserve::Vocab small_vocab() {
  mixserve::Vocab v;
  v.model = "gpt2";
  v.pre = "llama3";  // a multi-alternative pattern with ignore_merges, unlike gpt-2's own
  v.add_bos = false;
  v.add_space_prefix = false;
  std::set<std::string> have;
  auto add = [&](const std::string& text, mixserve::TokenType type) {
    if (!have.insert(text).second) return;
    v.tokens.push_back(text);
    v.scores.push_back(0.0f);
    v.types.push_back(type);
  };
  for (int b = 0; b < 256; ++b) add(mixserve::bytes_to_byte_level(std::string(1, static_cast<char>(b))), mixserve::TokenType::kNormal);
  // Merges in training order, each joining pieces that exist already (raw bytes, spelled below).
  const std::pair<const char*, const char*> merges[] = {
      {"t", "h"}, {"th", "e"}, {" ", "the"}, {"i", "n"},   {"in", "g"},          {"e", "r"},
      {" ", "a"}, {"a", "n"},  {"an", "d"},  {" ", "and"}, {" ", " "},           {"  ", "  "},
      {"1", "2"}, {"12", "3"}, {"\xE4", "\xBD"}, {"\xE4\xBD", "\xA0"}};
  for (const auto& [left, right] : merges) {
    const std::string l = mixserve::bytes_to_byte_level(left);
    const std::string r = mixserve::bytes_to_byte_level(right);
    add(l + r, mixserve::TokenType::kNormal);
    v.merges.push_back(l + " " + r);
  }
  add("<|endoftext|>", mixserve::TokenType::kControl);
  add("<tool>", mixserve::TokenType::kUserDefined);
  v.eos_id = v.size() - 2;
  v.bos_id = v.eos_id;
  return v;
}

const mixserve::Tokenizer& tokenizer() {
  static const std::unique_ptr<mixserve::Tokenizer> tok = [] {
    const auto path = shared_dir() / "data/vocab/ggml-vocab-gpt-2.gguf";
    std::error_code ec;
    if (std::filesystem::exists(path, ec)) {
      std::fprintf(stderr, "fuzz_tokenizer_bpe: using %s\n", path.c_str());
      return mixserve::Tokenizer::create(mixserve::Vocab::from_gguf(mixserve::gguf::File::open(path.string())));
    }
    std::fprintf(stderr, "fuzz_tokenizer_bpe: %s absent, using a built-in vocabulary\n", path.c_str());
    return mixserve::Tokenizer::create(small_vocab());
  }();
  return *tok;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const mixserve::Tokenizer& tok = tokenizer();
  for (bool parse_special : {false, true}) {
    const auto ids = tok.encode(text, /*add_special=*/false, parse_special);
    for (int32_t id : ids) {
      if (id < 0 || id >= tok.vocab().size()) std::abort();
    }
    if (tok.decode(ids, /*show_special=*/parse_special) != text) std::abort();
    std::string joined;
    for (int32_t id : ids) joined += tok.token_to_piece(id, parse_special);
    if (joined != text) std::abort();
  }
  const auto with_special = tok.encode(text, /*add_special=*/true, false);
  if (tok.decode(with_special) != text) std::abort();
  return 0;
}
