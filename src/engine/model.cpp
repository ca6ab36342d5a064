#include "engine/model.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <set>

#include "common/error.h"
#include "common/log.h"
#include "hal/registry.h"
#include "model/gguf.h"
#include "model/transformer_builder.h"

namespace mixserve {
namespace {

std::string shape_of(const std::vector<int64_t>& dims) {
  std::string out = "[";
  for (size_t i = 0; i < dims.size(); ++i) out += (i ? ", " : "") + std::to_string(dims[i]);
  return out + "]";
}

// Binds GGUF tensors to device tensors, checking names, shapes and types.
class WeightBinder {
 public:
  WeightBinder(const gguf::File& file, hal::Buffer& buffer) : file_(file), buffer_(buffer) {}

  hal::Tensor bind(const std::string& name, std::vector<int64_t> expected, bool required = true) {
    const gguf::TensorInfo* info = file_.find_tensor(name);
    if (info == nullptr) {
      if (!required) return {};
      fail(ErrorCode::kDataLoss, file_.path(), ": missing tensor '", name, "'");
    }
    std::vector<int64_t> dims = info->dims;
    while (dims.size() > 1 && dims.back() == 1) dims.pop_back();
    if (dims != expected) {
      fail(ErrorCode::kDataLoss, file_.path(), ": tensor '", name, "' has shape ", shape_of(info->dims),
           " but the model's configuration implies ", shape_of(expected));
    }
    if (!dtype_info(info->type).computable) {
      fail(ErrorCode::kUnimplemented, file_.path(), ": tensor '", name, "' has type ", dtype_name(info->type),
           ", which mixserve cannot compute (supported: f32, f16, bf16, q8_0, q4_0)");
    }
    if (expected.size() == 1 && info->type != DType::kF32) {
      fail(ErrorCode::kUnimplemented, file_.path(), ": vector tensor '", name, "' must be f32, not ",
           dtype_name(info->type));
    }
    hal::Tensor t;
    t.name = name;
    t.dtype = info->type;
    for (size_t i = 0; i < expected.size(); ++i) t.ne[i] = expected[i];
    t.buffer = &buffer_;
    const auto data = file_.tensor_data(*info);
    t.offset = static_cast<size_t>(data.data() - file_.image().data());
    return t;
  }

