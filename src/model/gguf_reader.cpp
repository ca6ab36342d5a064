// GGUF reader: validates the whole image up front (ggml/docs/gguf.md, versions 2 and 3) so that later
// accessors never see inconsistent data. Every count is checked against the bytes that remain before
// anything is reserved, so allocations stay within a small multiple of the file size.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <system_error>

#include "common/error.h"
#include "model/gguf.h"

namespace mixserve::gguf {
namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian uint32
constexpr uint64_t kDefaultAlignment = 32;
constexpr int kMaxArrayDepth = 4;  // arrays of arrays of ... at most this many levels
constexpr uint32_t kMaxDims = 4;   // GGML_MAX_DIMS
constexpr uint64_t kHeaderBytes = 4 + 4 + 8 + 8;
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;                // empty key, type, 1-byte value
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;  // empty name, 1 dim, type, offset
constexpr uint32_t kMaxValueType = static_cast<uint32_t>(ValueType::kFloat64);

// Smallest encoding of one value of `type`, used to bound counts before allocating.
uint64_t min_value_bytes(ValueType type) {
  switch (type) {
    case ValueType::kUInt8:
    case ValueType::kInt8:
    case ValueType::kBool: return 1;
    case ValueType::kUInt16:
    case ValueType::kInt16: return 2;
    case ValueType::kUInt32:
    case ValueType::kInt32:
    case ValueType::kFloat32: return 4;
    case ValueType::kUInt64:
    case ValueType::kInt64:
    case ValueType::kFloat64:
    case ValueType::kString: return 8;
    case ValueType::kArray: return 12;
  }
  return 1;
}

bool is_integer(ValueType t) {
  switch (t) {
    case ValueType::kUInt8:
    case ValueType::kInt8:
    case ValueType::kUInt16:
    case ValueType::kInt16:
    case ValueType::kUInt32:
    case ValueType::kInt32:
    case ValueType::kUInt64:
    case ValueType::kInt64: return true;
    default: return false;
  }
}

std::string describe_type(const Value& v) {
  const Array* array = v.as_array();
  if (array == nullptr) return std::string(value_type_name(v.type));
  return str_cat("array[", value_type_name(array->type), "]");
}

// Everything parsed from an image; the owner of the image lives in File::Impl.
struct Contents {
  std::string path;
  std::span<const uint8_t> image;
  uint32_t version = 0;
  uint64_t alignment = kDefaultAlignment;
  uint64_t data_start = 0;  // absolute offset of the data section
  std::vector<std::pair<std::string, Value>> metadata;
  std::map<std::string, size_t, std::less<>> key_index;
  std::vector<TensorInfo> tensors;
  std::map<std::string, size_t, std::less<>> tensor_index;

  template <typename... Args>
  [[noreturn]] void bad(const Args&... args) const {
    fail(ErrorCode::kDataLoss, "GGUF file '", path, "': ", args...);
  }

  // Throws naming the key, the expected and the actual type unless `ok`.
  void expect(bool ok, std::string_view key, const Value& v, std::string_view expected) const {
    if (!ok) bad("metadata key '", key, "' has type ", describe_type(v), ", expected ", expected);
  }
};

// Sequential little-endian decoder over the image; every read is bounds-checked.
class Parser {
 public:
  explicit Parser(Contents& file) : f_(file), bytes_(file.image) {}

  void run() {
    read_header();
    read_metadata();
    read_alignment();
    read_tensor_infos();
    place_tensors();
  }

 private:
  uint64_t remaining() const { return bytes_.size() - pos_; }

  void need(uint64_t n, std::string_view what) {
    if (n > remaining()) {
      f_.bad("truncated: ", what, " at offset ", pos_, " needs ", n, " bytes but only ", remaining(),
             " remain");
    }
  }

