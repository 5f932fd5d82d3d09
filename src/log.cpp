// Logger: a timestamp, the level and the message, written with one call per line, as text or
// as one JSON object per line.
#include "pgmux/log.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <string>

#include "pgmux/config/config.hpp"

namespace pgmux::log {
namespace {

std::atomic<level> min_level{level::info};
std::atomic<bool> debug_forced{false};
std::atomic<bool> json_lines{false};
std::atomic<bool> log_connections{true};
std::atomic<std::int64_t> slow_query{0};

const char* name(level l, bool lower) {
  switch (l) {
    case level::debug: return lower ? "debug" : "DEBUG";
    case level::info: return lower ? "info" : "INFO";
    case level::warn: return lower ? "warn" : "WARN";
    case level::error: return lower ? "error" : "ERROR";
  }
  return "?";
}

// A JSON string body: quotes, backslashes and control characters escaped.
void append_json_escaped(std::string& out, std::string_view text) {
  for (char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
          out += buf;
        } else {
          out.push_back(c);
        }
    }
  }
}

}  // namespace

void apply(const config::log_config& settings) noexcept {
  const auto configured = static_cast<level>(settings.level);
  min_level.store(debug_forced.load(std::memory_order_relaxed) ? level::debug : configured, std::memory_order_relaxed);
  json_lines.store(settings.format == config::log_format::json, std::memory_order_relaxed);
  log_connections.store(settings.connections, std::memory_order_relaxed);
  slow_query.store(std::chrono::duration_cast<std::chrono::nanoseconds>(settings.slow_query).count(),
                   std::memory_order_relaxed);
}

void set_level(level l) noexcept { min_level.store(l, std::memory_order_relaxed); }
void force_debug() noexcept {
  debug_forced.store(true, std::memory_order_relaxed);
  set_level(level::debug);
}
bool enabled(level l) noexcept { return l >= min_level.load(std::memory_order_relaxed); }
bool connections() noexcept { return log_connections.load(std::memory_order_relaxed); }
std::int64_t slow_query_ns() noexcept { return slow_query.load(std::memory_order_relaxed); }

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
  line.reserve(message.size() + 64);
  if (json_lines.load(std::memory_order_relaxed)) {
    line.append("{\"time\":\"").append(stamp).append("\",\"level\":\"").append(name(l, true));
    line.append("\",\"message\":\"");
    append_json_escaped(line, message);
    line.append("\"}\n");
  } else {
    line.append(stamp).append(" ").append(name(l, false)).append(" ").append(message).append("\n");
  }
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace pgmux::log
