// Synthetic model files: the real GGUF layout of a Llama-family model with seeded random weights.
//
// Weights are a pure function of (seed, tensor name, row): every row has its own mt19937_64 stream,
// so rows can be generated and quantised in parallel and the file is identical whatever the thread
// count. Values are approximately normal (Irwin-Hall sum of four 16-bit uniforms, exact integer
// arithmetic) so the bytes do not depend on the platform's libm.
//
// Scales keep a forward pass well conditioned: projections ~ N(0, 1/fan_in) so each produces O(1)
// outputs from a unit-RMS input; the residual-stream writers (attn_output, ffn_down) are further
// scaled by 1/sqrt(2 * n_layer) so the residual stays O(1) across layers; embedding rows are small
// (norm kEmbdNorm, as in trained models) so a tied output is not dominated by the input token's own
// row and greedy text does not just repeat it; logits have a standard deviation of about kLogitStd,
// peaked enough that greedy decoding is not a sequence of near-ties.
#include "model/synth.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <exception>
#include <mutex>
#include <random>
#include <set>

#include "common/error.h"
#include "common/thread_pool.h"
#include "model/gguf.h"
#include "quant/quant.h"

namespace mixserve {
namespace {

struct Preset {
  const char* name;
  SynthShape shape;
};

const std::array<Preset, 3> kPresets = {{
    {"tinyllama-1.1b", {2048, 22, 32, 4, 5632, 2048}},
    {"small", {256, 4, 8, 2, 704, 512}},
    {"tiny", {64, 2, 4, 2, 160, 128}},
}};

// Upper bounds that keep a typo from asking for terabytes.
constexpr int64_t kMaxEmbd = 1 << 16;
constexpr int64_t kMaxLayers = 1024;
constexpr int64_t kMaxFf = 1 << 18;
constexpr int64_t kMaxCtx = 1 << 22;
constexpr uint64_t kMaxWeightBytes = uint64_t{16} << 30;  // the writer holds every tensor in memory

constexpr double kLogitStd = 4.0;       // standard deviation of the logits
constexpr double kEmbdNorm = 0.125;      // norm of an embedding row (element std kEmbdNorm/sqrt(n_embd))
constexpr double kNormNoise = 0.05;     // norm weights are gain * (1 + kNormNoise * z)
constexpr double kBiasStd = 0.2;        // q/k/v biases (qwen2)
constexpr double kGenerateShare = 0.95; // progress fraction given to generation (rest: writing)

// llama_ftype values (llama.cpp's published enum) stored as general.file_type.
uint32_t file_type_id(DType type) {
  switch (type) {
    case DType::kF32: return 0;
    case DType::kF16: return 1;
    case DType::kQ4_0: return 2;
    case DType::kQ8_0: return 7;
    case DType::kBF16: return 32;
    default: return 0;
  }
}

bool is_quantised(DType type) { return type == DType::kQ8_0 || type == DType::kQ4_0; }

bool same_shape(const SynthShape& a, const SynthShape& b) {
  return a.n_embd == b.n_embd && a.n_layer == b.n_layer && a.n_head == b.n_head &&
         a.n_head_kv == b.n_head_kv && a.n_ff == b.n_ff && a.n_ctx == b.n_ctx;
}

std::string preset_list() {
  std::string out;
  for (const auto& p : kPresets) out += (out.empty() ? "" : ", ") + std::string(p.name);
  return out;
}

// Type-independent constraints (the ones a forward pass needs).
void check_shape(const SynthShape& s) {
  const std::pair<const char*, int64_t> fields[] = {{"embd", s.n_embd},   {"layers", s.n_layer},
                                                    {"heads", s.n_head},  {"kv_heads", s.n_head_kv},
                                                    {"ff", s.n_ff},       {"ctx", s.n_ctx}};
  for (const auto& [name, value] : fields) {
    if (value <= 0) fail(ErrorCode::kInvalidArgument, "synthetic shape: ", name, " must be positive, got ", value);
  }
  if (s.n_embd > kMaxEmbd) fail(ErrorCode::kInvalidArgument, "synthetic shape: embd must be at most ", kMaxEmbd);
  if (s.n_layer > kMaxLayers) fail(ErrorCode::kInvalidArgument, "synthetic shape: layers must be at most ", kMaxLayers);
  if (s.n_ff > kMaxFf) fail(ErrorCode::kInvalidArgument, "synthetic shape: ff must be at most ", kMaxFf);
  if (s.n_ctx > kMaxCtx) fail(ErrorCode::kInvalidArgument, "synthetic shape: ctx must be at most ", kMaxCtx);
  if (s.n_embd % s.n_head != 0) {
    fail(ErrorCode::kInvalidArgument, "synthetic shape: embd (", s.n_embd, ") must be divisible by heads (",
         s.n_head, ")");
  }
  if (s.n_head % s.n_head_kv != 0) {
    fail(ErrorCode::kInvalidArgument, "synthetic shape: heads (", s.n_head, ") must be divisible by kv_heads (",
         s.n_head_kv, ")");
  }
  if ((s.n_embd / s.n_head) % 2 != 0) {
    fail(ErrorCode::kInvalidArgument, "synthetic shape: head_dim = embd/heads (", s.n_embd / s.n_head,
         ") must be even for RoPE");
  }
}

void check_for_type(const SynthShape& s, DType type) {
  if (!is_quantised(type)) return;
  const int64_t block = quant::kQK;
  if (s.n_embd % block != 0 || s.n_ff % block != 0) {
    fail(ErrorCode::kInvalidArgument, "synthetic shape: with ", dtype_name(type), " weights every matrix input ",
         "dimension must be a multiple of ", block, " (embd=", s.n_embd, ", ff=", s.n_ff, ")");
  }
}

int64_t parse_positive(const std::string& key, std::string_view text) {
  int64_t value = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc() || ptr != end) {
    fail(ErrorCode::kInvalidArgument, "synthetic shape: ", key, "=", text, " is not an integer");
  }
  return value;
}

// splitmix64 finaliser: decorrelates the per-row seeds.
uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

uint64_t fnv1a(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (const char c : s) h = (h ^ static_cast<uint8_t>(c)) * 0x100000001b3ull;
  return h;
}

// Approximately standard normal: sum of four 16-bit uniforms on (0,1), centred, variance scaled to 1.
double approx_normal(std::mt19937_64& rng) {
  const uint64_t bits = rng();
  const uint64_t sum = (bits & 0xffff) + ((bits >> 16) & 0xffff) + ((bits >> 32) & 0xffff) + (bits >> 48);
  const double u = (static_cast<double>(sum) + 2.0) / 65536.0;  // sum of four (k+0.5)/65536
  return (u - 2.0) * std::sqrt(3.0);
}

enum class Kind { kMatrix, kVector };

// One tensor to generate. With z ~ approx N(0,1) drawn from the (seed, name, row) stream, an
// element is scale * (1 + noise * z) when noise > 0 (norm gains), else scale * z.
struct TensorSpec {
  std::string name;
  DType type;
  int64_t cols;   // dims[0]
  int64_t rows;   // dims[1] (1 for vectors)
  Kind kind;
  double scale;   // matrices: standard deviation; vectors: gain
  double noise;   // vectors: relative noise of the gain (0 = pure noise around 0 with std scale)
};

std::vector<TensorSpec> tensor_specs(const SynthOptions& o, int64_t n_vocab) {
  const SynthShape& s = o.shape;
  const int64_t head_dim = s.n_embd / s.n_head;
  const int64_t kv_dim = s.n_head_kv * head_dim;
  const double embd_std = kEmbdNorm / std::sqrt(static_cast<double>(s.n_embd));
  const double in_embd = 1.0 / std::sqrt(static_cast<double>(s.n_embd));
  const double in_ff = 1.0 / std::sqrt(static_cast<double>(s.n_ff));
  const double residual = 1.0 / std::sqrt(2.0 * static_cast<double>(s.n_layer));
  const DType t = o.type;
  std::vector<TensorSpec> specs;
  auto matrix = [&](std::string name, int64_t cols, int64_t rows, double std_dev) {
    specs.push_back({std::move(name), t, cols, rows, Kind::kMatrix, std_dev, 0.0});
  };
  auto vec = [&](std::string name, int64_t n, double gain, double noise) {
    specs.push_back({std::move(name), DType::kF32, n, 1, Kind::kVector, gain, noise});
  };
  matrix("token_embd.weight", s.n_embd, n_vocab, embd_std);
  for (int64_t l = 0; l < s.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    vec(p + "attn_norm.weight", s.n_embd, 1.0, kNormNoise);
    matrix(p + "attn_q.weight", s.n_embd, s.n_embd, in_embd);
    matrix(p + "attn_k.weight", s.n_embd, kv_dim, in_embd);
    matrix(p + "attn_v.weight", s.n_embd, kv_dim, in_embd);
    if (o.arch == "qwen2") {
      vec(p + "attn_q.bias", s.n_embd, kBiasStd, 0.0);
      vec(p + "attn_k.bias", kv_dim, kBiasStd, 0.0);
      vec(p + "attn_v.bias", kv_dim, kBiasStd, 0.0);
    }
    matrix(p + "attn_output.weight", s.n_embd, s.n_embd, in_embd * residual);
    vec(p + "ffn_norm.weight", s.n_embd, 1.0, kNormNoise);
    matrix(p + "ffn_gate.weight", s.n_embd, s.n_ff, in_embd);
    matrix(p + "ffn_up.weight", s.n_embd, s.n_ff, in_embd);
    matrix(p + "ffn_down.weight", s.n_ff, s.n_embd, in_ff * residual);
  }
  // The final norm output has unit RMS; the output matrix maps it to logits of std kLogitStd.
  // Tied models reuse the small embedding rows, so the norm gain supplies the missing scale.
  const double out_gain = o.tied_output ? kLogitStd / (embd_std * std::sqrt(static_cast<double>(s.n_embd))) : 1.0;
  vec("output_norm.weight", s.n_embd, out_gain, kNormNoise);
  if (!o.tied_output) matrix("output.weight", s.n_embd, n_vocab, kLogitStd * in_embd);
  return specs;
}

// Generates and converts one tensor, rows in parallel; returns its bytes.
std::vector<uint8_t> generate(const TensorSpec& spec, uint64_t seed, ThreadPool& pool) {
  const size_t row_bytes = *dtype_row_bytes(spec.type, spec.cols);
  std::vector<uint8_t> data(row_bytes * static_cast<size_t>(spec.rows));
  const uint64_t tensor_seed = mix64(seed ^ mix64(fnv1a(spec.name)));
  std::mutex error_mutex;
  std::exception_ptr error;
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 16) / spec.cols);
  pool.parallel_for(spec.rows, grain, [&](int64_t begin, int64_t end, int) {
    try {
      std::vector<float> row(static_cast<size_t>(spec.cols));
      for (int64_t r = begin; r < end; ++r) {
        std::mt19937_64 rng(mix64(tensor_seed + static_cast<uint64_t>(r)));
        for (auto& v : row) {
          const double z = approx_normal(rng);
          v = static_cast<float>(spec.noise > 0.0 ? spec.scale * (1.0 + spec.noise * z) : spec.scale * z);
        }
        quant::quantize_row(spec.type, row.data(), data.data() + static_cast<size_t>(r) * row_bytes, spec.cols);
      }
    } catch (...) {
      const std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
    }
  });
  if (error) std::rethrow_exception(error);
  return data;
}

