// Text <-> token ids. One implementation per tokenizer.ggml.model; SentencePiece ("llama") first.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "model/vocab.h"

namespace mixserve {

/// Encodes text to token ids and decodes ids back to bytes.
class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  /// Token ids of `text`. add_special: add BOS/EOS as the vocabulary says. parse_special: text
  /// like "<s>" that spells a control/user-defined token becomes that token (else plain text).
  virtual std::vector<int32_t> encode(std::string_view text, bool add_special,
                                      bool parse_special) const = 0;
  /// Bytes that token `id` stands for when printed (byte tokens -> that byte, U+2581 -> space;
  /// control tokens -> empty unless `show_special`). Throws kInvalidArgument for ids out of range.
  virtual std::string token_to_piece(int32_t id, bool show_special = false) const = 0;
  /// Concatenated pieces; drops the leading space SentencePiece adds when the first id follows BOS
  /// or starts the sequence.
  virtual std::string decode(std::span<const int32_t> ids, bool show_special = false) const = 0;

  /// The vocabulary.
  virtual const Vocab& vocab() const = 0;

  /// Tokenizer for a vocabulary: "llama" -> SpmTokenizer, "gpt2" -> BpeTokenizer; throws
  /// kUnimplemented naming any other tokenizer.ggml.model.
  static std::unique_ptr<Tokenizer> create(Vocab vocab);
};

}  // namespace mixserve
