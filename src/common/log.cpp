#include "common/log.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>

namespace mixserve {
namespace {

LogLevel initial_level() {
  const char* env = std::getenv("MIXSERVE_LOG");
  if (env == nullptr) return LogLevel::kInfo;
  try {
    return parse_log_level(env);
  } catch (const Error&) {
    std::fprintf(stderr, "[warn] ignoring MIXSERVE_LOG=%s (expected debug|info|warn|error|off)\n", env);
    return LogLevel::kInfo;
  }
}

std::atomic<LogLevel>& level_ref() {
  static std::atomic<LogLevel> level{initial_level()};
  return level;
}

}  // namespace

void set_log_level(LogLevel level) { level_ref().store(level); }
LogLevel log_level() { return level_ref().load(std::memory_order_relaxed); }

LogLevel parse_log_level(const std::string& name) {
  if (name == "debug") return LogLevel::kDebug;
  if (name == "info") return LogLevel::kInfo;
  if (name == "warn") return LogLevel::kWarn;
  if (name == "error") return LogLevel::kError;
  if (name == "off") return LogLevel::kOff;
  fail(ErrorCode::kInvalidArgument, "unknown log level '", name, "' (expected debug|info|warn|error|off)");
}

void log_line(LogLevel level, const std::string& message) {
  static std::mutex mutex;
  static constexpr const char* kNames[] = {"debug", "info", "warn", "error", "off"};
  std::lock_guard<std::mutex> lock(mutex);
  std::fprintf(stderr, "[%s] %s\n", kNames[static_cast<int>(level)], message.c_str());
}

}  // namespace mixserve
