// Byte-level BPE tokenizer (tokenizer.ggml.model = "gpt2"), as used by GPT-2, Llama 3, Qwen,
// DeepSeek and most recent models: regex pre-tokenisation, bytes spelled in GPT-2's printable
// alphabet, and merges applied in rank order.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "model/pretokenizer.h"
#include "model/tokenizer.h"

namespace mixserve {

/// GPT-2's byte-level alphabet: `bytes` with each byte replaced by its printable stand-in
/// character (UTF-8). Printable Latin-1 bytes stand for themselves; the other 68 bytes map to
/// U+0100.. in increasing order (so ' ' becomes U+0120 'Ġ' and '\n' becomes U+010A 'Ċ').
std::string bytes_to_byte_level(std::string_view bytes);
/// Inverse of bytes_to_byte_level. Characters outside the alphabet (and invalid UTF-8) are kept as
/// their own bytes, so vocabularies that store some pieces as plain text still decode.
std::string byte_level_to_bytes(std::string_view text);

/// Byte-level BPE tokenizer over a Vocab with merges.
///
/// encode: split out special tokens (leftmost, longest match): user-defined tokens always, control
/// and unknown tokens only with parse_special (user-defined tokens are the vocabulary's "added
/// tokens", which Hugging Face tokenizers match in any text) -> split each remaining fragment with
/// the pre-tokenizer for vocab.pre (see PreTokenizer; unknown names warn and use "gpt-2") -> spell
/// each piece's bytes in the byte-level alphabet -> starting from one symbol per byte, repeatedly
/// merge the adjacent pair with the lowest merge rank (ties: leftmost) -> emit the pieces' ids.
/// A byte whose character is only an added token uses that token (DeepSeek: the bytes that never
/// occur in UTF-8); one that is not in the vocabulary at all becomes the unknown token
/// (kInvalidArgument when there is none). add_special adds BOS/EOS as vocab.add_bos/add_eos say.
/// decode: the exact bytes; a token can hold part of a UTF-8 character (Utf8Stream reassembles).
class BpeTokenizer final : public Tokenizer {
 public:
  /// Takes the vocabulary; throws kInvalidArgument if it is inconsistent (see Vocab::validate).
  explicit BpeTokenizer(Vocab vocab);

  /// See Tokenizer::encode and the class comment.
  std::vector<int32_t> encode(std::string_view text, bool add_special, bool parse_special) const override;
  /// The raw bytes of token `id` (possibly an incomplete UTF-8 sequence). Control and unknown
  /// tokens give their text with show_special, else nothing; user-defined tokens their text.
  /// Throws kInvalidArgument for ids out of range.
  std::string token_to_piece(int32_t id, bool show_special = false) const override;
  /// Concatenated token_to_piece bytes. Throws kInvalidArgument for ids out of range.
  std::string decode(std::span<const int32_t> ids, bool show_special = false) const override;
  /// See Tokenizer::vocab.
  const Vocab& vocab() const override { return vocab_; }
  /// The pre-tokenizer in use (the fallback for an unknown vocab.pre).
  const PreTokenizer& pre_tokenizer() const { return *pre_; }

 private:
  struct Symbol {
    int32_t id;    // token id of the bytes it covers; -1 if the byte is not in the vocabulary
    int32_t prev;  // previous live symbol, -1 at the start
    int32_t next;  // next live symbol, -1 at the end
  };
  struct Candidate {
    int32_t rank;
    int32_t left;      // symbol index
    int32_t right;     // symbol index
    int32_t left_id;   // ids when queued; a change later means the entry is stale
    int32_t right_id;
    int32_t result;
  };
  struct MergeSlot {
    uint64_t key;  // (left id << 32) | right id; kEmptyKey when free
    int32_t rank;
    int32_t result;
  };
  struct Special {
    int32_t id;
    bool always;  // user-defined: matched even without parse_special
  };
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  template <typename T>
  using StringMap = std::unordered_map<std::string, T, StringHash, std::equal_to<>>;
  /// Scratch buffers reused across the pieces of one encode call.
  struct Scratch {
    std::vector<std::string_view> pieces;
    std::vector<Symbol> symbols;
    std::vector<Candidate> heap;
    std::string spelled;
  };

  /// Appends the tokens of one fragment without special tokens.
  void encode_text(std::string_view text, std::vector<int32_t>& out, Scratch& scratch) const;
  /// Appends the tokens of one pre-tokenised piece.
  void encode_piece(std::string_view piece, std::vector<int32_t>& out, Scratch& scratch) const;
  /// The merge of (left, right), or nullptr.
  const MergeSlot* find_merge(int32_t left, int32_t right) const;
  /// Appends token `id`, or for id < 0 (`byte` has no token) the unknown token; throws
  /// kInvalidArgument naming the byte when there is none.
  void emit(int32_t id, char byte, std::vector<int32_t>& out) const;
  /// Longest special token at text[pos] allowed by parse_special: its id and length, or {-1, 0}.
  std::pair<int32_t, size_t> match_special(std::string_view text, size_t pos, bool parse_special) const;

  Vocab vocab_;
  const PreTokenizer* pre_ = nullptr;
  StringMap<int32_t> ids_;                 // byte-level spelling -> id of mergeable tokens
  std::array<int32_t, 256> byte_ids_{};    // byte -> token id of its one-character spelling, -1 if absent
  std::vector<MergeSlot> merges_;          // open addressing, power-of-two size
  uint64_t merges_mask_ = 0;
  std::vector<std::string> pieces_;        // token id -> decoded bytes (normal tokens)
  int32_t unk_id_ = -1;
  StringMap<Special> specials_;                           // raw text -> special token
  std::array<std::vector<uint32_t>, 256> special_lengths_;  // first byte -> lengths, longest first
};

}  // namespace mixserve
