// GGUF metadata values: accessors, factories and type names.
#include <limits>

#include "common/error.h"
#include "model/gguf.h"

namespace mixserve::gguf {
namespace {

bool is_unsigned(ValueType t) {
  return t == ValueType::kUInt8 || t == ValueType::kUInt16 || t == ValueType::kUInt32 ||
         t == ValueType::kUInt64;
}

bool is_signed(ValueType t) {
  return t == ValueType::kInt8 || t == ValueType::kInt16 || t == ValueType::kInt32 ||
         t == ValueType::kInt64;
}

bool is_float(ValueType t) { return t == ValueType::kFloat32 || t == ValueType::kFloat64; }

}  // namespace

std::optional<int64_t> Value::as_int() const {
  if (is_unsigned(type)) {
    const auto* v = std::get_if<uint64_t>(&data);
    if (v == nullptr || *v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return std::nullopt;
    }
    return static_cast<int64_t>(*v);
  }
  if (is_signed(type)) {
    const auto* v = std::get_if<int64_t>(&data);
    if (v == nullptr) return std::nullopt;
    return *v;
  }
  return std::nullopt;
}

std::optional<double> Value::as_double() const {
  if (is_unsigned(type)) {
    const auto* v = std::get_if<uint64_t>(&data);
    if (v != nullptr) return static_cast<double>(*v);
  } else if (is_signed(type)) {
    const auto* v = std::get_if<int64_t>(&data);
    if (v != nullptr) return static_cast<double>(*v);
  } else if (is_float(type)) {
    const auto* v = std::get_if<double>(&data);
    if (v != nullptr) return *v;
  }
  return std::nullopt;
}

const std::string* Value::as_string() const {
  if (type != ValueType::kString) return nullptr;
  return std::get_if<std::string>(&data);
}

const Array* Value::as_array() const {
  if (type != ValueType::kArray) return nullptr;
  const auto* v = std::get_if<std::shared_ptr<Array>>(&data);
  return v == nullptr ? nullptr : v->get();
}

std::optional<bool> Value::as_bool() const {
  if (type != ValueType::kBool) return std::nullopt;
  const auto* v = std::get_if<bool>(&data);
  if (v == nullptr) return std::nullopt;
  return *v;
}

Value make_uint32(uint32_t v) { return Value{ValueType::kUInt32, uint64_t{v}}; }
Value make_int32(int32_t v) { return Value{ValueType::kInt32, int64_t{v}}; }
Value make_uint64(uint64_t v) { return Value{ValueType::kUInt64, v}; }
Value make_float32(float v) { return Value{ValueType::kFloat32, static_cast<double>(v)}; }
Value make_bool(bool v) { return Value{ValueType::kBool, v}; }
Value make_string(std::string v) { return Value{ValueType::kString, std::move(v)}; }

Value make_array(ValueType elem_type, std::vector<Value> items) {
  for (size_t i = 0; i < items.size(); ++i) {
    if (items[i].type != elem_type) {
      fail(ErrorCode::kInvalidArgument, "make_array: element ", i, " has type ",
           value_type_name(items[i].type), ", expected ", value_type_name(elem_type));
    }
  }
  auto array = std::make_shared<Array>();
  array->type = elem_type;
  array->items = std::move(items);
  return Value{ValueType::kArray, std::move(array)};
}

Value make_string_array(const std::vector<std::string>& items) {
  std::vector<Value> values;
  values.reserve(items.size());
  for (const auto& s : items) values.push_back(make_string(s));
  return make_array(ValueType::kString, std::move(values));
}

Value make_float32_array(const std::vector<float>& items) {
  std::vector<Value> values;
  values.reserve(items.size());
  for (float f : items) values.push_back(make_float32(f));
  return make_array(ValueType::kFloat32, std::move(values));
}

Value make_int32_array(const std::vector<int32_t>& items) {
  std::vector<Value> values;
  values.reserve(items.size());
  for (int32_t v : items) values.push_back(make_int32(v));
  return make_array(ValueType::kInt32, std::move(values));
}

std::string_view value_type_name(ValueType type) {
  switch (type) {
    case ValueType::kUInt8: return "uint8";
    case ValueType::kInt8: return "int8";
    case ValueType::kUInt16: return "uint16";
    case ValueType::kInt16: return "int16";
    case ValueType::kUInt32: return "uint32";
    case ValueType::kInt32: return "int32";
    case ValueType::kFloat32: return "float32";
    case ValueType::kBool: return "bool";
    case ValueType::kString: return "string";
    case ValueType::kArray: return "array";
    case ValueType::kUInt64: return "uint64";
    case ValueType::kInt64: return "int64";
    case ValueType::kFloat64: return "float64";
  }
  return "unknown";
}

}  // namespace mixserve::gguf
