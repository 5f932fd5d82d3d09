// Durations as the config writes them ("250ms", "30s", "5min", "1h", "0"): parsing, and
// formatting that parses back to the same value.
// Input: the text.
#include <string>

#include "fuzz_support.hpp"
#include "pgmux/config/duration.hpp"

using namespace pgmux::config;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto d = parse_duration(text);
  if (d) {
    FUZZ_CHECK(d->count() >= 0);
    const auto formatted = format_duration(*d);
    FUZZ_CHECK(parse_duration(formatted) == d);
  }
  // Any value as milliseconds: the config may hold one that was computed (defaults, clamps).
  if (size >= 8) {
    std::int64_t ms = 0;
    for (int i = 0; i < 8; ++i) ms = (ms << 8) | data[i];
    // Within what parse_duration accepts (it keeps room for nanosecond arithmetic).
    if (ms >= 0 && ms <= INT64_MAX / 1000) FUZZ_CHECK(parse_duration(format_duration(duration{ms})) == duration{ms});
  }
  return 0;
}
