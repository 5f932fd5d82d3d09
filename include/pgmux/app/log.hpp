// Minimal logger: one line per event to stderr, safe from any thread.
#pragma once
#include <string_view>

namespace pgmux::log {

enum class level { debug, info, warn, error };

void set_level(level l) noexcept;
bool enabled(level l) noexcept;
void write(level l, std::string_view message);

inline void debug(std::string_view m) { if (enabled(level::debug)) write(level::debug, m); }
inline void info(std::string_view m) { if (enabled(level::info)) write(level::info, m); }
inline void warn(std::string_view m) { write(level::warn, m); }
inline void error(std::string_view m) { write(level::error, m); }

}  // namespace pgmux::log
