// Checks of the test-only reference forward pass itself: its decoders against hand-made blocks and
// known bit patterns, and its forward pass against a hand computation on a model whose matrices are
// identities and selections (so RoPE pairing, grouped-query head mapping, biases, the causal mask and
// the tied output are visible in closed form).
#include "support/reference_forward.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "model/gguf.h"

namespace mixserve::testing {
namespace {

TEST(ReferenceDecode, Fp16AndBf16BitPatterns) {
  EXPECT_EQ(reference_fp16(0x3c00), 1.0);
  EXPECT_EQ(reference_fp16(0xc000), -2.0);
  EXPECT_EQ(reference_fp16(0x3555), 0.25 * (1 + 341 / 1024.0));  // 0.333251953125
  EXPECT_EQ(reference_fp16(0x7bff), 65504.0);
  EXPECT_EQ(reference_fp16(0x0400), std::ldexp(1.0, -14));          // smallest normal
  EXPECT_EQ(reference_fp16(0x0001), std::ldexp(1.0, -24));          // smallest subnormal
  EXPECT_EQ(reference_fp16(0x03ff), 1023 * std::ldexp(1.0, -24));   // largest subnormal
  EXPECT_EQ(reference_fp16(0x8000), 0.0);
  EXPECT_TRUE(std::signbit(reference_fp16(0x8000)));
  EXPECT_EQ(reference_fp16(0x7c00), INFINITY);
  EXPECT_EQ(reference_fp16(0xfc00), -INFINITY);
  EXPECT_TRUE(std::isnan(reference_fp16(0x7e00)));
  EXPECT_EQ(reference_bf16(0x3f80), 1.0);
  EXPECT_EQ(reference_bf16(0xc0a0), -5.0);
  EXPECT_EQ(reference_bf16(0x3e20), 0.15625);
  EXPECT_EQ(reference_bf16(0x0001), std::ldexp(1.0, -133));
}

TEST(ReferenceDecode, BlocksFromTheSpecLayout) {
  // Q8_0: fp16 d = 0.5 (0x3800), then 32 int8.
  std::vector<uint8_t> q8 = {0x00, 0x38};
  for (int i = 0; i < 32; ++i) q8.push_back(static_cast<uint8_t>(static_cast<int8_t>(i * 8 - 128)));
  const auto v8 = reference_decode(DType::kQ8_0, q8, 32);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(v8[i], 0.5 * (i * 8 - 128)) << i;

  // Q4_0, two blocks: d = 2 (0x4000) and d = -0.25 (0xb400); byte j holds element j (low nibble)
  // and element j + 16 (high nibble).
  std::vector<uint8_t> q4;
  for (const uint16_t d : {uint16_t{0x4000}, uint16_t{0xb400}}) {
    q4.push_back(static_cast<uint8_t>(d & 0xff));
    q4.push_back(static_cast<uint8_t>(d >> 8));
    for (int j = 0; j < 16; ++j) q4.push_back(static_cast<uint8_t>(j | ((15 - j) << 4)));
  }
  const auto v4 = reference_decode(DType::kQ4_0, q4, 64);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(v4[j], 2.0 * (j - 8)) << j;
    EXPECT_EQ(v4[16 + j], 2.0 * (15 - j - 8)) << j;
    EXPECT_EQ(v4[32 + j], -0.25 * (j - 8)) << j;
    EXPECT_EQ(v4[48 + j], -0.25 * (15 - j - 8)) << j;
  }

  const float f[3] = {1.5f, -0.0f, 3e-39f};
  std::vector<uint8_t> raw(sizeof f);
  std::memcpy(raw.data(), f, sizeof f);
  const auto vf = reference_decode(DType::kF32, raw, 3);
  EXPECT_EQ(vf[0], 1.5);
  EXPECT_EQ(vf[2], static_cast<double>(3e-39f));
  const std::vector<uint8_t> h = {0x00, 0x3c, 0x00, 0xc0};
  EXPECT_EQ(reference_decode(DType::kF16, h, 2), (std::vector<double>{1.0, -2.0}));
  EXPECT_EQ(reference_decode(DType::kBF16, h, 2), (std::vector<double>{std::ldexp(1.0, -7), -2.0}));

