// Run-time pieces shared by the interpreter, filters and methods: Python operators, attribute and
// item lookup, iteration, argument binding, and the tables of filters, tests, methods and globals.
#pragma once

#include <initializer_list>
#include <string_view>
#include <vector>

#include "model/jinja/jinja_ast.h"
#include "model/jinja/jinja_value.h"

namespace mixserve::jinja {

/// The filter called `name`, or nullptr.
FilterFn find_filter(std::string_view name);
/// The number and ordering filters (int, float, round, abs, sort, unique, min, max, sum), or nullptr.
FilterFn find_number_filter(std::string_view name);
/// The test called `name`, or nullptr.
TestFn find_test(std::string_view name);
/// The bound method `name` of `object` (str and dict methods), or an undefined Value.
Value find_method(const Value& object, std::string_view name);
/// The built-in global `name` (range, namespace, dict, raise_exception, strftime_now), or nullptr.
const Value* find_global(std::string_view name);

/// Binds `args` to `params` like Python; entries are nullptr for parameters not given. Throws
/// kInvalidArgument naming `fn` for too many, unknown or repeated arguments.
std::vector<const Value*> bind_args(const CallArgs& args, std::initializer_list<std::string_view> params,
                                    std::string_view fn);
/// Truthiness of an optional argument.
inline bool arg_bool(const Value* v, bool fallback) {
  return v ? truthy(*v) : fallback;
}
/// An optional integer argument (None = fallback); throws kInvalidArgument naming `what` otherwise.
int64_t arg_int(const Value* v, int64_t fallback, std::string_view what);
/// jinja2 make_attrgetter: "a.b.0" looks up item a, then b, then index 0 (integers index directly).
Value attr_path(const Value& item, const Value& attribute);
/// Key for sort/unique/min/max/dictsort: strings lower-cased unless `case_sensitive`.
Value sort_key(const Value& v, bool case_sensitive);
/// Throws the UndefinedError of jinja2 when `v` is undefined (its hint as the message).
void require_defined(const Value& v);

/// Python binary operator `op` (+ - * / // % **).
Value binary_op(Interpreter& in, std::string_view op, const Value& a, const Value& b);
/// Python unary minus or plus.
Value unary_op(std::string_view op, const Value& v);
/// Python `item in container`.
bool contains(const Value& container, const Value& item);
/// jinja2 Environment.getattr: Python attribute, then item, else undefined.
Value get_attr(const Value& obj, std::string_view name);
/// jinja2 Environment.getitem: item, then attribute for string keys, else undefined.
Value get_item(const Value& obj, const Value& key);
/// obj[start:stop:step] of a list, tuple or string (null parts are omitted ones).
Value slice(Interpreter& in, const Value& obj, const Value* start, const Value* stop, const Value* step);
/// The elements a for loop visits: list items, dict keys, string characters; nothing for undefined.
std::vector<Value> iterate(const Value& v);

}  // namespace mixserve::jinja
