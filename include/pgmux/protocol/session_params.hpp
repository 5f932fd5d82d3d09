// Session parameters a client sets at startup and pgmux must carry onto whichever server
// connection serves it: reading the startup `options` parameter as PostgreSQL does, naming
// parameters safely, and the SQL that makes a server connection's settings match a client's.
#pragma once
#include <array>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "pgmux/protocol/messages.hpp"

namespace pgmux::protocol {

// The settings in a startup `options` value: words separated by whitespace, a backslash
// escaping the next character (a space included), each word "-c name=value", "-cname=value" or
// "--name=value"; '-' in a name means '_'. Anything else is refused with a message in `error`,
// as PostgreSQL refuses it: other switches, a missing value, a stray word, an invalid name.
std::optional<parameter_list> parse_startup_options(std::string_view options, std::string& error);

// Letters, digits, '_' and '.', as dot-separated parts that do not start with a digit.
bool valid_parameter_name(std::string_view name) noexcept;

// Parameter names compare case-insensitively, as PostgreSQL compares them.
bool parameter_name_equal(std::string_view a, std::string_view b) noexcept;

// A SQL string literal holding `value` exactly, whatever standard_conforming_strings and the
// client_encoding are: '...' with quotes doubled when every byte is ASCII and none is a
// backslash, else a dollar-quoted string, which has no escapes that a multibyte character
// could swallow. `value` must not contain NUL.
std::string quote_literal(std::string_view value);

// The parameters whose values pgmux keeps equal to what each client set (all reported by the
// server in ParameterStatus).
inline constexpr std::array<std::string_view, 6> tracked_parameters{
    "client_encoding", "DateStyle", "TimeZone", "IntervalStyle", "standard_conforming_strings", "application_name",
};

// The index of `name` in tracked_parameters, ignoring case; nullopt when not tracked.
std::optional<std::size_t> tracked_parameter_index(std::string_view name) noexcept;

// Whether a client's startup value of tracked parameter `index` is certainly what the server
// would report for it, so that pgmux need not ask: it equals the server's reported value
// (`reported`, when known), or it is an application_name of printable ASCII, which PostgreSQL
// keeps as it is. Most logins take this path (client_encoding=UTF8, application_name=myapp).
bool spelt_as_server_would(std::size_t index, std::string_view value, const parameter_list* reported) noexcept;

// One setting to apply to a server connection; no value means back to its default (RESET).
struct parameter_change {
  std::string name;
  std::optional<std::string> value;
  friend bool operator==(const parameter_change&, const parameter_change&) = default;
};

// One statement applying `changes` in order, "" when there are none. It calls set_config
// rather than SET: set_config takes the value string as the startup packet gives it, where
// SET would quote a list parameter's value into one element (SET search_path = 'a, b' names
// the single schema "a, b"); a NULL value resets, like RESET. `local`: is_local true, so that
// the values last only to the end of the query's own transaction (its answer is what counts).
std::string build_set_sql(std::span<const parameter_change> changes, bool local = false);

}  // namespace pgmux::protocol
