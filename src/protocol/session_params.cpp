// Startup options, parameter names and the SQL that applies a client's settings.
#include "pgmux/protocol/session_params.hpp"

#include <algorithm>
#include <vector>

namespace pgmux::protocol {
namespace {

bool is_space(char c) noexcept {  // isspace in the C locale, as PostgreSQL splits options
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}
bool is_alpha(char c) noexcept { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }
char ascii_lower(char c) noexcept { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

// PostgreSQL's pg_split_opts: whitespace separates words; a backslash takes the next character
// literally, and a trailing one is dropped.
std::vector<std::string> split_words(std::string_view options) {
  std::vector<std::string> words;
  std::size_t i = 0;
  while (i < options.size()) {
    while (i < options.size() && is_space(options[i])) ++i;
    if (i == options.size()) break;
    std::string word;
    bool escaped = false;
    for (; i < options.size(); ++i) {
      const char c = options[i];
      if (!escaped && is_space(c)) break;
      if (!escaped && c == '\\') {
        escaped = true;
      } else {
        escaped = false;
        word.push_back(c);
      }
    }
    words.push_back(std::move(word));
  }
  return words;
}

// "name=value" after -c or --, as PostgreSQL's ParseLongOption reads it.
bool add_setting(parameter_list& out, std::string_view arg, std::string_view option, std::string& error) {
  const auto eq = arg.find('=');
  if (eq == std::string_view::npos) {
    error = std::string(option) + std::string(arg) + " requires a value";
    return false;
  }
  std::string name(arg.substr(0, eq));
  for (auto& c : name)
    if (c == '-') c = '_';
  if (!valid_parameter_name(name)) {
    error = "invalid configuration parameter name \"" + name + "\" in startup options";
    return false;
  }
  out.emplace_back(std::move(name), std::string(arg.substr(eq + 1)));
  return true;
}

}  // namespace

std::optional<parameter_list> parse_startup_options(std::string_view options, std::string& error) {
  const auto words = split_words(options);
  parameter_list out;
  for (std::size_t i = 0; i < words.size(); ++i) {
    const std::string& w = words[i];
    if (w == "--") {  // getopt's end of options; PostgreSQL takes no plain arguments after it
      if (i + 1 < words.size()) {
        error = "invalid command-line argument in startup options: " + words[i + 1];
        return std::nullopt;
      }
      break;
    }
    if (w.size() < 2 || w[0] != '-') {
      error = "invalid command-line argument in startup options: " + w;
      return std::nullopt;
    }
    if (w[1] == '-') {
      if (!add_setting(out, std::string_view(w).substr(2), "--", error)) return std::nullopt;
    } else if (w[1] == 'c') {
      std::string_view arg = std::string_view(w).substr(2);
      if (arg.empty()) {  // "-c name=value": the setting is the next word
        if (i + 1 == words.size()) {
          error = "option -c requires an argument in startup options";
          return std::nullopt;
        }
        arg = words[++i];
      }
      if (!add_setting(out, arg, "-c ", error)) return std::nullopt;
    } else {
      error = "unsupported startup option \"" + w.substr(0, 2) +
              "\": only -c name=value and --name=value are accepted";
      return std::nullopt;
    }
  }
  return out;
}

bool valid_parameter_name(std::string_view name) noexcept {
  bool part_start = true;
  for (const char c : name) {
    if (c == '.') {
      if (part_start) return false;  // empty part
      part_start = true;
    } else if (part_start) {
      if (!is_alpha(c) && c != '_') return false;
      part_start = false;
    } else if (!is_alpha(c) && !is_digit(c) && c != '_') {
      return false;
    }
  }
  return !part_start;  // not empty, no trailing dot
}

bool parameter_name_equal(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  return true;
}

std::string quote_literal(std::string_view value) {
  bool plain = true;
  for (const char c : value)
    if (c == '\\' || static_cast<unsigned char>(c) >= 0x80) plain = false;
  std::string out;
  if (plain) {
    // Without backslashes '...' means the same with standard_conforming_strings on or off.
    out.reserve(value.size() + 2);
    out.push_back('\'');
    for (const char c : value) {
      if (c == '\'') out.push_back('\'');
      out.push_back(c);
    }
    out.push_back('\'');
    return out;
  }
  // Escaping byte by byte is wrong in encodings such as SJIS or BIG5, where a backslash byte can
  // end a multibyte character; a dollar-quoted body is taken as is. The tag must not appear in
  // the value, not even as a prefix of the closing delimiter at its end.
  std::string tag = "$q";
  for (int n = 1; value.find(tag) != std::string_view::npos; ++n) tag = "$q" + std::to_string(n);
  tag.push_back('$');
  out.reserve(value.size() + 2 * tag.size());
  out += tag;
  out += value;
  out += tag;
  return out;
}

std::optional<std::size_t> tracked_parameter_index(std::string_view name) noexcept {
  // Every ParameterStatus of a login and every SET passes here: the size rules out all but one
  // name before any byte is compared.
  for (std::size_t i = 0; i < tracked_parameters.size(); ++i)
    if (tracked_parameters[i].size() == name.size() && parameter_name_equal(name, tracked_parameters[i])) return i;
  return std::nullopt;
}

bool spelt_as_server_would(std::size_t index, std::string_view value, const parameter_list* reported) noexcept {
  if (index >= tracked_parameters.size()) return false;
  const auto name = tracked_parameters[index];
  if (parameter_name_equal(name, "application_name"))
    return std::all_of(value.begin(), value.end(), [](char c) { return c >= 32 && c <= 126; });
  if (reported)
    for (const auto& [n, v] : *reported)
      if (parameter_name_equal(n, name)) return v == value;
  return false;
}

std::string build_set_sql(std::span<const parameter_change> changes, bool local) {
  std::string sql;
  for (const auto& c : changes) {
    sql += sql.empty() ? "SELECT " : ", ";
    sql += "pg_catalog.set_config(";
    sql += quote_literal(c.name);
    sql += ", ";
    sql += c.value ? quote_literal(*c.value) : std::string("NULL");
    sql += local ? ", true)" : ", false)";
  }
  return sql;
}

}  // namespace pgmux::protocol
