#include "engine/session.h"

#include <algorithm>
#include <cstring>

#include "common/error.h"
#include "model/transformer_builder.h"

namespace mixserve {
namespace {

constexpr size_t kTensorAlign = 64;

// Lays out tensors back to back (aligned) in one buffer: first plan sizes, then bind.
class Arena {
 public:
  hal::Tensor* add(hal::Tensor* t, DType type, std::array<int64_t, 4> ne) {
    t->dtype = type;
    t->ne = ne;
    t->offset = size_;
    size_ += (t->bytes() + kTensorAlign - 1) / kTensorAlign * kTensorAlign;
    tensors_.push_back(t);
    return t;
  }
  void bind(hal::Buffer* buffer) {
    for (hal::Tensor* t : tensors_) t->buffer = buffer;
  }
  size_t size() const { return size_; }

 private:
  size_t size_ = 0;
  std::vector<hal::Tensor*> tensors_;
};

}  // namespace

struct Session::State {
  std::unique_ptr<hal::Stream> stream;
  std::unique_ptr<hal::Buffer> activations;
  std::unique_ptr<hal::Buffer> kv;
  ForwardBuffers buffers;
};

Session::Session(const Model& model, const SessionOptions& options) : model_(model) {
  const ModelConfig& c = model.config();
  n_ctx_ = options.n_ctx > 0 ? options.n_ctx : c.n_ctx_train;
  if (n_ctx_ > c.n_ctx_train) {
    fail(ErrorCode::kInvalidArgument, "context length ", n_ctx_, " exceeds the model's training context ",
         c.n_ctx_train);
  }
  if (options.n_batch <= 0) fail(ErrorCode::kInvalidArgument, "batch size must be positive, got ", options.n_batch);
  n_batch_ = std::min(options.n_batch, n_ctx_);
  state_ = std::make_unique<State>();
  ForwardBuffers& b = state_->buffers;
  const int64_t B = n_batch_;
  const int64_t q_dim = c.n_head * c.head_dim;
  const int64_t kv_dim = c.n_head_kv * c.head_dim;

  Arena act;
  act.add(&b.ids, DType::kI32, {B, 1, 1, 1});
  act.add(&b.x, DType::kF32, {c.n_embd, B, 1, 1});
  act.add(&b.h, DType::kF32, {c.n_embd, B, 1, 1});
  act.add(&b.q, DType::kF32, {q_dim, B, 1, 1});
  act.add(&b.k, DType::kF32, {kv_dim, B, 1, 1});
  act.add(&b.v, DType::kF32, {kv_dim, B, 1, 1});
  act.add(&b.attn, DType::kF32, {q_dim, B, 1, 1});
  act.add(&b.proj, DType::kF32, {c.n_embd, B, 1, 1});
  act.add(&b.gate, DType::kF32, {c.n_ff, B, 1, 1});
  act.add(&b.up, DType::kF32, {c.n_ff, B, 1, 1});
  act.add(&b.logits, DType::kF32, {c.n_vocab, B, 1, 1});

  Arena kv;
  b.k_cache.resize(static_cast<size_t>(c.n_layer));
  b.v_cache.resize(static_cast<size_t>(c.n_layer));
  for (int64_t il = 0; il < c.n_layer; ++il) {
    kv.add(&b.k_cache[static_cast<size_t>(il)], DType::kF32, {kv_dim, n_ctx_, 1, 1});
    kv.add(&b.v_cache[static_cast<size_t>(il)], DType::kF32, {kv_dim, n_ctx_, 1, 1});
  }
  hal::Device& device = model.device();
  state_->activations = device.allocate(act.size());
  state_->kv = device.allocate(kv.size());
  act.bind(state_->activations.get());
  kv.bind(state_->kv.get());
  state_->stream = device.create_stream({.n_threads = model.options().n_threads});
}

Session::~Session() = default;

std::vector<float> Session::eval(std::span<const int32_t> tokens, bool all_logits) {
  const ModelConfig& c = model_.config();
  const auto n = static_cast<int64_t>(tokens.size());
  if (n == 0) fail(ErrorCode::kInvalidArgument, "no tokens to evaluate");
  if (n_past_ + n > n_ctx_) {
    fail(ErrorCode::kResourceExhausted, "context length ", n_ctx_, " exceeded: ", n_past_, " tokens in the cache + ",
         n, " new");
  }
  for (int32_t id : tokens) {
    if (id < 0 || id >= c.n_vocab) {
      fail(ErrorCode::kInvalidArgument, "token id ", id, " is out of range [0, ", c.n_vocab, ")");
    }
  }
  State& s = *state_;
  std::vector<float> out(static_cast<size_t>((all_logits ? n : 1) * c.n_vocab));
  const size_t row_bytes = static_cast<size_t>(c.n_vocab) * sizeof(float);
  for (int64_t done = 0; done < n; done += n_batch_) {
    const int64_t chunk = std::min(n_batch_, n - done);
    const bool last = done + chunk == n;
    s.stream->write(*s.activations, s.buffers.ids.offset, tokens.data() + done,
                    static_cast<size_t>(chunk) * sizeof(int32_t));
    const LogitsFor logits = all_logits ? LogitsFor::kAll : last ? LogitsFor::kLast : LogitsFor::kNone;
    ForwardGraph graph = build_forward(c, model_.weights(), s.buffers, n_past_, chunk, logits);
    s.stream->run_all(graph.ops);
    if (all_logits) {
      s.stream->read(*s.activations, s.buffers.logits.offset, out.data() + done * c.n_vocab,
                     static_cast<size_t>(chunk) * row_bytes);
    } else if (last) {
      s.stream->read(*s.activations, s.buffers.logits.offset, out.data(), row_bytes);
    }
    s.stream->synchronize();
    n_past_ += chunk;
  }
  return out;
}

}  // namespace mixserve
