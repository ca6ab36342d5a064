// SentencePiece tokenizer: priority-queue pair merging over a linked list of symbols.
// Algorithm as described by the SentencePiece paper (Kudo & Richardson, 2018) and its BPE model:
// merge the best-scoring adjacent pair until none is a vocabulary piece; byte fallback after.
#include "model/tokenizer_spm.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "common/error.h"

namespace mixserve {
namespace {

constexpr std::string_view kSpaceMark = "\xE2\x96\x81";     // U+2581 LOWER ONE EIGHTH BLOCK
constexpr std::string_view kUnkSurface = " \xE2\x81\x87 ";  // " ⁇ ", SentencePiece's unk text

// Length of the well-formed UTF-8 sequence starting at s[pos] (Unicode 15, table 3-7), or 0 if
// the bytes there are not one (then the caller takes a single byte).
size_t utf8_sequence_length(std::string_view s, size_t pos) {
  const auto at = [&](size_t i) { return static_cast<unsigned char>(s[pos + i]); };
  const size_t left = s.size() - pos;
  const unsigned char c = at(0);
  if (c < 0x80) return 1;
  size_t n = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;  // no overlong forms
    if (c == 0xED) hi = 0x9F;  // no surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
  } else {
    return 0;
  }
  if (left < n) return 0;
  if (at(1) < lo || at(1) > hi) return 0;
  for (size_t i = 2; i < n; ++i) {
    if ((at(i) & 0xC0) != 0x80) return 0;
  }
  return n;
}

// "<0xAB>" -> 0xAB, or -1.
int parse_byte_token(std::string_view text) {
  if (text.size() != 6 || text.substr(0, 3) != "<0x" || text[5] != '>') return -1;
  int value = 0;
  for (size_t i = 3; i < 5; ++i) {
    const char c = text[i];
    int digit = 0;
    if (c >= '0' && c <= '9') {
      digit = c - '0';
    } else if (c >= 'A' && c <= 'F') {
      digit = c - 'A' + 10;
    } else if (c >= 'a' && c <= 'f') {
      digit = c - 'a' + 10;
    } else {
      return -1;
    }
    value = value * 16 + digit;
  }
  return value;
}

// A character (1..4 bytes) as an integer: its bytes little-endian. Distinct characters differ.
uint32_t pack_char(std::string_view c) {
  uint32_t v = 0;
  for (size_t i = 0; i < c.size(); ++i) v |= static_cast<uint32_t>(static_cast<unsigned char>(c[i])) << (8 * i);
  return v;
}

constexpr uint64_t kEmptySlot = ~uint64_t{0};  // no pair packs to this (0xFFFFFFFF is no character)

uint64_t join_key(uint32_t a, uint32_t b) {
  return (uint64_t{a} << 32) | b;
}

uint64_t join_slot(uint64_t key, uint64_t mask) {
  key ^= key >> 29;
  key *= 0x9E3779B97F4A7C15ull;  // Fibonacci hashing
  return (key >> 20) & mask;
}

bool is_mergeable(TokenType type) {
  // SentencePiece merges only into normal and user-defined pieces; control, unknown and byte
  // pieces are reserved and never produced by merging. Unused pieces are skipped as well.
  return type == TokenType::kNormal || type == TokenType::kUserDefined || type == TokenType::kUndefined;
}

bool is_special(TokenType type) {
  return type == TokenType::kControl || type == TokenType::kUserDefined || type == TokenType::kUnknown;
}

struct Symbol {
  uint32_t start;  // byte offset in the escaped run
  uint32_t len;    // bytes; 0 once merged into its left neighbour
  int32_t prev;    // index of the previous live symbol, -1 at the start
  int32_t next;    // index of the next live symbol, -1 at the end
};

struct Bigram {
  float score;
  int32_t left;
  int32_t right;
  uint32_t len;  // left.len + right.len when queued; a mismatch later means the entry is stale
};

// Pops first: higher score, then the leftmost pair.
bool before(const Bigram& a, const Bigram& b) {
  if (a.score != b.score) return a.score > b.score;
  return a.left < b.left;
}

// Pending pairs of one run. The pairs present at the start are sorted once and consumed in
// order; only pairs created by merges go through a heap. A pathological run (1 MB of spaces) then
// keeps a small heap instead of a million-entry one, which is cache-bound on every pop.
class MergeQueue {
 public:
  void reset() {
    initial_.clear();
    next_initial_ = 0;
    heap_.clear();
  }
  void add_initial(const Bigram& b) { initial_.push_back(b); }
  void seal() {
    std::sort(initial_.begin(), initial_.end(), [](const Bigram& a, const Bigram& b) { return before(a, b); });
  }
  void push(const Bigram& b) {
    heap_.push_back(b);
    std::push_heap(heap_.begin(), heap_.end(), PopsLater{});
  }
  /// Removes the next pair into `out`; false when none is left.
  bool pop(Bigram& out) {
    const bool have_initial = next_initial_ < initial_.size();
    if (!have_initial && heap_.empty()) return false;
    if (have_initial && (heap_.empty() || before(initial_[next_initial_], heap_.front()))) {
      out = initial_[next_initial_++];
      return true;
    }
    std::pop_heap(heap_.begin(), heap_.end(), PopsLater{});
    out = heap_.back();
    heap_.pop_back();
    return true;
  }

