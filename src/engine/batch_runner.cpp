#include "engine/batch_runner.h"

#include <algorithm>
#include <set>

#include "common/error.h"
#include "engine/kv_cache_buffers.h"
#include "model/transformer_builder.h"

namespace mixserve {
namespace {

int64_t resolved_seq_len(const Model& model, const BatchOptions& o) {
  const int64_t train = model.config().n_ctx_train;
  if (o.max_seq_len < 0 || o.max_seq_len > train) {
    fail(ErrorCode::kInvalidArgument, "sequence length ", o.max_seq_len, " must be in [1, ", train,
         "] (the model's training context)");
  }
  return o.max_seq_len == 0 ? train : o.max_seq_len;
}

BatchOptions resolve(const Model& model, BatchOptions o) {
  if (o.block_size <= 0 || o.block_size > 4096) {
    fail(ErrorCode::kInvalidArgument, "KV block size ", o.block_size, " must be in [1, 4096]");
  }
  if (o.max_batch_tokens <= 0) {
    fail(ErrorCode::kInvalidArgument, "tokens per step must be positive, got ", o.max_batch_tokens);
  }
  o.max_seq_len = resolved_seq_len(model, o);
  const int64_t per_seq = (o.max_seq_len + o.block_size - 1) / o.block_size;
  if (o.kv_blocks == 0) o.kv_blocks = 4 * per_seq;
  if (o.kv_blocks < 0 || o.kv_blocks > (int64_t{1} << 30) / o.block_size) {
    fail(ErrorCode::kInvalidArgument, "KV cache of ", o.kv_blocks, " blocks is out of range");
  }
  return o;
}

}  // namespace

struct BatchRunner::State {
  std::unique_ptr<hal::Scheduler> stream;
  std::unique_ptr<hal::Buffer> activations;
  std::unique_ptr<hal::Buffer> tables;  // i32 [max_blocks, max_batch_tokens]: one block table per slice
  std::vector<std::unique_ptr<hal::Buffer>> caches;
  ForwardBuffers buffers;
  hal::Tensor table_area;
  int64_t max_blocks = 0;  // blocks of one full-length sequence
};

BatchRunner::BatchRunner(const Model& model, const BatchOptions& options)
    : model_(model),
      options_(resolve(model, options)),
      pool_(static_cast<int32_t>(options_.kv_blocks), options_.block_size),
      state_(std::make_unique<State>()) {
  const ModelConfig& c = model.config();
  State& st = *state_;
  st.max_blocks = (options_.max_seq_len + options_.block_size - 1) / options_.block_size;
  ForwardLayout layout = layout_forward(c, options_.max_batch_tokens, options_.kv_blocks * options_.block_size,
                                        model.options().cache_type);
  st.buffers = std::move(layout.buffers);
  st.stream = std::make_unique<hal::Scheduler>(model.placement(),
                                               hal::StreamOptions{.n_threads = model.options().n_threads});
  st.activations = st.stream->allocate(layout.activation_bytes);
  for (hal::Tensor* t : st.buffers.activations()) t->buffer = st.activations.get();
  st.caches = allocate_kv_caches(*st.stream, st.buffers, layout.cache_bytes);
  st.table_area.name = "block_tables";
  st.table_area.dtype = DType::kI32;
  st.table_area.ne = {st.max_blocks, options_.max_batch_tokens, 1, 1};
  st.tables = st.stream->allocate(st.table_area.bytes());
  st.table_area.buffer = st.tables.get();
}

BatchRunner::~BatchRunner() = default;

const hal::SchedulerStats& BatchRunner::scheduler_stats() const { return state_->stream->stats(); }

SeqId BatchRunner::add_sequence() {
  const SeqId id = next_id_++;
  sequences_[id];
  return id;
}

BatchRunner::Sequence& BatchRunner::sequence(SeqId seq) {
  const auto it = sequences_.find(seq);
  if (it == sequences_.end()) fail(ErrorCode::kInvalidArgument, "unknown sequence ", seq);
  return it->second;
}

const BatchRunner::Sequence& BatchRunner::sequence(SeqId seq) const {
  return const_cast<BatchRunner*>(this)->sequence(seq);
}

int64_t BatchRunner::n_past(SeqId seq) const { return static_cast<int64_t>(sequence(seq).tokens.size()); }

int64_t BatchRunner::blocks_needed(SeqId seq, int64_t n) const {
  const Sequence& s = sequence(seq);
  const int64_t rows = static_cast<int64_t>(s.tokens.size()) + n;
  const int64_t blocks = (rows + options_.block_size - 1) / options_.block_size;
  return std::max<int64_t>(0, blocks - static_cast<int64_t>(s.blocks.size()));
}

int64_t BatchRunner::reuse_prefix(SeqId seq, std::span<const int32_t> prompt) {
  Sequence& s = sequence(seq);
  if (!s.tokens.empty()) fail(ErrorCode::kInvalidArgument, "prefix reuse needs an empty sequence");
  if (!options_.prefix_cache || prompt.empty()) return 0;
  const size_t bs = static_cast<size_t>(options_.block_size);
  const size_t full = (prompt.size() - 1) / bs;  // the last prompt token is always evaluated
  for (size_t i = 0; i < full; ++i) {
    const auto tokens = prompt.subspan(i * bs, bs);
    const auto block = pool_.lookup(s.last_hash, tokens);
    if (!block) break;
    s.blocks.push_back(*block);
    s.tokens.insert(s.tokens.end(), tokens.begin(), tokens.end());
    s.last_hash = KvBlockPool::block_hash(s.last_hash, tokens);
    s.published = i + 1;
  }
  return static_cast<int64_t>(s.tokens.size());
}

void BatchRunner::remove_sequence(SeqId seq) {
  Sequence& s = sequence(seq);
  for (int32_t b : s.blocks) pool_.release(b);
  sequences_.erase(seq);
}

void BatchRunner::publish_full_blocks(Sequence& s) {
  if (!options_.prefix_cache) return;
  const size_t bs = static_cast<size_t>(options_.block_size);
  while ((s.published + 1) * bs <= s.tokens.size()) {
    const auto tokens = std::span<const int32_t>(s.tokens).subspan(s.published * bs, bs);
    pool_.publish(s.blocks[s.published], s.last_hash, tokens);
    s.last_hash = KvBlockPool::block_hash(s.last_hash, tokens);
    ++s.published;
  }
}

std::vector<std::vector<float>> BatchRunner::step(std::span<const StepInput> inputs) {
  const ModelConfig& c = model_.config();
  State& st = *state_;
  if (inputs.empty()) fail(ErrorCode::kInvalidArgument, "a step needs at least one sequence");
  // Validate everything before changing anything.
  int64_t total = 0, blocks = 0;
  std::set<SeqId> seen;
  for (const StepInput& in : inputs) {
    const Sequence& s = sequence(in.seq);
    if (!seen.insert(in.seq).second) fail(ErrorCode::kInvalidArgument, "sequence ", in.seq, " appears twice in a step");
    if (in.tokens.empty()) fail(ErrorCode::kInvalidArgument, "sequence ", in.seq, " has no tokens in this step");
    for (int32_t id : in.tokens) {
      if (id < 0 || id >= c.n_vocab) fail(ErrorCode::kInvalidArgument, "token id ", id, " is out of range [0, ", c.n_vocab, ")");
    }
    const auto n = static_cast<int64_t>(in.tokens.size());
    if (static_cast<int64_t>(s.tokens.size()) + n > options_.max_seq_len) {
      fail(ErrorCode::kInvalidArgument, "sequence ", in.seq, " would reach ", s.tokens.size() + in.tokens.size(),
           " tokens, over the limit of ", options_.max_seq_len);
    }
    total += n;
    blocks += blocks_needed(in.seq, n);
  }
  if (total > options_.max_batch_tokens) {
    fail(ErrorCode::kInvalidArgument, "step of ", total, " tokens exceeds the limit of ", options_.max_batch_tokens);
  }
  if (blocks > pool_.available()) {
    fail(ErrorCode::kResourceExhausted, "KV cache full: the step needs ", blocks, " blocks, ", pool_.available(),
         " are available");
  }

  std::vector<int32_t> ids, tables(static_cast<size_t>(st.max_blocks * static_cast<int64_t>(inputs.size())), 0);
  std::vector<SequenceSlice> slices;
  for (size_t i = 0; i < inputs.size(); ++i) {
    Sequence& s = sequence(inputs[i].seq);
    const auto n = static_cast<int64_t>(inputs[i].tokens.size());
    for (int64_t k = blocks_needed(inputs[i].seq, n); k > 0; --k) s.blocks.push_back(*pool_.allocate());
    std::copy(s.blocks.begin(), s.blocks.end(), tables.begin() + static_cast<std::ptrdiff_t>(i) * st.max_blocks);
    ids.insert(ids.end(), inputs[i].tokens.begin(), inputs[i].tokens.end());
    slices.push_back({.n_past = static_cast<int64_t>(s.tokens.size()),
                      .n_tokens = n,
                      .block_size = options_.block_size,
                      .logits = inputs[i].logits ? LogitsFor::kLast : LogitsFor::kNone});
  }
  ForwardBuffers& b = st.buffers;
  ForwardGraph table_views;  // owns the per-slice views of the block tables
  for (size_t i = 0; i < slices.size(); ++i) {
    slices[i].block_table = table_views.view(st.table_area, {st.max_blocks, 1, 1, 1},
                                       i * static_cast<size_t>(st.max_blocks) * sizeof(int32_t));
  }
  hal::Scheduler& stream = *st.stream;
  stream.write(*st.activations, b.ids.offset, ids.data(), ids.size() * sizeof(int32_t));
  stream.write(*st.tables, 0, tables.data(), tables.size() * sizeof(int32_t));
  ForwardGraph fwd = build_forward(c, model_.weights(), b, slices);
  if (fwd.gather_logit_rows) {
    stream.write(*st.activations, b.logit_ids.offset, fwd.logit_rows.data(), fwd.logit_rows.size() * sizeof(int32_t));
  }
  stream.run_all(fwd.ops);
  std::vector<float> logits(static_cast<size_t>(fwd.logits_rows * c.n_vocab));
  if (!logits.empty()) stream.read(*st.activations, b.logits.offset, logits.data(), logits.size() * sizeof(float));
  stream.synchronize();

  std::vector<std::vector<float>> out;
  size_t row = 0;
  for (const StepInput& in : inputs) {
    Sequence& s = sequence(in.seq);
    s.tokens.insert(s.tokens.end(), in.tokens.begin(), in.tokens.end());
    publish_full_blocks(s);
    if (in.logits) {
      const auto first = logits.begin() + static_cast<std::ptrdiff_t>(row * static_cast<size_t>(c.n_vocab));
      out.emplace_back(first, first + c.n_vocab);
      ++row;
    }
  }
  return out;
}

}  // namespace mixserve
