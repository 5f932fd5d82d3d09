// Logger: a timestamp, the level and the message, written with one call per line.
#include "pgmux/app/log.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <string>

namespace pgmux::log {
namespace {
std::atomic<level> min_level{level::info};
const char* name(level l) {
  switch (l) {
    case level::debug: return "DEBUG";
    case level::info: return "INFO";
    case level::warn: return "WARN";
    case level::error: return "ERROR";
  }
  return "?";
}
}  // namespace

void set_level(level l) noexcept { min_level.store(l, std::memory_order_relaxed); }
bool enabled(level l) noexcept { return l >= min_level.load(std::memory_order_relaxed); }

void write(level l, std::string_view message) {
  if (!enabled(l)) return;
  const auto now = std::chrono::system_clock::now();
  const auto t = std::chrono::system_clock::to_time_t(now);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char stamp[96];  // room for any int the format could print, so -Wformat-truncation stays quiet
  std::snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  std::string line;
  line.reserve(message.size() + 48);
  line.append(stamp).append(" ").append(name(l)).append(" ").append(message).append("\n");
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace pgmux::log
