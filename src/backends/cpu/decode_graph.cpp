#include "backends/cpu/decode_graph.h"

#include <algorithm>
#include <numeric>
#include <tuple>

#include "backends/cpu/decode_epilogues.h"
#include "backends/cpu/matmul_kernels.h"
#include "backends/cpu/prefetch.h"
#include "backends/cpu/row_ops.h"
#include "common/error.h"

namespace mixserve::cpu {

std::optional<DecodeGraph> DecodeGraph::plan(std::span<const hal::Op> ops, int n_threads, DecodeGraphBuffers& buffers) {
  // First what the graph holds (one token: every op has one row), and the buffers' sizes: they are
  // reserved before any pointer into them is taken.
  size_t act_bytes = 0;
  size_t scratch_bytes = 0;
  size_t address_bytes = 0;  // of all the attention ops, each from a 64-byte boundary
  for (const hal::Op& op : ops) {
    switch (op.kind) {
      case hal::OpKind::kMatMul:
        if (op.src[1]->rows() != 1) return std::nullopt;
        act_bytes = std::max(act_bytes, activation_row_bytes(op));
        break;
      case hal::OpKind::kAttention: {
        if (op.src[0]->ne[2] != 1) return std::nullopt;
        const AttentionLayout layout = attention_layout(op, n_threads);
        if (layout.gathers) return std::nullopt;
        scratch_bytes = std::max(scratch_bytes, layout.scratch_bytes);
        address_bytes += whole_lines(layout.address_bytes);
        break;
      }
      case hal::OpKind::kGetRows:
        if (op.src[1]->elements() != 1) return std::nullopt;
        break;
      case hal::OpKind::kRmsNorm:
      case hal::OpKind::kAdd:  // one thread runs them: one row only
        if (op.src[0]->rows() != 1) return std::nullopt;
        break;
      case hal::OpKind::kRope:
      case hal::OpKind::kStoreKV:
      case hal::OpKind::kSwiGLU: break;
    }
  }
  for (AlignedBytes& b : buffers.converted) b.reserve(act_bytes);
  for (AlignedBytes& b : buffers.input) b.reserve(act_bytes);
  buffers.scratch.reserve(scratch_bytes);
  uint8_t* addresses = buffers.addresses.reserve(address_bytes);

  DecodeGraph g;
  const hal::Op* converted_for = nullptr;  // the product whose input converted[slot] holds
  int slot = 0;
  int input_slot = 0;  // the input buffer converted into last
  for (size_t i = 0; i < ops.size();) {
    const hal::Op& op = ops[i];
    if (converted_for != &op) converted_for = nullptr;  // only the very next op may consume it
    switch (op.kind) {
      case hal::OpKind::kMatMul: {
        const size_t j = product_group_end(ops, i);
        const auto group = ops.subspan(i, j - i);
        check_product_shapes(group);
        DecodeEpilogues epilogues = plan_decode_epilogues(group, ops.subspan(j));
        const uint8_t* xq = nullptr;
        if (converted_for == &op) {
          xq = buffers.converted[static_cast<size_t>(slot)].data;
        } else {
          input_slot = 1 - input_slot;
          uint8_t* input = buffers.input[static_cast<size_t>(input_slot)].data;
          g.convert_input(op, input);
          xq = input;
        }
        converted_for = nullptr;
        uint8_t* converted = nullptr;
        if (epilogues.converts_for != nullptr) {
          slot = 1 - slot;
          converted = buffers.converted[static_cast<size_t>(slot)].data;
          converted_for = epilogues.converts_for;
        }
        i = j + epilogues.ops.size();
        Phase phase;
        phase.kind = Phase::Kind::kJob;
        phase.job.emplace(group, std::move(epilogues), xq, activation_row_bytes(op), 1, converted);
        g.phases_.push_back(std::move(phase));
        break;
      }
      case hal::OpKind::kAttention: {
        AttentionWork attention = prepare_attention(op, n_threads, buffers.scratch.data, addresses);
        addresses += whole_lines(attention.layout.address_bytes);
        if (!g.attend_in_job(op, n_threads, attention)) {
          Phase phase;
          phase.kind = Phase::Kind::kAttention;
          phase.attention_op = &op;
          phase.attention = std::move(attention);
          g.phases_.push_back(std::move(phase));
        }
        ++i;
        break;
      }
      case hal::OpKind::kGetRows:
      case hal::OpKind::kRmsNorm:
      case hal::OpKind::kAdd:
        if (g.phases_.empty() || g.phases_.back().kind != Phase::Kind::kSerial) g.phases_.push_back({});
        g.phases_.back().serial.push_back(SerialStep{&op, {}});
        ++i;
        break;
      case hal::OpKind::kRope:
      case hal::OpKind::kStoreKV:
      case hal::OpKind::kSwiGLU: return std::nullopt;  // not fused into a job: op by op
    }
  }
  const DecodeJob* next_job = nullptr;
  for (size_t p = g.phases_.size(); p-- > 0;) {
    g.phases_[p].next_job = next_job;
    if (g.phases_[p].job) next_job = &*g.phases_[p].job;
  }
  return g;
}

bool DecodeGraph::attend_in_job(const hal::Op& op, int n_threads, AttentionWork& attention) {
  if (phases_.empty() || !phases_.back().job || phases_.back().attention_op != nullptr) return false;
  Phase& phase = phases_.back();
  DecodeJob& job = *phase.job;
  const DecodeEpilogues& epilogues = job.epilogues();
  if (epilogues.converts_for != nullptr) return false;
  const std::span<const hal::Op> products = job.products();
  const hal::Tensor& q = *op.src[0];
  const int64_t head_dim = q.ne[0];
  const int64_t n_head = q.ne[1];
  const int64_t n_head_kv = op.i[1];
  if (q.ne[2] != 1 || n_head_kv <= 0 || n_head % n_head_kv != 0) return false;
  const int64_t group = n_head / n_head_kv;
  // q is a product's output; k and v are products stored into the caches attention reads.
  const auto product_of = [&](const void* data, int64_t rows) -> std::optional<size_t> {
    for (size_t p = 0; p < products.size(); ++p) {
      if (products[p].dst->host_data() == data && products[p].src[0]->rows() == rows) return p;
    }
    return std::nullopt;
  };
  const auto stored_into = [&](const hal::Tensor* cache) -> std::optional<size_t> {
    for (const Epilogue& e : epilogues.ops) {
      if (e.op->kind == hal::OpKind::kStoreKV && e.op->dst->host_data() == cache->host_data()) return e.product;
    }
    return std::nullopt;
  };
  const auto pq = product_of(q.host_data(), n_head * head_dim);
  const auto pk = stored_into(op.src[1]);
  const auto pv = stored_into(op.src[2]);
  if (!pq || !pk || !pv || *pq == *pk || *pk == *pv || *pq == *pv) return false;
  if (products[*pk].src[0]->rows() != n_head_kv * head_dim || products[*pv].src[0]->rows() != n_head_kv * head_dim) {
    return false;
  }
  // Units of whole KV heads (and of the epilogues' alignment), q's the heads that attend with them.
  const int64_t kv_unit = std::lcm(epilogues.align, head_dim);
  if ((n_head_kv * head_dim) % kv_unit != 0) return false;
  std::vector<int64_t> units(products.size(), epilogues.align);
  units[*pk] = kv_unit;
  units[*pv] = kv_unit;
  units[*pq] = kv_unit * group;
  const int64_t per_item = attention.layout.heads_per_item;
  if (per_item <= 0 || group % per_item != 0) return false;
  DecodeJob shared = job;
  shared.share_in_units(std::move(units));
  // Every thread's q rows must be the heads of its k and v rows.
  for (int ith = 0; ith < n_threads; ++ith) {
    const auto [kb, ke] = shared.share(*pk, ith, n_threads);
    const auto [vb, ve] = shared.share(*pv, ith, n_threads);
    const auto [qb, qe] = shared.share(*pq, ith, n_threads);
    if (vb != kb || ve != ke || qb != kb * group || qe != ke * group) return false;
  }
  job = std::move(shared);
  phase.attention_op = &op;
  phase.attention = std::move(attention);
  phase.k_product = *pk;
  phase.head_dim = head_dim;
  phase.items_per_kv_head = group / per_item;
  return true;
}

std::pair<int64_t, int64_t> DecodeGraph::attention_items(const Phase& phase, int ith, int nth) {
  if (phase.kind == Phase::Kind::kJob) {
    const auto [kb, ke] = phase.job->share(phase.k_product, ith, nth);
    return {kb / phase.head_dim * phase.items_per_kv_head, ke / phase.head_dim * phase.items_per_kv_head};
  }
  const int64_t items = phase.attention.layout.items;
  return {items * ith / nth, items * (ith + 1) / nth};
}

void DecodeGraph::convert_input(const hal::Op& product, uint8_t* out) {
  const hal::Tensor& x = *product.src[1];
  const Conversion c{
      .wtype = product.src[0]->dtype, .x = static_cast<const float*>(x.host_data()), .out = out, .k = x.ne[0]};
  if (!phases_.empty() && phases_.back().attention_op != nullptr) {
    Phase& last = phases_.back();
    const AttentionLayout& layout = last.attention.layout;
    const auto align = conversion_alignment(c.wtype);
    // One token's items write whole runs of the output, each converted by the thread that wrote it
    // (the product may read the output through another view of the same memory).
    const hal::Tensor& written = *last.attention_op->dst;
    if (align && written.host_data() == x.host_data() && written.elements() == c.k &&
        layout.items * layout.item_outputs == c.k && layout.item_outputs % *align == 0) {
      last.items_convert = c;
      return;
    }
  }
  if (phases_.empty() || phases_.back().kind != Phase::Kind::kSerial) phases_.push_back({});
  phases_.back().serial.push_back(SerialStep{nullptr, c});
}

namespace {

// Bytes of its share of the next job's weights a thread prefetches while it waits at a barrier (for
// the other thread to finish its share, or its serial ops).
constexpr size_t kIdlePrefetchBytes = size_t{256} << 10;

// Thread ith's share of a job's weights, prefetched into its second-level cache a few lines at a
// time: while one thread waits for the other, the memory it would stream from next is idle.
class SharePrefetch {
 public:
  SharePrefetch(const DecodeJob* job, int ith, int nth) : job_(job), ith_(ith), nth_(nth) {}
  // Prefetches the next lines; false once the share (or kIdlePrefetchBytes of it) is.
  bool step() {
    if (job_ == nullptr) return false;
    while (left_ == 0) {
      if (product_ == job_->products().size() || done_ >= kIdlePrefetchBytes) return false;
      std::tie(at_, left_) = job_->share_weights(product_++, ith_, nth_);
    }
    const size_t n = std::min<size_t>(left_, 8 * 64);
    for (size_t b = 0; b < n; b += 64) prefetch_t1(at_ + b);
    at_ += n;
    left_ -= n;
    done_ += n;
    return true;
  }