  EXPECT_THROW(reference_decode(DType::kQ8_0, q8, 16), std::runtime_error);
  EXPECT_THROW(reference_decode(DType::kQ8_0, q8, 64), std::runtime_error);  // data too short
  EXPECT_THROW(reference_decode(DType::kQ4_1, q4, 32), std::runtime_error);
}

TEST(ReferenceDecode, Q8ActivationRounding) {
  std::vector<double> x(32);
  for (int i = 0; i < 32; ++i) x[i] = (i - 15) * 0.1;  // amax 1.6 at i = 31
  const std::vector<double> orig = x;
  reference_q8_round(x);
  const double d = 1.6 / 127;
  for (int i = 0; i < 32; ++i) EXPECT_NEAR(x[i], orig[i], d * 0.51 + 1e-3 * std::fabs(orig[i])) << i;
  EXPECT_NEAR(x[31], 1.6, 1.6 * 1e-3);  // only the fp16 rounding of d
}

// ---- hand model ------------------------------------------------------------------------------
// n_embd 16, 4 heads of 4 on 2 KV heads, n_ff 2, vocabulary 3. Wq = I, Wk picks dims 0..7,
// Wv picks dims 8..15, Wo = I; the FFN reads dims 0..3 and writes dims 14, 15.
constexpr int kEmbd = 16;
constexpr int kHeadDim = 4;
constexpr int kVocab = 3;
constexpr double kEps = 1e-5;
constexpr double kBase = 100.0;

double embd(int t, int i) { return std::sin(1.3 * t + 0.7 * i) + 0.05 * i; }
double out_w(int t, int i) { return std::cos(0.5 * t * i + 0.3) - 0.02 * t; }
double bias(int which, int i) { return 0.1 * which - 0.03 * i; }

std::vector<float> matrix(int rows, int cols, const std::function<double(int, int)>& f) {
  std::vector<float> m;
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < cols; ++c) m.push_back(static_cast<float>(f(r, c)));
  }
  return m;
}

void add(gguf::Writer& w, const std::string& name, std::vector<int64_t> dims, const std::vector<float>& v) {
  w.add_tensor(name, DType::kF32, std::move(dims),
               std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(v.data()), v.size() * sizeof(float)));
}

