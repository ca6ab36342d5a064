// Bearer API keys for the server: loaded from a file (one key per line, '#' comments), checked in
// constant time against the Authorization header, never logged.
#pragma once

#include <array>
#include <string>
#include <string_view>
#include <vector>

namespace mixserve::serve {

/// A set of accepted API keys; empty means no authentication.
class ApiKeys {
 public:
  /// No keys: every request is allowed.
  ApiKeys() = default;
  /// Reads keys from `path`: one per line, surrounding blanks trimmed, blank lines and lines starting
  /// with '#' skipped. Throws kNotFound (unreadable file) or kInvalidArgument (no key, or a key with
  /// inner whitespace or shorter than 8 characters), naming the file and line.
  static ApiKeys load(const std::string& path);
  /// Keys from memory (same rules as load; `origin` names them in errors).
  static ApiKeys parse(const std::string& text, const std::string& origin);

  /// Whether keys are required.
  bool enabled() const { return !digests_.empty(); }
  /// Number of keys.
  size_t size() const { return digests_.size(); }
  /// Whether an Authorization header value ("Bearer <key>") carries an accepted key. Always true
  /// when no keys are set. The comparison time does not depend on where keys differ.
  bool allows(std::string_view authorization) const;

 private:
  std::vector<std::array<unsigned char, 32>> digests_;  // SHA-256 of each key
};

/// The first key of a key or token file (the format of ApiKeys::load), e.g. the key a client sends.
/// Throws kNotFound (unreadable) or kInvalidArgument (malformed, or no key), naming the file.
std::string read_token_file(const std::string& path);

}  // namespace mixserve::serve
