// Duration parsing for the config file.
#include "pgmux/config/duration.hpp"

#include <charconv>
#include <cstdint>

namespace pgmux::config {

std::optional<duration> parse_duration(std::string_view text) {
  std::int64_t value = 0;
  const auto* begin = text.data();
  const auto* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(begin, end, value);
  if (ec != std::errc{} || ptr == begin || value < 0) return std::nullopt;
  const std::string_view unit(ptr, static_cast<std::size_t>(end - ptr));
  std::int64_t scale = 0;
  if (unit == "ms") scale = 1;
  else if (unit == "s") scale = 1000;
  else if (unit == "min") scale = 60'000;
  else if (unit == "h") scale = 3'600'000;
  else if (unit.empty() && value == 0) scale = 1;
  else return std::nullopt;
  if (value > INT64_MAX / scale / 1000) return std::nullopt;  // keep room for nanosecond arithmetic
  return duration{value * scale};
}

std::string format_duration(duration d) {
  const auto ms = d.count();
  if (ms == 0) return "0";
  if (ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms % 60'000 == 0) return std::to_string(ms / 60'000) + "min";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

}  // namespace pgmux::config