std::vector<uint8_t> hand_model(const std::string& arch, bool tied) {
  gguf::Writer w;
  w.set("general.architecture", gguf::make_string(arch));
  w.set(arch + ".context_length", gguf::make_uint32(4));
  w.set(arch + ".embedding_length", gguf::make_uint32(kEmbd));
  w.set(arch + ".block_count", gguf::make_uint32(1));
  w.set(arch + ".feed_forward_length", gguf::make_uint32(2));
  w.set(arch + ".attention.head_count", gguf::make_uint32(4));
  w.set(arch + ".attention.head_count_kv", gguf::make_uint32(2));
  w.set(arch + ".attention.layer_norm_rms_epsilon", gguf::make_float32(static_cast<float>(kEps)));
  w.set(arch + ".rope.freq_base", gguf::make_float32(static_cast<float>(kBase)));
  const auto ones = std::vector<float>(kEmbd, 1.0f);
  add(w, "token_embd.weight", {kEmbd, kVocab}, matrix(kVocab, kEmbd, embd));
  add(w, "output_norm.weight", {kEmbd}, ones);
  if (!tied) add(w, "output.weight", {kEmbd, kVocab}, matrix(kVocab, kEmbd, out_w));
  add(w, "blk.0.attn_norm.weight", {kEmbd}, ones);
  add(w, "blk.0.ffn_norm.weight", {kEmbd}, ones);
  add(w, "blk.0.attn_q.weight", {kEmbd, kEmbd}, matrix(kEmbd, kEmbd, [](int r, int c) { return r == c; }));
  add(w, "blk.0.attn_k.weight", {kEmbd, 8}, matrix(8, kEmbd, [](int r, int c) { return c == r; }));
  add(w, "blk.0.attn_v.weight", {kEmbd, 8}, matrix(8, kEmbd, [](int r, int c) { return c == r + 8; }));
  add(w, "blk.0.attn_output.weight", {kEmbd, kEmbd}, matrix(kEmbd, kEmbd, [](int r, int c) { return r == c; }));
  add(w, "blk.0.ffn_gate.weight", {kEmbd, 2}, matrix(2, kEmbd, [](int r, int c) { return c == r; }));
  add(w, "blk.0.ffn_up.weight", {kEmbd, 2}, matrix(2, kEmbd, [](int r, int c) { return c == r + 2; }));
  add(w, "blk.0.ffn_down.weight", {2, kEmbd}, matrix(kEmbd, 2, [](int r, int c) { return r == c + 14; }));
  if (arch == "qwen2") {
    add(w, "blk.0.attn_q.bias", {kEmbd}, matrix(1, kEmbd, [](int, int i) { return bias(1, i); }));
    add(w, "blk.0.attn_k.bias", {8}, matrix(1, 8, [](int, int i) { return bias(2, i); }));
    add(w, "blk.0.attn_v.bias", {8}, matrix(1, 8, [](int, int i) { return bias(3, i); }));
  }
  return w.to_bytes();
}

using Vec = std::vector<double>;

Vec rms(const Vec& x) {
  double s = 0;
  for (const double v : x) s += v * v;
  Vec y = x;
  for (double& v : y) v /= std::sqrt(s / static_cast<double>(x.size()) + kEps);
  return y;
}

// Rotates one 4-dim head at `pos`: pair 0 by pos * base^0, pair 1 by pos * base^(-2/4).
// Llama pairs are dims (0,1) and (2,3); NeoX (Qwen2) pairs are dims (0,2) and (1,3).
void rotate(double* v, int pos, bool neox) {
  const int pairs[2][2] = {{0, neox ? 2 : 1}, {neox ? 1 : 2, 3}};
  for (int p = 0; p < 2; ++p) {
    const double theta = pos * std::pow(kBase, -2.0 * p / kHeadDim);
    const double a = v[pairs[p][0]];
    const double b = v[pairs[p][1]];
    v[pairs[p][0]] = a * std::cos(theta) - b * std::sin(theta);
    v[pairs[p][1]] = a * std::sin(theta) + b * std::cos(theta);
  }
}

// Variations of the hand computation: the right one, and the two mistakes it must tell apart.
struct Convention {
  bool neox = false;       // RoPE pairing
  bool kv_modulo = false;  // wrong grouped-query mapping: KV head = head % n_head_kv
};

