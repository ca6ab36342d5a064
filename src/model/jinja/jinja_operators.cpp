// Python semantics of the operators, lookups and iteration the templates use.
#include <cmath>
#include <limits>

#include "common/error.h"
#include "model/jinja/jinja_builtins.h"
#include "model/jinja/jinja_interpreter.h"
#include "model/jinja/jinja_strings.h"

namespace mixserve::jinja {
namespace {

[[noreturn]] void unsupported_operands(std::string_view op, const Value& a, const Value& b) {
  require_defined(a);
  require_defined(b);
  fail(ErrorCode::kInvalidArgument, "unsupported operand type(s) for ", op, ": '", type_name(a), "' and '",
       type_name(b), "'");
}

[[noreturn]] void overflow(std::string_view op) {
  fail(ErrorCode::kInvalidArgument, "integer overflow in '", op, "' (values beyond 64 bits are not supported)");
}

// Python's float floor division and modulo (Objects/floatobject.c float_divmod).
std::pair<double, double> float_divmod(double vx, double wx) {
  double mod = std::fmod(vx, wx);
  double div = (vx - mod) / wx;
  if (mod != 0.0) {
    if ((wx < 0) != (mod < 0)) {
      mod += wx;
      div -= 1.0;
    }
  } else {
    mod = std::copysign(0.0, wx);
  }
  double floordiv;
  if (div != 0.0) {
    floordiv = std::floor(div);
    if (div - floordiv > 0.5) floordiv += 1.0;
  } else {
    floordiv = std::copysign(0.0, vx / wx);
  }
  return {floordiv, mod};
}

Value repeat(Interpreter& in, const Value& seq, int64_t times) {
  if (times <= 0) return seq.is_string() ? Value("") : Value::list({}, seq.as_list().tuple);
  const size_t unit = seq.is_string() ? seq.as_string().size() : seq.as_list().items.size();
  if (unit != 0 && static_cast<uint64_t>(times) > in.options().max_output_bytes / unit) {
    in.check_size(in.options().max_output_bytes + 1);
  }
  in.check_size(unit * static_cast<size_t>(times));
  if (seq.is_string()) {
    std::string out;
    out.reserve(unit * static_cast<size_t>(times));
    for (int64_t i = 0; i < times; ++i) out += seq.as_string();
    return Value(std::move(out));
  }
  std::vector<Value> items;
  for (int64_t i = 0; i < times; ++i) items.insert(items.end(), seq.as_list().items.begin(), seq.as_list().items.end());
  return Value::list(std::move(items), seq.as_list().tuple);
}

Value arithmetic(std::string_view op, const Value& a, const Value& b) {
  if (a.is_integral() && b.is_integral()) {
    const int64_t x = a.as_int();
    const int64_t y = b.as_int();
    int64_t r = 0;
    if (op == "+") {
      if (__builtin_add_overflow(x, y, &r)) overflow(op);
      return r;
    }
    if (op == "-") {
      if (__builtin_sub_overflow(x, y, &r)) overflow(op);
      return r;
    }
    if (op == "*") {
      if (__builtin_mul_overflow(x, y, &r)) overflow(op);
      return r;
    }
    if (op == "/") {
      if (y == 0) fail(ErrorCode::kInvalidArgument, "division by zero");
      return static_cast<double>(x) / static_cast<double>(y);
    }
    if (op == "//" || op == "%") {
      if (y == 0) fail(ErrorCode::kInvalidArgument, "integer division or modulo by zero");
      if (x == std::numeric_limits<int64_t>::min() && y == -1) {
        if (op == "%") return int64_t{0};
        overflow(op);
      }
      int64_t q = x / y;
      int64_t m = x % y;
      if (m != 0 && ((m < 0) != (y < 0))) {
        m += y;
        q -= 1;
      }
      return op == "//" ? q : m;
    }
    // "**"
    if (y < 0) return std::pow(static_cast<double>(x), static_cast<double>(y));
    int64_t result = 1;
    int64_t base = x;
    for (int64_t e = y; e > 0; e >>= 1) {
      if ((e & 1) && __builtin_mul_overflow(result, base, &result)) overflow(op);
      if (e > 1 && __builtin_mul_overflow(base, base, &base)) overflow(op);
    }
    return result;
  }
  const double x = a.as_double();
  const double y = b.as_double();
  if (op == "+") return x + y;
  if (op == "-") return x - y;
  if (op == "*") return x * y;
  if (op == "**") {
    if (x == 0.0 && y < 0) fail(ErrorCode::kInvalidArgument, "0.0 cannot be raised to a negative power");
    if (x < 0 && y != std::floor(y)) {
      fail(ErrorCode::kInvalidArgument, "a negative number to a fractional power is complex (not supported)");
    }
    return std::pow(x, y);
  }
  if (y == 0.0) fail(ErrorCode::kInvalidArgument, "float division by zero");
  if (op == "/") return x / y;
  const auto [q, m] = float_divmod(x, y);
  return op == "//" ? q : m;
}

int64_t normalize_index(int64_t i, int64_t n) {
  return i < 0 ? i + n : i;
}

Value missing(const Value& obj, std::string_view what) {
  return Value::undefined("'" + type_name(obj) + " object' has no " + std::string(what));
}

}  // namespace

void require_defined(const Value& v) {
  if (v.is_undefined()) fail(ErrorCode::kInvalidArgument, v.undefined_hint());
}

std::vector<const Value*> bind_args(const CallArgs& args, std::initializer_list<std::string_view> params,
                                    std::string_view fn) {
  std::vector<const Value*> bound(params.size(), nullptr);
  if (args.positional.size() > params.size()) {
    fail(ErrorCode::kInvalidArgument, fn, "() takes at most ", params.size(), " arguments (", args.positional.size(),
         " given)");
  }
  for (size_t i = 0; i < args.positional.size(); ++i) bound[i] = &args.positional[i];
  for (const auto& [key, value] : args.keyword) {
    size_t i = 0;
    for (std::string_view p : params) {
      if (p == key) break;
      ++i;
    }
    if (i == params.size()) fail(ErrorCode::kInvalidArgument, fn, "() got an unexpected keyword argument '", key, "'");
    if (bound[i]) fail(ErrorCode::kInvalidArgument, fn, "() got multiple values for argument '", key, "'");
    bound[i] = &value;
  }
  return bound;
}

Value binary_op(Interpreter& in, std::string_view op, const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) return arithmetic(op, a, b);
  if (op == "+") {
    if (a.is_string() && b.is_string()) {
      in.check_size(a.as_string().size() + b.as_string().size());
      return Value(a.as_string() + b.as_string());
    }
    if (a.kind() == Value::Kind::kList && b.kind() == Value::Kind::kList && a.as_list().tuple == b.as_list().tuple) {
      in.check_size(a.as_list().items.size() + b.as_list().items.size());
      std::vector<Value> items = a.as_list().items;
      items.insert(items.end(), b.as_list().items.begin(), b.as_list().items.end());
      return Value::list(std::move(items), a.as_list().tuple);
    }
  }
  if (op == "*") {
    const bool a_seq = a.is_string() || a.kind() == Value::Kind::kList;
    const bool b_seq = b.is_string() || b.kind() == Value::Kind::kList;
    if (a_seq && b.is_integral()) return repeat(in, a, b.as_int());
    if (b_seq && a.is_integral()) return repeat(in, b, a.as_int());
  }
  if (op == "%" && a.is_string()) {
    fail(ErrorCode::kUnimplemented, "printf-style string formatting ('...' % args) is not supported");
  }
  unsupported_operands(op, a, b);
}

