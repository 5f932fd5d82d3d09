// Extended-query message bodies: bounds-checked decoders over client bytes, and encoders.
#include "pgmux/protocol/extended.hpp"

#include <cassert>
#include <limits>

#include "pgmux/protocol/tags.hpp"
#include "bytes.hpp"

namespace pgmux::protocol {
namespace {

using detail::begin;
using detail::finish;
using detail::put_cstr;
using detail::put_int16;
using detail::put_int32;
using detail::read_cstr;

std::optional<target_ref> decode_target(std::string_view body) {
  if (body.empty() || (body[0] != target_statement && body[0] != target_portal)) return std::nullopt;
  std::size_t pos = 1;
  const auto name = read_cstr(body, pos);
  if (!name || pos != body.size()) return std::nullopt;
  return target_ref{body[0], *name};
}

void encode_target(std::string& out, char tag, char kind, std::string_view name) {
  const auto at = begin(out, tag);
  out.push_back(kind);
  put_cstr(out, name);
  finish(out, at);
}

void encode_empty(std::string& out, backend_tag tag) {
  const auto at = begin(out, static_cast<char>(tag));
  finish(out, at);
}

}  // namespace

std::optional<parse_message> decode_parse(std::string_view body) {
  parse_message m;
  std::size_t pos = 0;
  const auto name = read_cstr(body, pos);
  if (!name) return std::nullopt;
  const auto query = read_cstr(body, pos);
  if (!query || body.size() - pos < 2) return std::nullopt;
  m.name = *name;
  m.query = *query;
  m.param_count = static_cast<std::uint16_t>(read_int16(body.data() + pos));
  pos += 2;
  const std::size_t types_size = std::size_t{m.param_count} * 4;
  if (body.size() - pos != types_size) return std::nullopt;  // short, or trailing bytes
  m.param_types = body.substr(pos);
  return m;
}

bind_names decode_bind_names(std::string_view prefix, std::size_t body_size) noexcept {
  bind_names r;
  // Only a prefix that holds the whole body can prove a name unterminated.
  const bool whole = prefix.size() >= body_size;
  prefix = prefix.substr(0, body_size);
  const auto portal_end = prefix.find('\0');
  const auto stmt_end = portal_end == std::string_view::npos ? portal_end : prefix.find('\0', portal_end + 1);
  if (stmt_end == std::string_view::npos) {
    r.status = whole ? parse_status::invalid : parse_status::need_more;
    return r;
  }
  r.status = parse_status::complete;
  r.portal = prefix.substr(0, portal_end);
  r.statement = prefix.substr(portal_end + 1, stmt_end - portal_end - 1);
  r.names_size = stmt_end + 1;
  return r;
}

std::optional<target_ref> decode_describe(std::string_view body) { return decode_target(body); }
std::optional<target_ref> decode_close(std::string_view body) { return decode_target(body); }

void encode_parse(std::string& out, std::string_view name, std::string_view query, std::string_view param_types) {
  assert(param_types.size() % 4 == 0 && param_types.size() / 4 <= 0xffff);
  const auto at = begin(out, static_cast<char>(frontend_tag::parse));
  put_cstr(out, name);
  put_cstr(out, query);
  put_int16(out, static_cast<std::int16_t>(static_cast<std::uint16_t>(param_types.size() / 4)));
  out.append(param_types);
  finish(out, at);
}

void encode_bind_header(std::string& out, std::size_t body_size, std::size_t names_size, std::string_view portal,
                        std::string_view statement) {
  assert(names_size <= body_size);
  const std::size_t length = 4 + (body_size - names_size) + portal.size() + 1 + statement.size() + 1;
  assert(length <= static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()));
  out.push_back(static_cast<char>(frontend_tag::bind));
  put_int32(out, static_cast<std::int32_t>(length));
  put_cstr(out, portal);
  put_cstr(out, statement);
}

void encode_describe(std::string& out, char kind, std::string_view name) {
  encode_target(out, static_cast<char>(frontend_tag::describe), kind, name);
}

void encode_close(std::string& out, char kind, std::string_view name) {
  encode_target(out, static_cast<char>(frontend_tag::close), kind, name);
}

void encode_parse_complete(std::string& out) { encode_empty(out, backend_tag::parse_complete); }
void encode_bind_complete(std::string& out) { encode_empty(out, backend_tag::bind_complete); }
void encode_close_complete(std::string& out) { encode_empty(out, backend_tag::close_complete); }

}  // namespace pgmux::protocol
