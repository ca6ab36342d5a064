// GGUF v3 writer (ggml/docs/gguf.md): header, metadata and tensor infos in insertion order, then the
// data section with every tensor at an aligned offset and zero padding after each tensor.
#include <algorithm>
#include <cstring>
#include <fstream>
#include <limits>

#include "common/error.h"
#include "model/gguf.h"

namespace mixserve::gguf {
namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" as a little-endian uint32
constexpr uint32_t kVersion = 3;
constexpr uint64_t kDefaultAlignment = 32;
constexpr int kMaxArrayDepth = 4;  // same limit the reader enforces
constexpr size_t kMaxDims = 4;
constexpr std::string_view kAlignmentKey = "general.alignment";

uint64_t align_up(uint64_t n, uint64_t alignment) { return (n + alignment - 1) / alignment * alignment; }

// Appends little-endian encodings to a byte buffer.
class Encoder {
 public:
  explicit Encoder(std::vector<uint8_t>& out) : out_(out) {}

  void le(uint64_t v, unsigned n) {
    for (unsigned i = 0; i < n; ++i) out_.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  void string(std::string_view s) {
    le(s.size(), 8);
    out_.insert(out_.end(), s.begin(), s.end());
  }

  // Writes the payload of `v` (no type tag); throws kInvalidArgument if `v` is inconsistent.
  void value(const Value& v, int depth, const std::string& key) {
    switch (v.type) {
      case ValueType::kUInt8: return unsigned_value(v, 1, key);
      case ValueType::kUInt16: return unsigned_value(v, 2, key);
      case ValueType::kUInt32: return unsigned_value(v, 4, key);
      case ValueType::kUInt64: return unsigned_value(v, 8, key);
      case ValueType::kInt8: return signed_value(v, 1, key);
      case ValueType::kInt16: return signed_value(v, 2, key);
      case ValueType::kInt32: return signed_value(v, 4, key);
      case ValueType::kInt64: return signed_value(v, 8, key);
      case ValueType::kFloat32: {
        const float f = static_cast<float>(get<double>(v, key));
        uint32_t raw = 0;
        std::memcpy(&raw, &f, sizeof raw);
        return le(raw, 4);
      }
      case ValueType::kFloat64: {
        const double d = get<double>(v, key);
        uint64_t raw = 0;
        std::memcpy(&raw, &d, sizeof raw);
        return le(raw, 8);
      }
      case ValueType::kBool: return le(get<bool>(v, key) ? 1 : 0, 1);
      case ValueType::kString: return string(get<std::string>(v, key));
      case ValueType::kArray: {
        if (depth >= kMaxArrayDepth) {
          fail(ErrorCode::kInvalidArgument, "GGUF key '", key, "': arrays nested deeper than ",
               kMaxArrayDepth, " levels");
        }
        const auto& array = get<std::shared_ptr<Array>>(v, key);
        if (!array) fail(ErrorCode::kInvalidArgument, "GGUF key '", key, "': null array");
        le(static_cast<uint32_t>(array->type), 4);
        le(array->items.size(), 8);
        for (const auto& item : array->items) {
          if (item.type != array->type) {
            fail(ErrorCode::kInvalidArgument, "GGUF key '", key, "': array of ",
                 value_type_name(array->type), " holds a ", value_type_name(item.type), " element");
          }
          value(item, depth + 1, key);
        }
        return;
      }
    }
    fail(ErrorCode::kInvalidArgument, "GGUF key '", key, "': unknown value type ",
         static_cast<uint32_t>(v.type));
  }

 private:
  template <typename T>
  static const T& get(const Value& v, const std::string& key) {
    const T* p = std::get_if<T>(&v.data);
    if (p == nullptr) {
      fail(ErrorCode::kInvalidArgument, "GGUF key '", key, "': value of type ", value_type_name(v.type),
           " holds the wrong C++ type");
    }
    return *p;
  }

  void unsigned_value(const Value& v, unsigned n, const std::string& key) {
    const uint64_t x = get<uint64_t>(v, key);
    if (n < 8 && x >> (8 * n) != 0) {
      fail(ErrorCode::kInvalidArgument, "GGUF key '", key, "': ", x, " does not fit in ",
           value_type_name(v.type));
    }
    le(x, n);
  }

  void signed_value(const Value& v, unsigned n, const std::string& key) {
    const int64_t x = get<int64_t>(v, key);
    const int64_t lo = n == 8 ? std::numeric_limits<int64_t>::min() : -(int64_t{1} << (8 * n - 1));
    const int64_t hi = n == 8 ? std::numeric_limits<int64_t>::max() : (int64_t{1} << (8 * n - 1)) - 1;
    if (x < lo || x > hi) {
      fail(ErrorCode::kInvalidArgument, "GGUF key '", key, "': ", x, " does not fit in ",
           value_type_name(v.type));
    }
    le(static_cast<uint64_t>(x), n);
  }

  std::vector<uint8_t>& out_;
};

void check_alignment(uint64_t alignment) {
  if (alignment == 0 || (alignment & (alignment - 1)) != 0 ||
      alignment > std::numeric_limits<uint32_t>::max()) {
    fail(ErrorCode::kInvalidArgument, "GGUF alignment ", alignment,
         " must be a non-zero power of two that fits in uint32");
  }
}

}  // namespace

void Writer::set(const std::string& key, Value value) {
  if (key.empty()) fail(ErrorCode::kInvalidArgument, "GGUF metadata key must not be empty");
  if (key == kAlignmentKey) {
    const auto* raw = std::get_if<uint64_t>(&value.data);
    if (value.type != ValueType::kUInt32 || raw == nullptr) {
      fail(ErrorCode::kInvalidArgument, "general.alignment must be a uint32");
    }
    check_alignment(*raw);
    alignment_ = *raw;
  }
  for (auto& [k, v] : metadata_) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  metadata_.emplace_back(key, std::move(value));
}

void Writer::set_alignment(uint64_t alignment) {
  check_alignment(alignment);
  if (alignment != kDefaultAlignment) {
    set(std::string(kAlignmentKey), make_uint32(static_cast<uint32_t>(alignment)));
    return;
  }
  alignment_ = alignment;
  std::erase_if(metadata_, [](const auto& kv) { return kv.first == kAlignmentKey; });
}

void Writer::add_tensor(const std::string& name, DType type, std::vector<int64_t> dims,
                        std::span<const uint8_t> data) {
  for (const auto& t : tensors_) {
    if (t.info.name == name) fail(ErrorCode::kInvalidArgument, "duplicate GGUF tensor name '", name, "'");
  }
  if (dims.empty() || dims.size() > kMaxDims) {
    fail(ErrorCode::kInvalidArgument, "GGUF tensor '", name, "' has ", dims.size(),
         " dimensions (must be 1..", kMaxDims, ")");
  }
  for (int64_t d : dims) {
    if (d <= 0) fail(ErrorCode::kInvalidArgument, "GGUF tensor '", name, "' has dimension ", d);
  }
  const auto row = dtype_row_bytes(type, dims[0]);
  if (!row) {
    fail(ErrorCode::kInvalidArgument, "GGUF tensor '", name, "': ", dims[0],
         " elements per row is not a whole number of ", dtype_name(type), " blocks");
  }
  uint64_t bytes = *row;
  for (size_t i = 1; i < dims.size(); ++i) {
    if (__builtin_mul_overflow(bytes, static_cast<uint64_t>(dims[i]), &bytes)) {
      fail(ErrorCode::kInvalidArgument, "GGUF tensor '", name, "' byte size overflows");
    }
  }
  if (bytes != data.size()) {
    fail(ErrorCode::kInvalidArgument, "GGUF tensor '", name, "' needs ", bytes, " bytes of ",
         dtype_name(type), " data, got ", data.size());
  }
  PendingTensor t;
  t.info.name = name;
  t.info.dims = std::move(dims);
  t.info.type = type;
  t.info.bytes = bytes;
  t.data.assign(data.begin(), data.end());
  tensors_.push_back(std::move(t));
}

namespace {

// Serialises everything before the data section, padding included.
std::vector<uint8_t> encode_head(const std::vector<std::pair<std::string, Value>>& metadata,
                                 const std::vector<TensorInfo>& infos, uint64_t alignment) {
  std::vector<uint8_t> head;
  Encoder enc(head);
  enc.le(kMagic, 4);
  enc.le(kVersion, 4);
  enc.le(infos.size(), 8);
  enc.le(metadata.size(), 8);
  for (const auto& [key, value] : metadata) {
    enc.string(key);
    enc.le(static_cast<uint32_t>(value.type), 4);
    enc.value(value, 0, key);
  }
  for (const auto& info : infos) {
    enc.string(info.name);
    enc.le(info.dims.size(), 4);
    for (int64_t d : info.dims) enc.le(static_cast<uint64_t>(d), 8);
    enc.le(static_cast<uint32_t>(info.type), 4);
    enc.le(info.offset, 8);
  }
  head.resize(align_up(head.size(), alignment), 0);
  return head;
}

// Tensor infos with data-section offsets: each tensor starts aligned, in insertion order.
std::vector<TensorInfo> place(const auto& tensors, uint64_t alignment) {
  std::vector<TensorInfo> infos;
  infos.reserve(tensors.size());
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    infos.push_back(t.info);
    infos.back().offset = offset;
    offset += align_up(t.info.bytes, alignment);
  }
  return infos;
}

}  // namespace

