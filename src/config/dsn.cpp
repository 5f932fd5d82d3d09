// DSN parsing through libpq, and .pgpass look-ups.
#include "pgmux/config/dsn.hpp"

#include <libpq-fe.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>

#include "pgmux/auth/certificates.hpp"
#include "pgmux/config/files.hpp"

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

const char* to_string(ssl_mode m) noexcept {
  switch (m) {
    case ssl_mode::disable: return "disable";
    case ssl_mode::allow: return "allow";
    case ssl_mode::prefer: break;
    case ssl_mode::require: return "require";
    case ssl_mode::verify_ca: return "verify-ca";
    case ssl_mode::verify_full: return "verify-full";
  }
  return "prefer";
}

std::optional<ssl_mode> parse_ssl_mode(std::string_view text) noexcept {
  for (auto m : {ssl_mode::disable, ssl_mode::allow, ssl_mode::prefer, ssl_mode::require, ssl_mode::verify_ca,
                 ssl_mode::verify_full})
    if (text == to_string(m)) return m;
  return std::nullopt;
}

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
  std::string host, hostaddr;
  for (auto* o = options.get(); o->keyword; ++o) {
    if (!o->val) continue;
    const std::string_view key = o->keyword;
    const std::string value = o->val;
    if (key == "host" || key == "hostaddr") {
      if (value.find(',') != std::string::npos) return "\"" + std::string(key) + "\": multiple hosts are not supported";
      (key == "host" ? host : hostaddr) = value;
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
    } else if (key == "sslmode") {
      auto mode = parse_ssl_mode(value);
      if (!mode)
        return "\"sslmode\": invalid value \"" + value +
               "\" (expected disable, allow, prefer, require, verify-ca or verify-full)";
      t.sslmode = *mode;
    } else if (key == "sslrootcert") {
      t.sslrootcert = value;
    } else if (key == "sslcert") {
      t.sslcert = value;
    } else if (key == "sslkey") {
      t.sslkey = value;
    } else if (key == "sslcrl") {
      t.sslcrl = value;
    } else if (key == "sslsni") {
      if (value != "0" && value != "1") return "\"sslsni\": invalid value \"" + value + "\" (expected 0 or 1)";
      t.sslsni = value == "1";
    } else {
      return "DSN key \"" + std::string(key) + "\" is not supported";
    }
  }
  // hostaddr is where to connect; host, when given too, is the name TLS verifies (as libpq).
  if (!hostaddr.empty()) t.host = hostaddr;
  else if (!host.empty()) t.host = host;
  t.tls_host = host.empty() ? t.host : host;
  if (t.sslmode == ssl_mode::verify_full && !hostaddr.empty() && host.empty())
    return "\"sslmode\": verify-full checks the server's host name, and the DSN has only hostaddr: add host";
  return t;
}

namespace {

std::string home_file(const char* name) {
  const char* home = std::getenv("HOME");
  if (!home || !*home) return {};
  return std::string(home) + "/.postgresql/" + name;
}

// One file of the TLS settings: the DSN's `key` names it (then it must be readable), else libpq's
// default, used when it exists. Its contents go to `out`; an error when it cannot be used.
std::string read_one(const std::string& named, const char* key, const char* default_name, std::string& out,
                     bool& found, std::string (*check)(std::string_view)) {
  found = false;
  const std::string path = named.empty() ? home_file(default_name) : named;
  if (named.empty() && !file_exists(path)) return {};
  auto text = read_regular_file(path);
  if (!text) return std::string("\"") + key + "\": cannot read " + path;
  if (check) {
    if (auto why = check(*text); !why.empty()) return std::string("\"") + key + "\": " + path + ": " + why;
  }
  out = std::move(*text);
  found = true;
  return {};
}

}  // namespace

std::optional<std::string> key_file_permission_error(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;  // reading it reports the problem
  // PostgreSQL's rule: private to its owner, or group-readable when root owns it.
  const bool too_open = (st.st_uid == ::geteuid() && (st.st_mode & (S_IRWXG | S_IRWXO))) ||
                        (st.st_uid == 0 && (st.st_mode & (S_IWGRP | S_IXGRP | S_IRWXO)));
  if (!too_open) return std::nullopt;
  return "private key file " + path + " has group or world access; it must have permissions u=rw (0600) or less, "
         "or u=rw,g=r (0640) or less when owned by root";
}

std::string read_tls_files(server_target& t) {
  t.sslrootcert_pem.clear();
  t.sslcrl_pem.clear();
  t.sslcert_pem.clear();
  t.sslkey_pem.clear();
  if (!t.tls_possible()) return {};
  bool found = false;
  if (auto e = read_one(t.sslrootcert, "sslrootcert", "root.crt", t.sslrootcert_pem, found, &auth::check_certificates_pem);
      !e.empty())
    return e;
  if (!found && (t.sslmode == ssl_mode::verify_ca || t.sslmode == ssl_mode::verify_full)) {
    const auto path = home_file("root.crt");
    return std::string("\"sslmode\": ") + to_string(t.sslmode) + " verifies the server's certificate and needs a root "
           "certificate file: set sslrootcert" + (path.empty() ? "" : ", or provide " + path);
  }
  if (found) {
    if (auto e = read_one(t.sslcrl, "sslcrl", "root.crl", t.sslcrl_pem, found, &auth::check_crls_pem); !e.empty()) return e;
  } else if (!t.sslcrl.empty()) {
    return "\"sslcrl\": a CRL is only used to verify the server's certificate, which needs a root certificate "
           "(sslrootcert)";
  }
  if (auto e = read_one(t.sslcert, "sslcert", "postgresql.crt", t.sslcert_pem, found, &auth::check_certificates_pem);
      !e.empty())
    return e;
  if (!found) {
    if (!t.sslkey.empty()) return "\"sslkey\": a private key is only used with a client certificate (sslcert)";
    return {};
  }
  const std::string key_path = t.sslkey.empty() ? home_file("postgresql.key") : t.sslkey;
  if (auto e = read_one(key_path, "sslkey", "postgresql.key", t.sslkey_pem, found, nullptr); !e.empty()) {
    if (t.sslkey.empty()) return "\"sslcert\": the client certificate has no private key: cannot read " + key_path;
    return e;
  }
  if (auto why = key_file_permission_error(key_path)) return "\"sslkey\": " + *why;
  if (auto why = auth::check_key_pair_pem(t.sslcert_pem, t.sslkey_pem); !why.empty())
    return "\"sslkey\": " + key_path + ": " + why;
  return {};
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