  uint64_t read_le(unsigned n, std::string_view what) {
    need(n, what);
    uint64_t v = 0;
    for (unsigned i = 0; i < n; ++i) v |= static_cast<uint64_t>(bytes_[pos_ + i]) << (8 * i);
    pos_ += n;
    return v;
  }
  uint8_t u8(std::string_view what) { return static_cast<uint8_t>(read_le(1, what)); }
  uint16_t u16(std::string_view what) { return static_cast<uint16_t>(read_le(2, what)); }
  uint32_t u32(std::string_view what) { return static_cast<uint32_t>(read_le(4, what)); }
  uint64_t u64(std::string_view what) { return read_le(8, what); }

  std::string string(std::string_view what) {
    const uint64_t at = pos_;
    const uint64_t len = u64(what);
    if (len > remaining()) {
      f_.bad(what, " at offset ", at, " has length ", len, " but only ", remaining(),
             " bytes remain in the file");
    }
    std::string s(reinterpret_cast<const char*>(bytes_.data() + pos_), static_cast<size_t>(len));
    pos_ += len;
    return s;
  }

  ValueType value_type(std::string_view key) {
    const uint64_t at = pos_;
    const uint32_t t = u32("value type");
    if (t > kMaxValueType) f_.bad("unknown value type ", t, " at offset ", at, " (key '", key, "')");
    return static_cast<ValueType>(t);
  }

  void read_header() {
    if (bytes_.size() < kHeaderBytes) {
      f_.bad("file too small (", bytes_.size(), " bytes) for a GGUF header of ", kHeaderBytes, " bytes");
    }
    const uint32_t magic = u32("magic");
    if (magic != kMagic) f_.bad("bad magic 0x", std::hex, magic, " (expected \"GGUF\")");
    f_.version = u32("version");
    if (f_.version == 1) f_.bad("GGUF version 1 is not supported (only versions 2 and 3)");
    if (f_.version != 2 && f_.version != 3) {
      f_.bad("unsupported GGUF version ", f_.version, " (only versions 2 and 3; a big-endian file?)");
    }
    tensor_count_ = u64("tensor count");
    kv_count_ = u64("metadata count");
    const uint64_t rem = remaining();
    if (tensor_count_ > rem / kMinTensorInfoBytes || kv_count_ > rem / kMinKvBytes ||
        tensor_count_ * kMinTensorInfoBytes + kv_count_ * kMinKvBytes > rem) {
      f_.bad("header claims ", tensor_count_, " tensors and ", kv_count_,
             " metadata entries, more than the remaining ", rem, " bytes can hold");
    }
  }

  Value value(ValueType type, int depth, const std::string& key) {
    switch (type) {
      case ValueType::kUInt8: return Value{type, uint64_t{u8("uint8 value")}};
      case ValueType::kUInt16: return Value{type, uint64_t{u16("uint16 value")}};
      case ValueType::kUInt32: return Value{type, uint64_t{u32("uint32 value")}};
      case ValueType::kUInt64: return Value{type, u64("uint64 value")};
      case ValueType::kInt8: return Value{type, int64_t{static_cast<int8_t>(u8("int8 value"))}};
      case ValueType::kInt16: return Value{type, int64_t{static_cast<int16_t>(u16("int16 value"))}};
      case ValueType::kInt32: return Value{type, int64_t{static_cast<int32_t>(u32("int32 value"))}};
      case ValueType::kInt64: return Value{type, static_cast<int64_t>(u64("int64 value"))};
      case ValueType::kFloat32: {
        const uint32_t raw = u32("float32 value");
        float f = 0;
        std::memcpy(&f, &raw, sizeof f);
        return Value{type, static_cast<double>(f)};
      }
      case ValueType::kFloat64: {
        const uint64_t raw = u64("float64 value");
        double d = 0;
        std::memcpy(&d, &raw, sizeof d);
        return Value{type, d};
      }
      case ValueType::kBool: {
        const uint64_t at = pos_;
        const uint8_t b = u8("bool value");
        if (b > 1) f_.bad("invalid bool byte ", int{b}, " at offset ", at, " (key '", key, "')");
        return Value{type, b == 1};
      }
      case ValueType::kString: return Value{type, string("string value")};
      case ValueType::kArray: return array(depth + 1, key);
    }
    f_.bad("unknown value type (key '", key, "')");
  }

