// Reference forward pass; see reference_forward.h. Written from the GGUF specification
// (ggml/docs/gguf.md: block layouts of Q8_0 and Q4_0), IEEE 754 binary16, bfloat16 (the top half
// of a binary32), and the Llama architecture (RMSNorm, RoPE, grouped-query attention, SwiGLU).
// Everything is double precision and written out longhand on purpose: it must not share code with
// the engine it checks.
#include "support/reference_forward.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

namespace mixserve::testing {
namespace {

[[noreturn]] void bad(const std::string& what) { throw std::runtime_error("reference_forward: " + what); }

uint16_t load_u16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

// Bytes of one row: F32 4, F16/BF16 2 per element; Q8_0 34 and Q4_0 18 per block of 32.
int64_t row_bytes(DType type, int64_t n) {
  switch (type) {
    case DType::kF32: return 4 * n;
    case DType::kF16:
    case DType::kBF16: return 2 * n;
    case DType::kQ8_0:
      if (n % 32 != 0) bad("q8_0 row length not a multiple of 32");
      return n / 32 * 34;
    case DType::kQ4_0:
      if (n % 32 != 0) bad("q4_0 row length not a multiple of 32");
      return n / 32 * 18;
    default: bad("unsupported tensor type " + std::to_string(static_cast<uint32_t>(type)));
  }
}

std::vector<double> rms_norm(const std::vector<double>& x, const std::vector<double>& w, double eps) {
  double sum = 0;
  for (const double v : x) sum += v * v;
  const double inv = 1.0 / std::sqrt(sum / static_cast<double>(x.size()) + eps);
  std::vector<double> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * inv * w[i];
  return y;
}

// Rounds to the nearest binary16 value (ties to even), normals and subnormals; no overflow handling
// is needed for the activation scales this is used on.
double round_to_fp16(double d) {
  if (d == 0) return 0;
  int e = 0;
  std::frexp(d, &e);  // d = m * 2^e, m in [0.5, 1): 11 significant bits means quantum 2^(e-11)
  const double quantum = std::max(std::ldexp(1.0, e - 11), std::ldexp(1.0, -24));
  return std::nearbyint(d / quantum) * quantum;
}

}  // namespace

double reference_fp16(uint16_t bits) {
  const int sign = bits >> 15;
  const int exponent = (bits >> 10) & 0x1f;
  const int mantissa = bits & 0x3ff;
  double value = 0;
  if (exponent == 0) {
    value = std::ldexp(static_cast<double>(mantissa), -24);  // subnormal: m * 2^-14 / 1024
  } else if (exponent == 31) {
    value = mantissa == 0 ? INFINITY : NAN;
  } else {
    value = std::ldexp(1.0 + mantissa / 1024.0, exponent - 15);
  }
  return sign ? -value : value;
}

double reference_round_fp16(double x) {
  if (!std::isfinite(x) || x == 0.0) return x;
  int e = 0;
  std::frexp(x, &e);                          // |x| in [2^(e-1), 2^e)
  const int quantum = std::max(e - 11, -24);  // 10 stored mantissa bits; subnormals step by 2^-24
  const double r = std::ldexp(std::nearbyint(std::ldexp(x, -quantum)), quantum);  // ties to even
  return std::fabs(r) > 65504.0 ? std::copysign(INFINITY, x) : r;
}

double reference_bf16(uint16_t bits) {
  const uint32_t u = static_cast<uint32_t>(bits) << 16;
  float f = 0;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

std::vector<double> reference_decode(DType type, std::span<const uint8_t> bytes, int64_t n) {
  if (static_cast<int64_t>(bytes.size()) < row_bytes(type, n)) bad("row data too short");
  std::vector<double> out(static_cast<size_t>(n));
  const uint8_t* p = bytes.data();
  switch (type) {
    case DType::kF32:
      for (int64_t i = 0; i < n; ++i) {
        float f = 0;
        std::memcpy(&f, p + 4 * i, 4);
        out[i] = f;
      }
      break;
    case DType::kF16:
      for (int64_t i = 0; i < n; ++i) out[i] = reference_fp16(load_u16(p + 2 * i));
      break;
    case DType::kBF16:
      for (int64_t i = 0; i < n; ++i) out[i] = reference_bf16(load_u16(p + 2 * i));
      break;
    case DType::kQ8_0:
      for (int64_t b = 0; b < n / 32; ++b) {
        const uint8_t* block = p + 34 * b;
        const double d = reference_fp16(load_u16(block));
        for (int i = 0; i < 32; ++i) out[32 * b + i] = d * static_cast<int8_t>(block[2 + i]);
      }
      break;
    case DType::kQ4_0:
      for (int64_t b = 0; b < n / 32; ++b) {
        const uint8_t* block = p + 18 * b;
        const double d = reference_fp16(load_u16(block));
        for (int i = 0; i < 32; ++i) {
          const int q = i < 16 ? (block[2 + i] & 0x0f) : (block[2 + i - 16] >> 4);
          out[32 * b + i] = d * (q - 8);
        }
      }
      break;
    default: bad("unsupported tensor type");
  }
  return out;
}

void reference_q8_round(std::vector<double>& x) {
  for (size_t b = 0; b + 32 <= x.size(); b += 32) {
    double amax = 0;
    for (size_t i = b; i < b + 32; ++i) amax = std::max(amax, std::fabs(x[i]));
    const double d = amax / 127.0;
    const double d16 = round_to_fp16(d);
    for (size_t i = b; i < b + 32; ++i) {
      const double q = d == 0 ? 0 : std::clamp(std::nearbyint(x[i] / d), -127.0, 127.0);
      x[i] = q * d16;
    }
  }
}

ReferenceModel::ReferenceModel(const gguf::File& file, bool quantize_activations)
    : quantize_activations_(quantize_activations) {
  const auto arch = file.get_string("general.architecture");
  if (!arch) bad("general.architecture missing");
  cfg_.arch = *arch;
  if (cfg_.arch != "llama" && cfg_.arch != "qwen2") bad("unsupported architecture " + cfg_.arch);
  const std::string& a = cfg_.arch;
  auto need_int = [&](const std::string& key) {
    const auto v = file.get_int(key);
    if (!v || *v <= 0) bad(key + " missing or not positive");
    return *v;
  };
  cfg_.n_embd = need_int(a + ".embedding_length");
  cfg_.n_layer = need_int(a + ".block_count");
  cfg_.n_head = need_int(a + ".attention.head_count");
  cfg_.n_head_kv = file.get_int(a + ".attention.head_count_kv").value_or(cfg_.n_head);
  cfg_.n_ff = need_int(a + ".feed_forward_length");
  cfg_.n_ctx = need_int(a + ".context_length");
  if (cfg_.n_embd % cfg_.n_head != 0 || cfg_.n_head_kv <= 0 || cfg_.n_head % cfg_.n_head_kv != 0) {
    bad("inconsistent head counts");
  }
  cfg_.head_dim = cfg_.n_embd / cfg_.n_head;
  cfg_.n_rot = file.get_int(a + ".rope.dimension_count").value_or(cfg_.head_dim);
  if (cfg_.n_rot <= 0 || cfg_.n_rot > cfg_.head_dim || cfg_.n_rot % 2 != 0) bad("bad rope.dimension_count");
  cfg_.rms_eps = file.get_float(a + ".attention.layer_norm_rms_epsilon").value_or(1e-5);
  cfg_.rope_base = file.get_float(a + ".rope.freq_base").value_or(10000.0);
  cfg_.neox = a == "qwen2";

  const gguf::TensorInfo* embd = file.find_tensor("token_embd.weight");
  if (embd == nullptr || embd->dims.size() != 2) bad("token_embd.weight missing or not 2-D");
  cfg_.n_vocab = embd->dims[1];
  token_embd_ = read_matrix(file, "token_embd.weight", cfg_.n_embd, cfg_.n_vocab);
  cfg_.tied = file.find_tensor("output.weight") == nullptr;
  if (!cfg_.tied) output_ = read_matrix(file, "output.weight", cfg_.n_embd, cfg_.n_vocab);
  auto vec = [&](const std::string& name, int64_t n) { return read_matrix(file, name, n, 1).w; };
  output_norm_ = vec("output_norm.weight", cfg_.n_embd);
  const int64_t kv_dim = cfg_.n_head_kv * cfg_.head_dim;
  for (int64_t l = 0; l < cfg_.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    Layer layer;
    layer.attn_norm = vec(p + "attn_norm.weight", cfg_.n_embd);
    layer.ffn_norm = vec(p + "ffn_norm.weight", cfg_.n_embd);
    layer.wq = read_matrix(file, p + "attn_q.weight", cfg_.n_embd, cfg_.n_embd);
    layer.wk = read_matrix(file, p + "attn_k.weight", cfg_.n_embd, kv_dim);
    layer.wv = read_matrix(file, p + "attn_v.weight", cfg_.n_embd, kv_dim);
    layer.wo = read_matrix(file, p + "attn_output.weight", cfg_.n_embd, cfg_.n_embd);
    layer.gate = read_matrix(file, p + "ffn_gate.weight", cfg_.n_embd, cfg_.n_ff);
    layer.up = read_matrix(file, p + "ffn_up.weight", cfg_.n_embd, cfg_.n_ff);
    layer.down = read_matrix(file, p + "ffn_down.weight", cfg_.n_ff, cfg_.n_embd);
    if (a == "qwen2") {
      layer.bq = vec(p + "attn_q.bias", cfg_.n_embd);
      layer.bk = vec(p + "attn_k.bias", kv_dim);
      layer.bv = vec(p + "attn_v.bias", kv_dim);
    }
    layer.k_cache.assign(static_cast<size_t>(cfg_.n_ctx * kv_dim), 0.0);
    layer.v_cache.assign(static_cast<size_t>(cfg_.n_ctx * kv_dim), 0.0);
    layers_.push_back(std::move(layer));
  }
}

ReferenceModel::Matrix ReferenceModel::read_matrix(const gguf::File& file, const std::string& name, int64_t cols,
                                                   int64_t rows) const {
  const gguf::TensorInfo* info = file.find_tensor(name);
  if (info == nullptr) bad("tensor " + name + " missing");
  const bool is_vector = info->dims.size() == 1 || (info->dims.size() == 2 && info->dims[1] == 1);
  const bool shape_ok = info->dims[0] == cols && (rows == 1 ? is_vector : info->dims.size() == 2 && info->dims[1] == rows);
  if (!shape_ok) bad("tensor " + name + " has an unexpected shape");
  const std::span<const uint8_t> data = file.tensor_data(*info);
  const int64_t stride = row_bytes(info->type, cols);
  if (static_cast<int64_t>(data.size()) < stride * rows) bad("tensor " + name + " data too short");
  Matrix m;
  m.cols = cols;
  m.rows = rows;
  m.quantised = info->type == DType::kQ8_0 || info->type == DType::kQ4_0;
  m.w.reserve(static_cast<size_t>(cols * rows));
  for (int64_t r = 0; r < rows; ++r) {
    const std::vector<double> row = reference_decode(info->type, data.subspan(static_cast<size_t>(r * stride)), cols);
    m.w.insert(m.w.end(), row.begin(), row.end());
  }
  return m;
}

std::vector<double> ReferenceModel::matvec(const Matrix& m, std::vector<double> x) const {
  if (quantize_activations_ && m.quantised) reference_q8_round(x);
  std::vector<double> y(static_cast<size_t>(m.rows), 0.0);
  for (int64_t r = 0; r < m.rows; ++r) {
    const double* w = m.w.data() + r * m.cols;
    double sum = 0;
    for (int64_t c = 0; c < m.cols; ++c) sum += w[c] * x[c];
    y[r] = sum;
  }
  return y;
}

void ReferenceModel::rope(double* v, int64_t n_heads, int64_t pos) const {
  const int64_t half = cfg_.n_rot / 2;
  for (int64_t h = 0; h < n_heads; ++h) {
    double* head = v + h * cfg_.head_dim;
    for (int64_t i = 0; i < half; ++i) {
      const double theta = static_cast<double>(pos) * std::pow(cfg_.rope_base, -2.0 * i / cfg_.n_rot);
      const double c = std::cos(theta);
      const double s = std::sin(theta);
      const int64_t a = cfg_.neox ? i : 2 * i;
      const int64_t b = cfg_.neox ? i + half : 2 * i + 1;
      const double x0 = head[a];
      const double x1 = head[b];
      head[a] = x0 * c - x1 * s;
      head[b] = x0 * s + x1 * c;
    }
  }
}

void ReferenceModel::reset() { n_past_ = 0; }

std::vector<double> ReferenceModel::step(int32_t token) {
  if (token < 0 || token >= cfg_.n_vocab) bad("token id out of range");
  if (n_past_ >= cfg_.n_ctx) bad("context full");
  const int64_t pos = n_past_;
  const int64_t hd = cfg_.head_dim;
  const int64_t kv_dim = cfg_.n_head_kv * hd;
  const int64_t group = cfg_.n_head / cfg_.n_head_kv;
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));

