// The byte-level format of ledger records: kind names, time stamps, canonical JSON and the hash.
#include <openssl/evp.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <memory>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "policy/ledger.h"

namespace mixserve::policy {
namespace {

constexpr std::array<std::string_view, 5> kKindNames = {"fleet_change", "policy_evaluation", "placement",
                                                       "usage_sample", "note"};

bool all_digits(std::string_view s) {
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return !s.empty();
}

int to_int(std::string_view s) {
  int v = 0;
  for (char c : s) v = v * 10 + (c - '0');
  return v;
}

}  // namespace

std::string_view record_kind_name(RecordKind kind) { return kKindNames[static_cast<size_t>(kind)]; }

std::optional<RecordKind> parse_record_kind(std::string_view name) {
  for (size_t i = 0; i < kKindNames.size(); ++i) {
    if (kKindNames[i] == name) return static_cast<RecordKind>(i);
  }
  return std::nullopt;
}

const std::string& genesis_hash() {
  static const std::string kGenesis(64, '0');
  return kGenesis;
}

std::string sha256_hex(std::string_view data) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1 ||
      EVP_DigestUpdate(ctx.get(), data.data(), data.size()) != 1 ||
      EVP_DigestFinal_ex(ctx.get(), digest, &length) != 1 || length != 32) {
    fail(ErrorCode::kInternal, "OpenSSL SHA-256 failed");
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(64, '0');
  for (unsigned int i = 0; i < 32; ++i) {
    out[2 * i] = kHex[digest[i] >> 4];
    out[2 * i + 1] = kHex[digest[i] & 15];
  }
  return out;
}

std::string record_hash(std::string_view prev_hash, int64_t seq, std::string_view time, std::string_view kind,
                        std::string_view payload) {
  std::string bytes;
  bytes.reserve(prev_hash.size() + time.size() + kind.size() + payload.size() + 32);
  bytes.append(prev_hash);
  bytes += '\n';
  bytes += std::to_string(seq);
  bytes += '\n';
  bytes.append(time);
  bytes += '\n';
  bytes.append(kind);
  bytes += '\n';
  bytes.append(payload);
  return sha256_hex(bytes);
}

std::string canonical_json(const nlohmann::json& value) {
  // nlohmann::json objects are std::map-backed, so dump() emits keys in sorted (byte) order.
  try {
    return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::strict);
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorCode::kInvalidArgument, "ledger payload is not valid JSON text: ", e.what());
  }
}

std::string utc_now_iso8601() {
  const auto now = std::chrono::system_clock::now();
  const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count();
  const std::time_t seconds = static_cast<std::time_t>(micros / 1000000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(micros % 1000000));
  return buf;
}

bool is_ledger_time(std::string_view t) {
  // YYYY-MM-DDTHH:MM:SS.ffffffZ
  if (t.size() != 27 || t[4] != '-' || t[7] != '-' || t[10] != 'T' || t[13] != ':' || t[16] != ':' ||
      t[19] != '.' || t[26] != 'Z') {
    return false;
  }
  const std::string_view year = t.substr(0, 4), month = t.substr(5, 2), day = t.substr(8, 2),
                         hour = t.substr(11, 2), minute = t.substr(14, 2), second = t.substr(17, 2),
                         fraction = t.substr(20, 6);
  for (auto part : {year, month, day, hour, minute, second, fraction}) {
    if (!all_digits(part)) return false;
  }
  // Seconds up to 60 admit a leap second; days are checked against 31 only (no calendar).
  return to_int(month) >= 1 && to_int(month) <= 12 && to_int(day) >= 1 && to_int(day) <= 31 &&
         to_int(hour) <= 23 && to_int(minute) <= 59 && to_int(second) <= 60;
}

}  // namespace mixserve::policy