  Value array(int depth, const std::string& key) {
    const uint64_t at = pos_;
    if (depth > kMaxArrayDepth) {
      f_.bad("arrays nested deeper than ", kMaxArrayDepth, " levels at offset ", at, " (key '", key, "')");
    }
    auto result = std::make_shared<Array>();
    result->type = value_type(key);
    const uint64_t count = u64("array length");
    if (count > remaining() / min_value_bytes(result->type)) {
      f_.bad("array at offset ", at, " (key '", key, "') claims ", count, " ",
             value_type_name(result->type), " elements, more than the remaining ", remaining(),
             " bytes can hold");
    }
    result->items.reserve(static_cast<size_t>(count));
    for (uint64_t i = 0; i < count; ++i) result->items.push_back(value(result->type, depth, key));
    return Value{ValueType::kArray, std::move(result)};
  }

  void read_metadata() {
    f_.metadata.reserve(static_cast<size_t>(kv_count_));
    for (uint64_t i = 0; i < kv_count_; ++i) {
      const uint64_t at = pos_;
      std::string key = string("metadata key");
      if (key.empty()) f_.bad("empty metadata key at offset ", at);
      if (f_.key_index.count(key) != 0) f_.bad("duplicate metadata key '", key, "' at offset ", at);
      const ValueType type = value_type(key);
      Value v = value(type, 0, key);
      f_.key_index.emplace(key, f_.metadata.size());
      f_.metadata.emplace_back(std::move(key), std::move(v));
    }
  }

  void read_alignment() {
    const auto it = f_.key_index.find(std::string_view("general.alignment"));
    if (it == f_.key_index.end()) return;
    const Value& v = f_.metadata[it->second].second;
    const auto* raw = std::get_if<uint64_t>(&v.data);
    if (v.type != ValueType::kUInt32 || raw == nullptr) {
      f_.bad("general.alignment has type ", describe_type(v), ", expected uint32");
    }
    if (*raw == 0 || (*raw & (*raw - 1)) != 0) {
      f_.bad("general.alignment ", *raw, " is not a non-zero power of two");
    }
    f_.alignment = *raw;
  }

  void read_tensor_infos() {
    if (tensor_count_ > remaining() / kMinTensorInfoBytes) {
      f_.bad(tensor_count_, " tensor infos cannot fit in the remaining ", remaining(), " bytes at offset ",
             pos_);
    }
    f_.tensors.reserve(static_cast<size_t>(tensor_count_));
    for (uint64_t i = 0; i < tensor_count_; ++i) {
      const uint64_t at = pos_;
      TensorInfo info;
      info.name = string("tensor name");
      if (f_.tensor_index.count(info.name) != 0) {
        f_.bad("duplicate tensor name '", info.name, "' at offset ", at);
      }
      const uint32_t n_dims = u32("tensor dimension count");
      if (n_dims == 0 || n_dims > kMaxDims) {
        f_.bad("tensor '", info.name, "' has ", n_dims, " dimensions (must be 1..", kMaxDims, ")");
      }
      uint64_t elems = 1;
      for (uint32_t d = 0; d < n_dims; ++d) {
        const uint64_t ne = u64("tensor dimension");
        if (ne == 0 || ne > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
          f_.bad("tensor '", info.name, "' dimension ", d, " is ", static_cast<int64_t>(ne),
                 " (must be positive)");
        }
        if (__builtin_mul_overflow(elems, ne, &elems) ||
            elems > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
          f_.bad("tensor '", info.name, "' element count overflows int64");
        }
        info.dims.push_back(static_cast<int64_t>(ne));
      }
      const uint32_t type_id = u32("tensor type");
      const auto dinfo = dtype_info(type_id);
      if (!dinfo) f_.bad("tensor '", info.name, "' has unknown type id ", type_id);
      info.type = dinfo->type;
      if (info.dims[0] % dinfo->block_elems != 0) {
        f_.bad("tensor '", info.name, "' row of ", info.dims[0], " elements is not a multiple of the ",
               dinfo->name, " block size ", dinfo->block_elems);
      }
      const auto row = dtype_row_bytes(info.type, info.dims[0]);
      uint64_t bytes = row.value_or(0);
      bool overflow = !row;
      for (size_t d = 1; d < info.dims.size() && !overflow; ++d) {
        overflow = __builtin_mul_overflow(bytes, static_cast<uint64_t>(info.dims[d]), &bytes);
      }
      if (overflow || bytes > std::numeric_limits<size_t>::max()) {
        f_.bad("tensor '", info.name, "' byte size overflows");
      }
      info.bytes = bytes;
      info.offset = u64("tensor offset");
      f_.tensor_index.emplace(info.name, f_.tensors.size());
      f_.tensors.push_back(std::move(info));
    }
  }

