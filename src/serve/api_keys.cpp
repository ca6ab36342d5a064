#include "serve/api_keys.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <fstream>
#include <sstream>

#include "common/error.h"

namespace mixserve::serve {
namespace {

std::array<unsigned char, 32> digest(std::string_view text) {
  std::array<unsigned char, 32> d{};
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), d.data());
  return d;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

}  // namespace

ApiKeys ApiKeys::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(ErrorCode::kNotFound, "cannot read the API key file '", path, "'");
  std::ostringstream text;
  text << in.rdbuf();
  return parse(text.str(), path);
}

ApiKeys ApiKeys::parse(const std::string& text, const std::string& origin) {
  ApiKeys keys;
  std::istringstream lines(text);
  std::string line;
  for (int number = 1; std::getline(lines, line); ++number) {
    const std::string_view key = trim(line);
    if (key.empty() || key.front() == '#') continue;
    if (key.find_first_of(" \t") != std::string_view::npos) {
      fail(ErrorCode::kInvalidArgument, origin, ":", number, ": an API key must not contain blanks");
    }
    if (key.size() < 8) fail(ErrorCode::kInvalidArgument, origin, ":", number, ": an API key must have at least 8 characters");
    keys.digests_.push_back(digest(key));
  }
  if (keys.digests_.empty()) fail(ErrorCode::kInvalidArgument, origin, ": the API key file holds no key");
  return keys;
}

bool ApiKeys::allows(std::string_view authorization) const {
  if (digests_.empty()) return true;
  constexpr std::string_view kBearer = "Bearer ";
  if (authorization.size() <= kBearer.size() || authorization.substr(0, kBearer.size()) != kBearer) return false;
  // Comparing fixed-size digests hides the key lengths; every key is compared so that the time does
  // not tell which one matched.
  const auto d = digest(trim(authorization.substr(kBearer.size())));
  bool ok = false;
  for (const auto& key : digests_) ok |= CRYPTO_memcmp(key.data(), d.data(), d.size()) == 0;
  return ok;
}

std::string read_token_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail(ErrorCode::kNotFound, path, ": cannot read the token file");
  std::stringstream text;
  text << in.rdbuf();
  ApiKeys::parse(text.str(), path);  // validates the format
  std::string line;
  std::istringstream lines(text.str());
  while (std::getline(lines, line)) {
    const size_t a = line.find_first_not_of(" \t\r");
    if (a == std::string::npos || line[a] == '#') continue;
    const size_t b = line.find_last_not_of(" \t\r");
    return line.substr(a, b - a + 1);
  }
  fail(ErrorCode::kInvalidArgument, path, ": no token");
}

}  // namespace mixserve::serve
