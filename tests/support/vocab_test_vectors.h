// The tokenizer test vectors of ../shared/data/vocab (<vocab>.gguf.inp / .out), shared by the
// SentencePiece and BPE tokenizer tests.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace mixserve::testing {

/// One test string and the token ids the reference tokenizer gives it (no BOS).
struct VocabTestVector {
  std::string text;
  std::vector<int32_t> ids;
};

/// The whole file as bytes ("" when it cannot be read).
std::string read_text(const std::filesystem::path& path);
/// Reads `<gguf_path>.inp` (strings separated by "\n__ggml_vocab_test__\n") and `<gguf_path>.out`
/// (one line of ids per string); adds a test failure when they do not pair up.
std::vector<VocabTestVector> load_vocab_test_vectors(const std::filesystem::path& gguf_path);
/// " 1 2 3" for messages.
std::string ids_to_string(const std::vector<int32_t>& ids);

}  // namespace mixserve::testing
