// Tokenizer vocabulary as stored in GGUF metadata (tokenizer.ggml.*).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mixserve {
namespace gguf {
class File;
class Writer;
}  // namespace gguf

/// Token kinds (tokenizer.ggml.token_type values).
enum class TokenType : int32_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

/// A vocabulary: pieces, scores, kinds and special ids.
struct Vocab {
  std::string model = "llama";           ///< tokenizer.ggml.model ("llama" = SentencePiece)
  std::vector<std::string> tokens;       ///< piece text (SentencePiece: spaces as U+2581)
  std::vector<float> scores;             ///< merge priority (higher first); same size as tokens
  std::vector<TokenType> types;          ///< same size as tokens
  int32_t bos_id = -1;                   ///< -1 = none
  int32_t eos_id = -1;
  int32_t unk_id = -1;
  int32_t pad_id = -1;
  bool add_bos = true;                   ///< prepend BOS when encoding a prompt
  bool add_eos = false;                  ///< append EOS when encoding a prompt
  bool add_space_prefix = true;          ///< SentencePiece: prepend a space to the text

  /// Number of tokens.
  int32_t size() const { return static_cast<int32_t>(tokens.size()); }
  /// Reads tokenizer.ggml.* keys; throws kDataLoss on missing or inconsistent arrays/ids.
  static Vocab from_gguf(const gguf::File& file);
  /// Writes this vocabulary's tokenizer.ggml.* keys into a GGUF writer's metadata.
  void to_gguf(gguf::Writer& writer) const;
  /// Checks that scores/types match tokens in length and special ids are -1 or in range;
  /// throws kInvalidArgument naming the field otherwise.
  void validate() const;
};

/// A small SentencePiece vocabulary built into the binary (control tokens, 256 byte tokens,
/// ASCII letters and common English words), used when no vocabulary file is given.
Vocab builtin_vocab();

}  // namespace mixserve