std::string shape_label(const SynthShape& s) {
  for (const auto& p : kPresets) {
    if (same_shape(p.shape, s)) return p.name;
  }
  return str_cat("e", s.n_embd, "-l", s.n_layer, "-h", s.n_head, "-kv", s.n_head_kv, "-ff", s.n_ff, "-c", s.n_ctx);
}

}  // namespace

SynthShape synth_preset(const std::string& name) {
  for (const auto& p : kPresets) {
    if (name == p.name) return p.shape;
  }
  fail(ErrorCode::kInvalidArgument, "unknown synthetic model preset '", name, "' (known: ", preset_list(), ")");
}

std::vector<std::string> synth_preset_names() {
  std::vector<std::string> names;
  for (const auto& p : kPresets) names.emplace_back(p.name);
  return names;
}

SynthShape parse_synth_shape(const std::string& spec) {
  if (spec.find('=') == std::string::npos) return synth_preset(spec);
  SynthShape shape;
  shape.n_head_kv = 0;  // 0 = not given: defaults to heads
  std::set<std::string> seen;
  size_t pos = 0;
  while (pos <= spec.size()) {
    const size_t comma = std::min(spec.find(',', pos), spec.size());
    const std::string item = spec.substr(pos, comma - pos);
    pos = comma + 1;
    const size_t eq = item.find('=');
    if (eq == std::string::npos) {
      fail(ErrorCode::kInvalidArgument, "synthetic shape '", spec, "': expected key=value, got '", item, "'");
    }
    const std::string key = item.substr(0, eq);
    const std::string_view text = std::string_view(item).substr(eq + 1);
    if (!seen.insert(key).second) fail(ErrorCode::kInvalidArgument, "synthetic shape: key '", key, "' given twice");
    int64_t* field = key == "embd"       ? &shape.n_embd
                     : key == "layers"   ? &shape.n_layer
                     : key == "heads"    ? &shape.n_head
                     : key == "kv_heads" ? &shape.n_head_kv
                     : key == "ff"       ? &shape.n_ff
                     : key == "ctx"      ? &shape.n_ctx
                                         : nullptr;
    if (field == nullptr) {
      fail(ErrorCode::kInvalidArgument, "synthetic shape: unknown key '", key,
           "' (expected embd, layers, heads, kv_heads, ff, ctx)");
    }
    *field = parse_positive(key, text);
  }
  for (const char* required : {"embd", "layers", "heads", "ff"}) {
    if (!seen.count(required)) fail(ErrorCode::kInvalidArgument, "synthetic shape '", spec, "': missing ", required, "=");
  }
  if (!seen.count("kv_heads")) shape.n_head_kv = shape.n_head;
  check_shape(shape);
  return shape;
}

