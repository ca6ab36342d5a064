// Tokenizer vocabulary as stored in GGUF metadata (tokenizer.ggml.*).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
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
  int32_t eot_id = -1;                   ///< end of turn (tokenizer.ggml.eot_token_id); -1 = none
  int32_t unk_id = -1;
  int32_t pad_id = -1;
  bool add_bos = true;                   ///< prepend BOS when encoding a prompt
  bool add_eos = false;                  ///< append EOS when encoding a prompt
  bool add_space_prefix = true;          ///< SentencePiece: prepend a space to the text
  std::vector<std::string> merges;       ///< BPE merge rules "left right", best first (tokenizer.ggml.merges);
                                         ///< empty for SentencePiece; both halves and their join are pieces
  std::string pre;                       ///< BPE pre-tokenizer name (tokenizer.ggml.pre); empty when absent

  /// Number of tokens.
  int32_t size() const { return static_cast<int32_t>(tokens.size()); }
  /// Tokens that end a generated turn: EOS, tokenizer.ggml.eot_token_id, and control or
  /// user-defined tokens spelling a known end-of-turn marker (<|eot_id|>, <|im_end|>, <|end|>,
  /// <end_of_turn>, <|endoftext|>, <|eom_id|>, DeepSeek's end-of-sentence), as chat models emit them.
  std::vector<int32_t> end_of_generation_ids() const;
  /// Reads tokenizer.ggml.* keys; throws kDataLoss on missing or inconsistent arrays/ids and on
  /// merges that do not name vocabulary pieces (the message gives the merge index).
  static Vocab from_gguf(const gguf::File& file);
  /// Writes this vocabulary's tokenizer.ggml.* keys into a GGUF writer's metadata.
  void to_gguf(gguf::Writer& writer) const;
  /// Checks that scores/types match tokens in length, special ids are -1 or in range and every
  /// merge is "A B" with A, B and AB pieces; throws kInvalidArgument naming the field otherwise.
  void validate() const;
};

/// Halves of a merge rule "A B": split at the first space after the first byte (so A may itself be
/// a space); nullopt when there is no such space or B is empty.
std::optional<std::pair<std::string_view, std::string_view>> split_merge(std::string_view merge);

/// A small SentencePiece vocabulary built into the binary (control tokens, 256 byte tokens,
/// ASCII letters and common English words), used when no vocabulary file is given.
Vocab builtin_vocab();

}  // namespace mixserve
