// Parsing and validation of the config file.
#include "pgmux/config/load.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>
#include <sstream>

#include "pgmux/auth/certificates.hpp"
#include "pgmux/auth/secret.hpp"
#include "pgmux/config/files.hpp"

namespace pgmux::config {
namespace {

using json = nlohmann::json;

const char* type_name(const json& j) { return j.type_name(); }

// An error unless `path` names a regular file this process can open; `what` says what it is for.
std::optional<std::string> unreadable(const std::string& path, const char* what) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec) || !std::ifstream(path))
    return std::string("cannot read ") + what + " " + path;
  return std::nullopt;
}

// Collects errors while walking the document.
class reader {
 public:
  std::vector<config_error> errors;

  void error(const std::string& path, std::string message) { errors.push_back({path.empty() ? "/" : path, std::move(message)}); }

  bool expect_object(const json& j, const std::string& path) {
    if (j.is_object()) return true;
    error(path, std::string("expected an object, got ") + type_name(j));
    return false;
  }

  // Calls the handler of each key; unknown keys are errors.
  void for_each_key(const json& obj, const std::string& path,
                    const std::map<std::string, std::function<void(const json&, const std::string&)>>& handlers) {
    for (const auto& [key, value] : obj.items()) {
      const std::string sub = path + "/" + escape(key);
      auto it = handlers.find(key);
      if (it == handlers.end()) {
        error(sub, "unknown key");
        continue;
      }
      it->second(value, sub);
    }
  }

  void read_string(const json& j, const std::string& path, std::string& out) {
    if (!j.is_string()) return error(path, std::string("expected a string, got ") + type_name(j));
    out = j.get<std::string>();
  }

  void read_bool(const json& j, const std::string& path, bool& out) {
    if (!j.is_boolean()) return error(path, std::string("expected true or false, got ") + type_name(j));
    out = j.get<bool>();
  }

  template <typename Int>
  void read_uint(const json& j, const std::string& path, Int& out, std::uint64_t min, std::uint64_t max) {
    if (!j.is_number_integer() || (j.is_number_integer() && !j.is_number_unsigned() && j.get<std::int64_t>() < 0)) {
      return error(path, std::string("expected a non-negative integer, got ") + (j.is_number() ? j.dump() : type_name(j)));
    }
    const auto v = j.get<std::uint64_t>();
    if (v < min || v > max)
      return error(path, "expected an integer from " + std::to_string(min) + " to " + std::to_string(max) + ", got " +
                             std::to_string(v));
    out = static_cast<Int>(v);
  }

  void read_duration(const json& j, const std::string& path, duration& out) {
    if (j.is_number_integer() && j.get<std::int64_t>() == 0) {
      out = duration{0};
      return;
    }
    if (!j.is_string())
      return error(path, std::string("expected a duration such as \"250ms\", \"30s\", \"5min\", \"1h\", got ") + type_name(j));
    auto d = parse_duration(j.get<std::string>());
    if (!d)
      return error(path, "expected a duration such as \"250ms\", \"30s\", \"5min\", \"1h\" (or \"0\"), got \"" +
                             j.get<std::string>() + "\"");
    out = *d;
  }

  void read_size(const json& j, const std::string& path, std::size_t& out) {
    if (j.is_number_unsigned()) {
      out = j.get<std::size_t>();
      return;
    }
    if (!j.is_string()) return error(path, std::string("expected a size such as \"64MB\" or a number of bytes, got ") + type_name(j));
    const auto text = j.get<std::string>();
    std::size_t pos = 0;
    std::uint64_t value = 0;
    bool overflow = false;
    while (pos < text.size() && std::isdigit(static_cast<unsigned char>(text[pos]))) {
      const auto digit = static_cast<std::uint64_t>(text[pos++] - '0');
      if (value > (UINT64_MAX - digit) / 10) overflow = true;
      value = value * 10 + digit;
    }
    const std::string unit = text.substr(pos);
    std::uint64_t scale = 0;
    if (unit == "" || unit == "B") scale = 1;
    else if (unit == "kB" || unit == "KB" || unit == "KiB") scale = 1024;
    else if (unit == "MB" || unit == "MiB") scale = 1024 * 1024;
    else if (unit == "GB" || unit == "GiB") scale = 1024ull * 1024 * 1024;
    if (pos == 0 || scale == 0) return error(path, "expected a size such as \"64MB\", got \"" + text + "\"");
    if (overflow || value > SIZE_MAX / scale) return error(path, "size \"" + text + "\" is too large");
    out = static_cast<std::size_t>(value * scale);
  }