// Hand computation of the logits of every position of `tokens` for hand_model(arch, tied).
std::vector<Vec> hand_logits(const std::string& arch, bool tied, const std::vector<int>& tokens, Convention conv) {
  const bool qwen = arch == "qwen2";
  std::vector<Vec> keys, values, out;
  for (int pos = 0; pos < static_cast<int>(tokens.size()); ++pos) {
    Vec x(kEmbd);
    for (int i = 0; i < kEmbd; ++i) x[i] = embd(tokens[pos], i);
    const Vec h = rms(x);
    Vec q = h, k(h.begin(), h.begin() + 8), v(h.begin() + 8, h.end());
    for (int i = 0; qwen && i < kEmbd; ++i) q[i] += bias(1, i);
    for (int i = 0; qwen && i < 8; ++i) k[i] += bias(2, i), v[i] += bias(3, i);
    for (int head = 0; head < 4; ++head) rotate(&q[head * 4], pos, conv.neox);
    for (int head = 0; head < 2; ++head) rotate(&k[head * 4], pos, conv.neox);
    keys.push_back(k);
    values.push_back(v);
    for (int head = 0; head < 4; ++head) {
      const int kv = conv.kv_modulo ? head % 2 : head / 2;  // right: heads 0,1 -> KV 0; 2,3 -> KV 1
      Vec score(static_cast<size_t>(pos + 1));
      double total = 0;
      for (int j = 0; j <= pos; ++j) {
        double dot = 0;
        for (int i = 0; i < 4; ++i) dot += q[head * 4 + i] * keys[j][kv * 4 + i];
        total += score[j] = std::exp(dot / 2.0);  // 1/sqrt(head_dim) = 1/2
      }
      for (int i = 0; i < 4; ++i) {
        double a = 0;
        for (int j = 0; j <= pos; ++j) a += score[j] / total * values[j][kv * 4 + i];
        x[head * 4 + i] += a;  // Wo = I
      }
    }
    const Vec h2 = rms(x);
    for (int u = 0; u < 2; ++u) x[14 + u] += h2[u] / (1 + std::exp(-h2[u])) * h2[2 + u];
    const Vec f = rms(x);
    Vec logits(kVocab);
    for (int t = 0; t < kVocab; ++t) {
      for (int i = 0; i < kEmbd; ++i) logits[t] += (tied ? embd(t, i) : out_w(t, i)) * f[i];
    }
    out.push_back(logits);
  }
  return out;
}

double max_diff(const std::vector<Vec>& a, const std::vector<Vec>& b) {
  double diff = 0;
  for (size_t p = 0; p < a.size(); ++p) {
    for (size_t t = 0; t < a[p].size(); ++t) diff = std::max(diff, std::fabs(a[p][t] - b[p][t]));
  }
  return diff;
}

TEST(ReferenceForward, MatchesHandComputation) {
  const std::vector<int> tokens = {2, 0, 1, 1};
  for (const std::string arch : {"llama", "qwen2"}) {
    for (const bool tied : {false, true}) {
      SCOPED_TRACE(arch + (tied ? " tied" : " untied"));
      const bool neox = arch == "qwen2";
      const std::vector<uint8_t> bytes = hand_model(arch, tied);
      const gguf::File file = gguf::File::parse(bytes);
      const auto got = reference_logits(file, {2, 0, 1, 1});
      const auto want = hand_logits(arch, tied, tokens, {.neox = neox});
      ASSERT_EQ(got.size(), want.size());
      for (size_t p = 0; p < got.size(); ++p) {
        ASSERT_EQ(got[p].size(), static_cast<size_t>(kVocab));
        for (int t = 0; t < kVocab; ++t) EXPECT_NEAR(got[p][t], want[p][t], 1e-6) << "pos " << p << " token " << t;
      }
      // The hand model is sensitive to the conventions it checks: getting either wrong moves the logits.
      EXPECT_GT(max_diff(got, hand_logits(arch, tied, tokens, {.neox = !neox})), 1e-3);
      EXPECT_GT(max_diff(got, hand_logits(arch, tied, tokens, {.neox = neox, .kv_modulo = true})), 1e-3);
    }
  }
}

TEST(ReferenceForward, RejectsBadInput) {
  const std::vector<uint8_t> bytes = hand_model("llama", false);
  const gguf::File file = gguf::File::parse(bytes);
  EXPECT_THROW(reference_logits(file, {3}), std::runtime_error);
  EXPECT_THROW(reference_logits(file, {-1}), std::runtime_error);
  EXPECT_THROW(reference_logits(file, {0, 1, 2, 0, 1}), std::runtime_error);  // context is 4
  std::vector<double> margins;
  const auto text = reference_greedy(file, {0}, 3, &margins);
  EXPECT_EQ(text.size(), 3u);
  EXPECT_EQ(margins.size(), 3u);
}

}  // namespace
}  // namespace mixserve::testing