Value unary_op(std::string_view op, const Value& v) {
  if (!v.is_number()) {
    require_defined(v);
    fail(ErrorCode::kInvalidArgument, "bad operand type for unary ", op, ": '", type_name(v), "'");
  }
  if (op == "+") return v.is_integral() ? Value(v.as_int()) : v;
  if (v.kind() == Value::Kind::kFloat) return -v.as_double();
  if (v.as_int() == std::numeric_limits<int64_t>::min()) overflow("-");
  return -v.as_int();
}

bool contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Value::Kind::kUndefined: return false;
    case Value::Kind::kString:
      if (!item.is_string()) {
        require_defined(item);
        fail(ErrorCode::kInvalidArgument, "'in <string>' requires string as left operand, not ", type_name(item));
      }
      return container.as_string().find(item.as_string()) != std::string::npos;
    case Value::Kind::kList:
      for (const Value& v : container.as_list().items) {
        if (equals(v, item)) return true;
      }
      return false;
    case Value::Kind::kDict: return item.is_string() && container.as_dict().find(item.as_string()) != nullptr;
    default: fail(ErrorCode::kInvalidArgument, "argument of type '", type_name(container), "' is not iterable");
  }
}

Value get_attr(const Value& obj, std::string_view name) {
  require_defined(obj);
  Value method = find_method(obj, name);
  if (!method.is_undefined()) return method;
  if (obj.kind() == Value::Kind::kDict || obj.kind() == Value::Kind::kNamespace) {
    if (const Value* v = obj.as_dict().find(name)) return *v;
  }
  return missing(obj, "attribute '" + std::string(name) + "'");
}