  void place_tensors() {
    const uint64_t size = bytes_.size();
    const uint64_t a = f_.alignment;
    f_.data_start = (pos_ + a - 1) / a * a;  // pos_ <= size and a <= 2^31: no overflow
    if (f_.tensors.empty()) return;  // the trailing padding is optional without a data section
    if (f_.data_start > size) {
      f_.bad("data section would start at offset ", f_.data_start, ", past the end of the file (",
             size, " bytes)");
    }
    const uint64_t data_bytes = size - f_.data_start;
    for (const auto& t : f_.tensors) {
      if (t.offset % a != 0) {
        f_.bad("tensor '", t.name, "' offset ", t.offset, " is not a multiple of the alignment ", a);
      }
      if (t.offset > data_bytes || t.bytes > data_bytes - t.offset) {
        f_.bad("tensor '", t.name, "' data at data offset ", t.offset, " (", t.bytes,
               " bytes) runs past the end of the file (data section holds ", data_bytes, " bytes)");
      }
    }
    std::vector<const TensorInfo*> order;
    order.reserve(f_.tensors.size());
    for (const auto& t : f_.tensors) order.push_back(&t);
    std::sort(order.begin(), order.end(),
              [](const TensorInfo* x, const TensorInfo* y) { return x->offset < y->offset; });
    for (size_t i = 1; i < order.size(); ++i) {
      if (order[i - 1]->offset + order[i - 1]->bytes > order[i]->offset) {
        f_.bad("tensors '", order[i - 1]->name, "' and '", order[i]->name, "' overlap at data offset ",
               order[i]->offset);
      }
    }
  }

  Contents& f_;
  std::span<const uint8_t> bytes_;
  uint64_t pos_ = 0;
  uint64_t tensor_count_ = 0;
  uint64_t kv_count_ = 0;
};

}  // namespace

// Owns the mapping (if any) behind the parsed contents.
struct File::Impl : Contents {
  void* mapping = nullptr;  // mmap region, or nullptr for parse()
  size_t mapping_bytes = 0;

  ~Impl() {
    if (mapping != nullptr) munmap(mapping, mapping_bytes);
  }
};

File::File(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
File::File(File&&) noexcept = default;
File& File::operator=(File&&) noexcept = default;
File::~File() = default;

File File::parse(std::span<const uint8_t> bytes) {
  auto impl = std::make_unique<Impl>();
  impl->path = "<memory>";
  impl->image = bytes;
  Parser(*impl).run();
  return File(std::move(impl));
}

File File::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT || err == ENOTDIR) fail(ErrorCode::kNotFound, "GGUF file '", path, "' not found");
    fail(ErrorCode::kUnavailable, "cannot open GGUF file '", path, "': ",
         std::generic_category().message(err));
  }
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(ErrorCode::kInvalidArgument, "GGUF path '", path, "' is not a regular file");
  }
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  const auto size = static_cast<size_t>(st.st_size);
  if (size > 0) {
    void* map = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    const int err = errno;
    ::close(fd);
    if (map == MAP_FAILED) {
      fail(ErrorCode::kUnavailable, "cannot mmap GGUF file '", path, "': ",
           std::generic_category().message(err));
    }
    impl->mapping = map;
    impl->mapping_bytes = size;
    impl->image = std::span<const uint8_t>(static_cast<const uint8_t*>(map), size);
  } else {
    ::close(fd);
  }
  Parser(*impl).run();
  return File(std::move(impl));
}

