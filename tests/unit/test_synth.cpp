// Synthetic model files: presets, shape parsing and validation, file layout, determinism, and that
// the weights make a well-conditioned model (checked with the independent reference forward pass).
#include "model/synth.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iterator>
#include <set>

#include "common/error.h"
#include "model/gguf.h"
#include "support/reference_forward.h"
#include "support/test_support.h"

namespace mixserve {
namespace {

using testing::TempDir;

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Expects `fn` to throw Error(code) whose message contains `needle`.
template <typename Fn>
void expect_error(Fn fn, ErrorCode code, const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "no error; expected one mentioning '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

SynthOptions tiny_options(const std::string& arch, DType type, bool tied, uint64_t seed = 7) {
  SynthOptions o;
  o.arch = arch;
  o.shape = synth_preset("tiny");
  o.type = type;
  o.tied_output = tied;
  o.seed = seed;
  return o;
}

TEST(SynthPreset, KnownShapes) {
  const SynthShape t = synth_preset("tinyllama-1.1b");
  EXPECT_EQ(t.n_embd, 2048);
  EXPECT_EQ(t.n_layer, 22);
  EXPECT_EQ(t.n_head, 32);
  EXPECT_EQ(t.n_head_kv, 4);
  EXPECT_EQ(t.n_ff, 5632);
  EXPECT_EQ(t.n_ctx, 2048);
  const SynthShape s = synth_preset("small");
  EXPECT_EQ(s.n_embd, 256);
  EXPECT_EQ(s.n_layer, 4);
  EXPECT_EQ(s.n_head, 8);
  EXPECT_EQ(s.n_head_kv, 2);
  EXPECT_EQ(s.n_ff, 704);
  EXPECT_EQ(s.n_ctx, 512);
  const SynthShape y = synth_preset("tiny");
  EXPECT_EQ(y.n_embd, 64);
  EXPECT_EQ(y.n_layer, 2);
  EXPECT_EQ(y.n_head, 4);
  EXPECT_EQ(y.n_head_kv, 2);
  EXPECT_EQ(y.n_ff, 160);
  EXPECT_EQ(y.n_ctx, 128);
  const std::vector<std::string> names = synth_preset_names();
  EXPECT_EQ(std::set<std::string>(names.begin(), names.end()),
            (std::set<std::string>{"tinyllama-1.1b", "small", "tiny"}));
  for (const auto& name : names) EXPECT_NO_THROW(parse_synth_shape(name)) << name;
}

TEST(SynthPreset, UnknownNameListsPresets) {
  expect_error([] { synth_preset("huge"); }, ErrorCode::kInvalidArgument, "tinyllama-1.1b");
  expect_error([] { parse_synth_shape("Tiny"); }, ErrorCode::kInvalidArgument, "small");
  expect_error([] { parse_synth_shape(""); }, ErrorCode::kInvalidArgument, "tiny");
}

TEST(SynthShapeParse, KeyValueList) {
  const SynthShape s = parse_synth_shape("embd=96,layers=3,heads=6,kv_heads=3,ff=200,ctx=77");
  EXPECT_EQ(s.n_embd, 96);
  EXPECT_EQ(s.n_layer, 3);
  EXPECT_EQ(s.n_head, 6);
  EXPECT_EQ(s.n_head_kv, 3);
  EXPECT_EQ(s.n_ff, 200);
  EXPECT_EQ(s.n_ctx, 77);
  const SynthShape d = parse_synth_shape("ff=64,heads=2,layers=1,embd=32");  // any order; defaults
  EXPECT_EQ(d.n_head_kv, 2);
  EXPECT_EQ(d.n_ctx, 2048);
  EXPECT_EQ(d.n_ff, 64);
}

TEST(SynthShapeParse, Errors) {
  const auto bad = ErrorCode::kInvalidArgument;
  expect_error([] { parse_synth_shape("embd=64,layers=2,heads=4,ff=160,depth=3"); }, bad, "depth");
  expect_error([] { parse_synth_shape("embd=64,layers=2,heads=4"); }, bad, "ff");
  expect_error([] { parse_synth_shape("embd=64,layers=2,ff=160"); }, bad, "heads");
  expect_error([] { parse_synth_shape("embd=64,embd=64,layers=2,heads=4,ff=160"); }, bad, "twice");
  expect_error([] { parse_synth_shape("embd=6x4,layers=2,heads=4,ff=160"); }, bad, "not an integer");
  expect_error([] { parse_synth_shape("embd=,layers=2,heads=4,ff=160"); }, bad, "not an integer");
  expect_error([] { parse_synth_shape("embd=99999999999999999999,layers=2,heads=4,ff=160"); }, bad,
               "not an integer");
  expect_error([] { parse_synth_shape("embd=64,layers=2,heads=4,ff=160,"); }, bad, "key=value");
  expect_error([] { parse_synth_shape("embd=64,layers=0,heads=4,ff=160"); }, bad, "layers must be positive");
  expect_error([] { parse_synth_shape("embd=64,layers=2,heads=4,ff=-5"); }, bad, "ff must be positive");
  expect_error([] { parse_synth_shape("embd=64,layers=2,heads=4,ff=160,ctx=0"); }, bad, "ctx must be positive");
  expect_error([] { parse_synth_shape("embd=64,layers=2,heads=5,ff=160"); }, bad, "divisible by heads");
  expect_error([] { parse_synth_shape("embd=64,layers=2,heads=4,kv_heads=3,ff=160"); }, bad,
               "divisible by kv_heads");
  expect_error([] { parse_synth_shape("embd=60,layers=2,heads=4,ff=160"); }, bad, "even");
  expect_error([] { parse_synth_shape("embd=1048576,layers=2,heads=4,ff=160"); }, bad, "at most");
  expect_error([] { parse_synth_shape("embd=64,layers=100000,heads=4,ff=160"); }, bad, "at most");
}

TEST(SynthWrite, QuantisedTypesNeedBlockMultiples) {
  TempDir dir;
  SynthOptions o = tiny_options("llama", DType::kQ8_0, false);
  o.shape = parse_synth_shape("embd=48,layers=1,heads=4,kv_heads=2,ff=64,ctx=16");
  expect_error([&] { write_synth_model(o, dir.file("a.gguf")); }, ErrorCode::kInvalidArgument, "multiple of 32");
  o.type = DType::kQ4_0;
  o.shape = parse_synth_shape("embd=64,layers=1,heads=4,kv_heads=2,ff=100,ctx=16");
  expect_error([&] { write_synth_model(o, dir.file("b.gguf")); }, ErrorCode::kInvalidArgument, "multiple of 32");
  EXPECT_FALSE(std::filesystem::exists(dir.file("b.gguf")));
  // The same shapes are fine when nothing is quantised.
  for (const DType t : {DType::kF32, DType::kF16, DType::kBF16}) {
    o.type = t;
    EXPECT_NO_THROW(write_synth_model(o, dir.file("c.gguf"))) << dtype_name(t);
  }
}

TEST(SynthWrite, RejectsBadOptions) {
  TempDir dir;
  SynthOptions o = tiny_options("mistral", DType::kF32, false);
  expect_error([&] { write_synth_model(o, dir.file("a.gguf")); }, ErrorCode::kInvalidArgument, "mistral");
  o = tiny_options("llama", DType::kQ4_1, false);
  expect_error([&] { write_synth_model(o, dir.file("a.gguf")); }, ErrorCode::kInvalidArgument, "q4_1");
  o = tiny_options("llama", DType::kF32, false);
  o.shape.n_head_kv = 3;  // set directly, bypassing the parser
  expect_error([&] { write_synth_model(o, dir.file("a.gguf")); }, ErrorCode::kInvalidArgument, "kv_heads");
  o = tiny_options("llama", DType::kF32, false);
  o.shape = SynthShape{};
  expect_error([&] { write_synth_model(o, dir.file("a.gguf")); }, ErrorCode::kInvalidArgument, "positive");
  o = tiny_options("llama", DType::kF32, false);
  o.shape = parse_synth_shape("embd=65536,layers=1024,heads=64,ff=262144");
  expect_error([&] { write_synth_model(o, dir.file("a.gguf")); }, ErrorCode::kInvalidArgument, "limit");
  o = tiny_options("llama", DType::kF32, false);
  o.vocab = builtin_vocab();
  o.vocab.scores.pop_back();
  EXPECT_THROW(write_synth_model(o, dir.file("a.gguf")), Error);
}

void expect_dims(const gguf::File& f, const std::string& name, DType type, std::vector<int64_t> dims) {
  const gguf::TensorInfo* t = f.find_tensor(name);
  ASSERT_NE(t, nullptr) << name;
  EXPECT_EQ(t->type, type) << name;
  EXPECT_EQ(t->dims, dims) << name;
}

TEST(SynthWrite, FileLayoutLlamaAndQwen2) {
  TempDir dir;
  const Vocab vocab = builtin_vocab();
  const int64_t n_vocab = vocab.size();
  for (const std::string arch : {"llama", "qwen2"}) {
    for (const bool tied : {false, true}) {
      SCOPED_TRACE(arch + (tied ? " tied" : " untied"));
      const std::string path = dir.file(arch + std::to_string(tied) + ".gguf");
      SynthOptions o = tiny_options(arch, DType::kQ4_0, tied);
      o.rope_freq_base = 500000.0f;
      write_synth_model(o, path);
      const gguf::File f = gguf::File::open(path);
      EXPECT_EQ(f.get_string("general.architecture"), arch);
      EXPECT_EQ(f.get_string("general.name"), "synthetic-" + arch + "-tiny");
      EXPECT_EQ(f.get_int("general.file_type"), 2);  // llama_ftype MOSTLY_Q4_0
      EXPECT_EQ(f.get_int(arch + ".context_length"), 128);
      EXPECT_EQ(f.get_int(arch + ".embedding_length"), 64);
      EXPECT_EQ(f.get_int(arch + ".block_count"), 2);
      EXPECT_EQ(f.get_int(arch + ".feed_forward_length"), 160);
      EXPECT_EQ(f.get_int(arch + ".attention.head_count"), 4);
      EXPECT_EQ(f.get_int(arch + ".attention.head_count_kv"), 2);
      EXPECT_NEAR(*f.get_float(arch + ".attention.layer_norm_rms_epsilon"), 1e-5, 1e-12);
      EXPECT_EQ(f.get_float(arch + ".rope.freq_base"), 500000.0);
      EXPECT_EQ(f.get_int(arch + ".rope.dimension_count"), 16);
      const Vocab back = Vocab::from_gguf(f);
      EXPECT_EQ(back.tokens, vocab.tokens);
      EXPECT_EQ(back.bos_id, vocab.bos_id);

      const size_t per_layer = arch == "qwen2" ? 12 : 9;
      EXPECT_EQ(f.tensors().size(), 2 + 2 * per_layer + (tied ? 0 : 1));
      expect_dims(f, "token_embd.weight", DType::kQ4_0, {64, n_vocab});
      expect_dims(f, "output_norm.weight", DType::kF32, {64});
      if (tied) {
        EXPECT_EQ(f.find_tensor("output.weight"), nullptr);
      } else {
        expect_dims(f, "output.weight", DType::kQ4_0, {64, n_vocab});
      }
      for (const std::string p : {"blk.0.", "blk.1."}) {
        expect_dims(f, p + "attn_norm.weight", DType::kF32, {64});
        expect_dims(f, p + "attn_q.weight", DType::kQ4_0, {64, 64});
        expect_dims(f, p + "attn_k.weight", DType::kQ4_0, {64, 32});
        expect_dims(f, p + "attn_v.weight", DType::kQ4_0, {64, 32});
        expect_dims(f, p + "attn_output.weight", DType::kQ4_0, {64, 64});
        expect_dims(f, p + "ffn_norm.weight", DType::kF32, {64});
        expect_dims(f, p + "ffn_gate.weight", DType::kQ4_0, {64, 160});
        expect_dims(f, p + "ffn_up.weight", DType::kQ4_0, {64, 160});
        expect_dims(f, p + "ffn_down.weight", DType::kQ4_0, {160, 64});
        if (arch == "qwen2") {
          expect_dims(f, p + "attn_q.bias", DType::kF32, {64});
          expect_dims(f, p + "attn_k.bias", DType::kF32, {32});
          expect_dims(f, p + "attn_v.bias", DType::kF32, {32});
        } else {
          EXPECT_EQ(f.find_tensor(p + "attn_q.bias"), nullptr);
        }
      }
    }
  }
}

TEST(SynthWrite, FileTypeAndCustomShapeName) {
  TempDir dir;
  const std::pair<DType, int64_t> cases[] = {
      {DType::kF32, 0}, {DType::kF16, 1}, {DType::kQ8_0, 7}, {DType::kBF16, 32}};
  for (const auto& [type, id] : cases) {
    SynthOptions o = tiny_options("llama", type, false);
    o.shape = parse_synth_shape("embd=32,layers=1,heads=2,ff=32,ctx=8");
    write_synth_model(o, dir.file("m.gguf"));
    const gguf::File f = gguf::File::open(dir.file("m.gguf"));
    EXPECT_EQ(f.get_int("general.file_type"), id) << dtype_name(type);
    EXPECT_EQ(f.find_tensor("blk.0.attn_q.weight")->type, type);
    const std::string name = *f.get_string("general.name");
    EXPECT_EQ(name.rfind("synthetic-llama-", 0), 0u) << name;
    EXPECT_NE(name.find("32"), std::string::npos) << name;
  }
}

TEST(SynthWrite, DeterministicFromSeed) {
  TempDir dir;
  write_synth_model(tiny_options("qwen2", DType::kQ8_0, false, 11), dir.file("a.gguf"));
  write_synth_model(tiny_options("qwen2", DType::kQ8_0, false, 11), dir.file("b.gguf"));
  write_synth_model(tiny_options("qwen2", DType::kQ8_0, false, 12), dir.file("c.gguf"));
  const auto a = read_bytes(dir.file("a.gguf"));
  const auto b = read_bytes(dir.file("b.gguf"));
  const auto c = read_bytes(dir.file("c.gguf"));
  ASSERT_FALSE(a.empty());
  EXPECT_TRUE(a == b) << "same seed gave different files";
  ASSERT_EQ(a.size(), c.size());
  EXPECT_FALSE(a == c) << "different seeds gave the same file";
  // Every weight tensor depends on the seed, not just some of them.
  const gguf::File fa = gguf::File::open(dir.file("a.gguf"));
  const gguf::File fc = gguf::File::open(dir.file("c.gguf"));
  for (const auto& info : fa.tensors()) {
    const auto da = fa.tensor_data(info);
    const auto dc = fc.tensor_data(*fc.find_tensor(info.name));
    EXPECT_FALSE(std::equal(da.begin(), da.end(), dc.begin(), dc.end())) << info.name;
  }
}

TEST(SynthWrite, ProgressIsMonotonicFromZeroToOne) {
  TempDir dir;
  std::vector<double> seen;
  write_synth_model(tiny_options("llama", DType::kF16, false), dir.file("m.gguf"),
                    [&](double f) { seen.push_back(f); });
  ASSERT_GE(seen.size(), 3u);
  EXPECT_EQ(seen.front(), 0.0);
  EXPECT_EQ(seen.back(), 1.0);
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
}

// Summary statistics of a tensor's values, decoded with the reference's own dequantiser.
struct Stats {
  double mean = 0;
  double std_dev = 0;
};

Stats stats(const gguf::File& f, const std::string& name) {
  const gguf::TensorInfo* t = f.find_tensor(name);
  const int64_t rows = t->dims.size() > 1 ? t->dims[1] : 1;
  const auto v = testing::reference_decode(t->type, f.tensor_data(*t), t->dims[0] * rows);
  double sum = 0;
  double sq = 0;
  for (const double x : v) sum += x;
  const double mean = sum / static_cast<double>(v.size());
  for (const double x : v) sq += (x - mean) * (x - mean);
  return {mean, std::sqrt(sq / static_cast<double>(v.size()))};
}

TEST(SynthWeights, ScaledByFanIn) {
  TempDir dir;
  SynthOptions o = tiny_options("qwen2", DType::kF32, false);
  o.shape = synth_preset("small");
  write_synth_model(o, dir.file("m.gguf"));
  const gguf::File f = gguf::File::open(dir.file("m.gguf"));
  for (const std::string name : {"blk.0.attn_q.weight", "blk.3.attn_k.weight", "blk.1.ffn_up.weight"}) {
    const Stats s = stats(f, name);
    EXPECT_NEAR(s.mean, 0.0, 0.01) << name;
    EXPECT_NEAR(s.std_dev, 1.0 / std::sqrt(256.0), 0.1 / std::sqrt(256.0)) << name;
  }
  // Residual writers are smaller than 1/sqrt(fan_in) but not vanishing.
  const Stats down = stats(f, "blk.2.ffn_down.weight");
  EXPECT_LT(down.std_dev, 1.0 / std::sqrt(704.0));
  EXPECT_GT(down.std_dev, 0.1 / std::sqrt(704.0));
  const Stats norm = stats(f, "blk.0.attn_norm.weight");
  EXPECT_NEAR(norm.mean, 1.0, 0.05);
  EXPECT_LT(norm.std_dev, 0.2);
  EXPECT_GT(norm.std_dev, 0.0);
  const Stats bias = stats(f, "blk.0.attn_q.bias");
  EXPECT_GT(bias.std_dev, 0.0);
  EXPECT_LT(bias.std_dev, 1.0);
}

// The weights give a usable model: finite logits of moderate size, clear greedy winners, and
// greedy text that is not one token repeated (checked with the reference forward pass).
TEST(SynthWeights, ReferenceForwardIsWellConditioned) {
  TempDir dir;
  for (const std::string arch : {"llama", "qwen2"}) {
    for (const bool tied : {false, true}) {
      SCOPED_TRACE(arch + (tied ? " tied" : " untied"));
      write_synth_model(tiny_options(arch, DType::kF32, tied), dir.file("m.gguf"));
      const gguf::File f = gguf::File::open(dir.file("m.gguf"));
      const auto logits = testing::reference_logits(f, {1, 300, 301, 302, 40, 41});
      for (const auto& row : logits) {
        double sq = 0;
        for (const double v : row) {
          ASSERT_TRUE(std::isfinite(v));
          sq += v * v;
        }
        const double rms = std::sqrt(sq / static_cast<double>(row.size()));
        EXPECT_GT(rms, 1.0);
        EXPECT_LT(rms, 20.0);
      }
      std::vector<double> margins;
      const auto text = testing::reference_greedy(f, {1, 300, 301}, 48, &margins);
      const std::set<int32_t> distinct(text.begin(), text.end());
      EXPECT_GE(distinct.size(), 8u);
      std::sort(margins.begin(), margins.end());
      EXPECT_GT(margins[margins.size() / 2], 0.1) << "median gap between the two best logits";
    }
  }
}

}  // namespace
}  // namespace mixserve
