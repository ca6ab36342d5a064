// Vocabulary: GGUF tokenizer.ggml.* keys in and out, validation, and the built-in vocabulary.
#include "model/vocab.h"

#include <algorithm>
#include <array>

#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <string_view>
#include <unordered_map>

#include "common/error.h"
#include "model/gguf.h"

namespace mixserve {
namespace {

constexpr std::string_view kKeyModel = "tokenizer.ggml.model";
constexpr std::string_view kKeyTokens = "tokenizer.ggml.tokens";
constexpr std::string_view kKeyScores = "tokenizer.ggml.scores";
constexpr std::string_view kKeyTypes = "tokenizer.ggml.token_type";
constexpr std::string_view kKeyBos = "tokenizer.ggml.bos_token_id";
constexpr std::string_view kKeyEos = "tokenizer.ggml.eos_token_id";
constexpr std::string_view kKeyEot = "tokenizer.ggml.eot_token_id";
constexpr std::string_view kKeyUnk = "tokenizer.ggml.unknown_token_id";
constexpr std::string_view kKeyPad = "tokenizer.ggml.padding_token_id";
constexpr std::string_view kKeyAddBos = "tokenizer.ggml.add_bos_token";
constexpr std::string_view kKeyAddEos = "tokenizer.ggml.add_eos_token";
constexpr std::string_view kKeyAddSpacePrefix = "tokenizer.ggml.add_space_prefix";
constexpr std::string_view kKeyMerges = "tokenizer.ggml.merges";
constexpr std::string_view kKeyPre = "tokenizer.ggml.pre";

constexpr int32_t kMaxTokenType = static_cast<int32_t>(TokenType::kByte);

// Every merge must join two pieces into a third; a BPE tokenizer could never produce anything else.
void check_merges(const Vocab& v, ErrorCode code, std::string_view where) {
  if (v.merges.empty()) return;
  std::unordered_map<std::string_view, int32_t> ids;
  ids.reserve(v.tokens.size());
  for (size_t i = 0; i < v.tokens.size(); ++i) ids.emplace(v.tokens[i], static_cast<int32_t>(i));
  std::string joined;
  for (size_t i = 0; i < v.merges.size(); ++i) {
    const std::string& merge = v.merges[i];
    const auto halves = split_merge(merge);
    if (!halves) {
      fail(code, where, ": ", kKeyMerges, "[", i, "] = '", merge, "' is not two pieces separated by a space");
    }
    for (std::string_view half : {halves->first, halves->second}) {
      if (!ids.contains(half)) {
        fail(code, where, ": ", kKeyMerges, "[", i, "] = '", merge, "' names '", half,
             "', which is not in the vocabulary");
      }
    }
    joined.assign(halves->first);
    joined += halves->second;
    if (!ids.contains(joined)) {
      fail(code, where, ": ", kKeyMerges, "[", i, "] = '", merge, "' makes '", joined,
           "', which is not in the vocabulary");
    }
  }
}

// Shared by validate() (hand-built vocabularies: kInvalidArgument) and from_gguf() (kDataLoss).
void check_vocab(const Vocab& v, ErrorCode code, std::string_view where) {
  if (v.tokens.empty()) fail(code, where, ": ", kKeyTokens, " is empty");
  if (v.tokens.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    fail(code, where, ": ", kKeyTokens, " has ", v.tokens.size(), " entries (too many)");
  }
  if (v.scores.size() != v.tokens.size()) {
    fail(code, where, ": ", kKeyScores, " has ", v.scores.size(), " entries but ", kKeyTokens, " has ",
         v.tokens.size());
  }
  if (v.types.size() != v.tokens.size()) {
    fail(code, where, ": ", kKeyTypes, " has ", v.types.size(), " entries but ", kKeyTokens, " has ", v.tokens.size());
  }
  for (size_t i = 0; i < v.types.size(); ++i) {
    const auto t = static_cast<int32_t>(v.types[i]);
    if (t < 0 || t > kMaxTokenType) {
      fail(code, where, ": ", kKeyTypes, "[", i, "] = ", t, " is not a token type (0..", kMaxTokenType, ")");
    }
  }
  const std::pair<std::string_view, int32_t> ids[] = {
      {kKeyBos, v.bos_id}, {kKeyEos, v.eos_id}, {kKeyEot, v.eot_id}, {kKeyUnk, v.unk_id}, {kKeyPad, v.pad_id}};
  for (const auto& [key, id] : ids) {
    if (id < -1 || id >= v.size()) {
      fail(code, where, ": ", key, " = ", id, " is outside the vocabulary of ", v.size(), " tokens");
    }
  }
  check_merges(v, code, where);
}

int32_t read_id(const gguf::File& file, std::string_view key) {
  const auto value = file.get_int(key);
  if (!value) return -1;
  // -1 is accepted as an explicit "none"; anything else must index the vocabulary (checked later).
  if (*value < -1 || *value > std::numeric_limits<int32_t>::max()) {
    fail(ErrorCode::kDataLoss, "GGUF file '", file.path(), "': ", key, " = ", *value, " is not a token id");
  }
  return static_cast<int32_t>(*value);
}

}  // namespace

std::optional<std::pair<std::string_view, std::string_view>> split_merge(std::string_view merge) {
  const size_t space = merge.find(' ', 1);
  if (space == std::string_view::npos || space + 1 >= merge.size()) return std::nullopt;
  return std::pair{merge.substr(0, space), merge.substr(space + 1)};
}

std::vector<int32_t> Vocab::end_of_generation_ids() const {
  static const std::array<std::string_view, 7> kMarkers = {
      "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>",
      "<｜end▁of▁sentence｜>"};  // DeepSeek
  std::vector<int32_t> ids;
  for (int32_t id : {eos_id, eot_id}) {
    if (id >= 0 && id < size()) ids.push_back(id);
  }
  for (int32_t i = 0; i < size(); ++i) {
    const TokenType t = types[static_cast<size_t>(i)];
    if (t != TokenType::kControl && t != TokenType::kUserDefined) continue;
    if (std::find(kMarkers.begin(), kMarkers.end(), tokens[static_cast<size_t>(i)]) == kMarkers.end()) continue;
    if (std::find(ids.begin(), ids.end(), i) == ids.end()) ids.push_back(i);
  }
  return ids;
}

void Vocab::validate() const {
  check_vocab(*this, ErrorCode::kInvalidArgument, "vocabulary");
}

Vocab Vocab::from_gguf(const gguf::File& file) {
  Vocab v;
  const auto model = file.get_string(kKeyModel);
  if (!model) fail(ErrorCode::kDataLoss, "GGUF file '", file.path(), "': missing ", kKeyModel);
  v.model = *model;
  auto tokens = file.get_string_array(kKeyTokens);
  if (!tokens) fail(ErrorCode::kDataLoss, "GGUF file '", file.path(), "': missing ", kKeyTokens);
  v.tokens = std::move(*tokens);
  const size_t n = v.tokens.size();

  if (auto scores = file.get_float_array(kKeyScores)) {
    v.scores = std::move(*scores);
  } else {
    v.scores.assign(n, 0.0f);  // optional: all pieces equally likely
  }
  if (auto types = file.get_int_array(kKeyTypes)) {
    v.types.reserve(types->size());
    for (size_t i = 0; i < types->size(); ++i) {
      const int64_t t = (*types)[i];
      if (t < 0 || t > kMaxTokenType) {
        fail(ErrorCode::kDataLoss, "GGUF file '", file.path(), "': ", kKeyTypes, "[", i, "] = ", t,
             " is not a token type (0..", kMaxTokenType, ")");
      }
      v.types.push_back(static_cast<TokenType>(t));
    }
  } else {
    v.types.assign(n, TokenType::kNormal);
  }

  v.bos_id = read_id(file, kKeyBos);
  v.eos_id = read_id(file, kKeyEos);
  v.eot_id = read_id(file, kKeyEot);
  v.unk_id = read_id(file, kKeyUnk);
  v.pad_id = read_id(file, kKeyPad);
  // Defaults follow the tokenizer family: SentencePiece adds BOS and a space prefix, others not.
  const bool spm = v.model == "llama";
  v.add_bos = file.get_bool(kKeyAddBos).value_or(spm);
  v.add_eos = file.get_bool(kKeyAddEos).value_or(false);
  v.add_space_prefix = file.get_bool(kKeyAddSpacePrefix).value_or(spm);
  if (auto merges = file.get_string_array(kKeyMerges)) v.merges = std::move(*merges);
  v.pre = file.get_string(kKeyPre).value_or("");
  check_vocab(v, ErrorCode::kDataLoss, str_cat("GGUF file '", file.path(), "'"));
  return v;
}

void Vocab::to_gguf(gguf::Writer& writer) const {
  writer.set(std::string(kKeyModel), gguf::make_string(model));
  writer.set(std::string(kKeyTokens), gguf::make_string_array(tokens));
  writer.set(std::string(kKeyScores), gguf::make_float32_array(scores));
  std::vector<int32_t> type_values;
  type_values.reserve(types.size());
  for (TokenType t : types) type_values.push_back(static_cast<int32_t>(t));
  writer.set(std::string(kKeyTypes), gguf::make_int32_array(type_values));
  const std::pair<std::string_view, int32_t> ids[] = {
      {kKeyBos, bos_id}, {kKeyEos, eos_id}, {kKeyEot, eot_id}, {kKeyUnk, unk_id}, {kKeyPad, pad_id}};
  for (const auto& [key, id] : ids) {
    if (id >= 0) writer.set(std::string(key), gguf::make_uint32(static_cast<uint32_t>(id)));
  }
  writer.set(std::string(kKeyAddBos), gguf::make_bool(add_bos));
  writer.set(std::string(kKeyAddEos), gguf::make_bool(add_eos));
  writer.set(std::string(kKeyAddSpacePrefix), gguf::make_bool(add_space_prefix));
  if (!pre.empty()) writer.set(std::string(kKeyPre), gguf::make_string(pre));
  if (!merges.empty()) writer.set(std::string(kKeyMerges), gguf::make_string_array(merges));
}

namespace {

// Common English words, most frequent first (the order sets the tie-breaking score bonus).
constexpr std::string_view kBuiltinWords =
    "the of and to a in is it you that he was for on are with as his they be at one have this "
    "from or had by not word but what some we can out other were all there when up use your how "
    "said an each she which do their time if will way about many then them write would like so "
    "these her long make thing see him two has look more day could go come did number sound no "
    "most people my over know water than call first who may down side been now find any new work "
    "part take get place made live where after back little only round man year came show every "
    "good me give our under name very through just form sentence great think say help low line "
    "differ turn cause much mean before move right boy old too same tell does set three want air "
    "well also play small end put home read hand port large spell add even land here must big "
    "high such follow act why ask men change went light kind off need house picture try us again "
    "animal point mother world near build self earth father head stand own page should country "
    "found answer school grow study still learn plant cover food sun four between state keep eye "
    "never last let thought city tree cross farm hard start might story saw far sea draw left "
    "late run while press close night real life few north open seem together next white children "
    "begin got walk example ease paper group always music those both mark often letter until mile "
    "river car feet care second book carry took science eat room friend began idea fish mountain "
    "stop once base hear horse cut sure watch color face wood main enough plain girl usual young "
    "ready above ever red list though feel talk bird soon body dog family direct leave song "
    "measure door product black short class wind question happen complete ship area half rock "
    "order fire south problem piece told knew pass since top whole king space heard best hour "
    "better true during hundred five remember step early hold west ground interest reach fast "
    "sing listen six table travel less morning ten simple several toward war lay against pattern "
    "slow center love person money serve appear road map rain rule pull cold notice voice unit "
    "power town fine certain fly fall lead cry dark machine note wait plan figure star box field "
    "rest correct able done drive stood contain front teach week final gave green quick develop "
    "ocean warm free minute strong special mind behind clear produce fact street nothing course "
    "stay full force blue object decide surface deep moon island foot system busy test record "
    "boat common gold possible plane dry wonder laugh thousand ago ran check game shape hot miss "
    "brought heat snow bring yes distant fill east paint language among model token data code "
    "file function value return string text input output server request user assistant hello "
    "brown fox jumps lazy computer program error result because information however";

// Capitalised sentence starters, also "▁"-prefixed.
constexpr std::string_view kBuiltinCapitalised =
    "The I It In This That We You He She A And But If What How When Why Hello World";

// Word endings and contractions that follow a word without a space.
constexpr std::string_view kBuiltinSuffixes =
    "s es ed ing er ers ly tion tions ment ness able al ic ity ive ous est ful less 's 't 're 've "
    "'ll 'd 'm";

constexpr std::string_view kSpaceMark = "\xE2\x96\x81";  // U+2581, SentencePiece's space

size_t utf8_char_count(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

}  // namespace

Vocab builtin_vocab() {
  Vocab v;
  v.model = "llama";
  auto add = [&v](std::string text, float score, TokenType type) {
    v.tokens.push_back(std::move(text));
    v.scores.push_back(score);
    v.types.push_back(type);
  };
  add("<unk>", 0.0f, TokenType::kUnknown);
  add("<s>", 0.0f, TokenType::kControl);
  add("</s>", 0.0f, TokenType::kControl);
  v.unk_id = 0;
  v.bos_id = 1;
  v.eos_id = 2;
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    add(name, 0.0f, TokenType::kByte);
  }
  add(std::string(kSpaceMark), 0.0f, TokenType::kNormal);
  for (char c = '!'; c <= '~'; ++c) add(std::string(1, c), 0.0f, TokenType::kNormal);