Value get_item(const Value& obj, const Value& key) {
  require_defined(obj);
  if (key.is_integral() && (obj.kind() == Value::Kind::kList || obj.is_string())) {
    if (obj.kind() == Value::Kind::kList) {
      const auto& items = obj.as_list().items;
      const int64_t i = normalize_index(key.as_int(), static_cast<int64_t>(items.size()));
      if (i >= 0 && i < static_cast<int64_t>(items.size())) return items[static_cast<size_t>(i)];
    } else {
      const std::vector<char32_t> cps = decode_utf8(obj.as_string());
      const int64_t i = normalize_index(key.as_int(), static_cast<int64_t>(cps.size()));
      if (i >= 0 && i < static_cast<int64_t>(cps.size())) return Value(encode_utf8(&cps[i], &cps[i] + 1));
    }
    return missing(obj, "element " + to_str(key));
  }
  if (key.is_string()) {
    if (obj.kind() == Value::Kind::kDict) {
      if (const Value* v = obj.as_dict().find(key.as_string())) return *v;
    }
    return get_attr(obj, key.as_string());
  }
  return missing(obj, "element " + repr(key));
}

Value slice(Interpreter& in, const Value& obj, const Value* start, const Value* stop, const Value* step) {
  require_defined(obj);
  auto as_index = [](const Value* v, int64_t fallback) -> int64_t {
    if (!v || v->is_none()) return fallback;
    if (!v->is_integral()) {
      require_defined(*v);
      fail(ErrorCode::kInvalidArgument, "slice indices must be integers or None, not ", type_name(*v));
    }
    return v->as_int();
  };
  const int64_t st = as_index(step, 1);
  if (st == 0) fail(ErrorCode::kInvalidArgument, "slice step cannot be zero");
  if (st == std::numeric_limits<int64_t>::min()) fail(ErrorCode::kInvalidArgument, "slice step out of range");
  const bool is_list = obj.kind() == Value::Kind::kList;
  if (!is_list && !obj.is_string())
    fail(ErrorCode::kInvalidArgument, "'", type_name(obj), "' object is not subscriptable");
  std::vector<char32_t> cps;
  if (!is_list) cps = decode_utf8(obj.as_string());
  const int64_t n = is_list ? static_cast<int64_t>(obj.as_list().items.size()) : static_cast<int64_t>(cps.size());
  // Python's PySlice_AdjustIndices.
  auto clamp = [&](int64_t i) {
    if (i < 0) {
      i += n;
      if (i < 0) i = st < 0 ? -1 : 0;
    } else if (i >= n) {
      i = st < 0 ? n - 1 : n;
    }
    return i;
  };
  const int64_t b = start && !start->is_none() ? clamp(as_index(start, 0)) : (st < 0 ? n - 1 : 0);
  const int64_t e = stop && !stop->is_none() ? clamp(as_index(stop, 0)) : (st < 0 ? -1 : n);
  const int64_t count = st > 0 ? (b < e ? (e - b - 1) / st + 1 : 0) : (b > e ? (b - e - 1) / (-st) + 1 : 0);
  in.check_size(static_cast<size_t>(count));
  if (is_list) {
    std::vector<Value> items;
    items.reserve(static_cast<size_t>(count));
    for (int64_t k = 0; k < count; ++k) items.push_back(obj.as_list().items[static_cast<size_t>(b + k * st)]);
    return Value::list(std::move(items), obj.as_list().tuple);
  }
  std::string out;
  for (int64_t k = 0; k < count; ++k) append_utf8(out, cps[static_cast<size_t>(b + k * st)]);
  return Value(std::move(out));
}

std::vector<Value> iterate(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined: return {};
    case Value::Kind::kList: return v.as_list().items;
    case Value::Kind::kDict: {
      std::vector<Value> keys;
      for (const auto& entry : v.as_dict().items()) keys.emplace_back(entry.first);
      return keys;
    }
    case Value::Kind::kString: {
      std::vector<Value> chars;
      for (char32_t c : decode_utf8(v.as_string())) chars.emplace_back(encode_utf8(&c, &c + 1));
      return chars;
    }
    default: fail(ErrorCode::kInvalidArgument, "'", type_name(v), "' object is not iterable");
  }
}

}  // namespace mixserve::jinja
