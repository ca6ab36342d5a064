// SentencePiece tokenizer (tokenizer.ggml.model = "llama"): score-ordered pair merges with byte
// fallback, as used by Llama 2 style GGUF vocabularies.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "model/tokenizer.h"

namespace mixserve {

/// SentencePiece (BPE-style) tokenizer over a Vocab.
///
/// encode: text -> optional space prefix -> ' ' becomes U+2581 -> UTF-8 characters (each invalid
/// byte on its own) -> repeatedly merge the adjacent pair whose concatenation is a normal or
/// user-defined piece with the highest score (ties: leftmost) -> pieces not in the vocabulary
/// become their byte tokens <0xXX> (or unk when the vocabulary lacks them).
/// With parse_special, exact spellings of control, user-defined and unknown tokens are split out
/// first (leftmost, longest match). As in llama.cpp's SPM path, the space prefix is applied to the
/// first text fragment and to every fragment that directly follows a special token.
class SpmTokenizer final : public Tokenizer {
 public:
  /// Takes the vocabulary; throws kInvalidArgument if it is inconsistent (see Vocab::validate).
  explicit SpmTokenizer(Vocab vocab);

  /// See Tokenizer::encode.
  std::vector<int32_t> encode(std::string_view text, bool add_special, bool parse_special) const override;
  /// See Tokenizer::token_to_piece. Unknown tokens print as " \u2047 " (SentencePiece's default
  /// unk surface) unless show_special; user-defined tokens print as spelled.
  std::string token_to_piece(int32_t id, bool show_special = false) const override;
  /// See Tokenizer::decode.
  std::string decode(std::span<const int32_t> ids, bool show_special = false) const override;
  /// See Tokenizer::vocab.
  const Vocab& vocab() const override { return vocab_; }

 private:
  struct Piece {
    int32_t id;
    float score;
  };
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using PieceMap = std::unordered_map<std::string, Piece, StringHash, std::equal_to<>>;

  /// Appends the tokens of one plain-text fragment (no special-token handling).
  void encode_fragment(std::string_view text, bool space_prefix, std::vector<int32_t>& out) const;
  /// Appends the token(s) for one final symbol: its piece, its byte tokens, or unk.
  void emit_symbol(std::string_view symbol, std::vector<int32_t>& out) const;
  /// Mergeable piece with this exact text, or nullptr.
  const Piece* find_piece(std::string_view text) const;
  /// Whether some mergeable piece contains character `a` directly followed by `b` (characters
  /// packed by pack_char); if not, no merge can ever cross that boundary.
  bool may_join(uint32_t a, uint32_t b) const;

  Vocab vocab_;
  PieceMap pieces_;                      // normal / user-defined / undefined pieces
  size_t max_piece_bytes_ = 0;           // longest mergeable piece, bounds merge lookups
  std::array<int32_t, 256> byte_ids_{};  // byte -> <0xXX> token id, -1 if absent
  std::vector<int16_t> token_bytes_;     // token id -> byte for byte tokens, else -1
  int32_t unk_id_ = -1;                  // vocab.unk_id, else the first kUnknown token
  // Open-addressing set of adjacent character pairs inside mergeable pieces (empty slot = ~0).
  // Text is cut into independent runs where no pair matches (see encode_fragment).
  std::vector<uint64_t> joins_;
  uint64_t joins_mask_ = 0;
  // Special spellings indexed by first byte, each list longest first.
  std::array<std::vector<std::pair<std::string, int32_t>>, 256> specials_;
};

}  // namespace mixserve