  std::vector<double> x(token_embd_.w.begin() + token * cfg_.n_embd, token_embd_.w.begin() + (token + 1) * cfg_.n_embd);
  for (Layer& layer : layers_) {
    const std::vector<double> h = rms_norm(x, layer.attn_norm, cfg_.rms_eps);
    std::vector<double> q = matvec(layer.wq, h);
    std::vector<double> k = matvec(layer.wk, h);
    std::vector<double> v = matvec(layer.wv, h);
    if (!layer.bq.empty()) {
      for (size_t i = 0; i < q.size(); ++i) q[i] += layer.bq[i];
      for (size_t i = 0; i < k.size(); ++i) k[i] += layer.bk[i];
      for (size_t i = 0; i < v.size(); ++i) v[i] += layer.bv[i];
    }
    rope(q.data(), cfg_.n_head, pos);
    rope(k.data(), cfg_.n_head_kv, pos);
    if (cache_type_ == DType::kF16) {
      for (double& e : k) e = reference_round_fp16(e);
      for (double& e : v) e = reference_round_fp16(e);
    } else if (cache_type_ == DType::kQ8_0) {
      reference_q8_round(k);
      reference_q8_round(v);
    }
    std::copy(k.begin(), k.end(), layer.k_cache.begin() + pos * kv_dim);
    std::copy(v.begin(), v.end(), layer.v_cache.begin() + pos * kv_dim);

    std::vector<double> attn(static_cast<size_t>(cfg_.n_embd), 0.0);
    std::vector<double> scores(static_cast<size_t>(pos + 1));
    for (int64_t head = 0; head < cfg_.n_head; ++head) {
      const int64_t kvh = head / group;
      const double* qh = q.data() + head * hd;
      double max_score = -INFINITY;
      for (int64_t j = 0; j <= pos; ++j) {
        const double* kj = layer.k_cache.data() + j * kv_dim + kvh * hd;
        double dot = 0;
        for (int64_t i = 0; i < hd; ++i) dot += qh[i] * kj[i];
        scores[j] = dot * scale;
        max_score = std::max(max_score, scores[j]);
      }
      double total = 0;
      for (int64_t j = 0; j <= pos; ++j) total += scores[j] = std::exp(scores[j] - max_score);
      for (int64_t j = 0; j <= pos; ++j) {
        const double p = scores[j] / total;
        const double* vj = layer.v_cache.data() + j * kv_dim + kvh * hd;
        for (int64_t i = 0; i < hd; ++i) attn[head * hd + i] += p * vj[i];
      }
    }
    const std::vector<double> o = matvec(layer.wo, attn);
    for (size_t i = 0; i < x.size(); ++i) x[i] += o[i];

    const std::vector<double> h2 = rms_norm(x, layer.ffn_norm, cfg_.rms_eps);
    const std::vector<double> g = matvec(layer.gate, h2);
    const std::vector<double> u = matvec(layer.up, h2);
    std::vector<double> act(g.size());
    for (size_t i = 0; i < g.size(); ++i) act[i] = g[i] / (1.0 + std::exp(-g[i])) * u[i];
    const std::vector<double> d = matvec(layer.down, act);
    for (size_t i = 0; i < x.size(); ++i) x[i] += d[i];
  }
  ++n_past_;
  return matvec(cfg_.tied ? token_embd_ : output_, rms_norm(x, output_norm_, cfg_.rms_eps));
}

