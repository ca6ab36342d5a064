// Byte-level BPE: GPT-2's byte alphabet (Radford et al. 2019, "Language Models are Unsupervised
// Multitask Learners", and its published encoder), rank-ordered merges over a linked list of symbols
// with a binary heap of candidate pairs, so a word of n bytes costs O(n log n), not O(n^2).
#include "model/tokenizer_bpe.h"

#include <algorithm>

#include "common/error.h"
#include "common/log.h"

namespace mixserve {
namespace {

constexpr uint64_t kEmptyKey = ~uint64_t{0};  // no pair of ids (both < 2^31) packs to this

// Code point standing for byte b in GPT-2's byte-level alphabet: printable Latin-1 bytes ('!'..'~',
// U+00A1..U+00AC, U+00AE..U+00FF) stand for themselves, the remaining 68 take U+0100.. in order.
struct ByteAlphabet {
  std::array<uint32_t, 256> code_point{};
  std::array<std::string, 256> spelling{};  // UTF-8 of code_point
  std::array<int16_t, 512> byte_of{};       // code point (< 512) -> byte, -1 if none

  ByteAlphabet() {
    byte_of.fill(-1);
    uint32_t extra = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const uint32_t cp = printable ? b : extra++;
      code_point[b] = cp;
      byte_of[cp] = static_cast<int16_t>(b);
      std::string& s = spelling[b];
      if (cp < 0x80) {
        s.push_back(static_cast<char>(cp));
      } else {
        s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
      }
    }
  }
};

const ByteAlphabet& alphabet() {
  static const ByteAlphabet kAlphabet;
  return kAlphabet;
}

uint64_t pair_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

uint64_t slot_of(uint64_t key, uint64_t mask) {
  key ^= key >> 31;
  key *= 0x9E3779B97F4A7C15ull;  // Fibonacci hashing
  return (key >> 17) & mask;
}

// Pops first: the lowest rank, then the leftmost pair.
struct PopsLater {
  template <typename C>
  bool operator()(const C& a, const C& b) const {
    return a.rank != b.rank ? a.rank > b.rank : a.left > b.left;
  }
};

bool is_mergeable(TokenType type) {
  return type == TokenType::kNormal || type == TokenType::kByte || type == TokenType::kUndefined ||
         type == TokenType::kUnused;
}

}  // namespace

std::string bytes_to_byte_level(std::string_view bytes) {
  const ByteAlphabet& a = alphabet();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) out += a.spelling[static_cast<unsigned char>(c)];
  return out;
}

std::string byte_level_to_bytes(std::string_view text) {
  const ByteAlphabet& a = alphabet();
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const auto c0 = static_cast<unsigned char>(text[i]);
    if (c0 < 0x80) {
      const int16_t b = a.byte_of[c0];
      out.push_back(b >= 0 ? static_cast<char>(b) : static_cast<char>(c0));
      ++i;
      continue;
    }
    // The alphabet's other characters are all two-byte sequences C2..C5 xx (U+0080..U+0143).
    if (c0 >= 0xC2 && c0 <= 0xC5 && i + 1 < text.size()) {
      const auto c1 = static_cast<unsigned char>(text[i + 1]);
      if ((c1 & 0xC0) == 0x80) {
        const uint32_t cp = ((c0 & 0x1Fu) << 6) | (c1 & 0x3Fu);
        if (a.byte_of[cp] >= 0) {
          out.push_back(static_cast<char>(a.byte_of[cp]));
          i += 2;
          continue;
        }
      }
    }
    out.push_back(static_cast<char>(c0));  // outside the alphabet: kept byte by byte
    ++i;
  }
  return out;
}

