// Prometheus text format 0.0.4 as the metrics endpoint writes it.
// Cases:
//   values: NaN, +Inf and -Inf as the format spells them, whole numbers without exponent,
//     fractions that read back exactly
//   label values escape backslash, quote and newline; HELP escapes backslash and newline only
//   counters and gauges: HELP, TYPE, then one line per sample, labels in the given order
//   histograms: cumulative buckets in order with le last, +Inf last and equal to _count, then
//     _sum and _count; an empty histogram still has its +Inf bucket
//   a sample without labels has no braces
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>

#include "pgmux/admin/metrics_text.hpp"

using namespace pgmux::app::metrics_text;

TEST_SUITE("metrics_text") {

TEST_CASE("values: NaN, infinities, whole numbers and fractions") {
  CHECK(format_value(std::numeric_limits<double>::quiet_NaN()) == "NaN");
  CHECK(format_value(std::numeric_limits<double>::infinity()) == "+Inf");
  CHECK(format_value(-std::numeric_limits<double>::infinity()) == "-Inf");
  CHECK(format_value(0) == "0");
  CHECK(format_value(-0.0) == "0");
  CHECK(format_value(42) == "42");
  CHECK(format_value(-7) == "-7");
  CHECK(format_value(1234567890123.0) == "1234567890123");
  CHECK(format_value(0.0005) == "0.0005");
  CHECK(format_value(2.5) == "2.5");
  CHECK(format_value(0.000001) == "0.000001");
  CHECK(format_value(1e-7) == "1e-07");
  CHECK(format_value(1e20) == "1e+20");
  for (double v : {0.1, 1.0 / 3, 1e-9, 6.02214076e23, 1e300, 1764000000.123}) {
    const auto text = format_value(v);
    CHECK(std::stod(text) == v);
    CHECK(text.find_first_not_of("0123456789.e+-") == std::string::npos);
  }
}

TEST_CASE("escaping of label values and HELP") {
  CHECK(escape_label_value(R"(a\b"c)" "\nd") == R"(a\\b\"c\nd)");
  CHECK(escape_label_value("plain") == "plain");
  CHECK(escape_help(R"(say "hi" \ )" "\n") == R"(say "hi" \\ \n)");
}

TEST_CASE("counters and gauges") {
  family f{"pgmux_x_total", "Things.\nCounted \\ here.", metric_type::counter, {}};
  f.samples.push_back({{{"database", "d\"b"}, {"user", "u\\"}}, 3, {}, 0, 0});
  f.samples.push_back({{{"database", "x"}, {"user", "line\nbreak"}}, std::numeric_limits<double>::quiet_NaN(), {}, 0, 0});
  family g{"pgmux_up", "Up.", metric_type::gauge, {}};
  g.samples.push_back({{}, 1, {}, 0, 0});
  std::string out;
  serialize({f, g}, out);
  CHECK(out ==
        "# HELP pgmux_x_total Things.\\nCounted \\\\ here.\n"
        "# TYPE pgmux_x_total counter\n"
        "pgmux_x_total{database=\"d\\\"b\",user=\"u\\\\\"} 3\n"
        "pgmux_x_total{database=\"x\",user=\"line\\nbreak\"} NaN\n"
        "# HELP pgmux_up Up.\n"
        "# TYPE pgmux_up gauge\n"
        "pgmux_up 1\n");
}

TEST_CASE("histograms: buckets in order, le last, +Inf last and equal to the count") {
  family h{"pgmux_wait_seconds", "Wait.", metric_type::histogram, {}};
  sample s;
  s.labels = {{"database", "db"}};
  s.buckets = {{0.005, 1}, {0.1, 3}, {2.5, 3}, {std::numeric_limits<double>::infinity(), 99}};
  s.count = 4;
  s.sum = 12.25;
  h.samples.push_back(s);
  sample empty;
  empty.buckets = {{1, 0}};
  empty.sum = std::numeric_limits<double>::quiet_NaN();
  h.samples.push_back(empty);
  std::string out;
  serialize({h}, out);
  CHECK(out ==
        "# HELP pgmux_wait_seconds Wait.\n"
        "# TYPE pgmux_wait_seconds histogram\n"
        "pgmux_wait_seconds_bucket{database=\"db\",le=\"0.005\"} 1\n"
        "pgmux_wait_seconds_bucket{database=\"db\",le=\"0.1\"} 3\n"
        "pgmux_wait_seconds_bucket{database=\"db\",le=\"2.5\"} 3\n"
        "pgmux_wait_seconds_bucket{database=\"db\",le=\"+Inf\"} 4\n"
        "pgmux_wait_seconds_sum{database=\"db\"} 12.25\n"
        "pgmux_wait_seconds_count{database=\"db\"} 4\n"
        "pgmux_wait_seconds_bucket{le=\"1\"} 0\n"
        "pgmux_wait_seconds_bucket{le=\"+Inf\"} 0\n"
        "pgmux_wait_seconds_sum NaN\n"
        "pgmux_wait_seconds_count 0\n");
}

TEST_CASE("the content type names version 0.0.4") {
  CHECK(content_type == "text/plain; version=0.0.4; charset=utf-8");
}

}  // TEST_SUITE

TEST_CASE("utf8_label_value keeps valid UTF-8 and replaces what is not, cut on a character") {
  CHECK(pgmux::app::metrics_text::utf8_label_value("select ?", 200) == "select ?");
  CHECK(pgmux::app::metrics_text::utf8_label_value("caf\xc3\xa9", 200) == "caf\xc3\xa9");
  CHECK(pgmux::app::metrics_text::utf8_label_value("caf\xe9 x", 200) == "caf? x");            // Latin-1
  CHECK(pgmux::app::metrics_text::utf8_label_value("\xc0\xaf", 200) == "??");                 // overlong
  CHECK(pgmux::app::metrics_text::utf8_label_value("\xed\xa0\x80", 200) == "???");            // surrogate
  CHECK(pgmux::app::metrics_text::utf8_label_value("\xf4\x90\x80\x80", 200) == "????");       // past U+10FFFF
  CHECK(pgmux::app::metrics_text::utf8_label_value("\xe2\x82", 200) == "??");                 // cut short
  CHECK(pgmux::app::metrics_text::utf8_label_value("ab\xe2\x82\xac", 4) == "ab");             // not split
  CHECK(pgmux::app::metrics_text::utf8_label_value("abcdef", 4) == "abcd");
}
