// Values of the Jinja interpreter with Python semantics: undefined, None, bool, int, float, str,
// list/tuple, dict (insertion-ordered, string keys), namespace (the one mutable object) and callables.
// Lists, tuples and dicts are immutable and shared; copying a Value is cheap.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace mixserve::jinja {

class Value;
class Interpreter;
struct CallArgs;
class Dict;
struct ListData;
struct Function;

/// Marker of an undefined value; `hint` is the message used when it is used in a way that fails.
struct Undefined {
  std::string hint;  ///< e.g. "'x' is undefined"
};

/// Python None.
struct NoneValue {};

/// A dynamically typed template value.
class Value {
 public:
  /// Kinds of values, in Python terms.
  enum class Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kNamespace, kFunction };

  /// Undefined with the default hint.
  Value() = default;
  /// A bool (implicit conversions from C++ scalars and strings are intended).
  Value(bool v) : data_(v) {}  // NOLINT
  /// An int.
  Value(int v) : data_(static_cast<int64_t>(v)) {}  // NOLINT
  /// An int.
  Value(int64_t v) : data_(v) {}  // NOLINT
  /// A float.
  Value(double v) : data_(v) {}  // NOLINT
  /// A str (UTF-8 bytes).
  Value(std::string v) : data_(std::move(v)) {}  // NOLINT
  /// A str (copied).
  Value(std::string_view v) : data_(std::string(v)) {}  // NOLINT
  /// A str (copied).
  Value(const char* v) : data_(std::string(v)) {}  // NOLINT

  /// Undefined that fails with `hint` when used.
  static Value undefined(std::string hint);
  /// Python None.
  static Value none();
  /// A list (or tuple) of `items`.
  static Value list(std::vector<Value> items, bool tuple = false);
  /// A dict.
  static Value dict(Dict d);
  /// A new namespace() object holding `attrs`.
  static Value make_namespace(Dict attrs);
  /// A callable.
  static Value function(std::string name, std::function<Value(Interpreter&, const CallArgs&)> call);

  /// Kind of this value.
  Kind kind() const { return static_cast<Kind>(data_.index()); }
  /// Undefined (a missing variable, attribute or item).
  bool is_undefined() const { return kind() == Kind::kUndefined; }
  /// None.
  bool is_none() const { return kind() == Kind::kNone; }
  /// A str.
  bool is_string() const { return kind() == Kind::kString; }
  /// Int or bool (Python's bool is an int).
  bool is_integral() const { return kind() == Kind::kInt || kind() == Kind::kBool; }
  /// Int, bool or float.
  bool is_number() const { return is_integral() || kind() == Kind::kFloat; }

  /// The bool; each accessor requires its kind (MIXSERVE_CHECK throws kInternal otherwise).
  bool as_bool() const;
  /// The int (a bool counts as 0 or 1).
  int64_t as_int() const;
  /// The number of an int, bool or float.
  double as_double() const;
  /// The str.
  const std::string& as_string() const;
  /// The list or tuple.
  const ListData& as_list() const;
  /// The entries of a dict or the attributes of a namespace.
  const Dict& as_dict() const;
  /// The mutable attributes of a namespace.
  Dict& namespace_attrs() const;
  /// The callable.
  const Function& as_function() const;
  /// The message an undefined value fails with ("'x' is undefined").
  const std::string& undefined_hint() const;
  /// Identity of a shared object (list, dict, namespace, function), else nullptr.
  const void* identity() const;

 private:
  std::variant<Undefined, NoneValue, bool, int64_t, double, std::string, std::shared_ptr<const ListData>,
               std::shared_ptr<const Dict>, std::shared_ptr<Dict>, std::shared_ptr<const Function>>
      data_;
};

/// Positional and keyword arguments of a call, in source order.
struct CallArgs {
  std::vector<Value> positional;                       ///< positional arguments
  std::vector<std::pair<std::string, Value>> keyword;  ///< name=value arguments
};

/// A callable: a built-in function, a bound method or a macro.
struct Function {
  std::string name;                                          ///< shown in messages
  std::function<Value(Interpreter&, const CallArgs&)> call;  ///< runs it; throws mixserve::Error
};

/// Insertion-ordered map from string keys to values (Python dict as templates use it).
class Dict {
 public:
  /// The value of `key`, or nullptr.
  const Value* find(std::string_view key) const;
  /// Inserts `key` at the end, or replaces its value keeping its place.
  void set(std::string key, Value value);
  /// Entries in insertion order.
  const std::vector<std::pair<std::string, Value>>& items() const { return items_; }
  /// Number of entries.
  size_t size() const { return items_.size(); }
  /// Removes every entry.
  void clear();
  /// Nesting depth of the lists and dicts inside, counting this one (namespaces count 0).
  int depth() const { return depth_; }

 private:
  std::vector<std::pair<std::string, Value>> items_;
  int depth_ = 1;
  std::map<std::string, size_t, std::less<>> index_;
};

/// A list or tuple.
struct ListData {
  std::vector<Value> items;  ///< elements
  bool tuple = false;        ///< prints as (a, b) and differs from an equal list in ==
  int depth = 1;             ///< nesting depth of the lists and dicts inside, counting this one
};

/// Deepest nesting of lists and dicts a value may have; deeper values throw kResourceExhausted so that
/// comparing, printing and destroying values never recurses without bound.
inline constexpr int kMaxValueDepth = 200;
/// Nesting depth of lists and dicts in `v` (0 for scalars and namespaces).
int nesting_depth(const Value& v);

/// Python type name ("str", "int", "NoneType", "list", "dict", "Namespace", "Undefined").
std::string type_name(const Value& v);
/// Python truthiness (undefined is false).
bool truthy(const Value& v);
/// Python ==.
bool equals(const Value& a, const Value& b);
/// Python ordering (<0, 0, >0) of numbers, strings and lists; throws kInvalidArgument otherwise.
int compare(const Value& a, const Value& b);
/// Python str() (undefined -> "").
std::string to_str(const Value& v);
/// Python repr().
std::string repr(const Value& v);

/// Options of Python's json.dumps that the tojson filter exposes.
struct JsonOptions {
  bool ensure_ascii = false;          ///< escape non-ASCII as \uXXXX
  bool pretty = false;                ///< indent given (newlines between items)
  std::string indent;                 ///< indentation unit when pretty
  std::string item_separator = ", ";  ///< ", " (or "," when pretty), unless separators given
  std::string key_separator = ": ";   ///< between key and value
  bool sort_keys = false;             ///< sort dict keys
};
/// json.dumps(v); throws kInvalidArgument for values JSON cannot hold (undefined, namespace, ...).
std::string to_json(const Value& v, const JsonOptions& options);

}  // namespace mixserve::jinja