 private:
  struct PopsLater {
    bool operator()(const Bigram& a, const Bigram& b) const { return before(b, a); }
  };
  std::vector<Bigram> initial_;
  size_t next_initial_ = 0;
  std::vector<Bigram> heap_;
};

}  // namespace

SpmTokenizer::SpmTokenizer(Vocab vocab) : vocab_(std::move(vocab)) {
  vocab_.validate();
  const int32_t n = vocab_.size();
  byte_ids_.fill(-1);
  token_bytes_.assign(static_cast<size_t>(n), -1);
  pieces_.reserve(static_cast<size_t>(n));
  unk_id_ = vocab_.unk_id;
  for (int32_t id = 0; id < n; ++id) {
    const std::string& text = vocab_.tokens[id];
    const TokenType type = vocab_.types[id];
    if (is_mergeable(type) && !text.empty()) {
      float score = vocab_.scores[id];
      if (std::isnan(score)) score = -std::numeric_limits<float>::infinity();  // keep order strict
      if (pieces_.emplace(text, Piece{id, score}).second) {
        max_piece_bytes_ = std::max(max_piece_bytes_, text.size());
      }
    }
    if (type == TokenType::kByte) {
      const int b = parse_byte_token(text);
      if (b >= 0) {
        token_bytes_[id] = static_cast<int16_t>(b);
        if (byte_ids_[b] < 0) byte_ids_[b] = id;
      }
    }
    if (type == TokenType::kUnknown && unk_id_ < 0) unk_id_ = id;
    if (is_special(type) && !text.empty()) {
      specials_[static_cast<unsigned char>(text[0])].emplace_back(text, id);
    }
  }
  // Adjacent character pairs of every mergeable piece, for splitting text into independent runs.
  std::vector<uint64_t> pairs;
  for (const auto& [text, piece] : pieces_) {
    uint32_t prev = 0;
    for (size_t pos = 0, index = 0; pos < text.size(); ++index) {
      const size_t len = std::max<size_t>(1, utf8_sequence_length(text, pos));
      const uint32_t c = pack_char(std::string_view(text).substr(pos, len));
      if (index > 0) pairs.push_back(join_key(prev, c));
      prev = c;
      pos += len;
    }
  }
  std::sort(pairs.begin(), pairs.end());
  pairs.erase(std::unique(pairs.begin(), pairs.end()), pairs.end());
  size_t capacity = 16;
  while (capacity < 2 * pairs.size()) capacity *= 2;
  joins_.assign(capacity, kEmptySlot);
  joins_mask_ = capacity - 1;
  for (uint64_t key : pairs) {
    uint64_t slot = join_slot(key, joins_mask_);
    while (joins_[slot] != kEmptySlot) slot = (slot + 1) & joins_mask_;
    joins_[slot] = key;
  }

  for (auto& list : specials_) {
    std::stable_sort(list.begin(), list.end(),
                     [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  }
}

const SpmTokenizer::Piece* SpmTokenizer::find_piece(std::string_view text) const {
  const auto it = pieces_.find(text);
  return it == pieces_.end() ? nullptr : &it->second;
}

bool SpmTokenizer::may_join(uint32_t a, uint32_t b) const {
  const uint64_t key = join_key(a, b);
  for (uint64_t slot = join_slot(key, joins_mask_);; slot = (slot + 1) & joins_mask_) {
    if (joins_[slot] == key) return true;
    if (joins_[slot] == kEmptySlot) return false;
  }
}

std::vector<int32_t> SpmTokenizer::encode(std::string_view text, bool add_special, bool parse_special) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 2);
  if (add_special && vocab_.add_bos && vocab_.bos_id >= 0) out.push_back(vocab_.bos_id);
  // The space prefix goes on the first fragment and on each fragment right after a special token.
  bool prefix_next = vocab_.add_space_prefix;
  size_t fragment_start = 0;
  if (parse_special) {
    size_t i = 0;
    while (i < text.size()) {
      const auto& candidates = specials_[static_cast<unsigned char>(text[i])];
      const std::pair<std::string, int32_t>* match = nullptr;
      for (const auto& candidate : candidates) {
        if (text.substr(i).starts_with(candidate.first)) {
          match = &candidate;
          break;
        }
      }
      if (match == nullptr) {
        ++i;
        continue;
      }
      if (i > fragment_start) {
        encode_fragment(text.substr(fragment_start, i - fragment_start), prefix_next, out);
      }
      out.push_back(match->second);
      prefix_next = vocab_.add_space_prefix;
      i += match->first.size();
      fragment_start = i;
    }
  }
  if (fragment_start < text.size()) encode_fragment(text.substr(fragment_start), prefix_next, out);
  if (add_special && vocab_.add_eos && vocab_.eos_id >= 0) out.push_back(vocab_.eos_id);
  return out;
}