  // A number from `min` to `max` (integers allowed).
  void read_number(const json& j, const std::string& path, double& out, double min, double max) {
    if (!j.is_number()) return error(path, std::string("expected a number, got ") + type_name(j));
    const double v = j.get<double>();
    if (!(v >= min && v <= max)) {
      std::ostringstream range;
      range << "expected a number from " << min << " to " << max << ", got " << j.dump();
      return error(path, range.str());
    }
    out = v;
  }

  void read_adaptive(const json& j, const std::string& path, adaptive_settings& a) {
    if (!expect_object(j, path)) return;
    for_each_key(j, path, {
        {"enabled", [&](const json& v, const std::string& s) { read_bool(v, s, a.enabled); }},
        {"min", [&](const json& v, const std::string& s) { read_uint(v, s, a.min, 1, 100000); }},
        {"max", [&](const json& v, const std::string& s) { read_uint(v, s, a.max, 0, 100000); }},
        {"window", [&](const json& v, const std::string& s) { read_uint(v, s, a.window, 10, 100000); }},
        {"tolerance", [&](const json& v, const std::string& s) { read_number(v, s, a.tolerance, 1.1, 100); }},
        {"backoff", [&](const json& v, const std::string& s) { read_number(v, s, a.backoff, 0.1, 0.95); }},
        {"max_error_rate", [&](const json& v, const std::string& s) { read_number(v, s, a.max_error_rate, 0, 1); }},
    });
  }

  void read_pool(const json& j, const std::string& path, pool_settings& p) {
    if (!expect_object(j, path)) return;
    for_each_key(j, path, {
        {"mode", [&](const json& v, const std::string& s) {
           std::string m;
           read_string(v, s, m);
           if (m == "transaction") p.mode = pool_mode::transaction;
           else if (m == "session") p.mode = pool_mode::session;
           else if (m == "statement") p.mode = pool_mode::statement;
           else if (v.is_string()) error(s, "expected \"transaction\", \"session\" or \"statement\", got \"" + m + "\"");
         }},
        {"session_state", [&](const json& v, const std::string& s) {
           std::string m;
           read_string(v, s, m);
           if (m == "pin") p.session_state = session_state_policy::pin;
           else if (m == "reset") p.session_state = session_state_policy::reset;
           else if (m == "refuse") p.session_state = session_state_policy::refuse;
           else if (v.is_string()) error(s, "expected \"pin\", \"reset\" or \"refuse\", got \"" + m + "\"");
         }},
        {"min_size", [&](const json& v, const std::string& s) { read_uint(v, s, p.min_size, 0, 100000); }},
        {"max_size", [&](const json& v, const std::string& s) { read_uint(v, s, p.max_size, 1, 100000); }},
        {"max_inactive_connection_lifetime", [&](const json& v, const std::string& s) { read_duration(v, s, p.max_inactive_connection_lifetime); }},
        {"server_lifetime", [&](const json& v, const std::string& s) { read_duration(v, s, p.server_lifetime); }},
        {"command_timeout", [&](const json& v, const std::string& s) { read_duration(v, s, p.command_timeout); }},
        {"query_wait_timeout", [&](const json& v, const std::string& s) { read_duration(v, s, p.query_wait_timeout); }},
        {"idle_transaction_timeout", [&](const json& v, const std::string& s) { read_duration(v, s, p.idle_transaction_timeout); }},
        {"client_idle_timeout", [&](const json& v, const std::string& s) { read_duration(v, s, p.client_idle_timeout); }},
        {"connect_timeout", [&](const json& v, const std::string& s) { read_duration(v, s, p.connect_timeout); }},
        {"server_connect_failure_grace", [&](const json& v, const std::string& s) { read_duration(v, s, p.server_connect_failure_grace); }},
        {"cancel_grace", [&](const json& v, const std::string& s) { read_duration(v, s, p.cancel_grace); }},
        {"advice_log_after", [&](const json& v, const std::string& s) { read_duration(v, s, p.advice_log_after); }},
        {"query_stats", [&](const json& v, const std::string& s) {
           if (!expect_object(v, s)) return;
           for_each_key(v, s, {
               {"max_entries", [&](const json& x, const std::string& q) { read_uint(x, q, p.query_stats.max_entries, 0, 1000000); }},
               {"metrics", [&](const json& x, const std::string& q) { read_bool(x, q, p.query_stats.metrics); }},
               {"metrics_top", [&](const json& x, const std::string& q) { read_uint(x, q, p.query_stats.metrics_top, 1, 1000); }},
           });
         }},
        {"adaptive", [&](const json& v, const std::string& s) { read_adaptive(v, s, p.adaptive); }},
        {"max_prepared_statements", [&](const json& v, const std::string& s) { read_uint(v, s, p.max_prepared_statements, 0, 1000000); }},
        {"max_client_statements", [&](const json& v, const std::string& s) { read_uint(v, s, p.max_client_statements, 1, 10000000); }},
        {"max_replication_connections", [&](const json& v, const std::string& s) { read_uint(v, s, p.max_replication_connections, 0, 10000); }},
        {"max_client_statement_bytes", [&](const json& v, const std::string& s) {
           read_size(v, s, p.max_client_statement_bytes);
           if (p.max_client_statement_bytes < 1024) error(s, "must be at least 1kB");
         }},
    });
  }

