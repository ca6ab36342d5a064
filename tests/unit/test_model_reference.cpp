// The engine (Model::load + Session::eval) against the independent double-precision reference
// forward pass, on synthetic "tiny" Llama and Qwen2 models of every weight type, tied and untied.
//
// The reference reads the same file, so it uses exactly the dequantised weights the engine has; the
// remaining differences, and the tolerances they justify (error = max |engine - reference| over all
// positions and tokens, divided by max |reference logit|):
//  * F32, F16, BF16 weights: every F16/BF16 weight is exactly a float, and the engine keeps F32
//    activations for these types (cpu::activation_type), so the only difference is float vs double
//    arithmetic. Float sums of K <= 160 products carry a relative error of order sqrt(K) * 2^-24
//    ~ 1e-6; through two layers, softmax, exp/sin/cos and the 1/RMS factors that stays well under
//    1e-5. The bound is 1e-4 for all three.
//  * Q8_0, Q4_0 weights: the engine rounds each activation block of 32 to Q8_0 (scale amax/127)
//    before the integer dot products. That is a per-element error uniform in +-d/2 with
//    d ~ 2.5 rms/127, i.e. ~0.6% of the input's RMS, which adds ~0.6% relative noise to every
//    product. About ten quantised products lie on each path to the logits (q/k/v, o, gate/up, down
//    per layer, then the output), and the logit error is the largest of ~1700 noisy values, ~3.5
//    standard deviations, against a largest logit of ~3.5 standard deviations of the logits:
//    sqrt(10) * 0.6% ~ 2% expected (1.6-2.5% measured), bound 5e-2.
//    A second, much tighter check runs the reference with that rounding emulated (ReferenceModel's
//    quantize_activations: d = amax/127 stored as fp16, q = round(x/d), the rule Q8_0 weights use
//    too). The engine then differs only where an activation lies within float error of a rounding
//    boundary and rounds the other way: each such flip moves one input by d and the logits by
//    ~1e-3 relative (measured: 5e-8 without a flip, 2e-3 with one). Bound 1e-2, a fifth of the
//    first: it catches errors of a few percent that the estimate-based bound would let through.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>

#include "common/error.h"
#include "engine/model.h"
#include "engine/session.h"
#include "model/gguf.h"
#include "model/synth.h"
#include "support/reference_forward.h"
#include "support/test_support.h"