void SpmTokenizer::encode_fragment(std::string_view text, bool space_prefix, std::vector<int32_t>& out) const {
  // A merge joins adjacent characters into one piece, so where no piece contains the pair
  // (previous character, next character) no merge ever crosses. The text is cut there into runs
  // that are merged one at a time: within a run the (score, leftmost) order is the same as in one
  // global queue, so the result is identical, while memory stays proportional to the longest run
  // and each queue stays small and cache-resident.
  std::string run;              // escaped bytes of the current run (' ' is U+2581)
  std::vector<Symbol> symbols;  // symbols of the current run, offsets into `run`
  MergeQueue queue;

  auto find_pair = [&](int32_t left, int32_t right, Bigram& pair) {
    if (left < 0 || right < 0) return false;
    const uint32_t len = symbols[left].len + symbols[right].len;
    if (len > max_piece_bytes_) return false;
    const Piece* piece = find_piece(std::string_view(run).substr(symbols[left].start, len));
    if (piece == nullptr) return false;
    pair = Bigram{piece->score, left, right, len};
    return true;
  };

  auto merge_run = [&] {
    if (symbols.empty()) return;
    symbols.back().next = -1;
    queue.reset();
    Bigram pair;
    for (size_t j = 1; j < symbols.size(); ++j) {
      if (find_pair(static_cast<int32_t>(j - 1), static_cast<int32_t>(j), pair)) queue.add_initial(pair);
    }
    queue.seal();
    for (Bigram top; queue.pop(top);) {
      Symbol& left = symbols[top.left];
      Symbol& right = symbols[top.right];
      if (left.len == 0 || right.len == 0 || left.next != top.right || left.len + right.len != top.len) {
        continue;  // stale: one side has merged since this pair was queued
      }
      left.len += right.len;
      right.len = 0;
      left.next = right.next;
      if (right.next >= 0) symbols[right.next].prev = top.left;
      if (find_pair(left.prev, top.left, pair)) queue.push(pair);
      if (find_pair(top.left, left.next, pair)) queue.push(pair);
    }
    for (int32_t j = 0; j >= 0; j = symbols[j].next) {
      emit_symbol(std::string_view(run).substr(symbols[j].start, symbols[j].len), out);
    }
    run.clear();
    symbols.clear();
  };

  // Offsets are 32-bit to keep symbols small; only a run of joinable characters this long fails.
  constexpr size_t kMaxRunBytes = size_t{1} << 30;
  uint32_t prev_char = 0;
  auto add_char = [&](std::string_view c) {
    const uint32_t packed = pack_char(c);
    if (!symbols.empty() && !may_join(prev_char, packed)) merge_run();
    if (run.size() + c.size() > kMaxRunBytes) {
      fail(ErrorCode::kInvalidArgument, "text has a run of over ", kMaxRunBytes,
           " bytes without a possible split point; too long to tokenize");
    }
    const auto index = static_cast<int32_t>(symbols.size());
    symbols.push_back(Symbol{static_cast<uint32_t>(run.size()), static_cast<uint32_t>(c.size()), index - 1, index + 1});
    run += c;
    prev_char = packed;
  };

  if (space_prefix) add_char(kSpaceMark);
  for (size_t pos = 0; pos < text.size();) {
    if (text[pos] == ' ') {
      add_char(kSpaceMark);
      ++pos;
      continue;
    }
    // Splitting the raw text equals splitting the escaped text: neither ' ' nor U+2581's first
    // byte is a continuation byte, so the escape never changes where characters end.
    size_t len = utf8_sequence_length(text, pos);
    if (len == 0) len = 1;  // an invalid byte stands alone (and falls back to its byte token)
    add_char(text.substr(pos, len));
    pos += len;
  }
  merge_run();
}

