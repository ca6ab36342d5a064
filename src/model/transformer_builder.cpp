#include "model/transformer_builder.h"

#include <cmath>

#include "common/error.h"

namespace mixserve {

using hal::make_op;

hal::Tensor* ForwardGraph::view(const hal::Tensor& base, std::array<int64_t, 4> ne, size_t offset) {
  hal::Tensor& t = views.emplace_back(base);
  t.ne = ne;
  t.offset = base.offset + offset;
  return &t;
}

namespace {

constexpr size_t kTensorAlign = 64;

// Places a tensor of `type` and shape `ne` at the end of an arena of `size` bytes.
void place(hal::Tensor* t, DType type, std::array<int64_t, 4> ne, size_t& size) {
  t->dtype = type;
  t->ne = ne;
  t->offset = size;
  size += (t->bytes() + kTensorAlign - 1) / kTensorAlign * kTensorAlign;
}

}  // namespace

ForwardLayout layout_forward(const ModelConfig& c, int64_t n_batch, int64_t n_ctx, DType cache_type) {
  if (cache_type != DType::kF32 && cache_type != DType::kF16 && cache_type != DType::kQ8_0) {
    fail(ErrorCode::kInvalidArgument, "KV cache type ", dtype_name(cache_type), " is not supported (f32, f16 or q8_0)");
  }
  if (c.head_dim % dtype_info(cache_type).block_elems != 0) {
    fail(ErrorCode::kInvalidArgument, "a ", dtype_name(cache_type),
         " KV cache needs a head dimension that is a multiple of ", dtype_info(cache_type).block_elems,
         "; this model's is ", c.head_dim);
  }
  ForwardLayout layout;
  ForwardBuffers& b = layout.buffers;
  const int64_t B = n_batch;
  const int64_t q_dim = c.n_head * c.head_dim;
  const int64_t kv_dim = c.n_head_kv * c.head_dim;
  size_t& size = layout.activation_bytes;
  place(&b.ids, DType::kI32, {B, 1, 1, 1}, size);
  place(&b.x, DType::kF32, {c.n_embd, B, 1, 1}, size);
  place(&b.h, DType::kF32, {c.n_embd, B, 1, 1}, size);
  place(&b.q, DType::kF32, {q_dim, B, 1, 1}, size);
  place(&b.k, DType::kF32, {kv_dim, B, 1, 1}, size);
  place(&b.v, DType::kF32, {kv_dim, B, 1, 1}, size);
  place(&b.attn, DType::kF32, {q_dim, B, 1, 1}, size);
  place(&b.proj, DType::kF32, {c.n_embd, B, 1, 1}, size);
  place(&b.gate, DType::kF32, {c.n_ff, B, 1, 1}, size);
  place(&b.up, DType::kF32, {c.n_ff, B, 1, 1}, size);
  place(&b.logits, DType::kF32, {c.n_vocab, B, 1, 1}, size);
  place(&b.logit_ids, DType::kI32, {B, 1, 1, 1}, size);
  b.k_cache.resize(static_cast<size_t>(c.n_layer));
  b.v_cache.resize(static_cast<size_t>(c.n_layer));
  for (size_t il = 0; il < b.k_cache.size(); ++il) {
    size_t k_size = 0, v_size = 0;
    place(&b.k_cache[il], cache_type, {kv_dim, n_ctx, 1, 1}, k_size);
    place(&b.v_cache[il], cache_type, {kv_dim, n_ctx, 1, 1}, v_size);
    layout.cache_bytes = k_size;
  }
  return layout;
}

ForwardGraph build_forward(const ModelConfig& c, const ModelWeights& w, ForwardBuffers& b,
                           std::span<const SequenceSlice> slices) {
  int64_t T = 0;
  for (const SequenceSlice& s : slices) {
    MIXSERVE_CHECK(s.n_tokens > 0 && s.n_past >= 0, "empty slice or negative position");
    T += s.n_tokens;
  }
  MIXSERVE_CHECK(T > 0 && T <= b.x.ne[1], "batch of ", T, " tokens exceeds buffers of ", b.x.ne[1]);
  ForwardGraph g;
  const int64_t q_dim = c.n_head * c.head_dim;
  const int64_t kv_dim = c.n_head_kv * c.head_dim;
  auto cols = [&](const hal::Tensor& t, int64_t width) { return g.view(t, {width, T, 1, 1}); };
  // Rows [first, first + n) of an activation `t` of `width` floats per token.
  auto rows_of = [&](const hal::Tensor& t, std::array<int64_t, 4> ne, int64_t first) {
    return g.view(t, ne, static_cast<size_t>(first) * t.row_bytes());
  };

  hal::Tensor* ids = g.view(b.ids, {T, 1, 1, 1});
  hal::Tensor* x = cols(b.x, c.n_embd);
  hal::Tensor* h = cols(b.h, c.n_embd);
  hal::Tensor* q = cols(b.q, q_dim);
  hal::Tensor* k = cols(b.k, kv_dim);
  hal::Tensor* v = cols(b.v, kv_dim);
  hal::Tensor* attn = cols(b.attn, q_dim);
  hal::Tensor* proj = cols(b.proj, c.n_embd);
  hal::Tensor* gate = cols(b.gate, c.n_ff);
  hal::Tensor* up = cols(b.up, c.n_ff);
  // Per-slice views: the heads of its tokens (rope, attention) and its rows of k, v (cache stores).
  struct SliceViews {
    hal::Tensor *q_heads, *k_heads, *k_rows, *v_rows, *attn_rows;
  };
  std::vector<SliceViews> sv;
  int64_t first = 0;
  for (const SequenceSlice& s : slices) {
    const int64_t n = s.n_tokens;
    sv.push_back({rows_of(b.q, {c.head_dim, c.n_head, n, 1}, first), rows_of(b.k, {c.head_dim, c.n_head_kv, n, 1}, first),
                  rows_of(b.k, {kv_dim, n, 1, 1}, first), rows_of(b.v, {kv_dim, n, 1, 1}, first),
                  rows_of(b.attn, {q_dim, n, 1, 1}, first)});
    first += n;
  }
  auto& ops = g.ops;

  ops.push_back(make_op(hal::OpKind::kGetRows, x, &w.token_embd, ids));
  for (int64_t il = 0; il < c.n_layer; ++il) {
    const LayerWeights& L = w.layers[static_cast<size_t>(il)];
    const size_t first_of_layer = ops.size();
    hal::Op norm = make_op(hal::OpKind::kRmsNorm, h, x, &L.attn_norm);
    norm.f[0] = c.rms_eps;
    ops.push_back(norm);
    const std::array<std::pair<hal::Tensor*, const hal::Tensor*>, 3> proj_in = {
        {{q, &L.wq}, {k, &L.wk}, {v, &L.wv}}};
    const std::array<const hal::Tensor*, 3> biases = {&L.bq, &L.bk, &L.bv};
    // The three products first, then the biases: a backend may run products of one input together.
    for (size_t i = 0; i < 3; ++i) ops.push_back(make_op(hal::OpKind::kMatMul, proj_in[i].first, proj_in[i].second, h));
    for (size_t i = 0; i < 3 && c.qkv_bias; ++i) {
      ops.push_back(make_op(hal::OpKind::kAdd, proj_in[i].first, proj_in[i].first, biases[i]));
    }
    hal::Tensor* k_cache = &b.k_cache[static_cast<size_t>(il)];
    hal::Tensor* v_cache = &b.v_cache[static_cast<size_t>(il)];
    for (size_t si = 0; si < slices.size(); ++si) {
      const SequenceSlice& s = slices[si];
      const SliceViews& view = sv[si];
      for (hal::Tensor* heads : {view.q_heads, view.k_heads}) {
        hal::Op rope = make_op(hal::OpKind::kRope, heads, heads);
        rope.i = {s.n_past, c.n_rot, c.rope_neox ? 1 : 0};
        rope.f[0] = c.rope_freq_base;
        ops.push_back(rope);
      }
      for (auto [cache, rows] : {std::pair{k_cache, view.k_rows}, std::pair{v_cache, view.v_rows}}) {
        hal::Op store = make_op(hal::OpKind::kStoreKV, cache, rows, s.block_table);
        store.i = {s.n_past, s.block_table != nullptr ? s.block_size : 0, 0};
        ops.push_back(store);
      }
      hal::Op att = make_op(hal::OpKind::kAttention, view.attn_rows, view.q_heads, k_cache, v_cache, s.block_table);
      att.f[0] = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
      att.i = {s.n_past, c.n_head_kv, s.block_table != nullptr ? s.block_size : 0};
      ops.push_back(att);
    }
    ops.push_back(make_op(hal::OpKind::kMatMul, proj, &L.wo, attn));
    ops.push_back(make_op(hal::OpKind::kAdd, x, x, proj));

    hal::Op ffn_norm = make_op(hal::OpKind::kRmsNorm, h, x, &L.ffn_norm);
    ffn_norm.f[0] = c.rms_eps;
    ops.push_back(ffn_norm);
    ops.push_back(make_op(hal::OpKind::kMatMul, gate, &L.w_gate, h));
    ops.push_back(make_op(hal::OpKind::kMatMul, up, &L.w_up, h));
    ops.push_back(make_op(hal::OpKind::kSwiGLU, gate, gate, up));
    ops.push_back(make_op(hal::OpKind::kMatMul, proj, &L.w_down, gate));
    ops.push_back(make_op(hal::OpKind::kAdd, x, x, proj));
    for (size_t i = first_of_layer; i < ops.size(); ++i) ops[i].layer = static_cast<int32_t>(il);
  }

  // Rows that need logits: every token or the last of its slice, as each slice asks.
  first = 0;
  for (const SequenceSlice& s : slices) {
    if (s.logits == LogitsFor::kAll) {
      for (int64_t i = 0; i < s.n_tokens; ++i) g.logit_rows.push_back(static_cast<int32_t>(first + i));
    } else if (s.logits == LogitsFor::kLast) {
      g.logit_rows.push_back(static_cast<int32_t>(first + s.n_tokens - 1));
    }
    first += s.n_tokens;
  }
  g.logits_rows = static_cast<int64_t>(g.logit_rows.size());
  if (g.logits_rows == 0) return g;
  const int64_t n_out = g.logits_rows;
  // A contiguous run of rows ending at the last token is a view of x; anything else is gathered.
  g.gather_logit_rows = g.logit_rows.front() != T - n_out;
  hal::Tensor* h_out = g.view(b.h, {c.n_embd, n_out, 1, 1});
  hal::Tensor* x_out = nullptr;
  if (g.gather_logit_rows) {
    hal::Tensor* rows = g.view(b.logit_ids, {n_out, 1, 1, 1});
    x_out = g.view(b.proj, {c.n_embd, n_out, 1, 1});
    ops.push_back(make_op(hal::OpKind::kGetRows, x_out, x, rows));
  } else {
    x_out = rows_of(b.x, {c.n_embd, n_out, 1, 1}, T - n_out);
  }
  hal::Tensor* logits = g.view(b.logits, {c.n_vocab, n_out, 1, 1});
  hal::Op out_norm = make_op(hal::OpKind::kRmsNorm, h_out, x_out, &w.output_norm);
  out_norm.f[0] = c.rms_eps;
  ops.push_back(out_norm);
  ops.push_back(make_op(hal::OpKind::kMatMul, logits, &w.output, h_out));
  return g;
}

ForwardGraph build_forward(const ModelConfig& c, const ModelWeights& w, ForwardBuffers& b, int64_t n_past,
                           int64_t n_tokens, LogitsFor logits) {
  const SequenceSlice slice{.n_past = n_past, .n_tokens = n_tokens, .logits = logits};
  return build_forward(c, w, b, std::span<const SequenceSlice>(&slice, 1));
}

}  // namespace mixserve
