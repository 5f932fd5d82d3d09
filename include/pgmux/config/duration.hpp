// Durations as written in the config: "250ms", "30s", "5min", "1h"; "0" means disabled.
#pragma once
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace pgmux::config {

using duration = std::chrono::milliseconds;

std::optional<duration> parse_duration(std::string_view text);
std::string format_duration(duration d);  // the shortest exact form, e.g. "300s", "1h", "0"

}  // namespace pgmux::config