  // Every multi-character piece comes with all its prefixes so that pairwise merges can reach it.
  // Score = length in characters (longer merges first) + a bonus in [0, 0.5) for earlier (more
  // frequent) source words, mimicking SentencePiece's "higher score merges first".
  std::vector<std::string> sources;
  auto collect = [&sources](std::string_view list, bool space_prefix) {
    size_t pos = 0;
    while (pos < list.size()) {
      size_t end = list.find(' ', pos);
      if (end == std::string_view::npos) end = list.size();
      if (end > pos) {
        sources.push_back((space_prefix ? std::string(kSpaceMark) : std::string()) +
                          std::string(list.substr(pos, end - pos)));
      }
      pos = end + 1;
    }
  };
  collect(kBuiltinWords, true);
  collect(kBuiltinCapitalised, true);
  collect(kBuiltinSuffixes, false);
  std::string spaces(kSpaceMark);
  for (int k = 2; k <= 8; ++k) {
    spaces += kSpaceMark;
    sources.push_back(spaces);
  }

  std::map<std::string, float> pieces;  // piece -> score; first (most frequent) source wins
  for (size_t rank = 0; rank < sources.size(); ++rank) {
    const std::string& word = sources[rank];
    const float bonus = 0.5f * (1.0f - static_cast<float>(rank) / static_cast<float>(sources.size()));
    for (size_t end = 1; end <= word.size(); ++end) {
      if (end < word.size() && (static_cast<unsigned char>(word[end]) & 0xC0) == 0x80) continue;
      const std::string piece = word.substr(0, end);
      const size_t chars = utf8_char_count(piece);
      if (chars < 2) continue;  // single characters are already present
      pieces.emplace(piece, static_cast<float>(chars) + bonus);
    }
  }
  for (const auto& [piece, score] : pieces) add(piece, score, TokenType::kNormal);
  return v;
}

}  // namespace mixserve
