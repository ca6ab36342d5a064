#include "model/jinja/jinja_value.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"
#include "model/jinja/jinja_strings.h"

namespace mixserve::jinja {
namespace {

// Nesting beyond this prints "..." in repr() (a namespace can contain itself).
constexpr int kMaxReprDepth = 64;
constexpr int kMaxJsonDepth = 256;

void append_repr(std::string& out, const Value& v, int depth);

void append_items_repr(std::string& out, const Value& v, int depth) {
  switch (v.kind()) {
    case Value::Kind::kList: {
      const ListData& l = v.as_list();
      out += l.tuple ? '(' : '[';
      for (size_t i = 0; i < l.items.size(); ++i) {
        if (i) out += ", ";
        append_repr(out, l.items[i], depth + 1);
      }
      if (l.tuple && l.items.size() == 1) out += ',';
      out += l.tuple ? ')' : ']';
      return;
    }
    default: {
      const Dict& d = v.as_dict();
      out += '{';
      bool first = true;
      for (const auto& [key, value] : d.items()) {
        if (!first) out += ", ";
        first = false;
        out += python_string_repr(key);
        out += ": ";
        append_repr(out, value, depth + 1);
      }
      out += '}';
    }
  }
}

void append_repr(std::string& out, const Value& v, int depth) {
  if (depth > kMaxReprDepth) {
    out += "...";
    return;
  }
  switch (v.kind()) {
    case Value::Kind::kString: out += python_string_repr(v.as_string()); return;
    case Value::Kind::kUndefined: out += "Undefined"; return;
    case Value::Kind::kList:
    case Value::Kind::kDict: append_items_repr(out, v, depth); return;
    case Value::Kind::kNamespace:
      out += "<Namespace ";
      append_items_repr(out, v, depth);
      out += '>';
      return;
    default: out += to_str(v); return;
  }
}

void append_json(std::string& out, const Value& v, const JsonOptions& o, int depth) {
  if (depth > kMaxJsonDepth) fail(ErrorCode::kInvalidArgument, "tojson: value nested too deeply");
  auto newline = [&](int level) {
    if (!o.pretty) return;
    out += '\n';
    for (int i = 0; i < level; ++i) out += o.indent;
  };
  switch (v.kind()) {
    case Value::Kind::kNone: out += "null"; return;
    case Value::Kind::kBool: out += v.as_bool() ? "true" : "false"; return;
    case Value::Kind::kInt: out += std::to_string(v.as_int()); return;
    case Value::Kind::kFloat: {
      const double d = v.as_double();
      out += std::isnan(d) ? "NaN" : std::isinf(d) ? (d < 0 ? "-Infinity" : "Infinity") : python_float_repr(d);
      return;
    }
    case Value::Kind::kString: append_json_string(out, v.as_string(), o.ensure_ascii); return;
    case Value::Kind::kList: {
      const auto& items = v.as_list().items;
      if (items.empty()) {
        out += "[]";
        return;
      }
      out += '[';
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += o.item_separator;
        newline(depth + 1);
        append_json(out, items[i], o, depth + 1);
      }
      newline(depth);
      out += ']';
      return;
    }
    case Value::Kind::kDict: {
      std::vector<const std::pair<std::string, Value>*> entries;
      for (const auto& e : v.as_dict().items()) entries.push_back(&e);
      if (entries.empty()) {
        out += "{}";
        return;
      }
      if (o.sort_keys) {
        std::stable_sort(entries.begin(), entries.end(), [](auto* a, auto* b) { return a->first < b->first; });
      }
      out += '{';
      for (size_t i = 0; i < entries.size(); ++i) {
        if (i) out += o.item_separator;
        newline(depth + 1);
        append_json_string(out, entries[i]->first, o.ensure_ascii);
        out += o.key_separator;
        append_json(out, entries[i]->second, o, depth + 1);
      }
      newline(depth);
      out += '}';
      return;
    }
    default: fail(ErrorCode::kInvalidArgument, "tojson: object of type ", type_name(v), " is not JSON serializable");
  }
}

int compare_numbers(const Value& a, const Value& b) {
  if (a.is_integral() && b.is_integral()) {
    return a.as_int() < b.as_int() ? -1 : a.as_int() > b.as_int() ? 1 : 0;
  }
  const double x = a.as_double();
  const double y = b.as_double();
  return x < y ? -1 : x > y ? 1 : 0;
}

}  // namespace

