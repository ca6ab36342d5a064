// Typed errors thrown inside the library and caught at the edges (CLI, HTTP).
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>

namespace mixserve {

/// Category of an error; the CLI maps it to an exit code, HTTP to a status.
enum class ErrorCode {
  kInvalidArgument,    ///< bad user input (flags, request fields, config)
  kNotFound,           ///< a named thing (file, model, device, key) does not exist
  kUnavailable,        ///< a device or service cannot be reached now
  kResourceExhausted,  ///< memory, context length, queue capacity
  kDataLoss,           ///< a file is malformed, truncated or inconsistent
  kUnimplemented,      ///< valid input that this build does not support
  kInternal,           ///< a bug: an invariant did not hold
};

/// Short lowercase name of a code ("invalid_argument").
std::string_view error_code_name(ErrorCode code);

/// The one exception type of the library; `what()` is a complete, human-readable sentence.
class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  /// Category of this error.
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

/// Concatenates any streamable values into one string.
template <typename... Args>
std::string str_cat(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}

/// Throws Error(code, str_cat(args...)).
template <typename... Args>
[[noreturn]] void fail(ErrorCode code, const Args&... args) {
  throw Error(code, str_cat(args...));
}

}  // namespace mixserve

/// Programmer-bug check: throws kInternal with file/line and a message when `cond` is false.
#define MIXSERVE_CHECK(cond, ...)                                                              \
  do {                                                                                         \
    if (!(cond)) {                                                                             \
      ::mixserve::fail(::mixserve::ErrorCode::kInternal, "internal check failed: " #cond " (", \
                       __FILE__, ":", __LINE__, ") " __VA_OPT__(, ) __VA_ARGS__);              \
    }                                                                                          \
  } while (0)
