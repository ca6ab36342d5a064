#include "model/jinja/jinja_interpreter.h"

#include "common/error.h"
#include "model/jinja/jinja_builtins.h"
#include "model/jinja/jinja_lexer.h"
#include "model/jinja/jinja_parser.h"

namespace mixserve::jinja {
namespace {

// An error that already carries its template position (so outer nodes do not prefix it again).
class LocatedError : public Error {
 public:
  using Error::Error;
};

[[noreturn]] void rethrow_located(const Error& e, SourcePos pos) {
  throw LocatedError(e.code(), str_cat("template:", pos.line, ":", pos.column, ": ", e.what()));
}

}  // namespace

struct Interpreter::Scope {
  Scope* parent = nullptr;
  std::vector<std::pair<std::string, Value>> vars;

  const Value* find(std::string_view name) const {
    for (const auto& [key, value] : vars) {
      if (key == name) return &value;
    }
    return nullptr;
  }
  void set(const std::string& name, Value value) {
    for (auto& [key, slot] : vars) {
      if (key == name) {
        slot = std::move(value);
        return;
      }
    }
    vars.emplace_back(name, std::move(value));
  }
};

namespace {

// Counts run-time nesting (statements, expressions, macro calls) against RenderOptions::max_depth.
class DepthGuard {
 public:
  DepthGuard(int& depth, int max) : depth_(depth) {
    if (++depth_ > max) {
      --depth_;
      fail(ErrorCode::kResourceExhausted, "template nesting exceeds ", max,
           " levels at run time (runaway macro recursion?)");
    }
  }
  ~DepthGuard() { --depth_; }
  DepthGuard(const DepthGuard&) = delete;
  DepthGuard& operator=(const DepthGuard&) = delete;

