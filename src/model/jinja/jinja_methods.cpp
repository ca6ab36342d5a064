// Methods of str, dict and list values (the read-only ones; the sandbox of transformers forbids
// mutation) and the global functions: range, namespace, dict, raise_exception, strftime_now.
#include <ctime>
#include <string_view>

#include "common/error.h"
#include "model/jinja/jinja_builtins.h"
#include "model/jinja/jinja_interpreter.h"
#include "model/jinja/jinja_strings.h"

namespace mixserve::jinja {
namespace {

using MethodFn = Value (*)(Interpreter& in, const Value& self, const CallArgs& args);

struct MethodEntry {
  std::string_view name;
  MethodFn fn;
};

const std::string* opt_str(const Value* v, std::string_view what) {
  if (!v || v->is_none()) return nullptr;
  if (!v->is_string()) fail(ErrorCode::kInvalidArgument, what, " must be a string or None, not ", type_name(*v));
  return &v->as_string();
}

std::string need_str(const Value* v, std::string_view what) {
  if (!v || !v->is_string()) {
    fail(ErrorCode::kInvalidArgument, what, " must be a string", v ? ", not " + type_name(*v) : std::string());
  }
  return v->as_string();
}

Value strings(std::vector<std::string> parts) {
  std::vector<Value> items;
  items.reserve(parts.size());
  for (auto& p : parts) items.emplace_back(std::move(p));
  return Value::list(std::move(items));
}

Value s_strip(Interpreter&, const Value& s, const CallArgs& a, bool left, bool right, std::string_view name) {
  const auto p = bind_args(a, {"chars"}, name);
  return python_strip(s.as_string(), opt_str(p[0], "strip chars"), left, right);
}
Value m_strip(Interpreter& in, const Value& s, const CallArgs& a) {
  return s_strip(in, s, a, true, true, "strip");
}
Value m_lstrip(Interpreter& in, const Value& s, const CallArgs& a) {
  return s_strip(in, s, a, true, false, "lstrip");
}
Value m_rstrip(Interpreter& in, const Value& s, const CallArgs& a) {
  return s_strip(in, s, a, false, true, "rstrip");
}

Value m_split(Interpreter& in, const Value& s, const CallArgs& a) {
  const auto p = bind_args(a, {"sep", "maxsplit"}, "split");
  int64_t maxsplit = -1;
  if (p[1]) {
    if (!p[1]->is_integral()) fail(ErrorCode::kInvalidArgument, "split maxsplit must be an integer");
    maxsplit = p[1]->as_int();
  }
  std::vector<std::string> parts = python_split(s.as_string(), opt_str(p[0], "split separator"), maxsplit);
  in.check_size(parts.size());
  return strings(std::move(parts));
}

Value m_splitlines(Interpreter& in, const Value& s, const CallArgs& a) {
  bind_args(a, {}, "splitlines");
  std::vector<std::string> lines = python_splitlines(s.as_string());
  in.check_size(lines.size());
  return strings(std::move(lines));
}

// startswith/endswith: a string or a tuple/list of strings.
Value affix(const Value& s, const CallArgs& a, bool prefix) {
  const auto p = bind_args(a, {"affix"}, prefix ? "startswith" : "endswith");
  if (!p[0]) fail(ErrorCode::kInvalidArgument, prefix ? "startswith" : "endswith", "() needs an argument");
  const std::string_view text = s.as_string();
  std::vector<Value> options = p[0]->kind() == Value::Kind::kList ? p[0]->as_list().items : std::vector<Value>{*p[0]};
  for (const Value& o : options) {
    const std::string x = need_str(&o, prefix ? "startswith argument" : "endswith argument");
    if (prefix ? text.starts_with(x) : text.ends_with(x)) return true;
  }
  return false;
}
Value m_startswith(Interpreter&, const Value& s, const CallArgs& a) {
  return affix(s, a, true);
}
Value m_endswith(Interpreter&, const Value& s, const CallArgs& a) {
  return affix(s, a, false);
}

Value m_upper(Interpreter&, const Value& s, const CallArgs& a) {
  return bind_args(a, {}, "upper"), ascii_upper(s.as_string());
}
Value m_lower(Interpreter&, const Value& s, const CallArgs& a) {
  return bind_args(a, {}, "lower"), ascii_lower(s.as_string());
}
Value m_title(Interpreter&, const Value& s, const CallArgs& a) {
  return bind_args(a, {}, "title"), python_title(s.as_string());
}
Value m_capitalize(Interpreter&, const Value& s, const CallArgs& a) {
  return bind_args(a, {}, "capitalize"), python_capitalize(s.as_string());
}

Value m_replace(Interpreter& in, const Value& s, const CallArgs& a) {
  const auto p = bind_args(a, {"old", "new", "count"}, "replace");
  const std::string from = need_str(p[0], "replace old");
  const std::string to = need_str(p[1], "replace new");
  const int64_t count = p[2] && p[2]->is_integral() ? p[2]->as_int() : -1;
  const size_t n = s.as_string().size();
  if (to.size() > from.size()) in.check_size(n + (from.empty() ? n + 1 : n / from.size()) * (to.size() - from.size()));
  return python_replace(s.as_string(), from, to, count);
}

Value find_impl(const Value& s, const CallArgs& a, bool reverse) {
  const auto p = bind_args(a, {"sub"}, reverse ? "rfind" : "find");
  const std::string sub = need_str(p[0], "find argument");
  const std::string& text = s.as_string();
  const size_t hit = reverse ? text.rfind(sub) : text.find(sub);
  if (hit == std::string::npos) return -1;
  return code_point_length(std::string_view(text).substr(0, hit));
}
Value m_find(Interpreter&, const Value& s, const CallArgs& a) {
  return find_impl(s, a, false);
}
Value m_rfind(Interpreter&, const Value& s, const CallArgs& a) {
  return find_impl(s, a, true);
}

Value m_count(Interpreter&, const Value& s, const CallArgs& a) {
  const auto p = bind_args(a, {"sub"}, "count");
  const std::string sub = need_str(p[0], "count argument");
  if (sub.empty()) return code_point_length(s.as_string()) + 1;
  int64_t n = 0;
  for (size_t i = s.as_string().find(sub); i != std::string::npos; i = s.as_string().find(sub, i + sub.size())) ++n;
  return n;
}

Value m_join(Interpreter& in, const Value& s, const CallArgs& a) {
  const auto p = bind_args(a, {"iterable"}, "join");
  if (!p[0]) fail(ErrorCode::kInvalidArgument, "join() needs an iterable");
  std::string out;
  size_t i = 0;
  for (const Value& item : iterate(*p[0])) {
    if (!item.is_string()) {
      fail(ErrorCode::kInvalidArgument, "sequence item ", i, ": expected str instance, ", type_name(item), " found");
    }
    if (i++) out += s.as_string();
    out += item.as_string();
    in.check_size(out.size());
  }
  return out;
}

template <bool (*Pred)(char32_t)>
Value char_class(Interpreter&, const Value& s, const CallArgs& a) {
  bind_args(a, {}, "is...");
  const std::vector<char32_t> cps = decode_utf8(s.as_string());
  if (cps.empty()) return false;
  for (char32_t c : cps) {
    if (!Pred(c)) return false;
  }
  return true;
}
bool is_digit(char32_t c) {
  return c >= '0' && c <= '9';
}
bool is_alpha(char32_t c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_alnum(char32_t c) {
  return is_digit(c) || is_alpha(c);
}

Value m_format(Interpreter&, const Value&, const CallArgs&) {
  fail(ErrorCode::kUnimplemented, "str.format() is not supported");
}

constexpr MethodEntry kStringMethods[] = {
    {"capitalize", m_capitalize},
    {"count", m_count},
    {"endswith", m_endswith},
    {"find", m_find},
    {"format", m_format},
    {"isalnum", char_class<is_alnum>},
    {"isalpha", char_class<is_alpha>},
    {"isdigit", char_class<is_digit>},
    {"isspace", char_class<is_python_space>},
    {"join", m_join},
    {"lower", m_lower},
    {"lstrip", m_lstrip},
    {"replace", m_replace},
    {"rfind", m_rfind},
    {"rstrip", m_rstrip},
    {"split", m_split},
    {"splitlines", m_splitlines},
    {"startswith", m_startswith},
    {"strip", m_strip},
    {"title", m_title},
    {"upper", m_upper},
};

Value m_items(Interpreter&, const Value& d, const CallArgs& a) {
  bind_args(a, {}, "items");
  std::vector<Value> pairs;
  for (const auto& [key, value] : d.as_dict().items()) pairs.push_back(Value::list({Value(key), value}, true));
  return Value::list(std::move(pairs));
}
Value m_keys(Interpreter&, const Value& d, const CallArgs& a) {
  bind_args(a, {}, "keys");
  return Value::list(iterate(d));
}
Value m_values(Interpreter&, const Value& d, const CallArgs& a) {
  bind_args(a, {}, "values");
  std::vector<Value> values;
  for (const auto& entry : d.as_dict().items()) values.push_back(entry.second);
  return Value::list(std::move(values));
}
Value m_get(Interpreter&, const Value& d, const CallArgs& a) {
  const auto p = bind_args(a, {"key", "default"}, "get");
  if (!p[0]) fail(ErrorCode::kInvalidArgument, "get() needs a key");
  const Value* v = p[0]->is_string() ? d.as_dict().find(p[0]->as_string()) : nullptr;
  return v ? *v : p[1] ? *p[1] : Value::none();
}
Value m_copy(Interpreter&, const Value& d, const CallArgs& a) {
  return bind_args(a, {}, "copy"), d;
}
Value m_immutable(Interpreter&, const Value& self, const CallArgs&) {
  fail(ErrorCode::kInvalidArgument, "template ", type_name(self),
       " values are immutable (the sandbox of transformers forbids changing them)");
}

constexpr MethodEntry kDictMethods[] = {
    {"clear", m_immutable},  {"copy", m_copy},     {"get", m_get},           {"items", m_items},
    {"keys", m_keys},        {"pop", m_immutable}, {"popitem", m_immutable}, {"setdefault", m_immutable},
    {"update", m_immutable}, {"values", m_values},
};

Value m_index(Interpreter&, const Value& l, const CallArgs& a) {
  const auto p = bind_args(a, {"value"}, "index");
  if (!p[0]) fail(ErrorCode::kInvalidArgument, "index() needs a value");
  const auto& items = l.as_list().items;
  for (size_t i = 0; i < items.size(); ++i) {
    if (equals(items[i], *p[0])) return static_cast<int64_t>(i);
  }
  fail(ErrorCode::kInvalidArgument, repr(*p[0]), " is not in list");
}
Value m_list_count(Interpreter&, const Value& l, const CallArgs& a) {
  const auto p = bind_args(a, {"value"}, "count");
  if (!p[0]) fail(ErrorCode::kInvalidArgument, "count() needs a value");
  int64_t n = 0;
  for (const Value& v : l.as_list().items) n += equals(v, *p[0]) ? 1 : 0;
  return n;
}

constexpr MethodEntry kListMethods[] = {
    {"append", m_immutable},  {"clear", m_immutable},  {"count", m_list_count}, {"extend", m_immutable},
    {"index", m_index},       {"insert", m_immutable}, {"pop", m_immutable},    {"remove", m_immutable},
    {"reverse", m_immutable}, {"sort", m_immutable},
};

template <size_t N>
Value bind_method(const Value& self, const MethodEntry (&table)[N], std::string_view name) {
  for (const MethodEntry& m : table) {
    if (m.name != name) continue;
    return Value::function(type_name(self) + "." + std::string(name),
                           [self, fn = m.fn](Interpreter& in, const CallArgs& args) { return fn(in, self, args); });
  }
  return Value();
}

// ---- globals ----

Value g_range(Interpreter& in, const CallArgs& a) {
  if (!a.keyword.empty() || a.positional.empty() || a.positional.size() > 3) {
    fail(ErrorCode::kInvalidArgument, "range() takes 1 to 3 positional integer arguments");
  }
  int64_t v[3] = {0, 0, 1};
  for (size_t i = 0; i < a.positional.size(); ++i) {
    if (!a.positional[i].is_integral()) fail(ErrorCode::kInvalidArgument, "range() arguments must be integers");
    v[a.positional.size() == 1 ? 1 : i] = a.positional[i].as_int();
  }
  const int64_t start = v[0], stop = v[1], step = v[2];
  if (step == 0) fail(ErrorCode::kInvalidArgument, "range() step must not be zero");
  // jinja2's sandbox refuses ranges above MAX_RANGE = 100000 items.
  constexpr int64_t kMaxRange = 100000;
  const long double count = step > 0 ? (static_cast<long double>(stop) - start) / step
                                     : (static_cast<long double>(start) - stop) / -static_cast<long double>(step);
  if (count > kMaxRange) fail(ErrorCode::kResourceExhausted, "range() too big (more than ", kMaxRange, " items)");
  std::vector<Value> items;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) items.emplace_back(i);
  in.check_size(items.size());
  return Value::list(std::move(items));
}

Dict dict_from_args(const CallArgs& a, std::string_view fn) {
  Dict d;
  if (a.positional.size() > 1) fail(ErrorCode::kInvalidArgument, fn, "() takes at most one positional argument");
  if (!a.positional.empty()) {
    const Value& src = a.positional[0];
    if (src.kind() != Value::Kind::kDict && src.kind() != Value::Kind::kNamespace) {
      fail(ErrorCode::kInvalidArgument, fn, "() positional argument must be a mapping, not ", type_name(src));
    }
    for (const auto& [key, value] : src.as_dict().items()) d.set(key, value);
  }
  for (const auto& [key, value] : a.keyword) d.set(key, value);
  return d;
}

Value g_namespace(Interpreter& in, const CallArgs& a) {
  return in.new_namespace(dict_from_args(a, "namespace"));
}
Value g_dict(Interpreter&, const CallArgs& a) {
  return Value::dict(dict_from_args(a, "dict"));
}

Value g_raise_exception(Interpreter&, const CallArgs& a) {
  if (a.positional.size() != 1 || !a.keyword.empty()) {
    fail(ErrorCode::kInvalidArgument, "raise_exception() takes one message argument");
  }
  fail(ErrorCode::kInvalidArgument, to_str(a.positional[0]));
}

// transformers: strftime_now(format) = datetime.now().strftime(format).
Value g_strftime_now(Interpreter& in, const CallArgs& a) {
  if (a.positional.size() != 1 || !a.positional[0].is_string() || !a.keyword.empty()) {
    fail(ErrorCode::kInvalidArgument, "strftime_now() takes one format string");
  }
  const std::string& format = a.positional[0].as_string();
  if (format.size() > 256) fail(ErrorCode::kInvalidArgument, "strftime_now() format longer than 256 bytes");
  for (size_t i = 0; i < format.size(); ++i) {
    if (format[i] != '%') continue;
    size_t j = i + 1;
    while (j < format.size() && std::string_view("-_0^#").find(format[j]) != std::string_view::npos) ++j;
    if (j >= format.size() ||
        std::string_view("aAbBcdDeFgGhHIjmMnpRStTuUVwWxXyYzZ%").find(format[j]) == std::string_view::npos) {
      fail(ErrorCode::kInvalidArgument, "strftime_now(): unsupported directive in '", format, "'");
    }
    i = j;
  }
  std::tm tm{};
  if (in.options().now) {
    tm = in.options().now();
  } else {
    const std::time_t t = std::time(nullptr);
    localtime_r(&t, &tm);
  }
  char buf[2048];
  const size_t n = std::strftime(buf, sizeof buf, format.c_str(), &tm);
  return std::string(buf, n);
}

const std::vector<std::pair<std::string_view, Value>>& globals() {
  static const std::vector<std::pair<std::string_view, Value>> table = {
      {"range", Value::function("range", g_range)},
      {"namespace", Value::function("namespace", g_namespace)},
      {"dict", Value::function("dict", g_dict)},
      {"raise_exception", Value::function("raise_exception", g_raise_exception)},
      {"strftime_now", Value::function("strftime_now", g_strftime_now)},
  };
  return table;
}

}  // namespace

Value find_method(const Value& object, std::string_view name) {
  switch (object.kind()) {
    case Value::Kind::kString: return bind_method(object, kStringMethods, name);
    case Value::Kind::kDict: return bind_method(object, kDictMethods, name);
    case Value::Kind::kList: return bind_method(object, kListMethods, name);
    default: return Value();
  }
}

const Value* find_global(std::string_view name) {
  for (const auto& [key, value] : globals()) {
    if (key == name) return &value;
  }
  return nullptr;
}

}  // namespace mixserve::jinja
