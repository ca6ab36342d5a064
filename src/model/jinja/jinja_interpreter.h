// Tree-walking evaluator of a parsed template (internal to the jinja folder). Scoping follows jinja2:
// a for-loop iteration, macro call or with-block opens a scope; if-blocks do not; {% set %} writes the
// innermost scope, so values set inside a loop are gone after it (use namespace()).
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "model/jinja/jinja_ast.h"
#include "model/jinja/jinja_template.h"
#include "model/jinja/jinja_value.h"

namespace mixserve::jinja {

/// Renders one template once; the filters, tests and methods get it to charge work and call back.
class Interpreter {
 public:
  /// `body` and `context` must outlive the interpreter.
  Interpreter(const Body& body, const Dict& context, const RenderOptions& options);
  ~Interpreter();
  Interpreter(const Interpreter&) = delete;
  Interpreter& operator=(const Interpreter&) = delete;

  /// Renders the template.
  std::string render();

  /// Counts `units` of work; throws kResourceExhausted past RenderOptions::max_work.
  void charge(uint64_t units);
  /// Checks that a string or list of `size` bytes/items may be built and charges for it.
  void check_size(size_t size);
  /// The options of this render.
  const RenderOptions& options() const { return options_; }
  /// A new namespace() object; the interpreter clears it after the render (cycles cannot leak).
  Value new_namespace(Dict attrs);
  /// Calls a callable value; throws for undefined or non-callable values.
  Value call(const Value& fn, const CallArgs& args);
  /// Calls macro `macro` (a kMacro statement) with `args`; returns its rendered text.
  Value call_macro(const Stmt& macro, const CallArgs& args);

 private:
  struct Scope;
  enum class Flow { kNormal, kBreak, kContinue };

  Flow exec_body(const Body& body, Scope& scope);
  Flow exec(const Stmt& stmt, Scope& scope);
  Flow exec_for(const Stmt& stmt, Scope& scope);
  std::string capture(const Body& body, Scope& scope);
  void assign(Scope& scope, const std::vector<std::string>& targets, const Value& value);
  Value eval(const Expr& e, Scope& scope);
  Value eval_node(const Expr& e, Scope& scope);
  CallArgs eval_args(const Expr& e, size_t first, Scope& scope);
  Value lookup(const std::string& name, const Scope& scope) const;
  void append(std::string_view text);

  const Body& body_;
  const Dict& context_;
  const RenderOptions& options_;
  Scope* root_ = nullptr;
  std::string* out_ = nullptr;
  std::vector<Value> block_values_;
  std::vector<Value> namespaces_;
  uint64_t work_ = 0;
  int depth_ = 0;
};

}  // namespace mixserve::jinja