uint32_t File::version() const { return impl_->version; }
uint64_t File::alignment() const { return impl_->alignment; }
const std::vector<std::pair<std::string, Value>>& File::metadata() const { return impl_->metadata; }
const std::vector<TensorInfo>& File::tensors() const { return impl_->tensors; }
std::span<const uint8_t> File::image() const { return impl_->image; }
const std::string& File::path() const { return impl_->path; }

const Value* File::find(std::string_view key) const {
  const auto it = impl_->key_index.find(key);
  return it == impl_->key_index.end() ? nullptr : &impl_->metadata[it->second].second;
}

const TensorInfo* File::find_tensor(std::string_view name) const {
  const auto it = impl_->tensor_index.find(name);
  return it == impl_->tensor_index.end() ? nullptr : &impl_->tensors[it->second];
}

std::span<const uint8_t> File::tensor_data(const TensorInfo& info) const {
  const uint64_t size = impl_->image.size();
  const uint64_t start = impl_->data_start;
  if (start > size || info.offset > size - start || info.bytes > size - start - info.offset) {
    fail(ErrorCode::kInvalidArgument, "tensor '", info.name, "' lies outside GGUF file '", impl_->path,
         "'");
  }
  return impl_->image.subspan(static_cast<size_t>(start + info.offset), static_cast<size_t>(info.bytes));
}

std::optional<std::string> File::get_string(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) return std::nullopt;
  impl_->expect(v->as_string() != nullptr, key, *v, "string");
  return *v->as_string();
}

std::optional<int64_t> File::get_int(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) return std::nullopt;
  impl_->expect(is_integer(v->type), key, *v, "an integer");
  const auto i = v->as_int();
  if (!i) impl_->bad("metadata key '", key, "' value does not fit in int64");
  return i;
}

std::optional<double> File::get_float(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) return std::nullopt;
  impl_->expect(v->as_double().has_value(), key, *v, "a number");
  return v->as_double();
}

std::optional<bool> File::get_bool(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) return std::nullopt;
  impl_->expect(v->as_bool().has_value(), key, *v, "bool");
  return v->as_bool();
}

std::optional<std::vector<std::string>> File::get_string_array(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) return std::nullopt;
  const Array* a = v->as_array();
  impl_->expect(a != nullptr && a->type == ValueType::kString, key, *v, "array[string]");
  std::vector<std::string> out;
  out.reserve(a->items.size());
  for (const auto& item : a->items) out.push_back(*item.as_string());
  return out;
}

std::optional<std::vector<float>> File::get_float_array(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) return std::nullopt;
  const Array* a = v->as_array();
  const bool ok = a != nullptr && (a->type == ValueType::kFloat32 || a->type == ValueType::kFloat64);
  impl_->expect(ok, key, *v, "array[float32]");
  std::vector<float> out;
  out.reserve(a->items.size());
  for (const auto& item : a->items) out.push_back(static_cast<float>(*item.as_double()));
  return out;
}

std::optional<std::vector<int64_t>> File::get_int_array(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) return std::nullopt;
  const Array* a = v->as_array();
  impl_->expect(a != nullptr && is_integer(a->type), key, *v, "an integer array");
  std::vector<int64_t> out;
  out.reserve(a->items.size());
  for (size_t i = 0; i < a->items.size(); ++i) {
    const auto x = a->items[i].as_int();
    if (!x) impl_->bad("metadata key '", key, "' element ", i, " does not fit in int64");
    out.push_back(*x);
  }
  return out;
}

}  // namespace mixserve::gguf