void SpmTokenizer::emit_symbol(std::string_view symbol, std::vector<int32_t>& out) const {
  if (const Piece* piece = find_piece(symbol)) {
    out.push_back(piece->id);
    return;
  }
  const bool all_bytes =
      std::all_of(symbol.begin(), symbol.end(), [&](char c) { return byte_ids_[static_cast<unsigned char>(c)] >= 0; });
  if (all_bytes) {
    for (char c : symbol) out.push_back(byte_ids_[static_cast<unsigned char>(c)]);
    return;
  }
  if (unk_id_ < 0) {
    fail(ErrorCode::kInvalidArgument, "cannot tokenize a character of ", symbol.size(),
         " bytes: the vocabulary has neither its byte tokens nor an unknown token");
  }
  out.push_back(unk_id_);
}

std::string SpmTokenizer::token_to_piece(int32_t id, bool show_special) const {
  if (id < 0 || id >= vocab_.size()) {
    fail(ErrorCode::kInvalidArgument, "token id ", id, " is outside the vocabulary of ", vocab_.size(), " tokens");
  }
  const std::string& text = vocab_.tokens[id];
  switch (vocab_.types[id]) {
    case TokenType::kControl: return show_special ? text : std::string();
    case TokenType::kUnknown: return show_special ? text : std::string(kUnkSurface);
    case TokenType::kUserDefined: return text;  // matched verbatim in the input, so printed verbatim
    case TokenType::kByte:
      if (token_bytes_[id] >= 0) return std::string(1, static_cast<char>(token_bytes_[id]));
      break;  // a malformed byte token prints as a normal piece
    default: break;
  }
  std::string piece;
  piece.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    if (text.compare(i, kSpaceMark.size(), kSpaceMark) == 0) {
      piece += ' ';
      i += kSpaceMark.size();
    } else {
      piece += text[i++];
    }
  }
  return piece;
}

std::string SpmTokenizer::decode(std::span<const int32_t> ids, bool show_special) const {
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) {
    std::string piece = token_to_piece(ids[i], show_special);
    // The first piece of text (at the start or right after BOS) carries the space prefix.
    const bool first_text = i == 0 || (i == 1 && ids[0] == vocab_.bos_id);
    if (first_text && vocab_.add_space_prefix && !piece.empty() && piece[0] == ' ') {
      piece.erase(0, 1);
    }
    out += piece;
  }
  return out;
}

}  // namespace mixserve
