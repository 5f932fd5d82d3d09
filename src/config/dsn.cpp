// DSN parsing through libpq, and .pgpass look-ups.
#include "pgmux/config/dsn.hpp"

#include <libpq-fe.h>

#include <charconv>
#include <cstdlib>
#include <sstream>
#include <memory>

namespace pgmux::config {
namespace {

std::optional<std::uint16_t> parse_port(std::string_view s) {
  unsigned v = 0;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || ptr != s.data() + s.size() || v == 0 || v > 65535) return std::nullopt;
  return static_cast<std::uint16_t>(v);
}

// Splits one .pgpass field at an unescaped ':' and unescapes it. `wildcard`: the field is an
// unescaped "*" (an escaped one, "\*", is a literal star, as in libpq).
std::string next_field(std::string_view line, std::size_t& pos, bool* wildcard = nullptr) {
  std::string out;
  if (wildcard) *wildcard = line.substr(pos, 2) == "*:" || line.substr(pos) == "*";
  while (pos < line.size()) {
    char c = line[pos++];
    if (c == '\\' && pos < line.size()) {
      out.push_back(line[pos++]);
    } else if (c == ':') {
      return out;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

bool field_matches(const std::string& pattern, bool wildcard, std::string_view value) {
  return wildcard || pattern == value;
}

}  // namespace

std::variant<server_target, std::string> parse_dsn(std::string_view dsn) {
  char* errmsg = nullptr;
  std::unique_ptr<PQconninfoOption, decltype(&PQconninfoFree)> options(
      PQconninfoParse(std::string(dsn).c_str(), &errmsg), &PQconninfoFree);
  if (!options) {
    std::string message = errmsg ? errmsg : "cannot parse DSN";
    if (errmsg) PQfreemem(errmsg);
    while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
    return message;
  }
  server_target t;
  for (auto* o = options.get(); o->keyword; ++o) {
    if (!o->val) continue;
    const std::string_view key = o->keyword;
    const std::string value = o->val;
    if (key == "host" || key == "hostaddr") {
      if (value.find(',') != std::string::npos) return "\"" + std::string(key) + "\": multiple hosts are not supported";
      t.host = value;
    } else if (key == "port") {
      auto port = parse_port(value);
      if (!port) return "\"port\": invalid port \"" + value + "\"";
      t.port = *port;
    } else if (key == "dbname") {
      t.dbname = value;
    } else if (key == "user") {
      t.user = value;
    } else if (key == "password") {
      t.password = value;
    } else if (key == "passfile") {
      t.passfile = value;
    } else if (key == "application_name" || key == "fallback_application_name") {
      if (key == "application_name" || t.application_name.empty()) t.application_name = value;
    } else if (key == "options") {
      t.options = value;
    } else if (key == "connect_timeout") {
      int seconds = 0;
      const auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
      if (ec != std::errc{} || ptr != value.data() + value.size() || seconds < 0)
        return "\"connect_timeout\": invalid value \"" + value + "\"";
      if (seconds > 0) t.connect_timeout = std::chrono::seconds(seconds);
    } else if (key == "sslmode" && (value == "disable" || value == "allow" || value == "prefer")) {
      // Plaintext towards the server is what these modes allow; TLS comes with the security work.
    } else {
      return "DSN key \"" + std::string(key) + "\" is not supported";
    }
  }
  return t;
}

std::string passfile_path(const server_target& target) {
  if (!target.passfile.empty()) return target.passfile;
  if (const char* env = std::getenv("PGPASSFILE")) return env;
  if (const char* home = std::getenv("HOME")) return std::string(home) + "/.pgpass";
  return {};
}

std::optional<std::string> lookup_passfile(std::string_view contents, std::string_view host, std::uint16_t port,
                                           std::string_view dbname, std::string_view user) {
  std::istringstream in{std::string(contents)};
  const std::string port_text = std::to_string(port);
  // libpq matches "localhost" for Unix-socket connections.
  const std::string_view host_key = (!host.empty() && host[0] == '/') ? std::string_view("localhost") : host;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    std::size_t pos = 0;
    bool any_h = false, any_p = false, any_d = false, any_u = false;
    const auto h = next_field(line, pos, &any_h);
    const auto p = next_field(line, pos, &any_p);
    const auto d = next_field(line, pos, &any_d);
    const auto u = next_field(line, pos, &any_u);
    if (pos >= line.size() && line.back() != ':') continue;  // fewer than five fields
    const auto password = next_field(line, pos);
    if (field_matches(h, any_h, host_key) && field_matches(p, any_p, port_text) && field_matches(d, any_d, dbname) &&
        field_matches(u, any_u, user))
      return password;
  }
  return std::nullopt;
}

std::string resolve_password(const server_target& target, std::string_view user, std::string_view dbname) {
  if (!target.password.empty()) return target.password;
  return lookup_passfile(target.passfile_contents, target.host, target.port, dbname, user).value_or(std::string{});
}

}  // namespace pgmux::config
