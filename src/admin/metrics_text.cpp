// Prometheus text format 0.0.4, written by hand: the format is small and its corner cases
// (NaN spelling, escaping, +Inf bucket last) are exactly what must be right.
#include "pgmux/admin/metrics_text.hpp"

#include <charconv>
#include <cmath>

namespace pgmux::app::metrics_text {

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  // Counters are whole numbers: print them whole while a double holds them exactly (2^53).
  if (v == std::trunc(v) && std::fabs(v) < 9007199254740992.0) {
    const auto r = std::to_chars(buf, buf + sizeof buf, static_cast<std::int64_t>(v));
    return std::string(buf, r.ptr);
  }
  // The shortest text that reads back as the same double; without an exponent in the usual
  // range, so that bucket bounds read le="0.0005" rather than le="5e-04".
  const double magnitude = std::fabs(v);
  const auto format = magnitude >= 1e-6 && magnitude < 1e15 ? std::chars_format::fixed : std::chars_format::general;
  const auto r = std::to_chars(buf, buf + sizeof buf, v, format);
  return std::string(buf, r.ptr);
}

namespace {

template <bool quotes>
std::string escape(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else if (quotes && c == '"') out += "\\\"";
    else out += c;
  }
  return out;
}

void write_labels(std::string& out, const std::vector<label>& labels, const std::string* le) {
  if (labels.empty() && !le) return;
  out += '{';
  bool first = true;
  for (const auto& l : labels) {
    if (!first) out += ',';
    first = false;
    out += l.name;
    out += "=\"";
    out += escape<true>(l.value);
    out += '"';
  }
  if (le) {
    if (!first) out += ',';
    out += "le=\"";
    out += *le;
    out += '"';
  }
  out += '}';
}

void write_line(std::string& out, std::string_view name, std::string_view suffix, const std::vector<label>& labels,
                const std::string* le, const std::string& value) {
  out += name;
  out += suffix;
  write_labels(out, labels, le);
  out += ' ';
  out += value;
  out += '\n';
}

const char* type_name(metric_type t) {
  switch (t) {
    case metric_type::counter: return "counter";
    case metric_type::gauge: return "gauge";
    case metric_type::histogram: return "histogram";
  }
  return "untyped";
}

}  // namespace

std::string escape_label_value(std::string_view v) { return escape<true>(v); }

// A statement's text as a label value: valid UTF-8 (clients may send any bytes in identifiers;
// one invalid label would fail the whole scrape), each byte of a broken sequence a '?', cut to
// `max_bytes` on a character's end. The queryid tells statements cut alike apart.
std::string utf8_label_value(std::string_view text, std::size_t max_bytes) {
  std::string out;
  for (std::size_t i = 0; i < text.size();) {
    const auto lead = static_cast<unsigned char>(text[i]);
    std::size_t length = lead < 0x80 ? 1 : lead >= 0xC2 && lead < 0xE0 ? 2 : lead >= 0xE0 && lead < 0xF0 ? 3 : lead >= 0xF0 && lead < 0xF5 ? 4 : 0;
    for (std::size_t k = 1; k < length; ++k)
      if (i + k >= text.size() || (static_cast<unsigned char>(text[i + k]) & 0xC0) != 0x80) length = 0;
    if (length > 2) {  // no overlong forms, surrogates or code points past U+10FFFF
      const auto second = static_cast<unsigned char>(text[i + 1]);
      if ((lead == 0xE0 && second < 0xA0) || (lead == 0xED && second > 0x9F) || (lead == 0xF0 && second < 0x90) ||
          (lead == 0xF4 && second > 0x8F))
        length = 0;
    }
    const std::size_t take = length == 0 ? 1 : length;
    if (out.size() + take > max_bytes) break;
    if (length == 0) out += '?';
    else out.append(text.substr(i, length));
    i += take;
  }
  return out;
}

std::string escape_help(std::string_view v) { return escape<false>(v); }

void serialize(const std::vector<family>& families, std::string& out) {
  for (const auto& f : families) {
    out += "# HELP ";
    out += f.name;
    out += ' ';
    out += escape_help(f.help);
    out += "\n# TYPE ";
    out += f.name;
    out += ' ';
    out += type_name(f.type);
    out += '\n';
    for (const auto& s : f.samples) {
      if (f.type != metric_type::histogram) {
        write_line(out, f.name, "", s.labels, nullptr, format_value(s.value));
        continue;
      }
      // Finite bounds in the order given, then +Inf, which always equals the count.
      for (const auto& b : s.buckets) {
        if (std::isinf(b.upper_bound) || std::isnan(b.upper_bound)) continue;
        const auto le = format_value(b.upper_bound);
        write_line(out, f.name, "_bucket", s.labels, &le, format_value(double(b.cumulative)));
      }
      const std::string inf = "+Inf";
      write_line(out, f.name, "_bucket", s.labels, &inf, format_value(double(s.count)));
      write_line(out, f.name, "_sum", s.labels, nullptr, format_value(s.sum));
      write_line(out, f.name, "_count", s.labels, nullptr, format_value(double(s.count)));
    }
  }
}

}  // namespace pgmux::app::metrics_text
