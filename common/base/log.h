#pragma once
// Minimal structured logging to stderr: one line per event,
// "2026-11-27T17:00:00.123Z LEVEL component: message". Thread-safe (one write per line).

#include <string_view>

#include "absl/strings/str_cat.h"

namespace assay {

// Debian's Abseil keeps absl::string_view distinct from std::string_view; StrCat accepts only
// the former. Log arguments pass through this so either kind can be logged.
template <typename T>
const T& LogArg(const T& v) {
  return v;
}
inline absl::string_view LogArg(std::string_view v) {
  return absl::string_view(v.data(), v.size());
}

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

void SetLogLevel(LogLevel level);
bool LogEnabled(LogLevel level);
void LogLine(LogLevel level, std::string_view component, std::string_view message);

template <typename... Args>
void LogInfo(std::string_view component, const Args&... args) {
  if (LogEnabled(LogLevel::kInfo))
    LogLine(LogLevel::kInfo, component, absl::StrCat(LogArg(args)...));
}
template <typename... Args>
void LogWarn(std::string_view component, const Args&... args) {
  if (LogEnabled(LogLevel::kWarn))
    LogLine(LogLevel::kWarn, component, absl::StrCat(LogArg(args)...));
}
template <typename... Args>
void LogError(std::string_view component, const Args&... args) {
  if (LogEnabled(LogLevel::kError))
    LogLine(LogLevel::kError, component, absl::StrCat(LogArg(args)...));
}
template <typename... Args>
void LogDebug(std::string_view component, const Args&... args) {
  if (LogEnabled(LogLevel::kDebug))
    LogLine(LogLevel::kDebug, component, absl::StrCat(LogArg(args)...));
}

}  // namespace assay
