// Minimal logger: one line per event to stderr, safe from any thread. Text or JSON lines, as
// the config's "log" object says; the settings apply at start and on every reload. The caller
// only formats its line: a thread of the logger's own writes the lines, gathered into one
// write within 10 ms (warnings and errors at once), and what is pending is written at exit.
#pragma once
#include <chrono>
#include <cstdint>
#include <string_view>

namespace pgmux::config {
struct log_config;
}

namespace pgmux::log {

enum class level { debug, info, warn, error };

// Applies level, format, connection logging and the slow-query threshold.
void apply(const config::log_config& settings) noexcept;

void set_level(level l) noexcept;
// --verbose: debug lines whatever the config says, across reloads.
void force_debug() noexcept;
bool enabled(level l) noexcept;
void write(level l, std::string_view message);
// Returns once every line logged before the call has been written, or after `limit` (the
// output may be stalled); false then.
bool flush(std::chrono::milliseconds limit = std::chrono::seconds(5));
// Lines go to `fd` instead of stderr (tests); pending lines are written to the old one first.
void set_output(int fd);

// Whether client logins and disconnects get an info line ("log": {"connections": ...}).
bool connections() noexcept;
// Statements slower than this many nanoseconds are logged; 0: off.
std::int64_t slow_query_ns() noexcept;

inline void debug(std::string_view m) { if (enabled(level::debug)) write(level::debug, m); }
inline void info(std::string_view m) { if (enabled(level::info)) write(level::info, m); }
inline void warn(std::string_view m) { if (enabled(level::warn)) write(level::warn, m); }
inline void error(std::string_view m) { write(level::error, m); }
// A connection event: info when connection logging is on, else debug.
inline void connection(std::string_view m) {
  const auto l = connections() ? level::info : level::debug;
  if (enabled(l)) write(l, m);
}

}  // namespace pgmux::log
