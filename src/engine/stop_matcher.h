// Stop strings: holds back generated text that could be the start of a stop string.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace mixserve {

/// Scans streamed output for stop strings; emits only text that cannot be part of one.
class StopMatcher {
 public:
  /// Matcher for these stop strings (empty strings are ignored).
  explicit StopMatcher(std::vector<std::string> stops);

  /// What push() returns.
  struct Result {
    std::string emit;      ///< text safe to print now (excludes the stop string itself)
    bool stopped = false;  ///< a stop string was found; generation should end
  };
  /// Feeds the next piece of generated text.
  Result push(std::string_view piece);
  /// Text still held back (call at the end of generation when no stop string was found).
  std::string flush();

 private:
  std::vector<std::string> stops_;
  std::string pending_;
  bool stopped_ = false;  // a stop string was found; later pushes emit nothing
};

}  // namespace mixserve