BpeTokenizer::BpeTokenizer(Vocab vocab) : vocab_(std::move(vocab)) {
  vocab_.validate();
  pre_ = &PreTokenizer::for_name(vocab_.pre);
  if (vocab_.merges.empty()) {
    log_warn("BPE vocabulary without tokenizer.ggml.merges: every byte becomes a token of its own");
  }
  const int32_t n = vocab_.size();
  const ByteAlphabet& a = alphabet();
  unk_id_ = vocab_.unk_id;
  ids_.reserve(static_cast<size_t>(n));
  pieces_.resize(static_cast<size_t>(n));
  for (int32_t id = 0; id < n; ++id) {
    const std::string& text = vocab_.tokens[id];
    const TokenType type = vocab_.types[id];
    if (is_mergeable(type)) {
      ids_.emplace(text, id);  // the first of duplicate spellings wins
      pieces_[id] = byte_level_to_bytes(text);
    } else if (!text.empty()) {
      specials_.emplace(text, Special{id, type == TokenType::kUserDefined});
    }
    if (type == TokenType::kUnknown && unk_id_ < 0) unk_id_ = id;
  }
  for (int b = 0; b < 256; ++b) {
    const auto it = ids_.find(a.spelling[b]);
    byte_ids_[b] = it == ids_.end() ? -1 : it->second;
    // DeepSeek's vocabularies hold the bytes that never occur in UTF-8 (C0, C1, F5..FF) only as
    // added tokens with the same spelling; using those keeps any input encodable, though such a
    // token decodes as its text (valid UTF-8 never contains these bytes, so it round-trips).
    if (byte_ids_[b] < 0) {
      const auto special = specials_.find(a.spelling[b]);
      if (special != specials_.end()) byte_ids_[b] = special->second.id;
    }
  }
  for (const auto& [text, special] : specials_) {
    auto& lengths = special_lengths_[static_cast<unsigned char>(text[0])];
    if (std::find(lengths.begin(), lengths.end(), text.size()) == lengths.end()) {
      lengths.push_back(static_cast<uint32_t>(text.size()));
    }
  }
  for (auto& lengths : special_lengths_) std::sort(lengths.rbegin(), lengths.rend());

  size_t capacity = 16;
  while (capacity < 2 * vocab_.merges.size()) capacity *= 2;
  merges_.assign(capacity, MergeSlot{kEmptyKey, 0, 0});
  merges_mask_ = capacity - 1;
  std::string joined;
  for (size_t rank = 0; rank < vocab_.merges.size(); ++rank) {
    const auto halves = split_merge(vocab_.merges[rank]);  // validate() guaranteed the shape
    const auto left = ids_.find(halves->first);
    const auto right = ids_.find(halves->second);
    joined.assign(halves->first);
    joined += halves->second;
    const auto result = ids_.find(joined);
    // Merges that involve special tokens can never apply to symbols built from bytes.
    if (left == ids_.end() || right == ids_.end() || result == ids_.end()) continue;
    const uint64_t key = pair_key(left->second, right->second);
    uint64_t slot = slot_of(key, merges_mask_);
    while (merges_[slot].key != kEmptyKey && merges_[slot].key != key) slot = (slot + 1) & merges_mask_;
    if (merges_[slot].key == key) continue;  // a duplicate keeps its first (best) rank
    merges_[slot] = MergeSlot{key, static_cast<int32_t>(rank), result->second};
  }
}

const BpeTokenizer::MergeSlot* BpeTokenizer::find_merge(int32_t left, int32_t right) const {
  if (left < 0 || right < 0) return nullptr;
  const uint64_t key = pair_key(left, right);
  for (uint64_t slot = slot_of(key, merges_mask_);; slot = (slot + 1) & merges_mask_) {
    const MergeSlot& s = merges_[slot];
    if (s.key == key) return &s;
    if (s.key == kEmptyKey) return nullptr;
  }
}

std::pair<int32_t, size_t> BpeTokenizer::match_special(std::string_view text, size_t pos, bool parse_special) const {
  for (uint32_t len : special_lengths_[static_cast<unsigned char>(text[pos])]) {
    if (len > text.size() - pos) continue;
    const auto it = specials_.find(text.substr(pos, len));
    if (it != specials_.end() && (parse_special || it->second.always)) return {it->second.id, len};
  }
  return {-1, 0};
}

std::vector<int32_t> BpeTokenizer::encode(std::string_view text, bool add_special, bool parse_special) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 2);
  if (add_special && vocab_.add_bos && vocab_.bos_id >= 0) out.push_back(vocab_.bos_id);
  Scratch scratch;
  size_t fragment_start = 0;
  for (size_t i = 0; i < text.size();) {
    if (special_lengths_[static_cast<unsigned char>(text[i])].empty()) {
      ++i;
      continue;
    }
    const auto [id, len] = match_special(text, i, parse_special);
    if (id < 0) {
      ++i;
      continue;
    }
    if (i > fragment_start) encode_text(text.substr(fragment_start, i - fragment_start), out, scratch);
    out.push_back(id);
    i += len;
    fragment_start = i;
  }
  if (fragment_start < text.size()) encode_text(text.substr(fragment_start), out, scratch);
  if (add_special && vocab_.add_eos && vocab_.eos_id >= 0) out.push_back(vocab_.eos_id);
  return out;
}

