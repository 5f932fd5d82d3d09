// Prometheus text exposition format 0.0.4: the metric model pgmux collects into and its
// serializer. Pure: no I/O, no clocks.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pgmux::app::metrics_text {

inline constexpr std::string_view content_type = "text/plain; version=0.0.4; charset=utf-8";

enum class metric_type { counter, gauge, histogram };

struct label {
  std::string name;
  std::string value;
};

struct bucket {
  double upper_bound;         // the `le` label; +Inf is added when missing
  std::uint64_t cumulative;   // observations <= upper_bound
};

struct sample {
  std::vector<label> labels;
  double value = 0;             // counters and gauges
  std::vector<bucket> buckets;  // histograms: ascending upper bounds
  std::uint64_t count = 0;      // histograms
  double sum = 0;               // histograms
};

struct family {
  std::string name;
  std::string help;
  metric_type type = metric_type::gauge;
  std::vector<sample> samples;
};

// A sample value as the format spells it: NaN, +Inf, -Inf, integers without an exponent
// while they are exact, anything else with enough digits to read back the same double.
std::string format_value(double v);
// Label values escape backslash, double quote and newline; HELP text only backslash and newline.
std::string escape_label_value(std::string_view v);
// Any bytes (a statement's text) as a label value: valid UTF-8, each byte of a broken or
// overlong sequence, surrogate or code point past U+10FFFF a '?' (one invalid label would fail
// the whole scrape), cut to at most `max_bytes` on a character's end.
std::string utf8_label_value(std::string_view text, std::size_t max_bytes);
std::string escape_help(std::string_view v);

// Appends the families in order: HELP, TYPE, then the samples (histograms as _bucket lines with
// `le` last and +Inf last, then _sum and _count).
void serialize(const std::vector<family>& families, std::string& out);

}  // namespace pgmux::app::metrics_text
