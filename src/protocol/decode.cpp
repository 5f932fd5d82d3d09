// Decoders for the message bodies pgmux acts on. Every read is bounds-checked: bodies come
// from the network.
#include "pgmux/protocol/decode.hpp"

#include "pgmux/protocol/frame.hpp"
#include "pgmux/protocol/tags.hpp"
#include "bytes.hpp"

namespace pgmux::protocol {
using detail::read_cstr;

const std::string* startup_message::find(std::string_view name) const noexcept {
  for (const auto& [k, v] : parameters)
    if (k == name) return &v;
  return nullptr;
}

std::string startup_message::user() const {
  const auto* u = find("user");
  return u ? *u : std::string{};
}

std::string startup_message::database() const {
  const auto* d = find("database");
  return d && !d->empty() ? *d : user();
}

std::optional<startup_packet> decode_startup_packet(std::string_view body, std::string& error) {
  if (body.size() < 4) {
    error = "startup packet too short";
    return std::nullopt;
  }
  startup_packet p;
  const auto code = read_int32(body.data());
  if (code == ssl_request_code || code == gssenc_request_code) {
    if (body.size() != 4) {
      error = "malformed encryption request";
      return std::nullopt;
    }
    p.kind = code == ssl_request_code ? startup_kind::ssl_request : startup_kind::gssenc_request;
    return p;
  }
  if (code == cancel_request_code) {
    if (body.size() != 12) {
      error = "malformed cancel request";
      return std::nullopt;
    }
    p.kind = startup_kind::cancel_request;
    p.cancel = cancel_key{read_int32(body.data() + 4), read_int32(body.data() + 8)};
    return p;
  }
  if ((code >> 16) != 3) {
    error = "unsupported frontend protocol " + std::to_string(code >> 16) + "." +
            std::to_string(code & 0xffff) + ": server supports 3.0";
    return std::nullopt;
  }
  p.kind = startup_kind::startup;
  p.startup.protocol = code;
  std::size_t pos = 4;
  for (;;) {
    auto name = read_cstr(body, pos);
    if (!name) {
      error = "startup packet not terminated";
      return std::nullopt;
    }
    if (name->empty()) break;
    auto value = read_cstr(body, pos);
    if (!value) {
      error = "startup parameter \"" + std::string(*name) + "\" has no value";
      return std::nullopt;
    }
    p.startup.parameters.emplace_back(std::string(*name), std::string(*value));
  }
  if (pos != body.size()) {
    error = "trailing bytes after startup parameters";
    return std::nullopt;
  }
  if (!p.startup.find("user") || p.startup.user().empty()) {
    error = "no PostgreSQL user name specified in startup packet";
    return std::nullopt;
  }
  return p;
}

std::optional<error_fields> decode_error_response(std::string_view body) {
  error_fields f;
  std::size_t pos = 0;
  while (pos < body.size()) {
    const char field = body[pos++];
    if (field == '\0') return f;
    auto value = read_cstr(body, pos);
    if (!value) return std::nullopt;
    switch (field) {
      case 'S': if (f.severity.empty()) f.severity = *value; break;
      case 'V': f.severity = *value; break;
      case 'C': f.code = *value; break;
      case 'M': f.message = *value; break;
      case 'D': f.detail = *value; break;
      case 'H': f.hint = *value; break;
      default: break;
    }
  }
  return std::nullopt;  // missing terminator
}

std::optional<authentication_request> decode_authentication(std::string_view body) {
  if (body.size() < 4) return std::nullopt;
  return authentication_request{read_int32(body.data()), body.substr(4)};
}

std::optional<std::pair<std::string, std::string>> decode_parameter_status(std::string_view body) {
  std::size_t pos = 0;
  auto name = read_cstr(body, pos);
  if (!name) return std::nullopt;
  auto value = read_cstr(body, pos);
  if (!value || pos != body.size()) return std::nullopt;
  return std::pair{std::string(*name), std::string(*value)};
}

std::optional<notification> decode_notification(std::string_view body) {
  if (body.size() < 4) return std::nullopt;
  notification n;
  n.pid = read_int32(body.data());
  std::size_t pos = 4;
  const auto channel = read_cstr(body, pos);
  if (!channel) return std::nullopt;
  const auto payload = read_cstr(body, pos);
  if (!payload || pos != body.size()) return std::nullopt;
  n.channel = *channel;
  n.payload = *payload;
  return n;
}

std::optional<cancel_key> decode_backend_key_data(std::string_view body) {
  if (body.size() != 8) return std::nullopt;
  return cancel_key{read_int32(body.data()), read_int32(body.data() + 4)};
}

std::optional<char> decode_ready_for_query(std::string_view body) {
  if (body.size() != 1) return std::nullopt;
  const char s = body[0];
  if (s != 'I' && s != 'T' && s != 'E') return std::nullopt;
  return s;
}

std::optional<std::string_view> decode_query(std::string_view body) {
  std::size_t pos = 0;
  auto sql = read_cstr(body, pos);
  if (!sql || pos != body.size()) return std::nullopt;
  return sql;
}

std::vector<std::string> decode_sasl_mechanisms(std::string_view data) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos < data.size()) {
    auto m = read_cstr(data, pos);
    if (!m || m->empty()) break;
    out.emplace_back(*m);
  }
  return out;
}

std::optional<data_row> decode_data_row(std::string_view body) {
  if (body.size() < 2) return std::nullopt;
  const auto columns = static_cast<std::uint16_t>(read_int16(body.data()));
  std::size_t pos = 2;
  data_row row;
  row.reserve(columns);
  for (std::uint16_t i = 0; i < columns; ++i) {
    if (body.size() - pos < 4) return std::nullopt;
    const auto length = read_int32(body.data() + pos);
    pos += 4;
    if (length == -1) {
      row.emplace_back(std::nullopt);
      continue;
    }
    if (length < 0 || body.size() - pos < static_cast<std::size_t>(length)) return std::nullopt;
    row.emplace_back(body.substr(pos, static_cast<std::size_t>(length)));
    pos += static_cast<std::size_t>(length);
  }
  if (pos != body.size()) return std::nullopt;
  return row;
}

std::optional<std::string_view> decode_password_message(std::string_view body) {
  std::size_t pos = 0;
  auto password = read_cstr(body, pos);
  if (!password || pos != body.size()) return std::nullopt;
  return password;
}

std::optional<sasl_initial_response> decode_sasl_initial_response(std::string_view body) {
  std::size_t pos = 0;
  auto mechanism = read_cstr(body, pos);
  if (!mechanism || body.size() - pos < 4) return std::nullopt;
  const auto length = read_int32(body.data() + pos);
  pos += 4;
  sasl_initial_response r{*mechanism, std::nullopt};
  if (length == -1) {
    if (pos != body.size()) return std::nullopt;
    return r;
  }
  if (length < 0 || body.size() - pos != static_cast<std::size_t>(length)) return std::nullopt;
  r.data = body.substr(pos);
  return r;
}

std::string_view decode_sasl_response(std::string_view body) noexcept { return body; }

}  // namespace pgmux::protocol
