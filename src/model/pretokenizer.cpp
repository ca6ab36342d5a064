// Pre-tokenizer pattern sets and PCRE2 matching. The patterns are those listed for each
// tokenizer.ggml.pre value in ../shared/data/vocab/PRETOKENIZERS.txt (taken from the models' own
// tokenizer definitions); Unicode categories come from PCRE2 (UTF mode with Unicode properties).
#include "model/pretokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <map>
#include <mutex>

#include "common/error.h"
#include "common/log.h"

namespace mixserve {
namespace {

// Patterns as C string literals, exactly as PRETOKENIZERS.txt spells them.
// [llama3, llama-v3, llama-bpe, falcon3 (also dbrx, smaug-bpe)]
constexpr std::string_view kLlama3[] = {
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
};
// [deepseek-llm]
constexpr std::string_view kDeepseekLlm[] = {
    "[\r\n]",
    "\\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-ώᾀ-ᾴᾶ-ᾼιῂ-ῄῆ-ῌῐ-ΐῖ-Ίῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤΩℨK-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+",
    "\\s?[!-/:-~！-／：-～‘-‟　-。]+",
    "\\s+$",
    "[一-龥ࠀ-一가-퟿]+",
    "\\p{N}+",
};
// [deepseek-v3]
constexpr std::string_view kDeepseekV3[] = {
    "\\p{N}{1,3}",
    "[一-龥぀-ゟ゠-ヿ]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
};
// [deepseek-coder]
constexpr std::string_view kDeepseekCoder[] = {
    "[\r\n]",
    "\\s?\\p{L}+",
    "\\s?\\p{P}+",
    "[一-龥ࠀ-一가-퟿]+",
    "\\p{N}",
};
// [falcon]
constexpr std::string_view kFalcon[] = {
    "[\\p{P}\\$\\+<=>\\^~\\|`]+",
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
    "[0-9][0-9][0-9]",
};
// [starcoder, refact, command-r, smollm, codeshell, exaone, minerva]
constexpr std::string_view kStarcoder[] = {
    "\\p{N}",
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
};
// [gpt-2, mpt, olmo, jais, phi-2, roberta-bpe]
constexpr std::string_view kGpt2[] = {
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
};
// [qwen2, deepseek-r1-qwen, stablelm2]
constexpr std::string_view kQwen2[] = {
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
};

struct PatternSet {
  std::span<const std::string_view> patterns;
  std::span<const std::string_view> names;  // tokenizer.ggml.pre values using this set
  bool ignore_merges;
};

constexpr std::string_view kLlama3Names[] = {"llama3", "llama-v3", "llama-bpe"};
constexpr std::string_view kLlama3LikeNames[] = {"falcon3", "dbrx", "smaug-bpe"};
constexpr std::string_view kDeepseekLlmNames[] = {"deepseek-llm"};
constexpr std::string_view kDeepseekV3Names[] = {"deepseek-v3"};
constexpr std::string_view kDeepseekCoderNames[] = {"deepseek-coder"};
constexpr std::string_view kFalconNames[] = {"falcon"};
constexpr std::string_view kStarcoderNames[] = {"starcoder", "refact", "command-r", "smollm",
                                                "codeshell", "exaone",  "minerva"};
constexpr std::string_view kGpt2Names[] = {"gpt-2", "mpt", "olmo", "jais", "phi-2", "roberta-bpe"};
constexpr std::string_view kQwen2Names[] = {"qwen2", "deepseek-r1-qwen", "stablelm2"};

// Only Llama 3's own tokenizer.json sets "ignore_merges": true; its relatives share the split only.
constexpr PatternSet kSets[] = {
    {kLlama3, kLlama3Names, true},         {kLlama3, kLlama3LikeNames, false},
    {kDeepseekLlm, kDeepseekLlmNames, false}, {kDeepseekV3, kDeepseekV3Names, false},
    {kDeepseekCoder, kDeepseekCoderNames, false}, {kFalcon, kFalconNames, false},
    {kStarcoder, kStarcoderNames, false},  {kGpt2, kGpt2Names, false},
    {kQwen2, kQwen2Names, false},
};

constexpr std::string_view kFallbackName = "gpt-2";

const PatternSet* find_set(std::string_view pre) {
  for (const PatternSet& set : kSets) {
    for (std::string_view name : set.names) {
      if (name == pre) return &set;
    }
  }
  return nullptr;
}

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  const int n = pcre2_get_error_message(code, buffer, sizeof(buffer));
  return n < 0 ? str_cat("PCRE2 error ", code) : std::string(reinterpret_cast<const char*>(buffer));
}

// Per-thread match state: match data and a JIT stack that grows as needed (up to kMaxJitStack),
// reused across calls so that a split allocates nothing but its output.
constexpr size_t kMaxJitStack = size_t{64} << 20;

class MatchState {
 public:
  MatchState()
      : data_(pcre2_match_data_create(1, nullptr)),
        context_(pcre2_match_context_create(nullptr)),
        stack_(pcre2_jit_stack_create(32 * 1024, kMaxJitStack, nullptr)) {
    if (data_ == nullptr || context_ == nullptr) fail(ErrorCode::kResourceExhausted, "PCRE2: out of memory");
    if (stack_ != nullptr) pcre2_jit_stack_assign(context_, nullptr, stack_);
  }
  ~MatchState() {
    pcre2_jit_stack_free(stack_);
    pcre2_match_context_free(context_);
    pcre2_match_data_free(data_);
  }
  MatchState(const MatchState&) = delete;
  MatchState& operator=(const MatchState&) = delete;