 private:
  int& depth_;
};

}  // namespace

Interpreter::Interpreter(const Body& body, const Dict& context, const RenderOptions& options)
    : body_(body), context_(context), options_(options) {}

Interpreter::~Interpreter() {
  // Namespaces are the only mutable objects, hence the only way to build reference cycles.
  for (const Value& ns : namespaces_) ns.namespace_attrs().clear();
}

std::string Interpreter::render() {
  std::string out;
  Scope root;
  root_ = &root;
  out_ = &out;
  exec_body(body_, root);
  root_ = nullptr;
  out_ = nullptr;
  return out;
}

void Interpreter::charge(uint64_t units) {
  work_ += units;
  if (work_ > options_.max_work) {
    fail(ErrorCode::kResourceExhausted, "template evaluation exceeds ", options_.max_work,
         " steps (a very long or endless loop?)");
  }
}

void Interpreter::check_size(size_t size) {
  if (size > options_.max_output_bytes) {
    fail(ErrorCode::kResourceExhausted, "template value of ", size, " bytes or items exceeds the limit of ",
         options_.max_output_bytes);
  }
  charge(size / 64);
}

Value Interpreter::new_namespace(Dict attrs) {
  Value ns = Value::make_namespace(std::move(attrs));
  namespaces_.push_back(ns);
  return ns;
}

Value Interpreter::call(const Value& fn, const CallArgs& args) {
  if (fn.kind() == Value::Kind::kFunction) return fn.as_function().call(*this, args);
  require_defined(fn);
  fail(ErrorCode::kInvalidArgument, "'", type_name(fn), "' object is not callable");
}

Value Interpreter::call_macro(const Stmt& macro, const CallArgs& args) {
  const auto& params = macro.targets;
  if (args.positional.size() > params.size()) {
    fail(ErrorCode::kInvalidArgument, "macro '", macro.text, "' takes ", params.size(), " arguments but ",
         args.positional.size(), " were given");
  }
  Scope scope;
  scope.parent = root_;
  std::vector<bool> given(params.size(), false);
  for (size_t i = 0; i < args.positional.size(); ++i) {
    scope.set(params[i], args.positional[i]);
    given[i] = true;
  }
  for (const auto& [key, value] : args.keyword) {
    size_t i = 0;
    while (i < params.size() && params[i] != key) ++i;
    if (i == params.size()) fail(ErrorCode::kInvalidArgument, "macro '", macro.text, "' has no argument '", key, "'");
    if (given[i]) fail(ErrorCode::kInvalidArgument, "macro '", macro.text, "' got two values for '", key, "'");
    scope.set(params[i], value);
    given[i] = true;
  }
  for (size_t i = 0; i < params.size(); ++i) {
    if (given[i]) continue;
    scope.set(params[i], macro.exprs[i] ? eval(*macro.exprs[i], scope)
                                        : Value::undefined("parameter '" + params[i] + "' was not provided"));
  }
  return Value(capture(macro.bodies[0], scope));
}

void Interpreter::append(std::string_view text) {
  if (out_->size() + text.size() > options_.max_output_bytes) {
    fail(ErrorCode::kResourceExhausted, "template output exceeds ", options_.max_output_bytes, " bytes");
  }
  charge(text.size() / 64);
  out_->append(text);
}

std::string Interpreter::capture(const Body& body, Scope& scope) {
  std::string buffer;
  std::string* saved = out_;
  out_ = &buffer;
  try {
    exec_body(body, scope);
  } catch (...) {
    out_ = saved;
    throw;
  }
  out_ = saved;
  return buffer;
}

Interpreter::Flow Interpreter::exec_body(const Body& body, Scope& scope) {
  for (const auto& stmt : body) {
    const Flow flow = exec(*stmt, scope);
    if (flow != Flow::kNormal) return flow;
  }
  return Flow::kNormal;
}

void Interpreter::assign(Scope& scope, const std::vector<std::string>& targets, const Value& value) {
  if (targets.size() == 1) {
    scope.set(targets[0], value);
    return;
  }
  if (value.kind() != Value::Kind::kList && !value.is_string() && value.kind() != Value::Kind::kDict) {
    require_defined(value);
    fail(ErrorCode::kInvalidArgument, "cannot unpack non-iterable ", type_name(value), " object");
  }
  const std::vector<Value> items = value.kind() == Value::Kind::kList ? value.as_list().items : iterate(value);
  if (items.size() != targets.size()) {
    fail(ErrorCode::kInvalidArgument, items.size() < targets.size() ? "not enough" : "too many",
         " values to unpack (expected ", targets.size(), ", got ", items.size(), ")");
  }
  for (size_t i = 0; i < targets.size(); ++i) scope.set(targets[i], items[i]);
}

Interpreter::Flow Interpreter::exec(const Stmt& s, Scope& scope) {
  try {
    DepthGuard guard(depth_, options_.max_depth);
    charge(1);
    switch (s.kind) {
      case StmtKind::kText: append(s.text); return Flow::kNormal;
      case StmtKind::kOutput: append(to_str(eval(*s.exprs[0], scope))); return Flow::kNormal;
      case StmtKind::kIf:
        for (size_t i = 0; i < s.exprs.size(); ++i) {
          if (truthy(eval(*s.exprs[i], scope))) return exec_body(s.bodies[i], scope);
        }
        return s.bodies.size() > s.exprs.size() ? exec_body(s.bodies.back(), scope) : Flow::kNormal;
      case StmtKind::kFor: return exec_for(s, scope);
      case StmtKind::kSet: assign(scope, s.targets, eval(*s.exprs[0], scope)); return Flow::kNormal;
      case StmtKind::kSetAttr: {
        Value value = eval(*s.exprs[0], scope);
        const Value ns = lookup(s.targets[0], scope);
        if (ns.kind() != Value::Kind::kNamespace) {
          fail(ErrorCode::kInvalidArgument, "cannot set attribute '", s.text, "' of '", s.targets[0],
               "': only namespace() objects have assignable attributes");
        }
        ns.namespace_attrs().set(s.text, std::move(value));
        return Flow::kNormal;
      }
      case StmtKind::kSetBlock:
      case StmtKind::kFilterBlock: {
        Value value(capture(s.bodies[0], scope));
        if (s.exprs[0]) {
          block_values_.push_back(std::move(value));
          try {
            value = eval(*s.exprs[0], scope);
          } catch (...) {
            block_values_.pop_back();
            throw;
          }
          block_values_.pop_back();
        }
        if (s.kind == StmtKind::kSetBlock) {
          scope.set(s.targets[0], std::move(value));
        } else {
          append(to_str(value));
        }
        return Flow::kNormal;
      }
      case StmtKind::kMacro:
        scope.set(s.text, Value::function(
                              s.text, [&s](Interpreter& in, const CallArgs& args) { return in.call_macro(s, args); }));
        return Flow::kNormal;
      case StmtKind::kBreak: return Flow::kBreak;
      case StmtKind::kContinue: return Flow::kContinue;
      case StmtKind::kWith: {
        Scope inner;
        inner.parent = &scope;
        for (size_t i = 0; i < s.targets.size(); ++i) inner.set(s.targets[i], eval(*s.exprs[i], scope));
        return exec_body(s.bodies[0], inner);
      }
      case StmtKind::kScope: return exec_body(s.bodies[0], scope);
    }
    return Flow::kNormal;
  } catch (const LocatedError&) {
    throw;
  } catch (const Error& e) {
    rethrow_located(e, s.pos);
  }
}

Interpreter::Flow Interpreter::exec_for(const Stmt& s, Scope& scope) {
  std::vector<Value> items = iterate(eval(*s.exprs[0], scope));
  if (s.exprs.size() > 1) {
    std::vector<Value> kept;
    for (const Value& item : items) {
      charge(1);
      Scope filter;
      filter.parent = &scope;
      assign(filter, s.targets, item);
      if (truthy(eval(*s.exprs[1], filter))) kept.push_back(item);
    }
    items = std::move(kept);
  }
  if (items.empty()) {
    Scope inner;
    inner.parent = &scope;
    return exec_body(s.bodies[1], inner);
  }
  const auto n = static_cast<int64_t>(items.size());
  for (int64_t i = 0; i < n; ++i) {
    charge(1);
    Scope inner;
    inner.parent = &scope;
    assign(inner, s.targets, items[static_cast<size_t>(i)]);
    Dict loop;
    loop.set("index", i + 1);
    loop.set("index0", i);
    loop.set("revindex", n - i);
    loop.set("revindex0", n - i - 1);
    loop.set("first", i == 0);
    loop.set("last", i == n - 1);
    loop.set("length", n);
    loop.set("depth", 1);
    loop.set("depth0", 0);
    if (i > 0) loop.set("previtem", items[static_cast<size_t>(i - 1)]);
    if (i + 1 < n) loop.set("nextitem", items[static_cast<size_t>(i + 1)]);
    loop.set("cycle", Value::function("loop.cycle", [i](Interpreter&, const CallArgs& args) {
               if (args.positional.empty() || !args.keyword.empty()) {
                 fail(ErrorCode::kInvalidArgument, "loop.cycle() takes one or more positional arguments");
               }
               return args.positional[static_cast<size_t>(i) % args.positional.size()];
             }));
    inner.set("loop", Value::dict(std::move(loop)));
    if (exec_body(s.bodies[0], inner) == Flow::kBreak) break;
  }
  return Flow::kNormal;
}

Value Interpreter::lookup(const std::string& name, const Scope& scope) const {
  for (const Scope* s = &scope; s; s = s->parent) {
    if (const Value* v = s->find(name)) return *v;
  }
  if (const Value* v = context_.find(name)) return *v;
  if (const Value* v = find_global(name)) return *v;
  return Value::undefined("'" + name + "' is undefined");
}

CallArgs Interpreter::eval_args(const Expr& e, size_t first, Scope& scope) {
  CallArgs args;
  for (size_t i = first; i < e.children.size(); ++i) args.positional.push_back(eval(*e.children[i], scope));
  for (const auto& [key, expr] : e.kwargs) args.keyword.emplace_back(key, eval(*expr, scope));
  return args;
}

Value Interpreter::eval(const Expr& e, Scope& scope) {
  try {
    DepthGuard guard(depth_, options_.max_depth);
    charge(1);
    return eval_node(e, scope);
  } catch (const LocatedError&) {
    throw;
  } catch (const Error& err) {
    rethrow_located(err, e.pos);
  }
}

Value Interpreter::eval_node(const Expr& e, Scope& scope) {
  switch (e.kind) {
    case ExprKind::kLiteral: return e.literal;
    case ExprKind::kName: return lookup(e.name, scope);
    case ExprKind::kList:
    case ExprKind::kTuple: {
      std::vector<Value> items;
      for (const auto& c : e.children) items.push_back(eval(*c, scope));
      return Value::list(std::move(items), e.kind == ExprKind::kTuple);
    }
    case ExprKind::kDict: {
      Dict d;
      for (size_t i = 0; i + 1 < e.children.size(); i += 2) {
        const Value key = eval(*e.children[i], scope);
        if (!key.is_string()) {
          fail(ErrorCode::kUnimplemented, "dict keys must be strings in this implementation (got ", type_name(key),
               ")");
        }
        d.set(key.as_string(), eval(*e.children[i + 1], scope));
      }
      return Value::dict(std::move(d));
    }
    case ExprKind::kGetAttr: return get_attr(eval(*e.children[0], scope), e.name);
    case ExprKind::kGetItem: return get_item(eval(*e.children[0], scope), eval(*e.children[1], scope));
    case ExprKind::kSlice: {
      const Value obj = eval(*e.children[0], scope);
      Value parts[3];
      for (int k = 0; k < 3; ++k) {
        if (e.children[static_cast<size_t>(k) + 1]) parts[k] = eval(*e.children[static_cast<size_t>(k) + 1], scope);
      }
      auto part = [&](int k) { return e.children[static_cast<size_t>(k) + 1] ? &parts[k] : nullptr; };
      return slice(*this, obj, part(0), part(1), part(2));
    }
    case ExprKind::kCall: {
      const Value callee = eval(*e.children[0], scope);
      return call(callee, eval_args(e, 1, scope));
    }
    case ExprKind::kFilter: {
      const Value subject = eval(*e.children[0], scope);
      return e.filter(*this, subject, eval_args(e, 1, scope));
    }
    case ExprKind::kTest: {
      const Value subject = eval(*e.children[0], scope);
      return e.test(*this, subject, eval_args(e, 1, scope)) != e.negated;
    }
    case ExprKind::kUnary: {
      const Value v = eval(*e.children[0], scope);
      return e.name == "not" ? Value(!truthy(v)) : unary_op(e.name, v);
    }
    case ExprKind::kBinary: {
      Value left = eval(*e.children[0], scope);
      if (e.name == "and") return truthy(left) ? eval(*e.children[1], scope) : left;
      if (e.name == "or") return truthy(left) ? left : eval(*e.children[1], scope);
      const Value right = eval(*e.children[1], scope);
      if (e.name == "~") {
        std::string text = to_str(left) + to_str(right);
        check_size(text.size());
        return Value(std::move(text));
      }
      return binary_op(*this, e.name, left, right);
    }
    case ExprKind::kCompare: {
      Value left = eval(*e.children[0], scope);
      for (size_t i = 0; i < e.ops.size(); ++i) {
        Value right = eval(*e.children[i + 1], scope);
        const std::string& op = e.ops[i];
        bool ok = false;
        if (op == "==") {
          ok = equals(left, right);
        } else if (op == "!=") {
          ok = !equals(left, right);
        } else if (op == "in" || op == "not in") {
          ok = contains(right, left) == (op == "in");
        } else {
          require_defined(left);
          require_defined(right);
          const int c = compare(left, right);
          ok = op == "<" ? c < 0 : op == "<=" ? c <= 0 : op == ">" ? c > 0 : c >= 0;
        }
        if (!ok) return false;
        left = std::move(right);
      }
      return true;
    }
    case ExprKind::kCondExpr:
      if (truthy(eval(*e.children[0], scope))) return eval(*e.children[1], scope);
      if (e.children[2]) return eval(*e.children[2], scope);
      return Value::undefined("the inline if-expression evaluated to false and no else section was defined");
    case ExprKind::kBlockValue: return block_values_.back();
  }
  return Value();
}

Template::Template(std::string_view source) : body_(std::make_shared<const Body>(parse(lex(source)))) {}

std::string Template::render(const Dict& context, const RenderOptions& options) const {
  Interpreter interpreter(*body_, context, options);
  return interpreter.render();
}

}  // namespace mixserve::jinja