const Value* Dict::find(std::string_view key) const {
  const auto it = index_.find(key);
  return it == index_.end() ? nullptr : &items_[it->second].second;
}

void Dict::set(std::string key, Value value) {
  const int d = 1 + nesting_depth(value);
  if (d > kMaxValueDepth) fail(ErrorCode::kResourceExhausted, "value nested deeper than ", kMaxValueDepth, " levels");
  depth_ = std::max(depth_, d);
  const auto it = index_.find(key);
  if (it != index_.end()) {
    items_[it->second].second = std::move(value);
    return;
  }
  index_.emplace(key, items_.size());
  items_.emplace_back(std::move(key), std::move(value));
}

void Dict::clear() {
  items_.clear();
  index_.clear();
  depth_ = 1;
}

int nesting_depth(const Value& v) {
  if (v.kind() == Value::Kind::kList) return v.as_list().depth;
  if (v.kind() == Value::Kind::kDict) return v.as_dict().depth();
  return 0;
}

Value Value::undefined(std::string hint) {
  Value v;
  v.data_ = Undefined{std::move(hint)};
  return v;
}

Value Value::none() {
  Value v;
  v.data_ = NoneValue{};
  return v;
}

Value Value::list(std::vector<Value> items, bool tuple) {
  int depth = 1;
  for (const Value& item : items) depth = std::max(depth, 1 + nesting_depth(item));
  if (depth > kMaxValueDepth)
    fail(ErrorCode::kResourceExhausted, "value nested deeper than ", kMaxValueDepth, " levels");
  Value v;
  v.data_ = std::make_shared<const ListData>(ListData{std::move(items), tuple, depth});
  return v;
}

Value Value::dict(Dict d) {
  Value v;
  v.data_ = std::make_shared<const Dict>(std::move(d));
  return v;
}

Value Value::make_namespace(Dict attrs) {
  Value v;
  v.data_ = std::make_shared<Dict>(std::move(attrs));
  return v;
}

Value Value::function(std::string name, std::function<Value(Interpreter&, const CallArgs&)> call) {
  Value v;
  v.data_ = std::make_shared<const Function>(Function{std::move(name), std::move(call)});
  return v;
}

bool Value::as_bool() const {
  MIXSERVE_CHECK(kind() == Kind::kBool);
  return std::get<bool>(data_);
}

int64_t Value::as_int() const {
  MIXSERVE_CHECK(is_integral());
  return kind() == Kind::kBool ? (std::get<bool>(data_) ? 1 : 0) : std::get<int64_t>(data_);
}

double Value::as_double() const {
  MIXSERVE_CHECK(is_number());
  return kind() == Kind::kFloat ? std::get<double>(data_) : static_cast<double>(as_int());
}

const std::string& Value::as_string() const {
  MIXSERVE_CHECK(kind() == Kind::kString);
  return std::get<std::string>(data_);
}

const ListData& Value::as_list() const {
  MIXSERVE_CHECK(kind() == Kind::kList);
  return *std::get<std::shared_ptr<const ListData>>(data_);
}

const Dict& Value::as_dict() const {
  MIXSERVE_CHECK(kind() == Kind::kDict || kind() == Kind::kNamespace);
  if (kind() == Kind::kNamespace) return *std::get<std::shared_ptr<Dict>>(data_);
  return *std::get<std::shared_ptr<const Dict>>(data_);
}

Dict& Value::namespace_attrs() const {
  MIXSERVE_CHECK(kind() == Kind::kNamespace);
  return *std::get<std::shared_ptr<Dict>>(data_);
}

const Function& Value::as_function() const {
  MIXSERVE_CHECK(kind() == Kind::kFunction);
  return *std::get<std::shared_ptr<const Function>>(data_);
}