 private:
  const DecodeJob* job_;
  int ith_, nth_;
  size_t product_ = 0;
  const uint8_t* at_ = nullptr;
  size_t left_ = 0;
  size_t done_ = 0;
};

}  // namespace

void DecodeGraph::run(ThreadPool& pool) const {
  SpinBarrier barrier(pool.size());
  pool.run([&](int ith, int nth) {
    try {
      for (size_t p = 0; p < phases_.size(); ++p) {
        run_phase(phases_[p], ith, nth);
        if (p + 1 == phases_.size()) break;
        SharePrefetch next(phases_[p].next_job, ith, nth);
        if (!barrier.arrive_and_wait([&] { return next.step(); })) return;  // another thread failed
      }
    } catch (...) {
      barrier.abort();
      throw;
    }
  });
}

void DecodeGraph::run_phase(const Phase& phase, int ith, int nth) const {
  switch (phase.kind) {
    case Phase::Kind::kSerial:
      if (ith == 0) {
        for (const SerialStep& step : phase.serial) run_serial(step);
      }
      return;
    case Phase::Kind::kJob: phase.job->run_share(ith, nth); break;
    case Phase::Kind::kAttention: break;
  }
  if (phase.attention_op == nullptr) return;
  const auto [begin, end] = attention_items(phase, ith, nth);
  if (begin < end) phase.attention.run(begin, end, ith);
  if (phase.items_convert) {
    const Conversion& c = *phase.items_convert;
    const int64_t per = phase.attention.layout.item_outputs;
    convert_activation_part(c.wtype, c.x, c.out, begin * per, end * per);
  }
}

void DecodeGraph::run_serial(const SerialStep& step) {
  if (step.op == nullptr) {
    const Conversion& c = step.conversion;
    convert_activation(c.wtype, c.x, c.out, c.k);
    return;
  }
  const hal::Op& op = *step.op;
  switch (op.kind) {
    case hal::OpKind::kGetRows: return get_rows(op);
    case hal::OpKind::kRmsNorm: return rms_norm_rows(op, 0, op.src[0]->rows());
    case hal::OpKind::kAdd: return add_rows(op, 0, op.src[0]->rows());
    default: fail(ErrorCode::kInternal, "op ", hal::op_name(op.kind), " cannot run in a decoding graph's serial phase");
  }
}

}  // namespace mixserve::cpu
