// Durations as written in the config file.
// Cases:
//   parses ms, s, min and h
//   "0" and zero with a unit mean zero
//   rejects a number without unit, negatives, unknown units and junk
//   rejects values that would overflow
//   formats the shortest exact form
//   format then parse gives the same duration
#include <doctest/doctest.h>

#include <string>

#include "pgmux/config/duration.hpp"

using namespace pgmux::config;
using namespace std::chrono_literals;

TEST_SUITE("duration") {

TEST_CASE("parses ms, s, min and h") {
  CHECK(parse_duration("250ms") == duration{250});
  CHECK(parse_duration("30s") == duration{30'000});
  CHECK(parse_duration("5min") == duration{300'000});
  CHECK(parse_duration("1h") == duration{3'600'000});
  CHECK(parse_duration("1ms") == duration{1});
  CHECK(parse_duration("90s") == duration{90'000});
  CHECK(parse_duration("48h") == duration{172'800'000});
}

TEST_CASE("\"0\" and zero with a unit mean zero") {
  for (const char* text : {"0", "0ms", "0s", "0min", "0h"}) {
    CAPTURE(std::string(text));
    CHECK(parse_duration(text) == duration{0});
  }
}

TEST_CASE("rejects a number without unit, negatives, unknown units and junk") {
  for (const char* text : {"5", "-1s", "1d", "", "s", "ms", "1.5s", " 1s", "1s ", "1 s", "+1s", "1S", "1sec",
                           "1m", "1hour", "1ms5", "abc", "0x10s"}) {
    CAPTURE(std::string(text));
    CHECK_FALSE(parse_duration(text));
  }
}

TEST_CASE("rejects values that would overflow") {
  CHECK_FALSE(parse_duration("9223372036854775807ms"));
  CHECK_FALSE(parse_duration("99999999999999999999s"));
  CHECK_FALSE(parse_duration("9223372036854775h"));
  CHECK(parse_duration("100000h") == duration{360'000'000'000});
}

TEST_CASE("formats the shortest exact form") {
  CHECK(format_duration(duration{0}) == "0");
  CHECK(format_duration(duration{250}) == "250ms");
  CHECK(format_duration(duration{1500}) == "1500ms");
  CHECK(format_duration(duration{30'000}) == "30s");
  CHECK(format_duration(duration{90'000}) == "90s");
  CHECK(format_duration(duration{300'000}) == "5min");
  CHECK(format_duration(duration{3'600'000}) == "1h");
  CHECK(format_duration(duration{5'400'000}) == "90min");
  CHECK(format_duration(duration{7'200'000}) == "2h");
}

TEST_CASE("format then parse gives the same duration") {
  for (auto d : {duration{0}, duration{1}, duration{999}, duration{1000}, duration{61'000}, duration{3'600'001},
                 duration{86'400'000}}) {
    CAPTURE(d.count());
    CHECK(parse_duration(format_duration(d)) == d);
  }
}

}  // TEST_SUITE