  pcre2_match_data* data() { return data_; }
  pcre2_match_context* context() { return context_; }

 private:
  pcre2_match_data* data_;
  pcre2_match_context* context_;
  pcre2_jit_stack* stack_;
};

MatchState& match_state() {
  thread_local MatchState state;
  return state;
}

}  // namespace

struct PreTokenizer::Compiled {
  pcre2_code* code = nullptr;
  bool jit = false;  // JIT-compiled: matched through pcre2_jit_match, which skips pcre2_match's checks
  ~Compiled() { pcre2_code_free(code); }
};

PreTokenizer::PreTokenizer(std::string name, std::vector<std::string> patterns, bool ignore_merges)
    : name_(std::move(name)), patterns_(std::move(patterns)), ignore_merges_(ignore_merges) {
  if (patterns_.empty()) fail(ErrorCode::kInvalidArgument, "pre-tokenizer '", name_, "' has no patterns");
  for (size_t i = 0; i < patterns_.size(); ++i) {
    const std::string& pattern = patterns_[i];
    int error = 0;
    PCRE2_SIZE offset = 0;
    // MATCH_INVALID_UTF: subjects may hold any bytes; invalid sequences simply never match.
    auto compiled = std::make_unique<Compiled>();
    compiled->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &error, &offset, nullptr);
    if (compiled->code == nullptr) {
      fail(ErrorCode::kInvalidArgument, "pre-tokenizer '", name_, "': pattern ", i, " does not compile at offset ",
           offset, ": ", pcre2_message(error));
    }
    // JIT is an optimisation only: without it (unsupported CPU, no executable memory) the
    // interpreter gives the same matches.
    const int jit = pcre2_jit_compile(compiled->code, PCRE2_JIT_COMPLETE);
    compiled->jit = jit == 0;
    if (jit != 0) log_debug("pre-tokenizer '", name_, "': PCRE2 JIT unavailable (", pcre2_message(jit), ")");
    compiled_.push_back(std::move(compiled));
  }
}

PreTokenizer::~PreTokenizer() = default;

const PreTokenizer& PreTokenizer::for_name(std::string_view pre) {
  static std::mutex mutex;
  static std::map<std::string, std::unique_ptr<PreTokenizer>, std::less<>> cache;
  const PatternSet* set = find_set(pre);
  if (set == nullptr) {
    log_warn("unknown BPE pre-tokenizer tokenizer.ggml.pre = '", pre, "'; falling back to the '", kFallbackName,
             "' split patterns, so tokenisation may differ from the model's own tokenizer");
    pre = kFallbackName;
    set = find_set(pre);
  }
  std::lock_guard<std::mutex> lock(mutex);
  auto it = cache.find(pre);
  if (it == cache.end()) {
    std::vector<std::string> patterns(set->patterns.begin(), set->patterns.end());
    try {
      auto built = std::make_unique<PreTokenizer>(std::string(pre), std::move(patterns), set->ignore_merges);
      it = cache.emplace(std::string(pre), std::move(built)).first;
    } catch (const Error& e) {
      fail(ErrorCode::kInternal, "built-in ", e.what());
    }
  }
  return *it->second;
}

bool PreTokenizer::is_known(std::string_view pre) {
  return find_set(pre) != nullptr;
}

std::vector<std::string_view> PreTokenizer::known_names() {
  std::vector<std::string_view> names;
  for (const PatternSet& set : kSets) names.insert(names.end(), set.names.begin(), set.names.end());
  return names;
}

void PreTokenizer::split(std::string_view text, std::vector<std::string_view>& pieces) const {
  MatchState& state = match_state();
  PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(state.data());
  std::vector<std::string_view> current{text};
  std::vector<std::string_view> next;
  for (size_t p = 0; p < compiled_.size(); ++p) {
    const pcre2_code* code = compiled_[p]->code;
    const bool jit = compiled_[p]->jit;
    const bool last = p + 1 == compiled_.size();
    std::vector<std::string_view>& out = last ? pieces : next;
    for (std::string_view piece : current) {
      const auto* subject = reinterpret_cast<PCRE2_SPTR>(piece.data());
      size_t pos = 0;     // start of the run not yet emitted
      size_t search = 0;  // where the next match may start
      while (search < piece.size()) {
        // MATCH_INVALID_UTF makes the JIT safe on any bytes, so no UTF check is needed first.
        const int rc = jit ? pcre2_jit_match(code, subject, piece.size(), search, 0, state.data(), state.context())
                           : pcre2_match(code, subject, piece.size(), search, 0, state.data(), state.context());
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
          fail(ErrorCode::kResourceExhausted, "pre-tokenizer '", name_, "': pattern ", p, " failed on a piece of ",
               piece.size(), " bytes: ", pcre2_message(rc));
        }
        const size_t start = ovector[0];
        const size_t end = ovector[1];
        if (end <= start) {
          // An empty match splits nothing: search again from the next character.
          search = start + 1;
          while (search < piece.size() && (static_cast<unsigned char>(piece[search]) & 0xC0) == 0x80) ++search;
          continue;
        }
        if (start > pos) out.push_back(piece.substr(pos, start - pos));  // the run between matches
        out.push_back(piece.substr(start, end - start));
        pos = search = end;
      }
      if (pos < piece.size()) out.push_back(piece.substr(pos));
    }
    if (!last) {
      current.swap(next);
      next.clear();
    }
  }
}

}  // namespace mixserve
