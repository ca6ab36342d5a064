#include "engine/session.h"

#include <algorithm>
#include <cstring>

#include "common/error.h"
#include "engine/kv_cache_buffers.h"
#include "hal/scheduler.h"
#include "model/transformer_builder.h"

namespace mixserve {

struct Session::State {
  std::unique_ptr<hal::Scheduler> stream;  // runs each op on its device, copying at boundaries
  std::unique_ptr<hal::Buffer> activations;
  std::vector<std::unique_ptr<hal::Buffer>> caches;  // the K and V caches (allocate_kv_caches)
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
  ForwardLayout layout = layout_forward(c, n_batch_, n_ctx_, model.options().cache_type);
  ForwardBuffers& b = state_->buffers;
  b = std::move(layout.buffers);
  state_->stream = std::make_unique<hal::Scheduler>(model.placement(),
                                                    hal::StreamOptions{.n_threads = model.options().n_threads});
  hal::Scheduler& sched = *state_->stream;
  state_->activations = sched.allocate(layout.activation_bytes);
  for (hal::Tensor* t : b.activations()) {
    t->buffer = state_->activations.get();
  }
  state_->caches = allocate_kv_caches(sched, b, layout.cache_bytes);
  cache_bytes_ = layout.cache_bytes * (b.k_cache.size() + b.v_cache.size());
}

Session::~Session() = default;

const hal::SchedulerStats& Session::scheduler_stats() const { return state_->stream->stats(); }

bool Session::set_profile(hal::OpProfile* profile) {
  return state_->stream->set_profile(profile);
}

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
