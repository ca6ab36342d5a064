// Built-in tests (`x is name`), with the semantics of jinja2/tests.py (3.1).
#include <string_view>

#include "common/error.h"
#include "model/jinja/jinja_builtins.h"
#include "model/jinja/jinja_interpreter.h"
#include "model/jinja/jinja_strings.h"

namespace mixserve::jinja {
namespace {

const Value& required_arg(const CallArgs& a, std::string_view test) {
  if (a.positional.size() != 1 || !a.keyword.empty()) {
    fail(ErrorCode::kInvalidArgument, "test '", test, "' takes exactly one argument");
  }
  return a.positional[0];
}

void no_args(const CallArgs& a, std::string_view test) {
  if (!a.positional.empty() || !a.keyword.empty()) {
    fail(ErrorCode::kInvalidArgument, "test '", test, "' takes no arguments");
  }
}

using Kind = Value::Kind;

bool t_defined(Interpreter&, const Value& v, const CallArgs& a) {
  return no_args(a, "defined"), !v.is_undefined();
}
bool t_undefined(Interpreter&, const Value& v, const CallArgs& a) {
  return no_args(a, "undefined"), v.is_undefined();
}
bool t_none(Interpreter&, const Value& v, const CallArgs& a) {
  return no_args(a, "none"), v.is_none();
}
bool t_boolean(Interpreter&, const Value& v, const CallArgs& a) {
  return no_args(a, "boolean"), v.kind() == Kind::kBool;
}
bool t_true(Interpreter&, const Value& v, const CallArgs& a) {
  return no_args(a, "true"), v.kind() == Kind::kBool && v.as_bool();
}
bool t_false(Interpreter&, const Value& v, const CallArgs& a) {
  return no_args(a, "false"), v.kind() == Kind::kBool && !v.as_bool();
}
bool t_integer(Interpreter&, const Value& v, const CallArgs& a) {
  return no_args(a, "integer"), v.kind() == Kind::kInt;
}
bool t_float(Interpreter&, const Value& v, const CallArgs& a) {
  return no_args(a, "float"), v.kind() == Kind::kFloat;
}
bool t_number(Interpreter&, const Value& v, const CallArgs& a) {
  return no_args(a, "number"), v.is_number();
}
bool t_string(Interpreter&, const Value& v, const CallArgs& a) {
  return no_args(a, "string"), v.is_string();
}
bool t_mapping(Interpreter&, const Value& v, const CallArgs& a) {
  return no_args(a, "mapping"), v.kind() == Kind::kDict;
}
bool t_callable(Interpreter&, const Value& v, const CallArgs& a) {
  return no_args(a, "callable"), v.kind() == Kind::kFunction;
}
// Python: iter() works on str, list, tuple, dict and jinja2's Undefined; __len__ + __getitem__ alike.
bool t_iterable(Interpreter&, const Value& v, const CallArgs& a) {
  no_args(a, "iterable");
  return v.is_undefined() || v.is_string() || v.kind() == Kind::kList || v.kind() == Kind::kDict;
}
bool t_sequence(Interpreter& in, const Value& v, const CallArgs& a) {
  return t_iterable(in, v, a);
}

bool t_sameas(Interpreter&, const Value& v, const CallArgs& a) {
  const Value& other = required_arg(a, "sameas");
  if (v.kind() != other.kind()) return false;
  if (v.identity()) return v.identity() == other.identity();
  return equals(v, other);
}

bool parity(Interpreter& in, const Value& v, const CallArgs& a, std::string_view name, int64_t want) {
  no_args(a, name);
  return equals(binary_op(in, "%", v, Value(2)), Value(want));
}
bool t_even(Interpreter& in, const Value& v, const CallArgs& a) {
  return parity(in, v, a, "even", 0);
}
bool t_odd(Interpreter& in, const Value& v, const CallArgs& a) {
  return parity(in, v, a, "odd", 1);
}
bool t_divisibleby(Interpreter& in, const Value& v, const CallArgs& a) {
  return equals(binary_op(in, "%", v, required_arg(a, "divisibleby")), Value(0));
}

bool t_eq(Interpreter&, const Value& v, const CallArgs& a) {
  return equals(v, required_arg(a, "eq"));
}
bool t_ne(Interpreter&, const Value& v, const CallArgs& a) {
  return !equals(v, required_arg(a, "ne"));
}
int ordered(const Value& v, const CallArgs& a, std::string_view name) {
  const Value& other = required_arg(a, name);
  require_defined(v);
  require_defined(other);
  return compare(v, other);
}
bool t_lt(Interpreter&, const Value& v, const CallArgs& a) {
  return ordered(v, a, "lt") < 0;
}
bool t_le(Interpreter&, const Value& v, const CallArgs& a) {
  return ordered(v, a, "le") <= 0;
}
bool t_gt(Interpreter&, const Value& v, const CallArgs& a) {
  return ordered(v, a, "gt") > 0;
}
bool t_ge(Interpreter&, const Value& v, const CallArgs& a) {
  return ordered(v, a, "ge") >= 0;
}
bool t_in(Interpreter&, const Value& v, const CallArgs& a) {
  return contains(required_arg(a, "in"), v);
}

// Python str.islower()/isupper(): at least one cased character and none of the other case.
bool case_test(const Value& v, bool lower) {
  if (!v.is_string()) return false;
  bool cased = false;
  for (char c : v.as_string()) {
    if (c >= 'a' && c <= 'z') {
      if (!lower) return false;
      cased = true;
    } else if (c >= 'A' && c <= 'Z') {
      if (lower) return false;
      cased = true;
    }
  }
  return cased;
}
bool t_lower(Interpreter&, const Value& v, const CallArgs& a) {
  return no_args(a, "lower"), case_test(v, true);
}
bool t_upper(Interpreter&, const Value& v, const CallArgs& a) {
  return no_args(a, "upper"), case_test(v, false);
}
bool t_escaped(Interpreter&, const Value&, const CallArgs& a) {
  return no_args(a, "escaped"), false;
}
bool t_filter(Interpreter&, const Value& v, const CallArgs& a) {
  return no_args(a, "filter"), v.is_string() && find_filter(v.as_string()) != nullptr;
}
bool t_test(Interpreter&, const Value& v, const CallArgs& a) {
  return no_args(a, "test"), v.is_string() && find_test(v.as_string()) != nullptr;
}

struct TestEntry {
  std::string_view name;
  TestFn fn;
};

constexpr TestEntry kTests[] = {
    {"!=", t_ne},
    {"<", t_lt},
    {"<=", t_le},
    {"==", t_eq},
    {">", t_gt},
    {">=", t_ge},
    {"boolean", t_boolean},
    {"callable", t_callable},
    {"defined", t_defined},
    {"divisibleby", t_divisibleby},
    {"eq", t_eq},
    {"equalto", t_eq},
    {"escaped", t_escaped},
    {"even", t_even},
    {"false", t_false},
    {"filter", t_filter},
    {"float", t_float},
    {"ge", t_ge},
    {"greaterthan", t_gt},
    {"gt", t_gt},
    {"in", t_in},
    {"integer", t_integer},
    {"iterable", t_iterable},
    {"le", t_le},
    {"lessthan", t_lt},
    {"lower", t_lower},
    {"lt", t_lt},
    {"mapping", t_mapping},
    {"ne", t_ne},
    {"none", t_none},
    {"number", t_number},
    {"odd", t_odd},
    {"sameas", t_sameas},
    {"sequence", t_sequence},
    {"string", t_string},
    {"test", t_test},
    {"true", t_true},
    {"undefined", t_undefined},
    {"upper", t_upper},
};

}  // namespace

TestFn find_test(std::string_view name) {
  for (const auto& t : kTests) {
    if (t.name == name) return t.fn;
  }
  return nullptr;
}

}  // namespace mixserve::jinja