  void check_pool(const pool_settings& p, const std::string& path) {
    if (p.min_size > p.max_size)
      error(path + "/min_size", "min_size (" + std::to_string(p.min_size) + ") is greater than max_size (" +
                                    std::to_string(p.max_size) + ")");
    if (p.connect_timeout.count() == 0) error(path + "/connect_timeout", "must be greater than 0");
    if (p.query_wait_timeout.count() == 0) error(path + "/query_wait_timeout", "must be greater than 0");
    if (p.adaptive.enabled && p.mode == pool_mode::session)
      error(path + "/adaptive/enabled",
            "the adaptive concurrency limit is for transaction and statement pooling: in session mode a server "
            "connection is held for a whole session, so the limit would cap sessions (turn it off for this pool)");
    if (p.adaptive.max != 0 && p.adaptive.min > p.adaptive.max)
      error(path + "/adaptive/min", "min (" + std::to_string(p.adaptive.min) + ") is greater than max (" +
                                        std::to_string(p.adaptive.max) + ")");
  }

  void read_rules(const json& j, const std::string& path, std::vector<auth::auth_rule>& rules) {
    if (!j.is_array()) return error(path, std::string("expected an array of rules, got ") + type_name(j));
    if (j.empty()) return error(path, "at least one rule is needed (none would reject every client)");
    rules.clear();
    for (std::size_t i = 0; i < j.size(); ++i) {
      const std::string rule_path = path + "/" + std::to_string(i);
      if (!expect_object(j[i], rule_path)) continue;
      auth::auth_rule rule;
      if (!j[i].contains("method"))
        error(rule_path + "/method", "missing: every rule needs a method (scram-sha-256, md5, password, trust, cert or reject)");
      const auto read_name = [&](const json& v, const std::string& p, std::string& out) {
        read_string(v, p, out);
        if (v.is_string() && out.empty()) error(p, "must not be empty (\"*\" matches any)");
      };
      for_each_key(j[i], rule_path, {
          {"database", [&](const json& v, const std::string& p) { read_name(v, p, rule.database); }},
          {"user", [&](const json& v, const std::string& p) { read_name(v, p, rule.user); }},
          {"address", [&](const json& v, const std::string& p) {
             std::string text, why;
             read_string(v, p, text);
             if (!v.is_string()) return;
             if (auto a = auth::parse_address_pattern(text, why)) rule.address = *a;
             else error(p, why);
           }},
          {"method", [&](const json& v, const std::string& p) {
             std::string text;
             read_string(v, p, text);
             if (!v.is_string()) return;
             if (auto m = auth::parse_auth_method(text)) rule.method = *m;
             else error(p, "expected \"scram-sha-256\", \"md5\", \"password\", \"trust\", \"cert\" or \"reject\", got \"" + text + "\"");
           }},
      });
      rules.push_back(std::move(rule));
    }
  }