namespace mixserve {
namespace {

using testing::ReferenceModel;
using testing::TempDir;

struct Case {
  std::string arch;
  DType type;
  bool tied;
};

// Makes gtest print a case as its name instead of raw bytes.
void PrintTo(const Case& c, std::ostream* os) {
  *os << c.arch << "/" << dtype_name(c.type) << (c.tied ? "/tied" : "/untied");
}

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  return info.param.arch + "_" + std::string(dtype_name(info.param.type)) + (info.param.tied ? "_tied" : "_untied");
}

// Engine against the reference that rounds activations the same way (see the file comment).
constexpr double kEmulatedTolerance = 1e-2;

double tolerance(DType type) { return type == DType::kQ8_0 || type == DType::kQ4_0 ? 5e-2 : 1e-4; }

uint64_t seed_of(const Case& c) { return 1000 + static_cast<uint64_t>(c.type) * 4 + (c.arch == "qwen2") * 2 + c.tied; }

std::string write_model(const TempDir& dir, const Case& c, const std::string& shape = "tiny") {
  SynthOptions o;
  o.arch = c.arch;
  o.shape = parse_synth_shape(shape);
  o.type = c.type;
  o.tied_output = c.tied;
  o.seed = seed_of(c);
  const std::string path = dir.file("model.gguf");
  write_synth_model(o, path);
  return path;
}

// A deterministic prompt: BOS, then pseudo-random ids over the whole vocabulary.
std::vector<int32_t> prompt(int n, int32_t n_vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> tokens = {1};
  while (static_cast<int>(tokens.size()) < n) tokens.push_back(static_cast<int32_t>(rng() % static_cast<uint64_t>(n_vocab)));
  return tokens;
}

struct Deviation {
  double rel = 0;       // max |a - b| / max |b|
  double abs = 0;       // max |a - b|
  int64_t pos = -1;     // where the largest difference is
  int64_t token = -1;
};

// Compares engine logits (n_tokens x n_vocab, row-major) with reference rows.
Deviation compare(const std::vector<float>& engine, const std::vector<std::vector<double>>& ref) {
  Deviation d;
  double scale = 0;
  const size_t n_vocab = ref.front().size();
  for (size_t p = 0; p < ref.size(); ++p) {
    for (size_t t = 0; t < n_vocab; ++t) {
      scale = std::max(scale, std::fabs(ref[p][t]));
      const double diff = std::fabs(static_cast<double>(engine[p * n_vocab + t]) - ref[p][t]);
      if (!(diff <= d.abs)) {  // also catches NaN
        d.abs = diff;
        d.pos = static_cast<int64_t>(p);
        d.token = static_cast<int64_t>(t);
      }
    }
  }
  d.rel = d.abs / scale;
  return d;
}

std::string describe(const Deviation& d) {
  return str_cat("max abs diff ", d.abs, " (relative ", d.rel, ") at position ", d.pos, ", token ", d.token);
}

// The reference's logits at every position of `tokens`, one row per position.
std::vector<std::vector<double>> reference_logits(ReferenceModel& reference, const std::vector<int32_t>& tokens) {
  std::vector<std::vector<double>> rows;
  for (const int32_t t : tokens) rows.push_back(reference.step(t));
  return rows;
}

// Rows of reference logits as one float vector, as the engine returns them.
std::vector<float> flatten(const std::vector<std::vector<double>>& rows) {
  std::vector<float> flat;
  for (const auto& row : rows) flat.insert(flat.end(), row.begin(), row.end());
  return flat;
}

int32_t argmax(std::span<const float> logits) {
  return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

class EngineVsReference : public ::testing::TestWithParam<Case> {};

TEST_P(EngineVsReference, LogitsOfEveryPosition) {
  const Case c = GetParam();
  TempDir dir;
  const std::string path = write_model(dir, c);
  const gguf::File file = gguf::File::open(path);
  ReferenceModel exact(file);
  ReferenceModel emulated(file, /*quantize_activations=*/true);
  const int32_t n_vocab = static_cast<int32_t>(exact.config().n_vocab);
  const std::vector<int32_t> tokens = prompt(40, n_vocab, seed_of(c));
  const auto ref = reference_logits(exact, tokens);
  const auto ref_q8 = reference_logits(emulated, tokens);

  LoadOptions load;
  load.n_threads = 2;
  const auto model = Model::load(path, load);
  ASSERT_EQ(model->config().n_vocab, n_vocab);
  Session session(*model);
  const std::vector<float> logits = session.eval(tokens, /*all_logits=*/true);
  ASSERT_EQ(logits.size(), tokens.size() * static_cast<size_t>(n_vocab));
  EXPECT_EQ(session.n_past(), static_cast<int64_t>(tokens.size()));
  const Deviation d = compare(logits, ref);
  EXPECT_LE(d.rel, tolerance(c.type)) << describe(d);
  std::string note;
  if (c.type == DType::kQ8_0 || c.type == DType::kQ4_0) {
    const Deviation expected = compare(flatten(ref_q8), ref);
    const Deviation vs_emulated = compare(logits, ref_q8);
    EXPECT_LE(vs_emulated.rel, kEmulatedTolerance) << "against the reference with Q8_0 activations: "
                                                   << describe(vs_emulated);
    note = str_cat("; emulated Q8_0 activations ", expected.rel, ", engine vs emulation ", vs_emulated.rel);
  }
  std::printf("[ reference ] %s: relative error %.3g (bound %.0e%s)\n", case_name({c, 0}).c_str(), d.rel,
              tolerance(c.type), note.c_str());

  // The same tokens in uneven pieces, and through small batches, give the same logits.
  SessionOptions small_batch;
  small_batch.n_batch = 7;
  Session pieces(*model, small_batch);
  std::vector<float> joined;
  for (size_t begin = 0; begin < tokens.size();) {
    const size_t n = std::min<size_t>(tokens.size() - begin, begin % 3 + 1 + begin / 4);
    const auto part = pieces.eval(std::span(tokens).subspan(begin, n), true);
    joined.insert(joined.end(), part.begin(), part.end());
    begin += n;
  }
  ASSERT_EQ(joined.size(), logits.size());
  const Deviation dp = compare(joined, ref);
  EXPECT_LE(dp.rel, tolerance(c.type)) << "evaluated in pieces: " << describe(dp);

  // Last-token-only logits equal the last row of the full output.
  Session last_only(*model);
  const std::vector<float> last = last_only.eval(tokens, false);
  ASSERT_EQ(last.size(), static_cast<size_t>(n_vocab));
  const Deviation dl = compare(last, {ref.back()});
  EXPECT_LE(dl.rel, tolerance(c.type)) << "last logits only: " << describe(dl);
}

std::vector<Case> all_cases() {
  std::vector<Case> cases;
  for (const std::string arch : {"llama", "qwen2"}) {
    for (const DType type : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0}) {
      for (const bool tied : {false, true}) cases.push_back({arch, type, tied});
    }
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Tiny, EngineVsReference, ::testing::ValuesIn(all_cases()), case_name);

// ---- greedy decoding on F32 models --------------------------------------------------------------
constexpr int kGreedyTokens = 64;

// Greedy decoding with the KV cache: the prompt once, then one token per eval.
std::vector<int32_t> greedy_cached(const Model& model, const std::vector<int32_t>& start, int n) {
  Session session(model);
  std::vector<float> logits = session.eval(start);
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) {
    out.push_back(argmax(logits));
    if (i + 1 < n) logits = session.eval(std::span(&out.back(), 1));
  }
  return out;
}

// Greedy decoding without a cache: a fresh session re-evaluates the whole prefix at every step.
std::vector<int32_t> greedy_uncached(const Model& model, const std::vector<int32_t>& start, int n) {
  std::vector<int32_t> all = start;
  for (int i = 0; i < n; ++i) {
    Session session(model);
    all.push_back(argmax(session.eval(all)));
  }
  return {all.begin() + static_cast<std::ptrdiff_t>(start.size()), all.end()};
}

std::string first_mismatch(const std::vector<int32_t>& got, const std::vector<int32_t>& want,
                           const std::vector<double>& margins) {
  for (size_t i = 0; i < want.size(); ++i) {
    if (i >= got.size() || got[i] != want[i]) {
      return str_cat("first difference at step ", i, ": got ", i < got.size() ? got[i] : -1, ", reference ", want[i],
                     " (reference gap to the runner-up: ", margins[i], ")");
    }
  }
  return "sequences agree";
}

class GreedyF32 : public ::testing::TestWithParam<Case> {};

TEST_P(GreedyF32, SameTokensAsReferenceWithAndWithoutCacheAndAcrossThreads) {
  const Case c = GetParam();
  TempDir dir;
  const std::string path = write_model(dir, c);
  const gguf::File file = gguf::File::open(path);
  const std::vector<int32_t> start = {1, 300, 301};
  std::vector<double> margins;
  const std::vector<int32_t> want = testing::reference_greedy(file, start, kGreedyTokens, &margins);

  LoadOptions one, two;
  one.n_threads = 1;
  two.n_threads = 2;
  const auto model1 = Model::load(path, one);
  const auto model2 = Model::load(path, two);
  const auto cached1 = greedy_cached(*model1, start, kGreedyTokens);
  const auto cached2 = greedy_cached(*model2, start, kGreedyTokens);
  const auto uncached2 = greedy_uncached(*model2, start, kGreedyTokens);
  EXPECT_EQ(cached1, want) << "KV cache, 1 thread: " << first_mismatch(cached1, want, margins);
  EXPECT_EQ(cached2, want) << "KV cache, 2 threads: " << first_mismatch(cached2, want, margins);
  EXPECT_EQ(uncached2, want) << "no cache, 2 threads: " << first_mismatch(uncached2, want, margins);
}

INSTANTIATE_TEST_SUITE_P(Tiny, GreedyF32,
                         ::testing::Values(Case{"llama", DType::kF32, false}, Case{"llama", DType::kF32, true},
                                           Case{"qwen2", DType::kF32, false}, Case{"qwen2", DType::kF32, true}),
                         case_name);

// ---- f16 and Q8_0 KV caches ---------------------------------------------------------------------

// A cache of another type rounds every key and value as it is stored: f16 to 11 significant bits,
// Q8_0 each block of 32 to multiples of its scale (amax / 127). The engine against the reference
// that rounds the same way then differs only by float vs double arithmetic plus the rare value
// within float error of a rounding boundary that rounds the other way: one f16 ulp (2^-11
// relative) or one Q8_0 step (amax/127) in one element. Bounds: 2e-4 (f16), 2e-3 (Q8_0, whose steps
// are 16x coarser). The same engine against the reference that does not round shows what the
// rounding itself costs (printed, and required to be 3x the difference), so the check tells a
// cache that rounds as specified from one that does not, or rounds differently.
struct CacheCase {
  Case model;
  DType cache_type;
};

void PrintTo(const CacheCase& c, std::ostream* os) {
  PrintTo(c.model, os);
  *os << " " << dtype_name(c.cache_type) << " cache";
}

double cache_tolerance(DType cache_type) {
  return cache_type == DType::kQ8_0 ? 2e-3 : 2e-4;
}

class CacheTypes : public ::testing::TestWithParam<CacheCase> {};

TEST_P(CacheTypes, LogitsMatchTheReferenceThatRoundsItsCache) {
  const Case c = GetParam().model;
  const DType cache_type = GetParam().cache_type;
  TempDir dir;
  // Q8_0 caches need heads of whole blocks: 32 dims (4 heads of 32, 2 KV heads). The weights are
  // F32 or F16, whose products keep F32 activations, so that the cache is the only rounding.
  const std::string path =
      write_model(dir, c, cache_type == DType::kQ8_0 ? "embd=128,layers=2,heads=4,kv_heads=2,ff=320,ctx=128" : "tiny");
  const gguf::File file = gguf::File::open(path);
  ReferenceModel exact(file);
  ReferenceModel rounded(file);
  rounded.set_cache_type(cache_type);
  const int32_t n_vocab = static_cast<int32_t>(exact.config().n_vocab);
  const std::vector<int32_t> tokens = prompt(60, n_vocab, seed_of(c) + 7);
  const auto ref = reference_logits(exact, tokens);
  const auto ref_rounded = reference_logits(rounded, tokens);
  LoadOptions load;
  load.n_threads = 2;
  load.cache_type = cache_type;
  const auto model = Model::load(path, load);
  Session session(*model);
  const std::vector<float> logits = session.eval(tokens, /*all_logits=*/true);
  const double bound = cache_tolerance(cache_type);
  const Deviation d = compare(logits, ref_rounded);
  EXPECT_LE(d.rel, bound) << describe(d);
  const Deviation rounding = compare(flatten(ref_rounded), ref);
  const Deviation unrounded = compare(logits, ref);
  EXPECT_GT(unrounded.rel, 3 * d.rel) << "the rounding must show against the reference that does not round";
  std::printf(
      "[ reference ] %s, %s cache: relative error %.3g against the rounding reference (bound %.0e); "
      "%.3g against the f32-cache reference (the rounding alone: %.3g)\n",
      case_name({c, 0}).c_str(), std::string(dtype_name(cache_type)).c_str(), d.rel, bound, unrounded.rel,
      rounding.rel);

  // One token at a time (the decode kernels) gives the same logits as the prompt at once.
  Session stepwise(*model);
  std::vector<float> joined;
  for (const int32_t t : tokens) {
    const auto part = stepwise.eval(std::span(&t, 1), true);
    joined.insert(joined.end(), part.begin(), part.end());
  }
  const Deviation ds = compare(joined, ref_rounded);
  EXPECT_LE(ds.rel, bound) << "one token at a time: " << describe(ds);
}

std::string cache_case_name(const ::testing::TestParamInfo<CacheCase>& info) {
  return case_name({info.param.model, 0}) + "_" + std::string(dtype_name(info.param.cache_type));
}

INSTANTIATE_TEST_SUITE_P(Tiny, CacheTypes,
                         ::testing::Values(CacheCase{{"llama", DType::kF32, false}, DType::kF16},
                                           CacheCase{{"qwen2", DType::kF32, true}, DType::kF16},
                                           CacheCase{{"llama", DType::kF16, false}, DType::kF16},
                                           CacheCase{{"llama", DType::kF32, false}, DType::kQ8_0},
                                           CacheCase{{"qwen2", DType::kF32, true}, DType::kQ8_0},
                                           CacheCase{{"llama", DType::kF16, false}, DType::kQ8_0}),
                         cache_case_name);

// ---- errors -------------------------------------------------------------------------------------
template <typename Fn>
void expect_code(Fn fn, ErrorCode code) {
  try {
    fn();
    ADD_FAILURE() << "no error, expected " << error_code_name(code);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
  }
}

TEST(EngineSession, KvCacheOfAnotherTypeIsRejectedAtLoad) {
  TempDir dir;
  const std::string path = write_model(dir, {"llama", DType::kQ8_0, false});
  for (const DType type : {DType::kBF16, DType::kQ4_0, DType::kI32}) {
    LoadOptions o;
    o.cache_type = type;
    expect_code([&] { Model::load(path, o); }, ErrorCode::kInvalidArgument);
  }
  LoadOptions q8;  // the tiny model's heads of 16 dims are not whole Q8_0 blocks
  q8.cache_type = DType::kQ8_0;
  expect_code([&] { Model::load(path, q8); }, ErrorCode::kInvalidArgument);
}

TEST(EngineSession, ContextOverflowAndBadTokens) {
  TempDir dir;
  const std::string path = write_model(dir, {"llama", DType::kQ8_0, false});
  const auto model = Model::load(path);
  const int64_t n_ctx = model->config().n_ctx_train;
  ASSERT_EQ(n_ctx, 128);
  const int32_t n_vocab = static_cast<int32_t>(model->config().n_vocab);

  Session whole(*model);
  expect_code([&] { whole.eval(prompt(static_cast<int>(n_ctx) + 1, n_vocab, 5)); }, ErrorCode::kResourceExhausted);
  EXPECT_EQ(whole.n_past(), 0);

  Session filling(*model);
  const auto first = prompt(100, n_vocab, 6);
  filling.eval(first);
  expect_code([&] { filling.eval(prompt(29, n_vocab, 7)); }, ErrorCode::kResourceExhausted);
  EXPECT_EQ(filling.n_past(), 100);
  filling.eval(prompt(28, n_vocab, 8));  // exactly full is fine
  EXPECT_EQ(filling.n_past(), n_ctx);
  const int32_t one = 5;
  expect_code([&] { filling.eval(std::span(&one, 1)); }, ErrorCode::kResourceExhausted);
  filling.reset();
  EXPECT_EQ(filling.n_past(), 0);
  EXPECT_EQ(filling.eval(std::span(&one, 1)).size(), static_cast<size_t>(n_vocab));

  Session bad(*model);
  for (const int32_t id : {-1, n_vocab, n_vocab + 1000, INT32_MIN}) {
    const std::vector<int32_t> tokens = {1, 2, id, 3};
    expect_code([&] { bad.eval(tokens); }, ErrorCode::kInvalidArgument);
    EXPECT_EQ(bad.n_past(), 0) << id;
  }
  SessionOptions too_long;
  too_long.n_ctx = n_ctx + 1;
  expect_code([&] { Session s(*model, too_long); }, ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace mixserve