std::vector<std::vector<double>> reference_logits(const gguf::File& file, const std::vector<int32_t>& tokens) {
  ReferenceModel model(file);
  std::vector<std::vector<double>> out;
  out.reserve(tokens.size());
  for (const int32_t t : tokens) out.push_back(model.step(t));
  return out;
}

std::vector<int32_t> reference_greedy(const gguf::File& file, const std::vector<int32_t>& prompt, int n_new,
                                      std::vector<double>* margins) {
  if (prompt.empty()) bad("greedy decoding needs a non-empty prompt");
  ReferenceModel model(file);
  std::vector<double> logits;
  for (const int32_t t : prompt) logits = model.step(t);
  std::vector<int32_t> out;
  if (margins != nullptr) margins->clear();
  for (int i = 0; i < n_new; ++i) {
    const auto best = std::max_element(logits.begin(), logits.end());  // first maximum: lowest id
    const int32_t id = static_cast<int32_t>(best - logits.begin());
    if (margins != nullptr) {
      double second = -INFINITY;
      for (size_t j = 0; j < logits.size(); ++j) {
        if (static_cast<int32_t>(j) != id) second = std::max(second, logits[j]);
      }
      margins->push_back(*best - second);
    }
    out.push_back(id);
    if (i + 1 < n_new) logits = model.step(id);
  }
  return out;
}

}  // namespace mixserve::testing
