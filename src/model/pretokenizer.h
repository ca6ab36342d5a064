// BPE pre-tokenisation: the regular expressions that cut text into the pieces a byte-level BPE
// tokenizer merges within (never across), one pattern set per tokenizer.ggml.pre value.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace mixserve {

/// Splits text with a sequence of regular expressions (PCRE2, UTF-8 with Unicode properties).
///
/// Semantics (those of Hugging Face's Sequence of Split pre-tokenizers with "isolated" behaviour):
/// the first pattern splits the text into its matches and the runs of text between them, both
/// kept as pieces; each piece is then split the same way by the next pattern, and so on. Anchors
/// such as `$` refer to the end of the piece being split. The pieces always cover the text exactly,
/// in order. Bytes that are not valid UTF-8 never match a pattern, so they stay in the runs between
/// matches and are tokenised as bytes.
///
/// Patterns for every name in ../shared/data/vocab/PRETOKENIZERS.txt are built in. An unknown or
/// empty tokenizer.ggml.pre value logs a warning naming it and falls back to the "gpt-2" patterns
/// (GPT-2's original split: contractions, letter runs, digit runs, other runs, whitespace).
class PreTokenizer {
 public:
  /// Compiles `patterns` (applied in order). ignore_merges: see ignore_merges(). Throws
  /// kInvalidArgument naming the pattern and the offset when one does not compile.
  PreTokenizer(std::string name, std::vector<std::string> patterns, bool ignore_merges = false);
  ~PreTokenizer();
  PreTokenizer(const PreTokenizer&) = delete;
  PreTokenizer& operator=(const PreTokenizer&) = delete;

  /// The shared pre-tokenizer for a tokenizer.ggml.pre value, compiled on first use and kept for
  /// the life of the process (thread-safe). Unknown or empty values log a warning and return the
  /// "gpt-2" pre-tokenizer.
  static const PreTokenizer& for_name(std::string_view pre);
  /// Whether `pre` is a recognised tokenizer.ggml.pre value (for_name does not fall back).
  static bool is_known(std::string_view pre);
  /// Every recognised tokenizer.ggml.pre value, in table order.
  static std::vector<std::string_view> known_names();

  /// Name this pre-tokenizer was built for ("gpt-2" for the fallback).
  const std::string& name() const { return name_; }
  /// The patterns, in the order they are applied.
  std::span<const std::string> patterns() const { return patterns_; }
  /// Whether a piece that is itself a vocabulary entry is emitted whole instead of being merged
  /// (Llama 3's tokenizer sets "ignore_merges" in its tokenizer.json).
  bool ignore_merges() const { return ignore_merges_; }

  /// Appends the pieces of `text` to `pieces` (views into `text`). Throws kResourceExhausted if
  /// PCRE2 reports a matching error (a limit hit), which the built-in patterns do not reach.
  void split(std::string_view text, std::vector<std::string_view>& pieces) const;

 private:
  struct Compiled;
  std::string name_;
  std::vector<std::string> patterns_;
  bool ignore_merges_ = false;
  std::vector<std::unique_ptr<Compiled>> compiled_;  // one per pattern
};

}  // namespace mixserve
