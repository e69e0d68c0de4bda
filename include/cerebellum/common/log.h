// The library never prints: callers pass a Logger (messages) and a
// ProgressFn (work done / total) and decide how to show them.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace cb {

enum class LogLevel { kDebug, kInfo, kWarn, kError };

struct Logger {
  std::function<void(LogLevel, std::string_view)> sink;  // empty = silent

  void log(LogLevel level, std::string_view msg) const {
    if (sink) sink(level, msg);
  }
  void info(std::string_view msg) const { log(LogLevel::kInfo, msg); }
  void warn(std::string_view msg) const { log(LogLevel::kWarn, msg); }
  void debug(std::string_view msg) const { log(LogLevel::kDebug, msg); }
};

struct Progress {
  std::string stage;     // e.g. "build", "measure"
  int64_t done = 0;      // units finished
  int64_t total = 0;     // units in all (0 = unknown)
  std::string item;      // what is in flight, e.g. a tensor name
};

using ProgressFn = std::function<void(const Progress&)>;

}  // namespace cb
