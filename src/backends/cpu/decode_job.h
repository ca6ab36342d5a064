// A decoding job of the CPU stream: matrix products of one token (or of a small batch whose kernels
// split finely), shared out in equal shares of rows, one per thread, with the ops fused after them
// (plan_decode_epilogues) run by each thread on its own rows, and the next product's input
// converted share by share. Prepared on one thread (which checks and may throw), run by all.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "backends/cpu/decode_epilogues.h"
#include "hal/op.h"

namespace mixserve::cpu {

/// The end of the group of matrix products that starts at ops[i] (a product): the products after it
/// that read the same input with weights of the same type, layout and width (q, k, v; gate, up),
/// none of them writing what a later one reads. They run as one job.
size_t product_group_end(std::span<const hal::Op> ops, size_t i);

/// Checks the shapes of a group of products (kInternal when they do not fit) and returns their
/// rows in all.
int64_t check_product_shapes(std::span<const hal::Op> group);

/// Bytes of one input row of `product` converted for its weights (convert_activation).
size_t activation_row_bytes(const hal::Op& product);

/// Rows [r0, r1) of tokens [t0, t1) of the product `op`, from its input converted to xq (rows of
/// act_row bytes).
void product_rows(const hal::Op& op, int64_t r0, int64_t r1, int64_t t0, int64_t t1, const uint8_t* xq, size_t act_row);

/// The physical cache row each row of a kStoreKV op goes to (its block table checked).
std::vector<int64_t> cache_store_rows(const hal::Op& op);

/// Elements [c0, c1) of physical row `row` of a KV cache from src[c0, c1), converted to the
/// cache's type (c0 a multiple of 32 for Q8_0, whose blocks get the matmul activations' rounding).
void put_cache_row(const hal::Tensor& cache, int64_t row, const float* src, int64_t c0, int64_t c1);

/// Elements [begin, end) of the activation row converted for products of wtype weights, from x
/// (the whole row) into `converted` (the whole converted row). begin a multiple of
/// conversion_alignment(wtype).
void convert_activation_part(DType wtype, const float* x, uint8_t* converted, int64_t begin, int64_t end);

/// One decoding job, prepared on one thread; each thread then runs its share (run_share).
class DecodeJob {
 public:
  /// The job of `products` (matrix products that read one input, converted to xq with rows of act_row
  /// bytes) for n_tok tokens; with one token, `epilogues` run in it and, when it plans one, the
  /// conversion of the next product's input goes to `converted`.
  DecodeJob(std::span<const hal::Op> products, DecodeEpilogues epilogues, const uint8_t* xq, size_t act_row,
            int64_t n_tok, uint8_t* converted);

  /// Shares out each product on its own, in runs of whole units (units[p] rows of product p, each a
  /// multiple of the epilogues' alignment): thread ith's rows of every product are then the same
  /// range of units when the products have as many units (the heads of q and of k and v that
  /// attention pairs, for one thread to attend with them).
  void share_in_units(std::vector<int64_t> units);

  /// Thread ith's part of the job (of nth threads in all).
  void run_share(int ith, int nth) const;

  /// Rows [begin, end) of product p that thread ith computes.
  std::pair<int64_t, int64_t> share(size_t p, int ith, int nth) const;

  /// The weight bytes of thread ith's rows of product p: [first, first + bytes).
  std::pair<const uint8_t*, size_t> share_weights(size_t p, int ith, int nth) const;

  std::span<const hal::Op> products() const { return products_; }
  const DecodeEpilogues& epilogues() const { return epilogues_; }

 private:
  std::span<const hal::Op> products_;
  DecodeEpilogues epilogues_;
  const uint8_t* xq_;
  size_t act_row_;
  int64_t n_tok_;
  uint8_t* converted_;
  std::vector<int64_t> cache_rows_;  ///< of each epilogue that stores into a KV cache, else -1
  std::vector<int64_t> first_row_;   ///< of each product, among all of their rows
  int64_t total_rows_ = 0;
  bool whole_shares_ = true;
  std::vector<int64_t> units_;  ///< of each product, when shared out in units (share_in_units)
};

}  // namespace mixserve::cpu
