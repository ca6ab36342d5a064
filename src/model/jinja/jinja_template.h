// A Jinja2 subset large enough for Hugging Face chat templates, rendered with transformers' settings
// (trim_blocks, lstrip_blocks, loop controls, raise_exception, strftime_now, its tojson). Bad
// templates fail with one mixserve::Error naming the construct and its line:column; rendering has
// caps on work, output size and nesting, so no template can crash, hang or exhaust memory.
#pragma once

#include <cstdint>
#include <ctime>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "model/jinja/jinja_value.h"

namespace mixserve::jinja {

struct Stmt;

/// Limits and hooks of one render.
struct RenderOptions {
  size_t max_output_bytes = size_t{32} << 20;  ///< cap on the output and on any one string or list built
  uint64_t max_work = 20'000'000;              ///< cap on evaluation steps (nodes, iterations, bytes/64)
  int max_depth = 500;                         ///< cap on run-time nesting (blocks, expressions, macro calls)
  std::function<std::tm()> now;                ///< clock of strftime_now(); empty = local time now
};

/// A parsed template: immutable, cheap to copy, safe to render from several threads at once.
class Template {
 public:
  /// Parses `source`. Throws Error "template:L:C: ..." (kInvalidArgument for syntax errors,
  /// kUnimplemented for Jinja features outside the supported subset).
  explicit Template(std::string_view source);

  /// Renders with `context` as the global variables. Throws Error "template:L:C: ..." with
  /// kInvalidArgument for run-time errors and raise_exception(), kResourceExhausted past a limit.
  std::string render(const Dict& context, const RenderOptions& options = {}) const;

 private:
  std::shared_ptr<const std::vector<std::unique_ptr<Stmt>>> body_;
};

}  // namespace mixserve::jinja