 private:
  const gguf::File& file_;
  hal::Buffer& buffer_;
};

ModelWeights bind_weights(const ModelConfig& c, const gguf::File& file, hal::Buffer& buffer) {
  WeightBinder b(file, buffer);
  const int64_t q_dim = c.n_head * c.head_dim;
  const int64_t kv_dim = c.n_head_kv * c.head_dim;
  ModelWeights w;
  w.token_embd = b.bind("token_embd.weight", {c.n_embd, c.n_vocab});
  w.output_norm = b.bind("output_norm.weight", {c.n_embd});
  w.output = c.tied_output ? w.token_embd : b.bind("output.weight", {c.n_embd, c.n_vocab});
  for (int64_t il = 0; il < c.n_layer; ++il) {
    const std::string p = "blk." + std::to_string(il) + ".";
    LayerWeights L;
    L.attn_norm = b.bind(p + "attn_norm.weight", {c.n_embd});
    L.wq = b.bind(p + "attn_q.weight", {c.n_embd, q_dim});
    L.wk = b.bind(p + "attn_k.weight", {c.n_embd, kv_dim});
    L.wv = b.bind(p + "attn_v.weight", {c.n_embd, kv_dim});
    if (c.qkv_bias) {
      L.bq = b.bind(p + "attn_q.bias", {q_dim});
      L.bk = b.bind(p + "attn_k.bias", {kv_dim});
      L.bv = b.bind(p + "attn_v.bias", {kv_dim});
    }
    L.wo = b.bind(p + "attn_output.weight", {q_dim, c.n_embd});
    L.ffn_norm = b.bind(p + "ffn_norm.weight", {c.n_embd});
    L.w_gate = b.bind(p + "ffn_gate.weight", {c.n_embd, c.n_ff});
    L.w_up = b.bind(p + "ffn_up.weight", {c.n_embd, c.n_ff});
    L.w_down = b.bind(p + "ffn_down.weight", {c.n_ff, c.n_embd});
    w.layers.push_back(std::move(L));
  }
  return w;
}

// Reads every page of the tensor data once so that the first forward pass does not pay page
// faults, reporting progress; a no-op cost when the file is already in the page cache.
void prefault(const gguf::File& file, const std::function<void(double)>& progress) {
  const auto image = file.image();
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  madvise(const_cast<uint8_t*>(image.data()), image.size(), MADV_WILLNEED);
  const size_t step = std::max<size_t>(page, image.size() / 200 / page * page);
  volatile uint8_t sink = 0;
  for (size_t start = 0; start < image.size(); start += step) {
    const size_t end = std::min(image.size(), start + step);
    uint8_t acc = 0;
    for (size_t i = start; i < end; i += page) acc ^= image[i];
    sink = sink ^ acc;
    if (progress) progress(static_cast<double>(end) / static_cast<double>(image.size()));
  }
}

// Every weight tensor of a model (absent biases left out).
std::vector<hal::Tensor*> weight_tensors(ModelWeights& w) {
  std::vector<hal::Tensor*> out = {&w.token_embd, &w.output_norm, &w.output};
  for (LayerWeights& L : w.layers) {
    for (hal::Tensor* t : {&L.attn_norm, &L.wq, &L.wk, &L.wv, &L.bq, &L.bk, &L.bv, &L.wo, &L.ffn_norm, &L.w_gate,
                           &L.w_up, &L.w_down}) {
      if (t->buffer != nullptr) out.push_back(t);
    }
  }
  return out;
}

// Places the ops of one decode step by the policy (recording the op table) and returns, for each
// weight, the device of the op that reads it: weights live where they are used. `not_packable`
// gets the weights some op reads other than as the weights of a matrix product.
std::map<const hal::Tensor*, hal::Device*> plan_weights(const ModelConfig& c, DType cache_type, ModelWeights& w,
                                                        const hal::PlacementPolicy& policy, hal::Buffer& any,
                                                        hal::OpTable& table,
                                                        std::set<const hal::Tensor*>& not_packable) {
  ForwardLayout probe = layout_forward(c, 1, 1, cache_type);
  ForwardBuffers& b = probe.buffers;
  for (hal::Tensor* t : b.activations()) {
    t->buffer = &any;
  }
  for (auto* caches : {&b.k_cache, &b.v_cache}) {
    for (hal::Tensor& t : *caches) t.buffer = &any;
  }
  const auto weights = weight_tensors(w);
  std::map<const hal::Tensor*, hal::Device*> device_of;
  const ForwardGraph graph = build_forward(c, w, b, 0, 1, LogitsFor::kLast);
  for (const hal::Op& op : graph.ops) {
    const hal::OpPlacement p = policy.place(op);
    table.add(op, p);
    for (size_t i = 0; i < op.src.size(); ++i) {
      const hal::Tensor* t = op.src[i];
      if (std::find(weights.begin(), weights.end(), t) == weights.end()) continue;
      if (op.kind != hal::OpKind::kMatMul || i != 0) not_packable.insert(t);
      auto [it, inserted] = device_of.emplace(t, p.device);
      MIXSERVE_CHECK(inserted || it->second == p.device, "weight ", t->name, " is read on two devices");
    }
  }
  return device_of;
}

// Copies `tensors` (pointing into the file image) into one allocation on `device`, 64-byte aligned
// and back to back, and re-points them there; tensors that alias the same bytes (a tied output
// matrix) share one copy. On the CPU the allocation is anonymous memory backed by huge pages
// (CpuDevice::allocate): fewer TLB misses than the 4 KiB pages of a file mapping when streaming
// gigabytes per token.
std::unique_ptr<hal::Buffer> upload(hal::Device& device, const std::vector<hal::Tensor*>& tensors,
                                    const uint8_t* image, const std::function<void(uint64_t)>& progress) {
  constexpr size_t kAlign = 64;
  std::map<size_t, size_t> placed;  // offset in the file image -> offset in the new buffer
  size_t total = 0;
  for (const hal::Tensor* t : tensors) {
    if (placed.emplace(t->offset, total).second) total += (t->bytes() + kAlign - 1) / kAlign * kAlign;
  }
  auto buffer = device.allocate(total);
  auto stream = device.create_stream({.n_threads = 1});
  constexpr size_t kSlice = size_t{64} << 20;
  std::map<size_t, bool> copied;
  for (hal::Tensor* t : tensors) {
    const size_t offset = placed.at(t->offset);
    if (copied.emplace(t->offset, true).second) {
      const uint8_t* src = image + t->offset;
      for (size_t done = 0; done < t->bytes(); done += kSlice) {
        const size_t n = std::min(kSlice, t->bytes() - done);
        stream->write(*buffer, offset + done, src + done, n);
        if (progress) progress(n);
      }
    }
    t->buffer = buffer.get();
    t->offset = offset;
  }
  stream->synchronize();
  return buffer;
}

// The tensors of `tensors` (uploaded to one buffer) that only matrix products read as weights and
// that share their bytes with no other tensor (a tied output matrix is also the embedding table).
std::vector<hal::Tensor*> packable(const std::vector<hal::Tensor*>& tensors,
                                   const std::set<const hal::Tensor*>& not_packable) {
  std::map<size_t, int> users;
  for (const hal::Tensor* t : tensors) ++users[t->offset];
  std::vector<hal::Tensor*> out;
  for (hal::Tensor* t : tensors) {
    if (!not_packable.contains(t) && users[t->offset] == 1) out.push_back(t);
  }
  return out;
}

}  // namespace

Model::~Model() = default;

std::unique_ptr<Model> Model::load(const std::string& path, const LoadOptions& options) {
  std::unique_ptr<Model> m(new Model());
  m->options_ = options;
  m->file_ = std::make_unique<gguf::File>(gguf::File::open(path));
  const gguf::File& file = *m->file_;
  m->config_ = read_model_config(file);
  Vocab vocab = Vocab::from_gguf(file);
  if (vocab.size() > m->config_.n_vocab) {
    fail(ErrorCode::kDataLoss, path, ": tokenizer has ", vocab.size(), " tokens but token_embd has only ",
         m->config_.n_vocab, " rows");
  }
  m->tokenizer_ = Tokenizer::create(std::move(vocab));
  m->placement_ = hal::PlacementPolicy::parse(options.device, options.split,
                                               options.allow_fallback && !hal::fallback_forbidden_by_env());
  m->placement_.check_layers(m->config_.n_layer);
  hal::Device& host = *hal::Registry::instance().devices().front();
  auto image = host.wrap_host(file.image().data(), file.image().size());
  m->weights_ = bind_weights(m->config_, file, *image);
  std::set<const hal::Tensor*> not_packable;
  const auto device_of =
      plan_weights(m->config_, options.cache_type, m->weights_, m->placement_, *image, m->op_table_, not_packable);
  if (m->op_table_.fallbacks() > 0) {
    log_warn(m->op_table_.fallbacks(), " of ", m->op_table_.total(), " ops per step fall back from their first-choice "
             "device (", m->placement_.describe(), "); see the op table");
  }
  if (options.use_mmap) prefault(file, options.progress);
  uint64_t to_copy = 0, copied = 0;
  std::map<std::pair<const hal::Device*, size_t>, uint64_t> distinct;  // (device, file offset) -> bytes
  for (const auto& [t, device] : device_of) distinct[{device, t->offset}] = t->bytes();
  for (const auto& [key, bytes] : distinct) {
    if (!(options.use_mmap && key.first == &host)) to_copy += bytes;
  }
  auto count = [&](uint64_t n) {
    copied += n;
    if (options.progress && !options.use_mmap) options.progress(static_cast<double>(copied) / static_cast<double>(to_copy));
  };
  for (hal::Device* device : m->placement_.devices) {
    std::vector<hal::Tensor*> here;
    for (hal::Tensor* t : weight_tensors(m->weights_)) {
      if (device_of.at(t) == device) here.push_back(t);
    }
    if (here.empty()) continue;
    if (options.use_mmap && device == &host) continue;  // the tensors already point into the mapped file
    m->buffers_.push_back(upload(*device, here, file.image().data(), count));
    if (options.pack_weights) {
      const size_t packed = device->pack_weights(packable(here, not_packable));
      if (packed > 0) log_debug(device->info().id, ": ", packed, " weight matrices packed for its kernels");
    }
  }
  if (options.use_mmap) m->buffers_.push_back(std::move(image));
  log_debug("loaded ", path, ": ", m->config_.arch, ", ", m->config_.n_layer, " layers, ",
            m->weight_bytes() / 1e6, " MB of weights");
  return m;
}

uint64_t Model::weight_bytes() const {
  uint64_t total = 0;
  for (const auto& info : file_->tensors()) total += info.bytes;
  return total;
}

uint64_t Model::bytes_per_token() const {
  const auto& w = weights_;
  uint64_t total = w.output_norm.bytes() + w.output.bytes() + w.token_embd.row_bytes();
  for (const auto& L : w.layers) {
    for (const hal::Tensor* t : {&L.attn_norm, &L.wq, &L.wk, &L.wv, &L.bq, &L.bk, &L.bv, &L.wo, &L.ffn_norm,
                                 &L.w_gate, &L.w_up, &L.w_down}) {
      if (t->buffer != nullptr) total += t->bytes();
    }
  }
  return total;
}

}  // namespace mixserve