void BpeTokenizer::encode_text(std::string_view text, std::vector<int32_t>& out, Scratch& scratch) const {
  scratch.pieces.clear();
  pre_->split(text, scratch.pieces);
  for (std::string_view piece : scratch.pieces) encode_piece(piece, out, scratch);
}

void BpeTokenizer::emit(int32_t id, char byte, std::vector<int32_t>& out) const {
  if (id >= 0) {
    out.push_back(id);
    return;
  }
  if (unk_id_ < 0) {
    fail(ErrorCode::kInvalidArgument, "cannot tokenize byte 0x", "0123456789ABCDEF"[(byte >> 4) & 15],
         "0123456789ABCDEF"[byte & 15], ": the vocabulary has no token for it and no unknown token");
  }
  out.push_back(unk_id_);
}

void BpeTokenizer::encode_piece(std::string_view piece, std::vector<int32_t>& out, Scratch& scratch) const {
  if (piece.empty()) return;
  if (piece.size() == 1) {
    emit(byte_ids_[static_cast<unsigned char>(piece[0])], piece[0], out);
    return;
  }
  if (pre_->ignore_merges()) {
    scratch.spelled = bytes_to_byte_level(piece);
    if (const auto it = ids_.find(scratch.spelled); it != ids_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  // Offsets are 32-bit to keep symbols small; pieces beyond that are refused rather than wrapped.
  if (piece.size() > static_cast<size_t>(INT32_MAX)) {
    fail(ErrorCode::kInvalidArgument, "a pre-tokenized piece of ", piece.size(), " bytes is too long to tokenize");
  }
  const auto n = static_cast<int32_t>(piece.size());
  auto& symbols = scratch.symbols;
  auto& heap = scratch.heap;
  symbols.resize(static_cast<size_t>(n));
  heap.clear();
  for (int32_t i = 0; i < n; ++i) {
    symbols[i] = Symbol{byte_ids_[static_cast<unsigned char>(piece[i])], i - 1, i + 1 < n ? i + 1 : -1};
  }
  for (int32_t i = 0; i + 1 < n; ++i) {
    if (const MergeSlot* m = find_merge(symbols[i].id, symbols[i + 1].id)) {
      heap.push_back(Candidate{m->rank, i, i + 1, symbols[i].id, symbols[i + 1].id, m->result});
    }
  }
  std::make_heap(heap.begin(), heap.end(), PopsLater{});
  auto consider = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    if (const MergeSlot* m = find_merge(symbols[left].id, symbols[right].id)) {
      heap.push_back(Candidate{m->rank, left, right, symbols[left].id, symbols[right].id, m->result});
      std::push_heap(heap.begin(), heap.end(), PopsLater{});
    }
  };
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), PopsLater{});
    const Candidate c = heap.back();
    heap.pop_back();
    Symbol& left = symbols[c.left];
    Symbol& right = symbols[c.right];
    // Stale when either side has merged since: ids only grow into longer pieces, so equal ids and
    // adjacency mean the pair is unchanged. A merged-away symbol has id -2.
    if (left.next != c.right || left.id != c.left_id || right.id != c.right_id) continue;
    left.id = c.result;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = c.left;
    right.id = -2;
    consider(left.prev, c.left);
    consider(c.left, left.next);
  }
  // A symbol without an id was never merged, so it is still the byte at its own index.
  for (int32_t i = 0; i >= 0; i = symbols[i].next) emit(symbols[i].id, piece[i], out);
}

std::string BpeTokenizer::token_to_piece(int32_t id, bool show_special) const {
  if (id < 0 || id >= vocab_.size()) {
    fail(ErrorCode::kInvalidArgument, "token id ", id, " is outside the vocabulary of ", vocab_.size(), " tokens");
  }
  switch (vocab_.types[id]) {
    case TokenType::kControl:
    case TokenType::kUnknown: return show_special ? vocab_.tokens[id] : std::string();
    case TokenType::kUserDefined: return vocab_.tokens[id];  // matched verbatim in text, so printed verbatim
    default: return pieces_[id];
  }
}

std::string BpeTokenizer::decode(std::span<const int32_t> ids, bool show_special) const {
  std::string out;
  for (int32_t id : ids) {
    if (id >= 0 && id < vocab_.size() && is_mergeable(vocab_.types[id])) {
      out += pieces_[id];
    } else {
      out += token_to_piece(id, show_special);
    }
  }
  return out;
}

}  // namespace mixserve