  // The users file: a JSON object user -> secret, each secret checked now. Its errors are
  // reported at `path` (the config key naming the file) with the JSON pointer inside the file.
  void read_users_file(const std::string& file, const std::string& path, std::map<std::string, std::string>& users) {
    const auto text = read_regular_file(file);
    if (!text) return error(path, "cannot read users file " + file);
    json doc;
    try {
      doc = json::parse(*text, nullptr, /*allow_exceptions=*/true, /*ignore_comments=*/true);
    } catch (const json::exception& e) {  // parse_error, or out_of_range for a number like 1e999
      return error(path, "users file " + file + ": invalid JSON: " + e.what());
    }
    if (!doc.is_object())
      return error(path, "users file " + file + ": expected an object of user name -> secret, got " + type_name(doc));
    for (const auto& [user, secret] : doc.items()) {
      const std::string where = "users file " + file + " at /" + escape(user) + ": ";
      if (user.empty()) {
        error(path, where + "user name must not be empty");
        continue;
      }
      if (!secret.is_string()) {
        error(path, where + "expected a secret string, got " + type_name(secret));
        continue;
      }
      std::string why;
      if (auth::secret_kind_of(secret.get<std::string>(), why) == auth::secret_kind::none) {
        error(path, where + why);
        continue;
      }
      users.emplace(user, secret.get<std::string>());
    }
  }

  void read_auth(const json& j, const std::string& path, auth_config& a) {
    if (!expect_object(j, path)) return;
    for_each_key(j, path, {
        {"rules", [&](const json& v, const std::string& p) { read_rules(v, p, a.rules); }},
        {"users_file", [&](const json& v, const std::string& p) {
           read_string(v, p, a.users_file);
           if (v.is_string() && !a.users_file.empty()) read_users_file(a.users_file, p, a.users);
         }},
        {"auth_query", [&](const json& v, const std::string& p) {
           read_string(v, p, a.auth_query);
           if (!a.auth_query.empty() && a.auth_query.find("$1") == std::string::npos)
             error(p, "must take the user name as $1, e.g. \"SELECT rolpassword FROM pg_authid WHERE rolname = $1\"");
         }},
        {"auth_user", [&](const json& v, const std::string& p) { read_string(v, p, a.auth_user); }},
        {"auth_query_cache", [&](const json& v, const std::string& p) { read_duration(v, p, a.auth_query_cache); }},
        {"allow_cleartext_without_tls", [&](const json& v, const std::string& p) { read_bool(v, p, a.allow_cleartext_without_tls); }},
        {"max_authenticating", [&](const json& v, const std::string& p) { read_uint(v, p, a.max_authenticating, 1, 1000000); }},
        {"max_authenticating_per_address", [&](const json& v, const std::string& p) {
           read_uint(v, p, a.max_authenticating_per_address, 1, 1000000);
         }},
        {"startup_timeout", [&](const json& v, const std::string& p) {
           read_duration(v, p, a.startup_timeout);
           if (a.startup_timeout.count() == 0) error(p, "must be greater than 0");
         }},
        {"failure_delay", [&](const json& v, const std::string& p) { read_duration(v, p, a.failure_delay); }},
    });
    if (!a.auth_user.empty() && a.auth_query.empty())
      error(path + "/auth_user", "auth_user runs auth_query, and there is no auth_query");
  }