const std::string& Value::undefined_hint() const {
  MIXSERVE_CHECK(kind() == Kind::kUndefined);
  return std::get<Undefined>(data_).hint;
}

const void* Value::identity() const {
  switch (kind()) {
    case Kind::kList: return std::get<std::shared_ptr<const ListData>>(data_).get();
    case Kind::kDict: return std::get<std::shared_ptr<const Dict>>(data_).get();
    case Kind::kNamespace: return std::get<std::shared_ptr<Dict>>(data_).get();
    case Kind::kFunction: return std::get<std::shared_ptr<const Function>>(data_).get();
    default: return nullptr;
  }
}

std::string type_name(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined: return "Undefined";
    case Value::Kind::kNone: return "NoneType";
    case Value::Kind::kBool: return "bool";
    case Value::Kind::kInt: return "int";
    case Value::Kind::kFloat: return "float";
    case Value::Kind::kString: return "str";
    case Value::Kind::kList: return v.as_list().tuple ? "tuple" : "list";
    case Value::Kind::kDict: return "dict";
    case Value::Kind::kNamespace: return "Namespace";
    case Value::Kind::kFunction: return "function";
  }
  return "?";
}

bool truthy(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone: return false;
    case Value::Kind::kBool: return v.as_bool();
    case Value::Kind::kInt: return v.as_int() != 0;
    case Value::Kind::kFloat: return v.as_double() != 0.0;
    case Value::Kind::kString: return !v.as_string().empty();
    case Value::Kind::kList: return !v.as_list().items.empty();
    case Value::Kind::kDict: return v.as_dict().size() != 0;
    default: return true;
  }
}

bool equals(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) return compare_numbers(a, b) == 0;
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone: return true;
    case Value::Kind::kString: return a.as_string() == b.as_string();
    case Value::Kind::kList: {
      const ListData& x = a.as_list();
      const ListData& y = b.as_list();
      if (x.tuple != y.tuple || x.items.size() != y.items.size()) return false;
      for (size_t i = 0; i < x.items.size(); ++i) {
        if (!equals(x.items[i], y.items[i])) return false;
      }
      return true;
    }
    case Value::Kind::kDict: {
      const Dict& x = a.as_dict();
      const Dict& y = b.as_dict();
      if (x.size() != y.size()) return false;
      for (const auto& [key, value] : x.items()) {
        const Value* other = y.find(key);
        if (!other || !equals(value, *other)) return false;
      }
      return true;
    }
    default: return a.identity() == b.identity();
  }
}

int compare(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) return compare_numbers(a, b);
  if (a.is_string() && b.is_string()) {
    const int c = a.as_string().compare(b.as_string());  // UTF-8 byte order = code point order
    return c < 0 ? -1 : c > 0 ? 1 : 0;
  }
  if (a.kind() == Value::Kind::kList && b.kind() == Value::Kind::kList && a.as_list().tuple == b.as_list().tuple) {
    const auto& x = a.as_list().items;
    const auto& y = b.as_list().items;
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (!equals(x[i], y[i])) return compare(x[i], y[i]);
    }
    return x.size() < y.size() ? -1 : x.size() > y.size() ? 1 : 0;
  }
  fail(ErrorCode::kInvalidArgument, "comparison not supported between instances of '", type_name(a), "' and '",
       type_name(b), "'");
}

std::string to_str(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined: return "";
    case Value::Kind::kNone: return "None";
    case Value::Kind::kBool: return v.as_bool() ? "True" : "False";
    case Value::Kind::kInt: return std::to_string(v.as_int());
    case Value::Kind::kFloat: return python_float_repr(v.as_double());
    case Value::Kind::kString: return v.as_string();
    case Value::Kind::kFunction: return "<function " + v.as_function().name + ">";
    default: return repr(v);
  }
}

std::string repr(const Value& v) {
  std::string out;
  append_repr(out, v, 0);
  return out;
}

std::string to_json(const Value& v, const JsonOptions& options) {
  std::string out;
  append_json(out, v, options, 0);
  return out;
}

}  // namespace mixserve::jinja
