// Number and ordering filters (int, float, round, abs, sort, unique, min, max, sum), with the semantics
// of jinja2/filters.py (3.1) and the Python built-ins they call.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <optional>
#include <string_view>

#include "common/error.h"
#include "model/jinja/jinja_builtins.h"
#include "model/jinja/jinja_interpreter.h"
#include "model/jinja/jinja_strings.h"

namespace mixserve::jinja {
namespace {

std::string arg_str(const Value* v, std::string_view fallback) {
  return v ? to_str(*v) : std::string(fallback);
}

std::optional<double> parse_python_float(std::string_view text) {
  std::string s = python_strip(text, nullptr, true, true);
  std::string clean;
  for (size_t i = 0; i < s.size(); ++i) {
    const bool between_digits = i > 0 && i + 1 < s.size() && std::isdigit(static_cast<unsigned char>(s[i - 1])) &&
                                std::isdigit(static_cast<unsigned char>(s[i + 1]));
    if (s[i] == '_' && between_digits) continue;
    clean.push_back(s[i]);
  }
  size_t start = (!clean.empty() && (clean[0] == '+' || clean[0] == '-')) ? 1 : 0;
  if (start < clean.size() && (clean[start] == '+' || clean[start] == '-')) return std::nullopt;
  double value = 0;
  const auto r = std::from_chars(clean.data() + start, clean.data() + clean.size(), value);
  if (r.ec != std::errc() || r.ptr != clean.data() + clean.size() || clean.size() == start) return std::nullopt;
  return clean[0] == '-' ? -value : value;
}

std::optional<int64_t> parse_python_int(std::string_view text, int base) {
  const std::string s = python_strip(text, nullptr, true, true);
  std::string digits;
  size_t i = 0;
  bool negative = false;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) negative = s[i++] == '-';
  // Python accepts the prefix of the base: int('0x1A', 16).
  const char prefix = base == 16 ? 'x' : base == 8 ? 'o' : base == 2 ? 'b' : 0;
  if (prefix && i + 1 < s.size() && s[i] == '0' && (s[i + 1] | 0x20) == prefix) i += 2;
  for (; i < s.size(); ++i) {
    if (s[i] == '_' && !digits.empty() && i + 1 < s.size() && s[i + 1] != '_') continue;
    digits.push_back(s[i]);
  }
  if (digits.empty()) return std::nullopt;
  if (negative) digits.insert(digits.begin(), '-');
  int64_t value = 0;
  const auto r = std::from_chars(digits.data(), digits.data() + digits.size(), value, base);
  if (r.ec != std::errc() || r.ptr != digits.data() + digits.size()) return std::nullopt;
  return value;
}

int64_t float_to_int(double d) {
  if (std::isinf(d) || d >= 9.3e18 || d <= -9.3e18) {
    fail(ErrorCode::kInvalidArgument, "cannot convert ", python_float_repr(d), " to a 64-bit integer");
  }
  return static_cast<int64_t>(d);
}

Value f_int(Interpreter&, const Value& v, const CallArgs& a) {
  const auto p = bind_args(a, {"default", "base"}, "int");
  const Value fallback = p[0] ? *p[0] : Value(0);
  const int64_t base = arg_int(p[1], 10, "int base");
  if (base < 2 || base > 36) fail(ErrorCode::kUnimplemented, "int filter: base must be between 2 and 36");
  require_defined(v);
  if (v.is_integral()) return v.as_int();
  if (v.kind() == Value::Kind::kFloat) return std::isnan(v.as_double()) ? fallback : Value(float_to_int(v.as_double()));
  if (!v.is_string()) return fallback;
  if (auto i = parse_python_int(v.as_string(), static_cast<int>(base))) return *i;
  const auto d = parse_python_float(v.as_string());
  if (!d || std::isnan(*d)) return fallback;
  return float_to_int(*d);
}

Value f_float(Interpreter&, const Value& v, const CallArgs& a) {
  const auto p = bind_args(a, {"default"}, "float");
  const Value fallback = p[0] ? *p[0] : Value(0.0);
  require_defined(v);
  if (v.is_number()) return v.as_double();
  if (!v.is_string()) return fallback;
  const auto d = parse_python_float(v.as_string());
  return d ? Value(*d) : fallback;
}

Value f_round(Interpreter&, const Value& v, const CallArgs& a) {
  const auto p = bind_args(a, {"precision", "method"}, "round");
  const int64_t precision = arg_int(p[0], 0, "round precision");
  const std::string method = arg_str(p[1], "common");
  if (method != "common" && method != "ceil" && method != "floor") {
    fail(ErrorCode::kInvalidArgument, "round method must be common, ceil or floor");
  }
  if (!v.is_number()) {
    require_defined(v);
    fail(ErrorCode::kInvalidArgument, "round: expected a number, got ", type_name(v));
  }
  if (precision < -300 || precision > 300) fail(ErrorCode::kInvalidArgument, "round precision out of range");
  const double scale = std::pow(10.0, static_cast<double>(precision));
  if (method != "common") {
    const double x = v.as_double() * scale;
    return (method == "ceil" ? std::ceil(x) : std::floor(x)) / scale;
  }
  if (v.is_integral() && precision >= 0) return v.as_int();  // Python round(int, n) stays an int
  if (precision >= 0) {
    // Python rounds the exact binary value half-to-even, as printf does: round(2.675, 2) == 2.67.
    char buf[512];
    std::snprintf(buf, sizeof buf, "%.*f", static_cast<int>(std::min<int64_t>(precision, 100)), v.as_double());
    double out = 0;
    std::from_chars(buf, buf + std::char_traits<char>::length(buf), out);
    if (buf[0] == '-') out = -std::fabs(out);
    return out;
  }
  const double rounded = std::nearbyint(v.as_double() * scale) / scale;
  return v.is_integral() ? Value(float_to_int(rounded)) : Value(rounded);
}

Value f_abs(Interpreter&, const Value& v, const CallArgs& a) {
  bind_args(a, {}, "abs");
  if (v.is_integral()) return v.as_int() < 0 ? unary_op("-", v) : Value(v.as_int());
  if (v.is_number()) return std::fabs(v.as_double());
  require_defined(v);
  fail(ErrorCode::kInvalidArgument, "bad operand type for abs(): '", type_name(v), "'");
}

// sort / unique / min / max share the key handling: (case_sensitive, attribute).
Value f_sort(Interpreter&, const Value& v, const CallArgs& a) {
  const auto p = bind_args(a, {"reverse", "case_sensitive", "attribute"}, "sort");
  const bool cs = arg_bool(p[1], false);
  std::vector<Value> items = iterate(v);
  auto key = [&](const Value& x) { return sort_key(p[2] && !p[2]->is_none() ? attr_path(x, *p[2]) : x, cs); };
  std::stable_sort(items.begin(), items.end(),
                   [&](const Value& x, const Value& y) { return compare(key(x), key(y)) < 0; });
  if (arg_bool(p[0], false)) std::reverse(items.begin(), items.end());
  return Value::list(std::move(items));
}

Value f_unique(Interpreter& in, const Value& v, const CallArgs& a) {
  const auto p = bind_args(a, {"case_sensitive", "attribute"}, "unique");
  const bool cs = arg_bool(p[0], false);
  std::vector<Value> out;
  std::vector<Value> seen;
  for (const Value& item : iterate(v)) {
    const Value k = sort_key(p[1] && !p[1]->is_none() ? attr_path(item, *p[1]) : item, cs);
    in.charge(seen.size() / 16 + 1);
    if (std::none_of(seen.begin(), seen.end(), [&](const Value& s) { return equals(s, k); })) {
      seen.push_back(k);
      out.push_back(item);
    }
  }
  return Value::list(std::move(out));
}

Value min_max(const Value& v, const CallArgs& a, bool want_max) {
  const auto p = bind_args(a, {"case_sensitive", "attribute"}, want_max ? "max" : "min");
  const bool cs = arg_bool(p[0], false);
  const std::vector<Value> items = iterate(v);
  if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
  auto key = [&](const Value& x) { return sort_key(p[1] && !p[1]->is_none() ? attr_path(x, *p[1]) : x, cs); };
  size_t best = 0;
  for (size_t i = 1; i < items.size(); ++i) {
    const int c = compare(key(items[i]), key(items[best]));
    if (want_max ? c > 0 : c < 0) best = i;
  }
  return items[best];
}
Value f_min(Interpreter&, const Value& v, const CallArgs& a) {
  return min_max(v, a, false);
}
Value f_max(Interpreter&, const Value& v, const CallArgs& a) {
  return min_max(v, a, true);
}

Value f_sum(Interpreter& in, const Value& v, const CallArgs& a) {
  const auto p = bind_args(a, {"attribute", "start"}, "sum");
  Value total = p[1] ? *p[1] : Value(0);
  for (const Value& item : iterate(v)) {
    total = binary_op(in, "+", total, p[0] && !p[0]->is_none() ? attr_path(item, *p[0]) : item);
  }
  return total;
}

struct FilterEntry {
  std::string_view name;
  FilterFn fn;
};

constexpr FilterEntry kNumberFilters[] = {
    {"abs", f_abs},     {"float", f_float}, {"int", f_int}, {"max", f_max},       {"min", f_min},
    {"round", f_round}, {"sort", f_sort},   {"sum", f_sum}, {"unique", f_unique},
};

}  // namespace

FilterFn find_number_filter(std::string_view name) {
  for (const auto& f : kNumberFilters) {
    if (f.name == name) return f.fn;
  }
  return nullptr;
}

}  // namespace mixserve::jinja