void write_synth_model(const SynthOptions& options, const std::string& path,
                       const std::function<void(double)>& progress) {
  const SynthShape& s = options.shape;
  if (options.arch != "llama" && options.arch != "qwen2") {
    fail(ErrorCode::kInvalidArgument, "synthetic model: unknown architecture '", options.arch,
         "' (expected llama or qwen2)");
  }
  const DType t = options.type;
  if (t != DType::kF32 && t != DType::kF16 && t != DType::kBF16 && !is_quantised(t)) {
    fail(ErrorCode::kInvalidArgument, "synthetic model: weight type ", dtype_name(t),
         " is not supported (expected f32, f16, bf16, q8_0 or q4_0)");
  }
  check_shape(s);
  check_for_type(s, t);
  if (!(options.rope_freq_base > 0.0f) || !std::isfinite(options.rope_freq_base)) {
    fail(ErrorCode::kInvalidArgument, "synthetic model: rope_freq_base must be positive and finite");
  }
  const Vocab vocab = options.vocab.tokens.empty() ? builtin_vocab() : options.vocab;
  vocab.validate();
  const int64_t n_vocab = vocab.size();

  const std::vector<TensorSpec> specs = tensor_specs(options, n_vocab);
  uint64_t total_bytes = 0;
  double total_elems = 0;
  for (const auto& spec : specs) {
    total_bytes += *dtype_row_bytes(spec.type, spec.cols) * static_cast<uint64_t>(spec.rows);
    total_elems += static_cast<double>(spec.cols) * static_cast<double>(spec.rows);
  }
  if (total_bytes > kMaxWeightBytes) {
    fail(ErrorCode::kInvalidArgument, "synthetic model: ", total_bytes >> 20, " MiB of weights is more than the ",
         kMaxWeightBytes >> 30, " GiB limit");
  }

  const std::string& a = options.arch;
  const auto u32 = [](int64_t v) { return gguf::make_uint32(static_cast<uint32_t>(v)); };
  gguf::Writer writer;
  writer.set("general.architecture", gguf::make_string(a));
  writer.set("general.name", gguf::make_string("synthetic-" + a + "-" + shape_label(s)));
  writer.set("general.file_type", gguf::make_uint32(file_type_id(t)));
  if (is_quantised(t)) writer.set("general.quantization_version", gguf::make_uint32(2));
  writer.set(a + ".context_length", u32(s.n_ctx));
  writer.set(a + ".embedding_length", u32(s.n_embd));
  writer.set(a + ".block_count", u32(s.n_layer));
  writer.set(a + ".feed_forward_length", u32(s.n_ff));
  writer.set(a + ".attention.head_count", u32(s.n_head));
  writer.set(a + ".attention.head_count_kv", u32(s.n_head_kv));
  writer.set(a + ".attention.layer_norm_rms_epsilon", gguf::make_float32(1e-5f));
  writer.set(a + ".rope.freq_base", gguf::make_float32(options.rope_freq_base));
  writer.set(a + ".rope.dimension_count", u32(s.n_embd / s.n_head));
  vocab.to_gguf(writer);

  ThreadPool pool(0);
  double done = 0;
  if (progress) progress(0.0);
  for (const auto& spec : specs) {
    const std::vector<uint8_t> data = generate(spec, options.seed, pool);
    std::vector<int64_t> dims = {spec.cols};
    if (spec.kind == Kind::kMatrix) dims.push_back(spec.rows);
    writer.add_tensor(spec.name, spec.type, std::move(dims), data);
    done += static_cast<double>(spec.cols) * static_cast<double>(spec.rows);
    if (progress) progress(kGenerateShare * done / total_elems);
  }
  writer.write(path);
  if (progress) progress(1.0);
}

}  // namespace mixserve
