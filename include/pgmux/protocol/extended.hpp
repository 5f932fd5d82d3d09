// Extended-query messages pgmux reads or rewrites to carry prepared statements across pooled
// server connections: Parse, the names at the start of Bind, Describe and Close, plus what it
// sends or answers in their place. Decoded views point into the body they came from.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "pgmux/protocol/frame.hpp"

namespace pgmux::protocol {

// Parse: the statement's name ("" is the unnamed statement), its SQL and the parameter types
// the client fixed.
struct parse_message {
  std::string_view name;
  std::string_view query;
  std::uint16_t param_count = 0;
  std::string_view param_types;  // param_count big-endian int32 OIDs, exactly as sent
};

// nullopt when a terminator is missing, the types run past the body, or bytes follow them.
// The count is unsigned, as PostgreSQL reads it: up to 65535 parameters.
std::optional<parse_message> decode_parse(std::string_view body);

// The two names a Bind body starts with. Bind bodies carry the parameter values and can be
// far larger than the relay's buffer, so this reads only a prefix.
struct bind_names {
  parse_status status = parse_status::need_more;
  std::string_view portal;
  std::string_view statement;
  std::size_t names_size = 0;  // body bytes up to and including the statement name's NUL
};

// `prefix` is the start of a Bind body that is body_size bytes long (bytes past body_size are
// ignored). need_more while the names may end beyond the prefix; invalid when the body ends
// without them. The relay must treat need_more with a full buffer as an oversized name.
bind_names decode_bind_names(std::string_view prefix, std::size_t body_size) noexcept;

// What a Describe or Close is about.
inline constexpr char target_statement = 'S';
inline constexpr char target_portal = 'P';

struct target_ref {
  char kind = target_statement;  // target_statement or target_portal
  std::string_view name;
};

// nullopt unless the kind is 'S' or 'P' and the name ends exactly at the end of the body.
std::optional<target_ref> decode_describe(std::string_view body);
std::optional<target_ref> decode_close(std::string_view body);

// Towards servers. param_types holds whole OIDs (a multiple of 4 bytes, at most 65535 of them).
void encode_parse(std::string& out, std::string_view name, std::string_view query, std::string_view param_types);

// The head of a rewritten Bind: tag, the new length, portal and the new statement name. The
// caller then sends the original body from names_size on, unchanged; body_size and names_size
// are the original message's (bind_names::names_size). The new message must stay below 2 GiB,
// which max_message_size guarantees.
void encode_bind_header(std::string& out, std::size_t body_size, std::size_t names_size, std::string_view portal,
                        std::string_view statement);

void encode_describe(std::string& out, char kind, std::string_view name);
void encode_close(std::string& out, char kind, std::string_view name);

// Towards clients: the answers pgmux gives in place of a Parse or Close it did not forward.
// (ErrorResponse: encode_error_response in encode.hpp.)
void encode_parse_complete(std::string& out);
void encode_bind_complete(std::string& out);
void encode_close_complete(std::string& out);

}  // namespace pgmux::protocol
