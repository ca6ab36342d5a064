// Minimal leveled logger writing to stderr; level from MIXSERVE_LOG (debug|info|warn|error|off).
#pragma once

#include <string>

#include "common/error.h"

namespace mixserve {

/// Severity of a log line, in increasing order.
enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kOff = 4 };

/// Sets the minimum level that is printed.
void set_log_level(LogLevel level);
/// Current minimum level (initialised from MIXSERVE_LOG, default info).
LogLevel log_level();
/// Parses "debug|info|warn|error|off"; throws kInvalidArgument otherwise.
LogLevel parse_log_level(const std::string& name);
/// Writes one line "[level] message" to stderr (thread-safe).
void log_line(LogLevel level, const std::string& message);

template <typename... Args>
void log_debug(const Args&... args) {
  if (log_level() <= LogLevel::kDebug) log_line(LogLevel::kDebug, str_cat(args...));
}
template <typename... Args>
void log_info(const Args&... args) {
  if (log_level() <= LogLevel::kInfo) log_line(LogLevel::kInfo, str_cat(args...));
}
template <typename... Args>
void log_warn(const Args&... args) {
  if (log_level() <= LogLevel::kWarn) log_line(LogLevel::kWarn, str_cat(args...));
}
template <typename... Args>
void log_error(const Args&... args) {
  if (log_level() <= LogLevel::kError) log_line(LogLevel::kError, str_cat(args...));
}

}  // namespace mixserve
