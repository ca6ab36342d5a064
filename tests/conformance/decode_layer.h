// A decoding transformer layer of small shapes for the CPU stream's conformance tests: its weights,
// activations and KV caches in device memory, and its ops for one token as the graph builder orders
// them (Llama, or Qwen2 with biases).
#pragma once

#include <array>
#include <cstdint>
#include <random>
#include <utility>
#include <vector>

#include "conformance/op_harness.h"
#include "hal/op.h"

namespace mixserve::conformance {

inline constexpr int64_t kEmbd = 256, kHeadDim = 64, kHeads = 4, kKvHeads = 2, kFf = 320, kCtx = 16;
inline constexpr int64_t kKvDim = kHeadDim * kKvHeads;

// A view of t's memory with another shape (as the graph builder makes for heads and rows).
inline hal::Tensor view(const DeviceTensor& t, std::array<int64_t, 4> ne) {
  hal::Tensor v = t.tensor;
  v.ne = ne;
  return v;
}

struct Weights {
  DeviceTensor norm, wq, wk, wv, bq, bk, bv, wo, ffn_norm, gate, up, down;
};

inline Weights make_weights(hal::Device& device, hal::Stream& stream, DType type, std::mt19937_64& rng) {
  const auto matrix = [&](int64_t k, int64_t n) {
    return make_tensor(device, stream, type, {k, n, 1, 1},
                       encode(type, random_floats(static_cast<size_t>(k * n), rng, 0.1f), k));
  };
  const auto vec = [&](int64_t n) {
    return make_tensor(device, stream, DType::kF32, {n, 1, 1, 1},
                       encode(DType::kF32, random_floats(static_cast<size_t>(n), rng), n));
  };
  return {vec(kEmbd),
          matrix(kEmbd, kHeads * kHeadDim),
          matrix(kEmbd, kKvDim),
          matrix(kEmbd, kKvDim),
          vec(kHeads * kHeadDim),
          vec(kKvDim),
          vec(kKvDim),
          matrix(kHeads * kHeadDim, kEmbd),
          vec(kEmbd),
          matrix(kEmbd, kFf),
          matrix(kEmbd, kFf),
          matrix(kFf, kEmbd)};
}

// The activations and caches of one run of a layer.
struct Layer {
  Layer(hal::Device& device, hal::Stream& stream, DType cache_type) {
    const auto f32 = [&](int64_t n) { return make_tensor(device, stream, DType::kF32, {n, 1, 1, 1}); };
    x = f32(kEmbd);
    h = f32(kEmbd);
    q = f32(kHeads * kHeadDim);
    k = f32(kKvDim);
    v = f32(kKvDim);
    attn = f32(kHeads * kHeadDim);
    proj = f32(kEmbd);
    gate = f32(kFf);
    up = f32(kFf);
    k_cache = make_tensor(device, stream, cache_type, {kKvDim, kCtx, 1, 1});
    v_cache = make_tensor(device, stream, cache_type, {kKvDim, kCtx, 1, 1});
    q_heads = view(q, {kHeadDim, kHeads, 1, 1});
    k_heads = view(k, {kHeadDim, kKvHeads, 1, 1});
  }
  DeviceTensor x, h, q, k, v, attn, proj, gate, up, k_cache, v_cache;
  hal::Tensor q_heads, k_heads;

  // One token at position pos, as the transformer builder orders a Qwen2-style layer (with biases)
  // or a Llama one.
  std::vector<hal::Op> ops(const Weights& w, int64_t pos, bool bias, const hal::Tensor* table, int64_t block) {
    std::vector<hal::Op> o;
    hal::Op norm = hal::make_op(hal::OpKind::kRmsNorm, &h.tensor, &x.tensor, &w.norm.tensor);
    norm.f[0] = 1e-5f;
    o.push_back(norm);
    o.push_back(hal::make_op(hal::OpKind::kMatMul, &q.tensor, &w.wq.tensor, &h.tensor));
    o.push_back(hal::make_op(hal::OpKind::kMatMul, &k.tensor, &w.wk.tensor, &h.tensor));
    o.push_back(hal::make_op(hal::OpKind::kMatMul, &v.tensor, &w.wv.tensor, &h.tensor));
    if (bias) {
      o.push_back(hal::make_op(hal::OpKind::kAdd, &q.tensor, &q.tensor, &w.bq.tensor));
      o.push_back(hal::make_op(hal::OpKind::kAdd, &k.tensor, &k.tensor, &w.bk.tensor));
      o.push_back(hal::make_op(hal::OpKind::kAdd, &v.tensor, &v.tensor, &w.bv.tensor));
    }
    for (hal::Tensor* heads : {&q_heads, &k_heads}) {
      hal::Op rope = hal::make_op(hal::OpKind::kRope, heads, heads);
      rope.i = {pos, kHeadDim, bias ? 1 : 0};
      rope.f[0] = 10000.0f;
      o.push_back(rope);
    }
    for (auto [cache, rows] : {std::pair{&k_cache, &k}, std::pair{&v_cache, &v}}) {
      hal::Op store = hal::make_op(hal::OpKind::kStoreKV, &cache->tensor, &rows->tensor, table);
      store.i = {pos, block, 0};
      o.push_back(store);
    }
    hal::Op att =
        hal::make_op(hal::OpKind::kAttention, &attn.tensor, &q_heads, &k_cache.tensor, &v_cache.tensor, table);
    att.f[0] = 0.125f;
    att.i = {pos, kKvHeads, block};
    o.push_back(att);
    o.push_back(hal::make_op(hal::OpKind::kMatMul, &proj.tensor, &w.wo.tensor, &attn.tensor));
    o.push_back(hal::make_op(hal::OpKind::kAdd, &x.tensor, &x.tensor, &proj.tensor));
    hal::Op ffn_norm = hal::make_op(hal::OpKind::kRmsNorm, &h.tensor, &x.tensor, &w.ffn_norm.tensor);
    ffn_norm.f[0] = 1e-5f;
    o.push_back(ffn_norm);
    o.push_back(hal::make_op(hal::OpKind::kMatMul, &gate.tensor, &w.gate.tensor, &h.tensor));
    o.push_back(hal::make_op(hal::OpKind::kMatMul, &up.tensor, &w.up.tensor, &h.tensor));
    o.push_back(hal::make_op(hal::OpKind::kSwiGLU, &gate.tensor, &gate.tensor, &up.tensor));
    o.push_back(hal::make_op(hal::OpKind::kMatMul, &proj.tensor, &w.down.tensor, &gate.tensor));
    o.push_back(hal::make_op(hal::OpKind::kAdd, &x.tensor, &x.tensor, &proj.tensor));
    return o;
  }
};

inline std::vector<uint8_t> bytes_of(hal::Stream& stream, const DeviceTensor& t) {
  stream.synchronize();
  std::vector<uint8_t> out(t.tensor.bytes());
  stream.read(*t.buffer, t.tensor.offset, out.data(), out.size());
  return out;
}

}  // namespace mixserve::conformance