  void read_tls(const json& j, const std::string& path, tls_config& t) {
    if (!expect_object(j, path)) return;
    const std::size_t errors_before = errors.size();
    const auto read_file = [&](const json& v, const std::string& p, std::string& out, const char* what) {
      read_string(v, p, out);
      if (!v.is_string()) return;
      if (out.empty()) return error(p, std::string("must not be empty: leave the key out for no ") + what);
      if (auto why = unreadable(out, what)) error(p, *why);
    };
    for_each_key(j, path, {
        {"mode", [&](const json& v, const std::string& p) {
           std::string m;
           read_string(v, p, m);
           if (m == "disable") t.mode = tls_mode::disable;
           else if (m == "allow") t.mode = tls_mode::allow;
           else if (m == "require") t.mode = tls_mode::require;
           else if (v.is_string()) error(p, "expected \"disable\", \"allow\" or \"require\", got \"" + m + "\"");
         }},
        {"cert", [&](const json& v, const std::string& p) { read_file(v, p, t.cert, "certificate file"); }},
        {"key", [&](const json& v, const std::string& p) { read_file(v, p, t.key, "private key file"); }},
        {"ca", [&](const json& v, const std::string& p) { read_file(v, p, t.ca, "CA file"); }},
        {"min_version", [&](const json& v, const std::string& p) {
           if (v == "1.2") t.min_version = tls_version::v1_2;
           else if (v == "1.3") t.min_version = tls_version::v1_3;
           else error(p, "expected \"1.2\" or \"1.3\" (a string), got " + v.dump());
         }},
    });
    if (t.mode != tls_mode::disable) {
      const std::string needs = std::string("missing: tls.mode \"") + to_string(t.mode) + "\" needs ";
      if (!j.contains("cert")) error(path + "/cert", needs + "a certificate file");
      if (!j.contains("key")) error(path + "/key", needs + "a private key file");
    }
    // Disabled: the files are only checked to be readable (above), not parsed.
    if (t.mode == tls_mode::disable || t.cert.empty() || t.key.empty() || errors.size() != errors_before) return;
    read_tls_files(path, t);
  }

  // The certificate, key and CA files of TLS towards clients, read and checked now so that
  // starting TLS later cannot fail on them.
  void read_tls_files(const std::string& path, tls_config& t) {
    const auto read = [&](const std::string& file, const char* key, std::string& out) {
      auto text = read_whole_file(file);
      if (!text) {
        error(path + "/" + key, "cannot read " + file);
        return false;
      }
      out = std::move(*text);
      return true;
    };
    if (read(t.cert, "cert", t.cert_pem)) {
      if (auto why = auth::check_certificates_pem(t.cert_pem); !why.empty()) error(path + "/cert", t.cert + ": " + why);
      else if (read(t.key, "key", t.key_pem)) {
        if (auto why = key_file_permission_error(t.key)) error(path + "/key", *why);
        else if (auto mismatch = auth::check_key_pair_pem(t.cert_pem, t.key_pem); !mismatch.empty())
          error(path + "/key", t.key + ": " + mismatch);
      }
    }
    if (!t.ca.empty() && read(t.ca, "ca", t.ca_pem)) {
      if (auto why = auth::check_certificates_pem(t.ca_pem); !why.empty()) error(path + "/ca", t.ca + ": " + why);
    }
  }

  // Rules that could never succeed with the TLS and cleartext settings are refused now.
  void check_rules(const config& cfg) {
    for (std::size_t i = 0; i < cfg.auth.rules.size(); ++i) {
      const auto& r = cfg.auth.rules[i];
      const std::string p = "/auth/rules/" + std::to_string(i) + "/method";
      const bool local_only = r.address.type == auth::address_pattern::kind::local;
      if (r.method == auth::auth_method::cert) {
        if (local_only) error(p, "the cert method needs TLS, which Unix-socket clients do not use");
        else if (cfg.tls.mode == tls_mode::disable) error(p, "the cert method needs TLS: set tls.mode and tls.ca");
        else if (cfg.tls.ca.empty()) error(p, "the cert method needs tls.ca to verify client certificates");
      }
      if (r.method == auth::auth_method::password && !local_only && cfg.tls.mode == tls_mode::disable &&
          !cfg.auth.allow_cleartext_without_tls)
        error(p, "the password method sends passwords in clear text: enable TLS (tls.mode) or set "
                 "auth.allow_cleartext_without_tls");
    }
  }

  static std::string escape(const std::string& key) {
    std::string out;
    for (char c : key) {
      if (c == '~') out += "~0";
      else if (c == '/') out += "~1";
      else out.push_back(c);
    }
    return out;
  }
};

}  // namespace

const char* to_string(pool_mode m) noexcept {
  switch (m) {
    case pool_mode::session: return "session";
    case pool_mode::statement: return "statement";
    case pool_mode::transaction: break;
  }
  return "transaction";
}

const char* to_string(session_state_policy p) noexcept {
  switch (p) {
    case session_state_policy::reset: return "reset";
    case session_state_policy::refuse: return "refuse";
    case session_state_policy::pin: break;
  }
  return "pin";
}

const char* to_string(log_level l) noexcept {
  switch (l) {
    case log_level::debug: return "debug";
    case log_level::info: return "info";
    case log_level::warn: return "warn";
    case log_level::error: return "error";
  }
  return "info";
}

