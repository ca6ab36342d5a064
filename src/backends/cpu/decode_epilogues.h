// Decoding fusion for the CPU stream: the ops that follow a job of matrix products for one token and
// read its outputs element by element (bias and residual adds, RoPE, the KV-cache stores, SwiGLU)
// run inside the job, each thread on the rows of each product it computed itself, and so does the
// conversion of the next product's input. Then the outputs never cross to another core between the
// products and those ops, and the ops cost no fork of their own.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "common/dtype.h"
#include "hal/op.h"

namespace mixserve::cpu {

/// One fused op and the product whose rows it works on (index into the job's products).
struct Epilogue {
  const hal::Op* op = nullptr;
  size_t product = 0;
};

/// What plan_decode_epilogues found after a job of products.
struct DecodeEpilogues {
  /// The fused ops in graph order; they are the ops right after the job's products.
  std::vector<Epilogue> ops;
  /// Rows every thread's share of every product is a multiple of (a head for RoPE, a block of 32
  /// for a Q8_0 cache row or input, 16 so that no two threads write one 64-byte line).
  int64_t align = 16;
  /// Whether an epilogue reads the same rows of two products (SwiGLU): then every product is
  /// shared out on its own, so that a thread has the same rows of both.
  bool pairs_products = false;
  /// The product right after the fused ops, whose input the threads convert share by share (its
  /// input is a product's output or written at its rows), or nullptr.
  const hal::Op* converts_for = nullptr;
  /// The job's product whose shares that input follows.
  size_t converts_product = 0;
};

/// The longest run of ops at the start of `next` that can run as epilogues of the job `products`
/// (matrix products of one token, one input), and whether the op after them can take its input
/// converted by the threads. Only ops whose every element reads and writes the same element of
/// one product's output (or, for RoPE, the same head) qualify, and only when nothing another thread
/// reads in the job is written: the job's input and weights, other products' outputs.
DecodeEpilogues plan_decode_epilogues(std::span<const hal::Op> products, std::span<const hal::Op> next);

/// What a part of an activation row converted for products of `wtype` weights must start at a
/// multiple of (Q8_0 blocks: 32; rows copied as f32: 1), or nullopt when the conversion of such a
/// row cannot go in parts.
std::optional<int64_t> conversion_alignment(DType wtype);

/// Rows [begin, end) of thread ith of nth in a job's product of `rows` rows: equal shares, each a
/// multiple of `align` rows but the last.
std::pair<int64_t, int64_t> decode_share(int64_t rows, int64_t align, int ith, int nth);

}  // namespace mixserve::cpu
