// GGUF v3 reader (ggml/docs/gguf.md): metadata key/values of every type including nested arrays,
// tensor infos, alignment, and tensor data read in place from an mmap'd file.
// Every malformed input gives one Error(kDataLoss) naming the problem; no crash, hang or huge allocation.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/dtype.h"

namespace mixserve::gguf {

/// Metadata value types (gguf_metadata_value_type).
enum class ValueType : uint32_t {
  kUInt8 = 0, kInt8 = 1, kUInt16 = 2, kInt16 = 3, kUInt32 = 4, kInt32 = 5, kFloat32 = 6,
  kBool = 7, kString = 8, kArray = 9, kUInt64 = 10, kInt64 = 11, kFloat64 = 12,
};

struct Value;

/// An array value: element type and elements (all of that type).
struct Array {
  ValueType type = ValueType::kUInt8;  ///< element type
  std::vector<Value> items;            ///< elements
};

/// One metadata value; `type` says which member of `data` holds it.
struct Value {
  ValueType type = ValueType::kUInt8;
  std::variant<uint64_t, int64_t, double, bool, std::string, std::shared_ptr<Array>> data;
  // Unsigned types are stored as uint64_t, signed as int64_t, floats as double.

  /// Integer value of any integer type (nullopt for others or unsigned values above INT64_MAX).
  std::optional<int64_t> as_int() const;
  /// Numeric value of any integer or float type.
  std::optional<double> as_double() const;
  /// String value, if a string.
  const std::string* as_string() const;
  /// Array value, if an array.
  const Array* as_array() const;
  /// Bool value, if a bool.
  std::optional<bool> as_bool() const;
};

/// Factory helpers for writers and tests.
Value make_uint32(uint32_t v);
Value make_int32(int32_t v);
Value make_uint64(uint64_t v);
Value make_float32(float v);
Value make_bool(bool v);
Value make_string(std::string v);
Value make_array(ValueType elem_type, std::vector<Value> items);
Value make_string_array(const std::vector<std::string>& items);
Value make_float32_array(const std::vector<float>& items);
Value make_int32_array(const std::vector<int32_t>& items);

/// Name of a value type ("uint32").
std::string_view value_type_name(ValueType type);

/// Description of one tensor in the file.
struct TensorInfo {
  std::string name;             ///< unique within the file
  std::vector<int64_t> dims;    ///< ne[0] first (innermost); 1..4 dims
  DType type = DType::kF32;     ///< element type
  uint64_t offset = 0;          ///< byte offset of the data, relative to the data section
  uint64_t bytes = 0;           ///< bytes of data
};

/// A parsed GGUF file. Keeps the file mapped (or the caller's bytes referenced) while alive.
class File {
 public:
  /// Opens and validates `path` (mmap). Throws kNotFound if missing, kDataLoss if malformed.
  static File open(const std::string& path);
  /// Parses a GGUF image held in memory; `bytes` must outlive the File. Throws kDataLoss.
  static File parse(std::span<const uint8_t> bytes);

  File(File&&) noexcept;
  File& operator=(File&&) noexcept;
  ~File();

  /// GGUF version (2 or 3).
  uint32_t version() const;
  /// Data section alignment (general.alignment, default 32).
  uint64_t alignment() const;
  /// All key/value pairs, in file order.
  const std::vector<std::pair<std::string, Value>>& metadata() const;
  /// Value of a key, or nullptr.
  const Value* find(std::string_view key) const;
  /// Typed lookups; nullopt when the key is absent. A present key of the wrong type throws
  /// kDataLoss naming the key, expected and actual type.
  std::optional<std::string> get_string(std::string_view key) const;
  std::optional<int64_t> get_int(std::string_view key) const;
  std::optional<double> get_float(std::string_view key) const;
  std::optional<bool> get_bool(std::string_view key) const;
  std::optional<std::vector<std::string>> get_string_array(std::string_view key) const;
  std::optional<std::vector<float>> get_float_array(std::string_view key) const;
  std::optional<std::vector<int64_t>> get_int_array(std::string_view key) const;

  /// Tensor infos, in file order.
  const std::vector<TensorInfo>& tensors() const;
  /// Tensor by name, or nullptr.
  const TensorInfo* find_tensor(std::string_view name) const;
  /// The bytes of a tensor (a view into the mapping).
  std::span<const uint8_t> tensor_data(const TensorInfo& info) const;
  /// The whole file image.
  std::span<const uint8_t> image() const;
  /// Path the file was opened from ("<memory>" for parse()).
  const std::string& path() const;

 private:
  struct Impl;
  explicit File(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// Builds a GGUF v3 file: metadata and tensors in insertion order, data aligned.
class Writer {
 public:
  /// Sets (or replaces) a metadata key.
  void set(const std::string& key, Value value);
  /// Adds a tensor; `data` must be exactly dtype_row_bytes(type, dims[0]) * product(dims[1..]) bytes
  /// (throws kInvalidArgument otherwise, or for a duplicate name). The bytes are copied.
  void add_tensor(const std::string& name, DType type, std::vector<int64_t> dims,
                  std::span<const uint8_t> data);
  /// Sets the data alignment (power of two; default 32), also written as general.alignment if not 32.
  void set_alignment(uint64_t alignment);
  /// Serialises the file to memory.
  std::vector<uint8_t> to_bytes() const;
  /// Writes the file to `path` (streaming, so multi-GB models are fine); throws kUnavailable on I/O error.
  void write(const std::string& path) const;

 private:
  std::vector<std::pair<std::string, Value>> metadata_;
  struct PendingTensor {
    TensorInfo info;
    std::vector<uint8_t> data;
  };
  std::vector<PendingTensor> tensors_;
  uint64_t alignment_ = 32;
};

}  // namespace mixserve::gguf