const char* to_string(log_format f) noexcept { return f == log_format::json ? "json" : "text"; }

const char* to_string(tls_mode m) noexcept {
  switch (m) {
    case tls_mode::allow: return "allow";
    case tls_mode::require: return "require";
    case tls_mode::disable: break;
  }
  return "disable";
}

const char* to_string(tls_version v) noexcept { return v == tls_version::v1_3 ? "1.3" : "1.2"; }

const database_config* find_database(const config& cfg, std::string_view name) noexcept {
  if (auto it = cfg.databases.find(std::string(name)); it != cfg.databases.end()) return &it->second;
  if (auto it = cfg.databases.find("*"); it != cfg.databases.end()) return &it->second;
  return nullptr;
}

load_result load_config_text(std::string_view text) {
  load_result result;
  json doc;
  try {
    doc = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/true, /*ignore_comments=*/true);
  } catch (const json::exception& e) {  // parse_error, or out_of_range for a number like 1e999
    result.errors.push_back({"/", std::string("invalid JSON: ") + e.what()});
    return result;
  }
  reader r;
  config cfg;
  if (!r.expect_object(doc, "")) {
    result.errors = std::move(r.errors);
    return result;
  }
  // pool_defaults first: databases inherit from it, whatever the key order in the file.
  if (doc.contains("pool_defaults")) r.read_pool(doc["pool_defaults"], "/pool_defaults", cfg.pool_defaults);
  r.check_pool(cfg.pool_defaults, "/pool_defaults");

  r.for_each_key(doc, "", {
      {"listen", [&](const json& v, const std::string& s) {
         if (!r.expect_object(v, s)) return;
         r.for_each_key(v, s, {
             {"host", [&](const json& x, const std::string& p) { r.read_string(x, p, cfg.listen.host); }},
             {"port", [&](const json& x, const std::string& p) { r.read_uint(x, p, cfg.listen.port, 1, 65535); }},
             {"unix_socket_dir", [&](const json& x, const std::string& p) { r.read_string(x, p, cfg.listen.unix_socket_dir); }},
             {"reuse_port", [&](const json& x, const std::string& p) { r.read_bool(x, p, cfg.listen.reuse_port); }},
         });
       }},
      {"workers", [&](const json& v, const std::string& s) {
         if (v.is_string() && v.get<std::string>() == "auto") {
           cfg.workers = std::clamp(std::thread::hardware_concurrency(), 1u, max_workers);  // 0 when unknown
           return;
         }
         if (v.is_string())
           return r.error(s, "expected an integer from 1 to " + std::to_string(max_workers) + " or \"auto\", got \"" +
                                 v.get<std::string>() + "\"");
         r.read_uint(v, s, cfg.workers, 1, max_workers);
       }},
      {"pool_defaults", [](const json&, const std::string&) {}},
      {"max_message_size", [&](const json& v, const std::string& s) {
         r.read_size(v, s, cfg.max_message_size);
         if (cfg.max_message_size < 1024) r.error(s, "must be at least 1kB");
       }},
      {"max_client_conn", [&](const json& v, const std::string& s) { r.read_uint(v, s, cfg.max_client_conn, 1, 1000000); }},
      {"shutdown_timeout", [&](const json& v, const std::string& s) { r.read_duration(v, s, cfg.shutdown_timeout); }},
      {"drain_delay", [&](const json& v, const std::string& s) { r.read_duration(v, s, cfg.drain_delay); }},
      {"park_idle_clients_after", [&](const json& v, const std::string& s) {
         r.read_duration(v, s, cfg.park_idle_clients_after);
         // Each worker sweeps its idle clients at this period while it has some.
         if (cfg.park_idle_clients_after > duration{0} && cfg.park_idle_clients_after < 10ms)
           r.error(s, "must be 0 (never) or at least 10ms");
       }},
      {"watch_config", [&](const json& v, const std::string& s) { r.read_bool(v, s, cfg.watch_config); }},
      {"instance_id", [&](const json& v, const std::string& s) { r.read_uint(v, s, cfg.instance_id, 1, 255); }},
      {"peers", [&](const json& v, const std::string& s) {
         if (!r.expect_object(v, s)) return;
         for (const auto& [id, address] : v.items()) {
           const std::string path = s + "/" + reader::escape(id);
           const bool numeric = !id.empty() && id.size() <= 3 && id.find_first_not_of("0123456789") == std::string::npos;
           const unsigned n = numeric ? static_cast<unsigned>(std::stoul(id)) : 0;
           if (n < 1 || n > 255) {
             r.error(path, "a peer's key is its instance_id, from 1 to 255");
             continue;
           }
           std::string at;
           r.read_string(address, path, at);
           if (!address.is_string()) continue;
           const auto colon = at.rfind(':');
           // An IPv6 address is written in brackets, so that its last group is not read as the port.
           const bool bare_ipv6 = colon != std::string::npos && at.substr(0, colon).find(':') != std::string::npos &&
                                  !(at.front() == '[' && at[colon - 1] == ']');
           if (colon == std::string::npos || colon == 0 || colon + 1 == at.size() || at.size() - colon - 1 > 5 || bare_ipv6 ||
               at.find_first_not_of("0123456789", colon + 1) != std::string::npos ||
               std::stoul(at.substr(colon + 1)) == 0 || std::stoul(at.substr(colon + 1)) > 65535) {
             r.error(path, "expected \"host:port\" ([::1]:6432 for IPv6; a host that starts with / is a Unix socket "
                               "directory), got \"" +
                               at + "\"");
             continue;
           }
           cfg.peers[n] = at;
         }
       }},
      {"admin", [&](const json& v, const std::string& s) {
         if (!r.expect_object(v, s)) return;
         r.for_each_key(v, s, {
             {"users", [&](const json& x, const std::string& p) {
                if (!x.is_array()) return r.error(p, std::string("expected an array of user names, got ") + x.type_name());
                for (std::size_t i = 0; i < x.size(); ++i) {
                  std::string name;
                  r.read_string(x[i], p + "/" + std::to_string(i), name);
                  if (x[i].is_string()) cfg.admin_users.push_back(std::move(name));
                }
              }},
         });
       }},
      {"metrics", [&](const json& v, const std::string& s) {
         if (v.is_null()) return;  // disabled
         if (!r.expect_object(v, s)) return;
         r.for_each_key(v, s, {
             {"listen", [&](const json& x, const std::string& p) {
                r.read_string(x, p, cfg.metrics_listen);
                const auto colon = cfg.metrics_listen.rfind(':');
                unsigned port = 0;
                const bool ok = colon != std::string::npos && colon > 0 && colon + 1 < cfg.metrics_listen.size() &&
                                cfg.metrics_listen.find_first_not_of("0123456789", colon + 1) == std::string::npos &&
                                (port = static_cast<unsigned>(std::stoul(cfg.metrics_listen.substr(colon + 1, 5)))) > 0 &&
                                port <= 65535 && cfg.metrics_listen.size() - colon - 1 <= 5;
                if (x.is_string() && !ok) r.error(p, "expected \"host:port\", e.g. \"127.0.0.1:9930\", got \"" + cfg.metrics_listen + "\"");
              }},
         });
       }},
      {"log", [&](const json& v, const std::string& s) {
         if (!r.expect_object(v, s)) return;
         r.for_each_key(v, s, {
             {"level", [&](const json& x, const std::string& p) {
                std::string level;
                r.read_string(x, p, level);
                if (level == "debug") cfg.log.level = log_level::debug;
                else if (level == "info") cfg.log.level = log_level::info;
                else if (level == "warn" || level == "warning") cfg.log.level = log_level::warn;
                else if (level == "error") cfg.log.level = log_level::error;
                else if (x.is_string()) r.error(p, "expected \"debug\", \"info\", \"warn\" or \"error\", got \"" + level + "\"");
              }},
             {"format", [&](const json& x, const std::string& p) {
                std::string format;
                r.read_string(x, p, format);
                if (format == "text") cfg.log.format = log_format::text;
                else if (format == "json") cfg.log.format = log_format::json;
                else if (x.is_string()) r.error(p, "expected \"text\" or \"json\", got \"" + format + "\"");
              }},
             {"connections", [&](const json& x, const std::string& p) { r.read_bool(x, p, cfg.log.connections); }},
             {"slow_query", [&](const json& x, const std::string& p) { r.read_duration(x, p, cfg.log.slow_query); }},
         });
       }},
      {"auth_timeout", [&](const json& v, const std::string& s) {
         r.read_duration(v, s, cfg.auth_timeout);
         if (cfg.auth_timeout.count() == 0) r.error(s, "must be greater than 0");
       }},
      {"auth", [&](const json& v, const std::string& s) { r.read_auth(v, s, cfg.auth); }},
      {"tls", [&](const json& v, const std::string& s) { r.read_tls(v, s, cfg.tls); }},
      {"databases", [&](const json& v, const std::string& s) {
         if (!r.expect_object(v, s)) return;
         for (const auto& [name, entry] : v.items()) {
           const std::string path = s + "/" + reader::escape(name);
           if (name.empty()) {
             r.error(path, "database name must not be empty");
             continue;
           }
           database_config db;
           db.name = name;
           db.pool = cfg.pool_defaults;
           if (!r.expect_object(entry, path)) continue;
           if (!entry.contains("dsn")) r.error(path + "/dsn", "missing: every database needs a dsn");
           r.for_each_key(entry, path, {
               {"dsn", [&](const json& x, const std::string& p) {
                  r.read_string(x, p, db.dsn);
                  if (!x.is_string()) return;
                  auto parsed = parse_dsn(db.dsn);
                  if (auto* err = std::get_if<std::string>(&parsed)) r.error(p, *err);
                  else db.target = std::get<server_target>(parsed);
                }},
               {"pool", [&](const json& x, const std::string& p) {
                  r.read_pool(x, p, db.pool);
                  r.check_pool(db.pool, p);
                }},
           });
           cfg.databases.emplace(name, std::move(db));
         }
       }},
  });
  if (!cfg.peers.empty() && cfg.instance_id == 0)
    r.error("/peers", "needs instance_id: a peer finds the instance of a cancel key by it");
  if (!doc.contains("databases") || cfg.databases.empty())
    r.error("/databases", "at least one database is needed");
  r.check_rules(cfg);
  if (cfg.auth_timeout.count() > 0 && cfg.auth.failure_delay >= cfg.auth_timeout) {
    if (doc.contains("auth") && doc["auth"].is_object() && doc["auth"].contains("failure_delay"))
      r.error("/auth/failure_delay", "must be shorter than auth_timeout (" + format_duration(cfg.auth_timeout) + ")");
    else
      r.error("/auth_timeout", "must be longer than auth.failure_delay (" + format_duration(cfg.auth.failure_delay) + ")");
  }
  if (cfg.auth.startup_timeout > cfg.auth_timeout) {
    // The default follows a shorter auth_timeout; a value given explicitly must fit in it.
    if (doc.contains("auth") && doc["auth"].is_object() && doc["auth"].contains("startup_timeout"))
      r.error("/auth/startup_timeout", "must not be longer than auth_timeout (" + format_duration(cfg.auth_timeout) + ")");
    else
      cfg.auth.startup_timeout = cfg.auth_timeout;
  }

  if (!r.errors.empty()) {
    result.errors = std::move(r.errors);
    return result;
  }
  // Passfiles and TLS files are read now, so that connecting never touches the file system.
  for (auto& [name, db] : cfg.databases) {
    if (auto e = read_tls_files(db.target); !e.empty())
      result.errors.push_back({"/databases/" + reader::escape(name) + "/dsn", std::move(e)});
    if (!db.target.password.empty()) continue;
    const auto path = passfile_path(db.target);
    if (path.empty()) continue;
    auto contents = read_whole_file(path);
    if (!contents) {
      if (!db.target.passfile.empty())
        result.errors.push_back({"/databases/" + reader::escape(name) + "/dsn", "cannot read passfile " + path});
      continue;
    }
    db.target.passfile_contents = std::move(*contents);
  }
  if (result.errors.empty()) result.cfg = std::move(cfg);
  return result;
}

load_result load_config_file(const std::string& path) {
  auto text = read_whole_file(path);
  if (!text) return load_result{std::nullopt, {{"/", "cannot open config file " + path}}};
  return load_config_text(*text);
}

std::string format_errors(const std::vector<config_error>& errors) {
  std::string out;
  for (const auto& e : errors) out += e.path + ": " + e.message + "\n";
  return out;
}

}  // namespace pgmux::config
