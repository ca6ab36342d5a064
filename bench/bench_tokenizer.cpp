// Tokenizer throughput: encode (and decode) MB/s on ~1 MiB of mixed text with the Llama 2
// SentencePiece vocabulary and the gpt-2 and deepseek-llm byte-level BPE vocabularies
// (../shared/data, skipped when absent), and the builtin vocabulary. The tokens_per_second counter
// compares with prefill speed (tokens/s), which tokenisation must not limit.
// Run: build/bin/bench_tokenizer. MIXSERVE_SHARED_DIR overrides where ../shared is looked for.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "model/gguf.h"
#include "model/tokenizer.h"
#include "model/vocab.h"

namespace {

using mixserve::Tokenizer;

// ~1 MiB of English prose, code, CJK, Arabic, emoji and whitespace runs, deterministic.
const std::string& mixed_text() {
  static const std::string text = [] {
    const char* parts[] = {
        "The quick brown fox jumps over the lazy dog. Tokenizers split text into pieces that a "
        "language model can look up; common words become one piece, rare ones several. ",
        "for (int i = 0; i < n; ++i) {\n\tsum += values[i] * weights[i];\n}\n",
        "\xE4\xBB\x8A\xE5\xA4\xA9\xE5\xA4\xA9\xE6\xB0\x94\xE5\xBE\x88\xE5\xA5\xBD\xEF\xBC\x8C"
        "\xE6\x88\x91\xE4\xBB\xAC\xE5\x8E\xBB\xE5\x85\xAC\xE5\x9B\xAD\xE3\x80\x82 ",
        "\xD9\x85\xD8\xB1\xD8\xAD\xD8\xA8\xD8\xA7 \xD8\xA8\xD8\xA7\xD9\x84\xD8\xB9\xD8\xA7\xD9\x84"
        "\xD9\x85 ",
        "\xF0\x9F\x98\x80 \xF0\x9F\x9A\x80 emoji! ",
        "    indented line\n\n\n",
        "Numbers 3.14159, 2024-06-01 and 1,000,000 appear too. ",
    };
    std::string out;
    for (size_t i = 0; out.size() < (1u << 20); ++i) out += parts[(i * 5) % std::size(parts)];
    return out;
  }();
  return text;
}

std::filesystem::path shared_dir() {
  if (const char* env = std::getenv("MIXSERVE_SHARED_DIR")) return env;
  // bench/ lives in the repository root; ../shared sits beside it.
  return std::filesystem::path(__FILE__).parent_path().parent_path().parent_path() / "shared";
}

// Tokenizer of ../shared/data/vocab/ggml-vocab-<name>.gguf, or nullptr when absent.
std::unique_ptr<Tokenizer> shared_tokenizer(const std::string& name) {
  const auto path = shared_dir() / ("data/vocab/ggml-vocab-" + name + ".gguf");
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return nullptr;
  const auto file = mixserve::gguf::File::open(path.string());
  return Tokenizer::create(mixserve::Vocab::from_gguf(file));
}

const Tokenizer* llama_tokenizer() {
  static const std::unique_ptr<Tokenizer> tok = shared_tokenizer("llama-spm");
  return tok.get();
}

const Tokenizer* gpt2_tokenizer() {
  static const std::unique_ptr<Tokenizer> tok = shared_tokenizer("gpt-2");
  return tok.get();
}

const Tokenizer* deepseek_tokenizer() {
  static const std::unique_ptr<Tokenizer> tok = shared_tokenizer("deepseek-llm");
  return tok.get();
}

const Tokenizer* builtin_tokenizer() {
  static const std::unique_ptr<Tokenizer> tok = Tokenizer::create(mixserve::builtin_vocab());
  return tok.get();
}

void run_encode(benchmark::State& state, const Tokenizer* tok, const char* vocab = "llama-spm") {
  if (tok == nullptr) {
    state.SkipWithError((std::string("../shared/data/vocab/ggml-vocab-") + vocab + ".gguf absent: skipped").c_str());
    return;
  }
  const std::string& text = mixed_text();
  size_t tokens = 0;
  for (auto _ : state) {
    const auto ids = tok->encode(text, true, false);
    tokens = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
  state.counters["tokens"] = static_cast<double>(tokens);
  state.counters["bytes_per_token"] = static_cast<double>(text.size()) / static_cast<double>(tokens);
  state.counters["tokens_per_second"] =
      benchmark::Counter(static_cast<double>(tokens), benchmark::Counter::kIsIterationInvariantRate);
}

void run_decode(benchmark::State& state, const Tokenizer* tok, const char* vocab = "llama-spm") {
  if (tok == nullptr) {
    state.SkipWithError((std::string("../shared/data/vocab/ggml-vocab-") + vocab + ".gguf absent: skipped").c_str());
    return;
  }
  const auto ids = tok->encode(mixed_text(), true, false);
  for (auto _ : state) {
    const std::string text = tok->decode(ids);
    benchmark::DoNotOptimize(text.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * mixed_text().size()));
}

void BM_EncodeLlamaSpm(benchmark::State& state) {
  run_encode(state, llama_tokenizer());
}
void BM_EncodeBuiltin(benchmark::State& state) {
  run_encode(state, builtin_tokenizer());
}
void BM_DecodeLlamaSpm(benchmark::State& state) {
  run_decode(state, llama_tokenizer());
}

void BM_EncodeGpt2Bpe(benchmark::State& state) {
  run_encode(state, gpt2_tokenizer(), "gpt-2");
}
void BM_EncodeDeepseekLlmBpe(benchmark::State& state) {
  run_encode(state, deepseek_tokenizer(), "deepseek-llm");
}
void BM_DecodeGpt2Bpe(benchmark::State& state) {
  run_decode(state, gpt2_tokenizer(), "gpt-2");
}

BENCHMARK(BM_EncodeLlamaSpm)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EncodeGpt2Bpe)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EncodeDeepseekLlmBpe)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DecodeGpt2Bpe)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EncodeBuiltin)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DecodeLlamaSpm)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