std::vector<uint8_t> Writer::to_bytes() const {
  const std::vector<TensorInfo> infos = place(tensors_, alignment_);
  std::vector<uint8_t> out = encode_head(metadata_, infos, alignment_);
  if (!infos.empty()) out.reserve(out.size() + infos.back().offset + infos.back().bytes + alignment_);
  for (const auto& t : tensors_) {
    out.insert(out.end(), t.data.begin(), t.data.end());
    out.resize(align_up(out.size(), alignment_), 0);
  }
  return out;
}

void Writer::write(const std::string& path) const {
  const std::vector<TensorInfo> infos = place(tensors_, alignment_);
  const std::vector<uint8_t> head = encode_head(metadata_, infos, alignment_);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) fail(ErrorCode::kUnavailable, "cannot open '", path, "' for writing");
  out.write(reinterpret_cast<const char*>(head.data()), static_cast<std::streamsize>(head.size()));
  static constexpr char kZeros[4096] = {};
  for (const auto& t : tensors_) {
    out.write(reinterpret_cast<const char*>(t.data.data()), static_cast<std::streamsize>(t.data.size()));
    for (uint64_t pad = align_up(t.data.size(), alignment_) - t.data.size(); pad > 0 && out;) {
      const uint64_t n = std::min<uint64_t>(pad, sizeof kZeros);
      out.write(kZeros, static_cast<std::streamsize>(n));
      pad -= n;
    }
  }
  out.close();
  if (!out) fail(ErrorCode::kUnavailable, "error writing GGUF file '", path, "'");
}

}  // namespace mixserve::gguf
