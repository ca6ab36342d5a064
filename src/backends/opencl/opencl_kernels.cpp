#include "backends/opencl/opencl_kernels.h"

namespace mixserve::opencl {
namespace {

// Numerics follow the CPU backend (src/backends/cpu, src/quant) so that both give the same
// results: Q8_0 activations use quantize_row's rule (d = amax/127, q = round(x * (1/d)), d
// stored as fp16 with round-to-nearest-even) and the products per block are exact integer sums
// times both fp16 scales, accumulated block by block. FP_CONTRACT is off so that no fused
// multiply-add changes a rounding. Block layouts: GGUF/ggml Q8_0 = {half d; char qs[32]} (34
// bytes), Q4_0 = {half d; uchar qs[16]} (18 bytes, element j in the low nibble of qs[j] for
// j < 16, in the high nibble of qs[j - 16] otherwise, value nibble - 8).
constexpr std::string_view kSource = R"CLC(
#pragma OPENCL FP_CONTRACT OFF

int hsum16(int16 v) {
  int8 a = v.lo + v.hi;
  int4 b = a.lo + a.hi;
  int2 c = b.lo + b.hi;
  return c.x + c.y;
}

// Same as quant.cpp's to_int8: values outside [-127, 127] (only non-finite input) saturate.
char to_int8(float v) {
  if (v >= -127.0f && v <= 127.0f) return (char)v;
  return v > 0.0f ? (char)127 : (v < 0.0f ? (char)-127 : (char)0);
}

// One work-item per (block b, token t): x[t][32b .. 32b+31] -> xq[t*nb + b][32], xd[t*nb + b].
kernel void quantize_q8_0(global const float* x, ulong x_off, int k, int n_tok,
                          global char* xq, global half* xd) {
  const int nb = k / 32;
  const int b = (int)get_global_id(0);
  const int t = (int)get_global_id(1);
  if (b >= nb || t >= n_tok) return;
  global const float* src = x + x_off + (ulong)t * (ulong)k + (ulong)b * 32;
  float amax = 0.0f;
  for (int j = 0; j < 32; ++j) amax = fmax(amax, fabs(src[j]));
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  const ulong blk = (ulong)t * (ulong)nb + (ulong)b;
  vstore_half_rte(d, blk, xd);
  global char* q = xq + blk * 32;
  for (int j = 0; j < 32; ++j) q[j] = to_int8(round(src[j] * id));
}

// Matrix products: one work-item per (output row r, tile of `tile` tokens starting at t0), so
// each weight value loaded serves `tile` tokens. Each body is instantiated twice through a
// constant `tile` (1 and TOKEN_TILE, see the kernels below) so the compiler can unroll the
// token loops. Tokens past n_tok in the last tile read the last token's activations (valid
// memory) and are not stored. Every token keeps its own accumulator, updated in the same order
// whatever the tile, so an output does not depend on how many tokens share the call.

// Index of token t0 + u, clamped to the last token.
int tile_token(int t0, int u, int n_tok) { return min(t0 + u, n_tok - 1); }

// Float weights: four interleaved partial sums per token combined as (p0 + p1) + (p2 + p3),
// the order of the CPU's portable kernel.
inline void matmul_f32_body(global const float* w, ulong w_off, global const float* x, ulong x_off,
                            global float* y, ulong y_off, int k, int n, int n_tok, const int tile) {
  const int r = (int)get_global_id(0);
  const int t0 = (int)get_global_id(1) * tile;
  if (r >= n || t0 >= n_tok) return;
  global const float* wr = w + w_off + (ulong)r * (ulong)k;
  global const float* xr[TOKEN_TILE];
  float4 acc[TOKEN_TILE];
  for (int u = 0; u < tile; ++u) {
    xr[u] = x + x_off + (ulong)tile_token(t0, u, n_tok) * (ulong)k;
    acc[u] = (float4)(0.0f);
  }
  int j = 0;
  for (; j + 4 <= k; j += 4) {
    const float4 wv = vload4(0, wr + j);
    for (int u = 0; u < tile; ++u) acc[u] += wv * vload4(0, xr[u] + j);
  }
  for (; j < k; ++j) {
    for (int u = 0; u < tile; ++u) acc[u].x += wr[j] * xr[u][j];
  }
  for (int u = 0; u < tile && t0 + u < n_tok; ++u) {
    y[y_off + (ulong)(t0 + u) * (ulong)n + (ulong)r] = (acc[u].x + acc[u].y) + (acc[u].z + acc[u].w);
  }
}

inline void matmul_f16_body(global const half* w, ulong w_off, global const float* x, ulong x_off,
                            global float* y, ulong y_off, int k, int n, int n_tok, const int tile) {
  const int r = (int)get_global_id(0);
  const int t0 = (int)get_global_id(1) * tile;
  if (r >= n || t0 >= n_tok) return;
  global const half* wr = w + w_off + (ulong)r * (ulong)k;
  global const float* xr[TOKEN_TILE];
  float4 acc[TOKEN_TILE];
  for (int u = 0; u < tile; ++u) {
    xr[u] = x + x_off + (ulong)tile_token(t0, u, n_tok) * (ulong)k;
    acc[u] = (float4)(0.0f);
  }
  int j = 0;
  for (; j + 4 <= k; j += 4) {
    const float4 wv = vload_half4(0, wr + j);
    for (int u = 0; u < tile; ++u) acc[u] += wv * vload4(0, xr[u] + j);
  }
  for (; j < k; ++j) {
    const float wv = vload_half(j, wr);
    for (int u = 0; u < tile; ++u) acc[u].x += wv * xr[u][j];
  }
  for (int u = 0; u < tile && t0 + u < n_tok; ++u) {
    y[y_off + (ulong)(t0 + u) * (ulong)n + (ulong)r] = (acc[u].x + acc[u].y) + (acc[u].z + acc[u].w);
  }
}

// Q8_0 weights (w_off in bytes) times Q8_0 activations from quantize_q8_0: per block the exact
// integer dot product, then acc += isum * (dw * dx), block by block. Q4_0 (`q4` set): element j
// of a block is its nibble - 8.
inline void matmul_quant_body(global const uchar* w, ulong w_off, global const char* xq,
                              global const half* xd, global float* y, ulong y_off, int k, int n,
                              int n_tok, const int tile, const int q4) {
  const int r = (int)get_global_id(0);
  const int t0 = (int)get_global_id(1) * tile;
  if (r >= n || t0 >= n_tok) return;
  const int nb = k / 32;
  const int block_bytes = q4 ? 18 : 34;
  global const uchar* wr = w + w_off + (ulong)r * (ulong)nb * (ulong)block_bytes;
  global const char* xr[TOKEN_TILE];
  global const half* dr[TOKEN_TILE];
  float acc[TOKEN_TILE];
  for (int u = 0; u < tile; ++u) {
    const ulong t = (ulong)tile_token(t0, u, n_tok);
    xr[u] = xq + t * (ulong)nb * 32;
    dr[u] = xd + t * (ulong)nb;
    acc[u] = 0.0f;
  }
  for (int b = 0; b < nb; ++b) {
    global const uchar* blk = wr + b * block_bytes;
    int16 w0, w1;
    if (q4) {
      const uchar16 q = vload16(0, blk + 2);
      w0 = convert_int16(q & (uchar16)(0x0F)) - 8;
      w1 = convert_int16(q >> (uchar16)(4)) - 8;
    } else {
      w0 = convert_int16(vload16(0, (global const char*)(blk + 2)));
      w1 = convert_int16(vload16(1, (global const char*)(blk + 2)));
    }
    const float dw = vload_half(0, (global const half*)blk);
    for (int u = 0; u < tile; ++u) {
      const int isum = hsum16(w0 * convert_int16(vload16(0, xr[u] + b * 32)) +
                              w1 * convert_int16(vload16(1, xr[u] + b * 32)));
      const float scale = dw * vload_half(b, dr[u]);
      acc[u] += (float)isum * scale;
    }
  }
  for (int u = 0; u < tile && t0 + u < n_tok; ++u) {
    y[y_off + (ulong)(t0 + u) * (ulong)n + (ulong)r] = acc[u];
  }
}

#define FLOAT_ARGS(T) global const T* w, ulong w_off, global const float* x, ulong x_off, \
                      global float* y, ulong y_off, int k, int n, int n_tok
#define QUANT_ARGS global const uchar* w, ulong w_off, global const char* xq, global const half* xd, \
                   global float* y, ulong y_off, int k, int n, int n_tok

kernel void matmul_f32(FLOAT_ARGS(float)) { matmul_f32_body(w, w_off, x, x_off, y, y_off, k, n, n_tok, 1); }
kernel void matmul_f32_tiled(FLOAT_ARGS(float)) {
  matmul_f32_body(w, w_off, x, x_off, y, y_off, k, n, n_tok, TOKEN_TILE);
}
kernel void matmul_f16(FLOAT_ARGS(half)) { matmul_f16_body(w, w_off, x, x_off, y, y_off, k, n, n_tok, 1); }
kernel void matmul_f16_tiled(FLOAT_ARGS(half)) {
  matmul_f16_body(w, w_off, x, x_off, y, y_off, k, n, n_tok, TOKEN_TILE);
}
kernel void matmul_q8_0(QUANT_ARGS) { matmul_quant_body(w, w_off, xq, xd, y, y_off, k, n, n_tok, 1, 0); }
kernel void matmul_q8_0_tiled(QUANT_ARGS) {
  matmul_quant_body(w, w_off, xq, xd, y, y_off, k, n, n_tok, TOKEN_TILE, 0);
}
kernel void matmul_q4_0(QUANT_ARGS) { matmul_quant_body(w, w_off, xq, xd, y, y_off, k, n, n_tok, 1, 1); }
kernel void matmul_q4_0_tiled(QUANT_ARGS) {
  matmul_quant_body(w, w_off, xq, xd, y, y_off, k, n, n_tok, TOKEN_TILE, 1);
}

// One work-group per row; the local size is a power of two (tree reduction in `part`).
kernel void rms_norm(global const float* x, ulong x_off, global const float* w, ulong w_off,
                     global float* y, ulong y_off, int n, float eps, local float* part) {
  const ulong row = get_group_id(0);
  const int lid = (int)get_local_id(0);
  const int size = (int)get_local_size(0);
  global const float* xr = x + x_off + row * (ulong)n;
  global float* yr = y + y_off + row * (ulong)n;
  float sum = 0.0f;
  for (int i = lid; i < n; i += size) sum += xr[i] * xr[i];
  part[lid] = sum;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int stride = size / 2; stride > 0; stride /= 2) {
    if (lid < stride) part[lid] += part[lid + stride];
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  const float scale = 1.0f / sqrt(part[0] / (float)n + eps);
  for (int i = lid; i < n; i += size) yr[i] = xr[i] * scale * w[w_off + i];
}

// silu(g) * u with sigmoid from e = exp(-|g|), as the CPU does, so exp never overflows.
kernel void swiglu(global const float* g, ulong g_off, global const float* u, ulong u_off,
                   global float* y, ulong y_off, ulong total) {
  const ulong i = get_global_id(0);
  if (i >= total) return;
  const float gv = g[g_off + i];
  const float e = exp(-fabs(gv));
  const float sigmoid = (gv >= 0.0f ? 1.0f : e) / (1.0f + e);
  y[y_off + i] = gv * sigmoid * u[u_off + i];
}

// y = a + b; with `broadcast` b is one row of `width` values added to every row of a.
kernel void add_f32(global const float* a, ulong a_off, global const float* b, ulong b_off,
                    global float* y, ulong y_off, ulong total, ulong width, int broadcast) {
  const ulong i = get_global_id(0);
  if (i >= total) return;
  y[y_off + i] = a[a_off + i] + b[b_off + (broadcast ? i % width : i)];
}
)CLC";

}  // namespace

std::string_view kernel_source() { return kSource; }

}  // namespace mixserve::opencl
