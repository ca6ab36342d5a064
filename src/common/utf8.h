// UTF-8 helpers for streaming text: token pieces can end in the middle of a character.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace mixserve {

/// Number of bytes at the end of `text` that start a UTF-8 character not yet complete (0-3).
/// Bytes that can never become valid UTF-8 are not held back (they are passed on as they are).
size_t utf8_incomplete_tail(std::string_view text);

/// Accumulates streamed bytes and releases them only up to a complete UTF-8 character.
class Utf8Stream {
 public:
  /// Appends `bytes`; returns the text that is now complete.
  std::string push(std::string_view bytes);
  /// Returns whatever is held back (possibly an incomplete character) and empties the buffer.
  std::string flush();

 private:
  std::string pending_;
};

}  // namespace mixserve
