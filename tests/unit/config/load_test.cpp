// Config file -> validated config; every error names its JSON pointer.
// Cases:
//   the example config loads, comments and all
//   the shipped example config loads and documents the defaults
//   omitted keys take their documented defaults
//   databases inherit pool_defaults whatever the key order
//   a database pool overrides pool_defaults key by key
//   find_database prefers the exact name, then "*"
//   invalid JSON is reported at "/"
//   a number too large for a double is invalid JSON, in the config and in the users file
//   unknown keys are reported where they are
//   wrong types are reported where they are
//   min_size above max_size is refused
//   zero connect, query wait and auth timeouts are refused
//   bad durations are refused
//   DSN errors are reported at the database's dsn
//   missing dsn is refused
//   no databases is refused
//   sizes accept units
//   sizes that overflow are refused, not wrapped
//   keys are escaped in JSON pointers
//   all errors are reported at once
//   the passfile named in a DSN is read at load
//   load_config_file reads a file and reports a missing one
//   metrics.listen takes host:port, null turns it off
//   auth and tls take their defaults when absent
//   auth rules are read in order, omitted keys matching any
//   bad auth rules are reported where they are
//   cert rules need TLS with a CA, password rules TLS or allow_cleartext_without_tls
//   the users file is read at load, secrets of both kinds
//   users file errors name the file and the pointer inside it
//   auth settings are read and checked
//   failure_delay must be shorter than auth_timeout
//   startup_timeout fits in auth_timeout
//   per-client statement bounds are read and checked
//   tls settings are read and checked
//   tls allow and require need a certificate and a key
//   tls files must exist and be readable
//   tls files are parsed: certificates, a private key of its owner that matches, the CA
//   DSN TLS files are read at load and checked
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

#include "pgmux/config/load.hpp"
#include "support/test_certs.hpp"

using namespace pgmux::config;
using namespace std::chrono_literals;

namespace {

// Every key, in the form an operator writes it.
constexpr const char* example_conf = R"json(
// pgmux example configuration
{
  /* where clients connect */
  "listen": { "host": "0.0.0.0", "port": 7432, "unix_socket_dir": "/tmp" },
  "workers": 4,
  "max_message_size": "32MB",
  "max_client_conn": 500,
  "auth_timeout": "15s",
  "auth": {
    "rules": [
      { "database": "app", "user": "alice", "address": "10.0.0.0/8", "method": "scram-sha-256" },
      { "address": "local", "method": "trust" }   // the rest match any database and user
    ],
    "auth_query": "SELECT rolpassword FROM pg_authid WHERE rolname = $1",
    "auth_user": "pgmux_auth",
    "auth_query_cache": "1min",
    "allow_cleartext_without_tls": true,
    "max_authenticating": 50,
    "failure_delay": "1s"
  },
  "tls": { "mode": "disable", "min_version": "1.3" },
  "pool_defaults": {
    "mode": "session",
    "min_size": 1,
    "max_size": 10,
    "max_inactive_connection_lifetime": "5min",
    "server_lifetime": "1h",
    "command_timeout": "250ms",
    "query_wait_timeout": "30s",
    "idle_transaction_timeout": "10s",
    "client_idle_timeout": "0",
    "connect_timeout": "2s"
  },
  "databases": {
    "app": { "dsn": "host=db.internal port=5433 dbname=app_prod user=app password=secret" },  // trailing comment
    "*": { "dsn": "postgresql://fallback:pw@10.0.0.9/postgres", "pool": { "max_size": 3, "mode": "transaction" } }
  }
}
)json";

// A minimal valid document with `extra` spliced in at top level (after a comma).
std::string with_db(const std::string& extra = {}) {
  std::string doc = R"({"databases": {"app": {"dsn": "host=h password=p"}})";
  if (!extra.empty()) doc += ", " + extra;
  return doc + "}";
}

// A file under /tmp with `contents`, removed at scope exit.
struct temp_file {
  std::string path;
  explicit temp_file(const std::string& contents) {
    char name[] = "/tmp/pgmux-load-test-XXXXXX";
    const int fd = mkstemp(name);
    REQUIRE(fd >= 0);
    close(fd);
    path = name;
    std::ofstream(path) << contents;
  }
  ~temp_file() { std::remove(path.c_str()); }
  temp_file(const temp_file&) = delete;
  temp_file& operator=(const temp_file&) = delete;
};

// A certificate, its key and a CA certificate in files, as TLS settings name them.
struct tls_files {
  test_certs::pem_pair server = test_certs::self_signed("pgmux");
  test_certs::pem_pair ca_pair = test_certs::self_signed("test CA");
  temp_file cert{server.cert}, key{server.key}, ca{ca_pair.cert};
  // "cert": ..., "key": ... members of a "tls" object.
  std::string cert_and_key() const { return R"("cert": ")" + cert.path + R"(", "key": ")" + key.path + "\""; }
};

// with_db with an "auth" object holding `body`.
std::string with_auth(const std::string& body) { return with_db(R"("auth": {)" + body + "}"); }
std::string with_tls(const std::string& body) { return with_db(R"("tls": {)" + body + "}"); }

config loaded(const std::string& text) {
  auto r = load_config_text(text);
  INFO(format_errors(r.errors));
  REQUIRE(r.errors.empty());
  REQUIRE(r.cfg);
  return *r.cfg;
}

// Loads `text`, expects it refused with an error at exactly `path`; returns that error's message.
std::string refused_at(const std::string& text, const std::string& path) {
  auto r = load_config_text(text);
  INFO("config: ", text);
  INFO("errors:\n", format_errors(r.errors));
  CHECK_FALSE(r.cfg);
  for (const auto& e : r.errors) {
    if (e.path == path) {
      CHECK_FALSE(e.message.empty());
      return e.message;
    }
  }
  FAIL("no error at ", path);
  return {};
}

}  // namespace

TEST_SUITE("config_load") {

TEST_CASE("the example config loads, comments and all") {
  const auto cfg = loaded(example_conf);
  CHECK(cfg.listen.host == "0.0.0.0");
  CHECK(cfg.listen.port == 7432);
  CHECK(cfg.listen.unix_socket_dir == "/tmp");
  CHECK(cfg.workers == 4);
  CHECK(cfg.max_message_size == 32u * 1024 * 1024);
  CHECK(cfg.max_client_conn == 500);
  CHECK(cfg.auth_timeout == 15s);
  REQUIRE(cfg.auth.rules.size() == 2);
  CHECK(cfg.auth.rules[0].database == "app");
  CHECK(cfg.auth.rules[0].user == "alice");
  CHECK(cfg.auth.rules[0].address.to_string() == "10.0.0.0/8");
  CHECK(cfg.auth.rules[0].method == pgmux::auth::auth_method::scram_sha_256);
  CHECK(cfg.auth.rules[1].database == "*");
  CHECK(cfg.auth.rules[1].address.to_string() == "local");
  CHECK(cfg.auth.auth_query == "SELECT rolpassword FROM pg_authid WHERE rolname = $1");
  CHECK(cfg.auth.auth_user == "pgmux_auth");
  CHECK(cfg.auth.auth_query_cache == 1min);
  CHECK(cfg.auth.allow_cleartext_without_tls);
  CHECK(cfg.auth.max_authenticating == 50);
  CHECK(cfg.auth.failure_delay == 1s);
  CHECK(cfg.tls.mode == tls_mode::disable);
  CHECK(cfg.tls.min_version == tls_version::v1_3);
  const auto& p = cfg.pool_defaults;
  CHECK(p.mode == pool_mode::session);
  CHECK(p.min_size == 1);
  CHECK(p.max_size == 10);
  CHECK(p.max_inactive_connection_lifetime == 5min);
  CHECK(p.server_lifetime == 1h);
  CHECK(p.command_timeout == 250ms);
  CHECK(p.query_wait_timeout == 30s);
  CHECK(p.idle_transaction_timeout == 10s);
  CHECK(p.client_idle_timeout == 0s);
  CHECK(p.connect_timeout == 2s);

  REQUIRE(cfg.databases.size() == 2);
  const auto& app = cfg.databases.at("app");
  CHECK(app.name == "app");
  CHECK(app.dsn == "host=db.internal port=5433 dbname=app_prod user=app password=secret");
  CHECK(app.target.host == "db.internal");
  CHECK(app.target.port == 5433);
  CHECK(app.target.dbname == "app_prod");
  CHECK(app.target.user == "app");
  CHECK(app.target.password == "secret");
  CHECK(app.pool == p);
  const auto& any = cfg.databases.at("*");
  CHECK(any.target.host == "10.0.0.9");
  CHECK(any.target.user == "fallback");
  CHECK(any.pool.max_size == 3);
  CHECK(any.pool.mode == pool_mode::transaction);
  CHECK(any.pool.min_size == 1);  // inherited
}

TEST_CASE("the shipped example config loads and documents the defaults") {
  const std::string path = std::string(PGMUX_SOURCE_DIR) + "/conf/pgmux.example.json";
  if (!std::ifstream(path)) {
    MESSAGE("no ", path, " yet: skipped");
    return;
  }
  const auto r = load_config_file(path);
  INFO(format_errors(r.errors));
  REQUIRE(r.cfg);
  // The file says every key is at its default value except where noted (databases).
  const config defaults;
  CHECK(r.cfg->pool_defaults == defaults.pool_defaults);
  CHECK(r.cfg->listen.host == defaults.listen.host);
  CHECK(r.cfg->listen.port == defaults.listen.port);
  CHECK(r.cfg->listen.unix_socket_dir == defaults.listen.unix_socket_dir);
  CHECK(r.cfg->workers == defaults.workers);
  CHECK(r.cfg->max_client_conn == defaults.max_client_conn);
  CHECK(r.cfg->max_message_size == defaults.max_message_size);
  CHECK(r.cfg->auth_timeout == defaults.auth_timeout);
  CHECK(r.cfg->shutdown_timeout == defaults.shutdown_timeout);
  CHECK(r.cfg->drain_delay == defaults.drain_delay);
  CHECK(r.cfg->park_idle_clients_after == defaults.park_idle_clients_after);
  CHECK(r.cfg->watch_config == defaults.watch_config);
  CHECK(r.cfg->listen.reuse_port == defaults.listen.reuse_port);
  CHECK(r.cfg->instance_id == defaults.instance_id);
  CHECK(r.cfg->peers == defaults.peers);
  CHECK(r.cfg->auth.rules == defaults.auth.rules);
  CHECK(r.cfg->auth.users_file == defaults.auth.users_file);
  CHECK(r.cfg->auth.auth_query == defaults.auth.auth_query);
  CHECK(r.cfg->auth.auth_user == defaults.auth.auth_user);
  CHECK(r.cfg->auth.auth_query_cache == defaults.auth.auth_query_cache);
  CHECK(r.cfg->auth.allow_cleartext_without_tls == defaults.auth.allow_cleartext_without_tls);
  CHECK(r.cfg->auth.max_authenticating == defaults.auth.max_authenticating);
  CHECK(r.cfg->auth.failure_delay == defaults.auth.failure_delay);
  CHECK(r.cfg->tls.mode == defaults.tls.mode);
  CHECK(r.cfg->tls.min_version == defaults.tls.min_version);
  CHECK(r.cfg->tls.cert.empty());
  CHECK(find_database(*r.cfg, "anything") != nullptr);
}

TEST_CASE("omitted keys take their documented defaults") {
  const auto cfg = loaded(with_db());
  CHECK(cfg.listen.host == "127.0.0.1");
  CHECK(cfg.listen.port == 6432);
  CHECK(cfg.listen.unix_socket_dir.empty());
  CHECK(cfg.workers == 2);
  CHECK(cfg.max_message_size == 64u * 1024 * 1024);
  CHECK(cfg.max_client_conn == 10000);
  CHECK(cfg.auth_timeout == 10s);
  CHECK(cfg.shutdown_timeout == 30s);
  const auto& p = cfg.databases.at("app").pool;
  CHECK(p.mode == pool_mode::transaction);
  CHECK(p.min_size == 2);
  CHECK(p.max_size == 20);
  CHECK(p.max_inactive_connection_lifetime == 300s);
  CHECK(p.server_lifetime == 3600s);
  CHECK(p.command_timeout == 30s);
  CHECK(p.query_wait_timeout == 120s);
  CHECK(p.idle_transaction_timeout == 0s);
  CHECK(p.client_idle_timeout == 0s);
  CHECK(p.connect_timeout == 5s);
  CHECK(p.server_connect_failure_grace == 2s);
  CHECK(p.cancel_grace == 5s);
  CHECK(p.advice_log_after == 300s);
  CHECK(p.max_client_statements == 10000);
  CHECK(p.max_client_statement_bytes == 16u * 1024 * 1024);
  CHECK(p.max_replication_connections == 0);
}

TEST_CASE("max_replication_connections is read and checked") {
  const auto pool = [](const std::string& body) { return with_db(R"("pool_defaults": {)" + body + "}"); };
  CHECK(loaded(pool(R"("max_replication_connections": 2)")).pool_defaults.max_replication_connections == 2);
  CHECK(loaded(pool(R"("max_replication_connections": 7)")).databases.at("app").pool.max_replication_connections == 7);
  refused_at(pool(R"("max_replication_connections": -1)"), "/pool_defaults/max_replication_connections");
  refused_at(pool(R"("max_replication_connections": "2")"), "/pool_defaults/max_replication_connections");
}

TEST_CASE("adaptive concurrency is off by default, read and checked") {
  const auto pool = [](const std::string& body) { return with_db(R"("pool_defaults": {)" + body + "}"); };
  const auto off = loaded(with_db()).databases.at("app").pool.adaptive;
  CHECK_FALSE(off.enabled);
  CHECK(off.min == 2);
  CHECK(off.max == 0);
  CHECK(off.window == 100);
  CHECK(off.tolerance == 2.0);
  CHECK(off.backoff == 0.75);
  CHECK(off.max_error_rate == 0.05);
  const auto cfg = loaded(pool(R"("adaptive": {"enabled": true, "min": 3, "max": 40, "window": 50, "tolerance": 1.5,
                                   "backoff": 0.5, "max_error_rate": 0.1})"));
  const auto& a = cfg.databases.at("app").pool.adaptive;
  CHECK(a.enabled);
  CHECK(a.min == 3);
  CHECK(a.max == 40);
  CHECK(a.window == 50);
  CHECK(a.tolerance == 1.5);
  CHECK(a.backoff == 0.5);
  CHECK(a.max_error_rate == 0.1);
  // A database's "adaptive" overrides the defaults' key by key.
  const auto mixed = loaded(R"({"pool_defaults": {"adaptive": {"enabled": true, "max": 30}},
      "databases": {"app": {"dsn": "host=h password=p", "pool": {"adaptive": {"min": 4}}}}})");
  CHECK(mixed.databases.at("app").pool.adaptive.enabled);
  CHECK(mixed.databases.at("app").pool.adaptive.max == 30);
  CHECK(mixed.databases.at("app").pool.adaptive.min == 4);
  CHECK(mixed.pool_defaults.adaptive.min == 2);
  refused_at(pool(R"("adaptive": true)"), "/pool_defaults/adaptive");
  refused_at(pool(R"("adaptive": {"enabled": "yes"})"), "/pool_defaults/adaptive/enabled");
  refused_at(pool(R"("adaptive": {"min": 0})"), "/pool_defaults/adaptive/min");
  refused_at(pool(R"("adaptive": {"window": 5})"), "/pool_defaults/adaptive/window");
  refused_at(pool(R"("adaptive": {"tolerance": 1.0})"), "/pool_defaults/adaptive/tolerance");
  refused_at(pool(R"("adaptive": {"backoff": 1})"), "/pool_defaults/adaptive/backoff");
  refused_at(pool(R"("adaptive": {"max_error_rate": "5%"})"), "/pool_defaults/adaptive/max_error_rate");
  refused_at(pool(R"("adaptive": {"mni": 2})"), "/pool_defaults/adaptive/mni");
  CHECK(refused_at(pool(R"("adaptive": {"min": 8, "max": 4})"), "/pool_defaults/adaptive/min").find("greater than max") !=
        std::string::npos);
  refused_at(R"({"databases": {"app": {"dsn": "host=h password=p", "pool": {"adaptive": {"min": 9, "max": 3}}}}})",
             "/databases/app/pool/adaptive/min");
}

TEST_CASE("per-client statement bounds are read and checked") {
  const auto pool = [](const std::string& body) { return with_db(R"("pool_defaults": {)" + body + "}"); };
  const auto cfg = loaded(pool(R"("max_client_statements": 5, "max_client_statement_bytes": "1MB")"));
  CHECK(cfg.databases.at("app").pool.max_client_statements == 5);
  CHECK(cfg.databases.at("app").pool.max_client_statement_bytes == 1024u * 1024);
  CHECK(loaded(pool(R"("max_client_statement_bytes": 4096)")).pool_defaults.max_client_statement_bytes == 4096);
  refused_at(pool(R"("max_client_statements": 0)"), "/pool_defaults/max_client_statements");
  refused_at(pool(R"("max_client_statements": "10")"), "/pool_defaults/max_client_statements");
  refused_at(pool(R"("max_client_statement_bytes": 100)"), "/pool_defaults/max_client_statement_bytes");
  refused_at(pool(R"("max_client_statement_bytes": "lots")"), "/pool_defaults/max_client_statement_bytes");
}

TEST_CASE("databases inherit pool_defaults whatever the key order") {
  const std::string defaults = R"("pool_defaults": {"max_size": 7, "command_timeout": "1s"})";
  const std::string databases = R"("databases": {"app": {"dsn": "host=h password=p", "pool": {"min_size": 3}}})";
  SUBCASE("pool_defaults first") {
    const auto cfg = loaded("{" + defaults + ", " + databases + "}");
    CHECK(cfg.databases.at("app").pool.max_size == 7);
    CHECK(cfg.databases.at("app").pool.command_timeout == 1s);
    CHECK(cfg.databases.at("app").pool.min_size == 3);
  }
  SUBCASE("databases first") {
    const auto cfg = loaded("{" + databases + ", " + defaults + "}");
    CHECK(cfg.databases.at("app").pool.max_size == 7);
    CHECK(cfg.databases.at("app").pool.command_timeout == 1s);
    CHECK(cfg.databases.at("app").pool.min_size == 3);
  }
}

TEST_CASE("a database pool overrides pool_defaults key by key") {
  // pool_defaults sets every key; the database overrides one; only that one may differ.
  const std::string defaults = R"("pool_defaults": {
      "mode": "transaction", "min_size": 1, "max_size": 10, "max_inactive_connection_lifetime": "1min",
      "server_lifetime": "2h", "command_timeout": "3s", "query_wait_timeout": "4s",
      "idle_transaction_timeout": "5s", "client_idle_timeout": "6s", "connect_timeout": "7s",
      "server_connect_failure_grace": "8s", "cancel_grace": "9s"})";
  pool_settings base;
  base.mode = pool_mode::transaction;
  base.min_size = 1;
  base.max_size = 10;
  base.max_inactive_connection_lifetime = 1min;
  base.server_lifetime = 2h;
  base.command_timeout = 3s;
  base.query_wait_timeout = 4s;
  base.idle_transaction_timeout = 5s;
  base.client_idle_timeout = 6s;
  base.connect_timeout = 7s;
  base.server_connect_failure_grace = 8s;
  base.cancel_grace = 9s;

  struct override_case {
    const char* key;
    const char* value;
    std::function<void(pool_settings&)> expect;
  };
  const override_case cases[] = {
      {"mode", R"("session")", [](pool_settings& p) { p.mode = pool_mode::session; }},
      {"min_size", "0", [](pool_settings& p) { p.min_size = 0; }},
      {"max_size", "50", [](pool_settings& p) { p.max_size = 50; }},
      {"max_inactive_connection_lifetime", R"("90s")", [](pool_settings& p) { p.max_inactive_connection_lifetime = 90s; }},
      {"server_lifetime", R"("0")", [](pool_settings& p) { p.server_lifetime = 0s; }},
      {"command_timeout", R"("100ms")", [](pool_settings& p) { p.command_timeout = 100ms; }},
      {"query_wait_timeout", R"("1h")", [](pool_settings& p) { p.query_wait_timeout = 1h; }},
      {"idle_transaction_timeout", "0", [](pool_settings& p) { p.idle_transaction_timeout = 0s; }},
      {"client_idle_timeout", R"("30min")", [](pool_settings& p) { p.client_idle_timeout = 30min; }},
      {"connect_timeout", R"("500ms")", [](pool_settings& p) { p.connect_timeout = 500ms; }},
      {"server_connect_failure_grace", R"("0")", [](pool_settings& p) { p.server_connect_failure_grace = 0s; }},
      {"cancel_grace", R"("250ms")", [](pool_settings& p) { p.cancel_grace = 250ms; }},
      {"advice_log_after", R"("0")", [](pool_settings& p) { p.advice_log_after = 0s; }},
      {"adaptive", R"({"enabled": true})", [](pool_settings& p) { p.adaptive.enabled = true; }},
      {"session_state", R"("refuse")", [](pool_settings& p) { p.session_state = session_state_policy::refuse; }},
      {"session_state", R"("reset")", [](pool_settings& p) { p.session_state = session_state_policy::reset; }},
  };
  for (const auto& c : cases) {
    CAPTURE(std::string(c.key));
    const std::string text = "{" + defaults + R"(, "databases": {"app": {"dsn": "host=h password=p", "pool": {")" +
                             c.key + "\": " + c.value + R"(}}, "other": {"dsn": "host=h password=p"}}})";
    const auto cfg = loaded(text);
    pool_settings expected = base;
    c.expect(expected);
    REQUIRE(expected != base);  // the override must change something, or the case proves nothing
    CHECK(cfg.pool_defaults == base);
    CHECK(cfg.databases.at("app").pool == expected);
    CHECK(cfg.databases.at("other").pool == base);
  }
}

TEST_CASE("find_database prefers the exact name, then \"*\"") {
  const auto cfg = loaded(R"({"databases": {
      "app": {"dsn": "host=exact password=p"},
      "*": {"dsn": "host=wildcard password=p"}}})");
  REQUIRE(find_database(cfg, "app") != nullptr);
  CHECK(find_database(cfg, "app")->target.host == "exact");
  REQUIRE(find_database(cfg, "other") != nullptr);
  CHECK(find_database(cfg, "other")->target.host == "wildcard");
  CHECK(find_database(cfg, "")->target.host == "wildcard");

  const auto only_exact = loaded(with_db());
  CHECK(find_database(only_exact, "app") != nullptr);
  CHECK(find_database(only_exact, "App") == nullptr);
  CHECK(find_database(only_exact, "other") == nullptr);
}

TEST_CASE("invalid JSON is reported at \"/\"") {
  CHECK(refused_at(R"({"databases": )", "/").find("JSON") != std::string::npos);
  refused_at(R"({"databases": {},})", "/");
  refused_at("", "/");
  refused_at("[]", "/");
  refused_at("42", "/");
}

TEST_CASE("a number too large for a double is invalid JSON, in the config and in the users file") {
  // nlohmann::json throws out_of_range for these, not parse_error.
  CHECK(refused_at(with_db(R"("workers": 1e999)"), "/").find("JSON") != std::string::npos);
  refused_at("44E544", "/");
  const temp_file users(R"({"alice": -1e400})");
  CHECK(refused_at(with_auth(R"("users_file": ")" + users.path + R"(")"), "/auth/users_file").find("JSON") !=
        std::string::npos);
}

TEST_CASE("unknown keys are reported where they are") {
  SUBCASE("top level") { CHECK(refused_at(with_db(R"("databses": 1)"), "/databses") == "unknown key"); }
  SUBCASE("listen") { refused_at(with_db(R"("listen": {"hots": "x"})"), "/listen/hots"); }
  SUBCASE("pool_defaults") { refused_at(with_db(R"("pool_defaults": {"max_sise": 3})"), "/pool_defaults/max_sise"); }
  SUBCASE("database entry") {
    refused_at(R"({"databases": {"app": {"dsn": "host=h", "pol": {}}}})", "/databases/app/pol");
  }
  SUBCASE("database pool") {
    refused_at(R"({"databases": {"app": {"dsn": "host=h", "pool": {"size": 3}}}})", "/databases/app/pool/size");
  }
}

TEST_CASE("workers \"auto\" is one per CPU") {
  const auto cfg = loaded(with_db(R"("workers": "auto")"));
  CHECK(cfg.workers == std::clamp(std::thread::hardware_concurrency(), 1u, 256u));
  CHECK(cfg.workers >= 1);
  CHECK(refused_at(with_db(R"("workers": "many")"), "/workers").find("auto") != std::string::npos);
  // Up to config::max_workers, each of which /healthz watches (net::max_lag_workers).
  CHECK(loaded(with_db(R"("workers": 256)")).workers == pgmux::config::max_workers);
  refused_at(with_db(R"("workers": 257)"), "/workers");
}

TEST_CASE("wrong types are reported where they are") {
  SUBCASE("workers as a string") { refused_at(with_db(R"("workers": "2")"), "/workers"); }
  SUBCASE("workers zero") { refused_at(with_db(R"("workers": 0)"), "/workers"); }
  SUBCASE("port out of range") { refused_at(with_db(R"("listen": {"port": 70000})"), "/listen/port"); }
  SUBCASE("port negative") { refused_at(with_db(R"("listen": {"port": -1})"), "/listen/port"); }
  SUBCASE("host as a number") { refused_at(with_db(R"("listen": {"host": 5})"), "/listen/host"); }
  SUBCASE("listen not an object") { refused_at(with_db(R"("listen": "0.0.0.0:6432")"), "/listen"); }
  SUBCASE("max_size negative") { refused_at(with_db(R"("pool_defaults": {"max_size": -1})"), "/pool_defaults/max_size"); }
  SUBCASE("max_size fractional") { refused_at(with_db(R"("pool_defaults": {"max_size": 2.5})"), "/pool_defaults/max_size"); }
  SUBCASE("max_size zero") { refused_at(with_db(R"("pool_defaults": {"max_size": 0, "min_size": 0})"), "/pool_defaults/max_size"); }
  SUBCASE("min_size as a string") { refused_at(with_db(R"("pool_defaults": {"min_size": "1"})"), "/pool_defaults/min_size"); }
  SUBCASE("mode unknown") {
    CHECK(refused_at(with_db(R"("pool_defaults": {"mode": "batch"})"), "/pool_defaults/mode").find("statement") !=
          std::string::npos);
  }
  SUBCASE("mode not a string") { refused_at(with_db(R"("pool_defaults": {"mode": 1})"), "/pool_defaults/mode"); }
  SUBCASE("session_state unknown") {
    CHECK(refused_at(with_db(R"("pool_defaults": {"session_state": "keep"})"), "/pool_defaults/session_state")
              .find("\"pin\", \"reset\" or \"refuse\"") != std::string::npos);
  }
  SUBCASE("pool_defaults not an object") { refused_at(with_db(R"("pool_defaults": [])"), "/pool_defaults"); }
  SUBCASE("database pool not an object") {
    refused_at(R"({"databases": {"app": {"dsn": "host=h", "pool": 3}}})", "/databases/app/pool");
  }
  SUBCASE("databases not an object") { refused_at(R"({"databases": ["app"]})", "/databases"); }
  SUBCASE("database entry not an object") { refused_at(R"({"databases": {"app": "host=h"}})", "/databases/app"); }
  SUBCASE("dsn not a string") { refused_at(R"({"databases": {"app": {"dsn": 42}}})", "/databases/app/dsn"); }
  SUBCASE("max_message_size with a bad unit") { refused_at(with_db(R"("max_message_size": "12XB")"), "/max_message_size"); }
  SUBCASE("max_message_size too small") { refused_at(with_db(R"("max_message_size": 100)"), "/max_message_size"); }
  SUBCASE("max_message_size negative") { refused_at(with_db(R"("max_message_size": -5)"), "/max_message_size"); }
  SUBCASE("max_client_conn as a bool") { refused_at(with_db(R"("max_client_conn": true)"), "/max_client_conn"); }
}

TEST_CASE("min_size above max_size is refused") {
  SUBCASE("in pool_defaults") {
    refused_at(with_db(R"("pool_defaults": {"min_size": 5, "max_size": 4})"), "/pool_defaults/min_size");
  }
  SUBCASE("in a database pool") {
    refused_at(R"({"databases": {"app": {"dsn": "host=h", "pool": {"min_size": 9, "max_size": 3}}}})",
               "/databases/app/pool/min_size");
  }
  SUBCASE("a database max_size below the inherited min_size") {
    refused_at(R"({"pool_defaults": {"min_size": 4}, "databases": {"app": {"dsn": "host=h", "pool": {"max_size": 3}}}})",
               "/databases/app/pool/min_size");
  }
  SUBCASE("equal is fine") { loaded(with_db(R"("pool_defaults": {"min_size": 4, "max_size": 4})")); }
}

TEST_CASE("zero connect, query wait and auth timeouts are refused") {
  refused_at(with_db(R"("pool_defaults": {"connect_timeout": "0"})"), "/pool_defaults/connect_timeout");
  refused_at(with_db(R"("pool_defaults": {"query_wait_timeout": 0})"), "/pool_defaults/query_wait_timeout");
  refused_at(R"({"databases": {"app": {"dsn": "host=h", "pool": {"connect_timeout": "0ms"}}}})",
             "/databases/app/pool/connect_timeout");
  refused_at(with_db(R"("auth_timeout": "0s")"), "/auth_timeout");
}

TEST_CASE("bad durations are refused") {
  SUBCASE("no unit") {
    CHECK(refused_at(with_db(R"("pool_defaults": {"server_lifetime": "5"})"), "/pool_defaults/server_lifetime")
              .find("\"5\"") != std::string::npos);
  }
  SUBCASE("unknown unit") { refused_at(with_db(R"("auth_timeout": "1d")"), "/auth_timeout"); }
  SUBCASE("negative") {
    refused_at(R"({"databases": {"app": {"dsn": "host=h", "pool": {"command_timeout": "-1s"}}}})",
               "/databases/app/pool/command_timeout");
  }
  SUBCASE("a number other than 0") {
    refused_at(with_db(R"("pool_defaults": {"command_timeout": 30})"), "/pool_defaults/command_timeout");
  }
  SUBCASE("0 as a number is fine") {
    CHECK(loaded(with_db(R"("pool_defaults": {"command_timeout": 0})")).pool_defaults.command_timeout == 0s);
  }
}

TEST_CASE("DSN errors are reported at the database's dsn") {
  SUBCASE("unparsable") { refused_at(R"({"databases": {"app": {"dsn": "host='oops"}}})", "/databases/app/dsn"); }
  SUBCASE("unknown libpq keyword") {
    CHECK(refused_at(R"({"databases": {"app": {"dsn": "hots=h"}}})", "/databases/app/dsn").find("hots") !=
          std::string::npos);
  }
  SUBCASE("unsupported key") {
    CHECK(refused_at(R"({"databases": {"app": {"dsn": "host=h sslpassword=x"}}})", "/databases/app/dsn")
              .find("sslpassword") != std::string::npos);
  }
  SUBCASE("bad sslmode") {
    CHECK(refused_at(R"({"databases": {"app": {"dsn": "host=h sslmode=required"}}})", "/databases/app/dsn")
              .find("sslmode") != std::string::npos);
  }
}

TEST_CASE("missing dsn is refused") {
  refused_at(R"({"databases": {"app": {}}})", "/databases/app/dsn");
  refused_at(R"({"databases": {"app": {"pool": {"max_size": 2}}}})", "/databases/app/dsn");
}

TEST_CASE("no databases is refused") {
  SUBCASE("empty object") { refused_at(R"({"databases": {}})", "/databases"); }
  SUBCASE("absent") { refused_at(R"({"workers": 2})", "/databases"); }
  SUBCASE("empty name") { refused_at(R"({"databases": {"": {"dsn": "host=h"}}})", "/databases/"); }
}

TEST_CASE("sizes accept units") {
  CHECK(loaded(with_db(R"("max_message_size": "1kB")")).max_message_size == 1024);
  CHECK(loaded(with_db(R"("max_message_size": "2MB")")).max_message_size == 2u * 1024 * 1024);
  CHECK(loaded(with_db(R"("max_message_size": "1GB")")).max_message_size == 1024u * 1024 * 1024);
  CHECK(loaded(with_db(R"("max_message_size": "4096")")).max_message_size == 4096);
  CHECK(loaded(with_db(R"("max_message_size": 65536)")).max_message_size == 65536);
  refused_at(with_db(R"("max_message_size": "MB")"), "/max_message_size");
  refused_at(with_db(R"("max_message_size": "1.5MB")"), "/max_message_size");
}

TEST_CASE("sizes that overflow are refused, not wrapped") {
  // (2^54 + 1) GiB is 2^84 + 2^30 bytes: wrapped to 64 bits it would read as 1GiB.
  refused_at(with_db(R"("max_message_size": "18014398509481985GB")"), "/max_message_size");
  refused_at(with_db(R"("max_message_size": "99999999999999999999999")"), "/max_message_size");
}

TEST_CASE("keys are escaped in JSON pointers") {
  refused_at(R"({"databases": {"a/b~c": {"dsn": "host=h", "x": 1}}})", "/databases/a~1b~0c/x");
}

TEST_CASE("all errors are reported at once") {
  const auto r = load_config_text(R"({"workers": "many", "listen": {"port": 0}, "pool_defaults": {"max_size": "x"},
      "databases": {"app": {"dsn": "host=h", "pool": {"mode": "x"}}, "b": {}}})");
  CHECK_FALSE(r.cfg);
  std::vector<std::string> paths;
  for (const auto& e : r.errors) paths.push_back(e.path);
  INFO(format_errors(r.errors));
  CHECK(paths.size() == 5);  // each once
  for (const char* p : {"/workers", "/listen/port", "/pool_defaults/max_size", "/databases/app/pool/mode", "/databases/b/dsn"})
    CHECK(std::find(paths.begin(), paths.end(), p) != paths.end());
  const auto text = format_errors(r.errors);
  CHECK(text.find("/workers: ") != std::string::npos);
  CHECK(std::count(text.begin(), text.end(), '\n') == 5);
}

TEST_CASE("the passfile named in a DSN is read at load") {
  char path[] = "/tmp/pgmux-passfile-XXXXXX";
  const int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  close(fd);
  {
    std::ofstream out(path);
    out << "h:5432:app:alice:from-file\n";
  }
  const auto cfg = loaded(std::string(R"({"databases": {"app": {"dsn": "host=h user=alice dbname=app passfile=)") +
                          path + R"("}}})");
  const auto& t = cfg.databases.at("app").target;
  CHECK(t.passfile_contents == "h:5432:app:alice:from-file\n");
  CHECK(resolve_password(t, "alice", "app") == "from-file");
  std::remove(path);
  // Once it is gone, naming it is an error.
  refused_at(std::string(R"({"databases": {"app": {"dsn": "host=h passfile=)") + path + R"("}}})",
             "/databases/app/dsn");
}

TEST_CASE("load_config_file reads a file and reports a missing one") {
  char path[] = "/tmp/pgmux-config-XXXXXX";
  const int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  close(fd);
  {
    std::ofstream out(path);
    out << example_conf;
  }
  const auto r = load_config_file(path);
  INFO(format_errors(r.errors));
  CHECK(r.cfg);
  std::remove(path);
  const auto missing = load_config_file(path);
  CHECK_FALSE(missing.cfg);
  REQUIRE(missing.errors.size() == 1);
  CHECK(missing.errors[0].path == "/");
}

}  // TEST_SUITE

TEST_CASE("metrics.listen takes host:port, null turns it off") {
  CHECK(loaded(with_db()).metrics_listen.empty());
  CHECK(loaded(with_db(R"("metrics": null)")).metrics_listen.empty());
  CHECK(loaded(with_db(R"("metrics": {"listen": "127.0.0.1:9930"})")).metrics_listen == "127.0.0.1:9930");
  SUBCASE("no port") { refused_at(with_db(R"("metrics": {"listen": "127.0.0.1"})"), "/metrics/listen"); }
  SUBCASE("port out of range") { refused_at(with_db(R"("metrics": {"listen": "127.0.0.1:70000"})"), "/metrics/listen"); }
  SUBCASE("not a string") { refused_at(with_db(R"("metrics": {"listen": 9930})"), "/metrics/listen"); }
  SUBCASE("unknown key") { refused_at(with_db(R"("metrics": {"port": 9930})"), "/metrics/port"); }
}

TEST_CASE("several instances: reuse_port, drain_delay, instance_id and peers are read and checked") {
  const auto defaults = loaded(with_db());
  CHECK_FALSE(defaults.listen.reuse_port);
  CHECK(defaults.drain_delay == 0s);
  CHECK_FALSE(defaults.watch_config);
  CHECK(loaded(with_db(R"("watch_config": true)")).watch_config);
  refused_at(with_db(R"("watch_config": 1)"), "/watch_config");
  CHECK(defaults.instance_id == 0);
  CHECK(defaults.peers.empty());
  const auto cfg = loaded(with_db(R"("listen": {"reuse_port": true}, "drain_delay": "5s", "instance_id": 2,
                                     "peers": {"1": "10.0.0.1:6432", "3": "/run/pgmux3:6432"})"));
  CHECK(cfg.listen.reuse_port);
  CHECK(cfg.drain_delay == 5s);
  CHECK(cfg.instance_id == 2);
  CHECK(cfg.peers == std::map<unsigned, std::string>{{1, "10.0.0.1:6432"}, {3, "/run/pgmux3:6432"}});
  refused_at(with_db(R"("instance_id": 0)"), "/instance_id");
  refused_at(with_db(R"("instance_id": 256)"), "/instance_id");
  refused_at(with_db(R"("peers": {"2": "10.0.0.2:6432"})"), "/peers");  // no instance_id
  refused_at(with_db(R"("instance_id": 1, "peers": {"0": "10.0.0.2:6432"})"), "/peers/0");
  refused_at(with_db(R"("instance_id": 1, "peers": {"two": "10.0.0.2:6432"})"), "/peers/two");
  refused_at(with_db(R"("instance_id": 1, "peers": {"2": "10.0.0.2"})"), "/peers/2");
  refused_at(with_db(R"("instance_id": 1, "peers": {"2": 6432})"), "/peers/2");
  refused_at(with_db(R"("instance_id": 1, "peers": {"2": "/run/pgmux2"})"), "/peers/2");
  refused_at(with_db(R"("instance_id": 1, "peers": {"2": "10.0.0.2:70000"})"), "/peers/2");
  refused_at(with_db(R"("instance_id": 1, "peers": {"2": "::1"})"), "/peers/2");
  refused_at(with_db(R"("instance_id": 1, "peers": {"2": "::1:6432"})"), "/peers/2");
  CHECK(loaded(with_db(R"("instance_id": 1, "peers": {"2": "[::1]:6432"})")).peers.at(2) == "[::1]:6432");
  refused_at(with_db(R"("listen": {"reuse_port": "yes"})"), "/listen/reuse_port");
  refused_at(with_db(R"("drain_delay": "soon")"), "/drain_delay");
}

TEST_CASE("park_idle_clients_after: 50ms by default, 0 for never, else at least 10ms") {
  CHECK(loaded(with_db()).park_idle_clients_after == 50ms);
  CHECK(loaded(with_db(R"("park_idle_clients_after": "2s")")).park_idle_clients_after == 2s);
  CHECK(loaded(with_db(R"("park_idle_clients_after": "0")")).park_idle_clients_after == 0s);
  CHECK(loaded(with_db(R"("park_idle_clients_after": "10ms")")).park_idle_clients_after == 10ms);
  refused_at(with_db(R"("park_idle_clients_after": "5ms")"), "/park_idle_clients_after");
  refused_at(with_db(R"("park_idle_clients_after": "soon")"), "/park_idle_clients_after");
  refused_at(with_db(R"("park_idle_clients_after": 100)"), "/park_idle_clients_after");
}

TEST_SUITE("config_load_auth") {

using pgmux::auth::auth_method;

TEST_CASE("auth and tls take their defaults when absent") {
  const auto cfg = loaded(with_db());
  CHECK(cfg.auth.rules == pgmux::auth::default_rules());
  CHECK(cfg.auth.users_file.empty());
  CHECK(cfg.auth.users.empty());
  CHECK(cfg.auth.auth_query.empty());
  CHECK(cfg.auth.auth_user.empty());
  CHECK(cfg.auth.auth_query_cache == 30s);
  CHECK_FALSE(cfg.auth.allow_cleartext_without_tls);
  CHECK(cfg.auth.max_authenticating == 1000);
  CHECK(cfg.auth.max_authenticating_per_address == 100);
  CHECK(cfg.auth.startup_timeout == 5s);
  CHECK(cfg.auth.failure_delay == 200ms);
  CHECK(cfg.tls.mode == tls_mode::disable);
  CHECK(cfg.tls.cert.empty());
  CHECK(cfg.tls.key.empty());
  CHECK(cfg.tls.ca.empty());
  CHECK(cfg.tls.min_version == tls_version::v1_2);
  // The default rules written out are the defaults.
  const auto written = loaded(with_auth(R"("rules": [{"address": "local", "method": "trust"},
      {"address": "127.0.0.0/8", "method": "trust"}, {"address": "::1/128", "method": "trust"}])"));
  CHECK(written.auth.rules == cfg.auth.rules);
  CHECK(std::string(to_string(tls_mode::require)) == "require");
  CHECK(std::string(to_string(tls_version::v1_3)) == "1.3");
}

TEST_CASE("auth rules are read in order, omitted keys matching any") {
  const auto cfg = loaded(with_auth(R"("rules": [
      {"method": "reject", "user": "mallory"},
      {"database": "app", "address": "::ffff:10.0.0.0/104", "method": "md5"},
      {"address": "2001:db8::/32", "method": "scram-sha-256"},
      {"address": "192.0.2.7", "method": "trust"},
      {"method": "reject"}])"));
  const auto& r = cfg.auth.rules;
  REQUIRE(r.size() == 5);
  CHECK(r[0].user == "mallory");
  CHECK(r[0].database == "*");
  CHECK(r[0].address.to_string() == "*");
  CHECK(r[0].method == auth_method::reject);
  CHECK(r[1].database == "app");
  CHECK(r[1].address.to_string() == "10.0.0.0/8");
  CHECK(r[1].method == auth_method::md5);
  CHECK(r[2].address.to_string() == "2001:db8::/32");
  CHECK(r[3].address.to_string() == "192.0.2.7/32");
  CHECK(r[3].method == auth_method::trust);
  using pgmux::auth::client_peer;
  const auto peer = client_peer::tcp(*pgmux::auth::ip_address::parse("::ffff:10.1.2.3"));
  CHECK(pgmux::auth::match_rule(r, "app", "alice", peer) == 1u);
  CHECK(pgmux::auth::match_rule(r, "app", "mallory", peer) == 0u);
}

TEST_CASE("bad auth rules are reported where they are") {
  SUBCASE("auth not an object") { refused_at(with_db(R"("auth": [])"), "/auth"); }
  SUBCASE("unknown auth key") { refused_at(with_auth(R"("rule": [])"), "/auth/rule"); }
  SUBCASE("rules not an array") { refused_at(with_auth(R"("rules": {"method": "trust"})"), "/auth/rules"); }
  SUBCASE("rules empty") { refused_at(with_auth(R"("rules": [])"), "/auth/rules"); }
  SUBCASE("rule not an object") { refused_at(with_auth(R"("rules": ["trust"])"), "/auth/rules/0"); }
  SUBCASE("missing method") {
    CHECK(refused_at(with_auth(R"("rules": [{"method": "trust"}, {"user": "a"}])"), "/auth/rules/1/method")
              .find("missing") != std::string::npos);
  }
  SUBCASE("unknown method") {
    CHECK(refused_at(with_auth(R"("rules": [{"method": "ident"}])"), "/auth/rules/0/method").find("\"ident\"") !=
          std::string::npos);
  }
  SUBCASE("method not a string") { refused_at(with_auth(R"("rules": [{"method": 1}])"), "/auth/rules/0/method"); }
  SUBCASE("prefix too long") {
    CHECK(refused_at(with_auth(R"("rules": [{"address": "10.0.0.0/33", "method": "trust"}])"), "/auth/rules/0/address")
              .find("too long") != std::string::npos);
  }
  SUBCASE("bad address") {
    refused_at(with_auth(R"("rules": [{"address": "10.0.0.300", "method": "trust"}])"), "/auth/rules/0/address");
  }
  SUBCASE("host bits set") {
    refused_at(with_auth(R"("rules": [{"address": "10.1.2.3/8", "method": "trust"}])"), "/auth/rules/0/address");
  }
  SUBCASE("address not a string") {
    refused_at(with_auth(R"("rules": [{"address": 10, "method": "trust"}])"), "/auth/rules/0/address");
  }
  SUBCASE("empty user") { refused_at(with_auth(R"("rules": [{"user": "", "method": "trust"}])"), "/auth/rules/0/user"); }
  SUBCASE("database as a list") {
    refused_at(with_auth(R"("rules": [{"database": ["a", "b"], "method": "trust"}])"), "/auth/rules/0/database");
  }
  SUBCASE("unknown rule key") {
    refused_at(with_auth(R"("rules": [{"adress": "*", "method": "trust"}])"), "/auth/rules/0/adress");
  }
}

TEST_CASE("cert rules need TLS with a CA, password rules TLS or allow_cleartext_without_tls") {
  const tls_files files;
  const auto& ca = files.ca;
  const std::string tls_without_ca = R"("tls": {"mode": "allow", )" + files.cert_and_key() + "}";
  const std::string tls_with_ca = R"("tls": {"mode": "require", )" + files.cert_and_key() + R"(, "ca": ")" + ca.path + R"("})";
  const std::string cert_rule = R"("auth": {"rules": [{"address": "10.0.0.0/8", "method": "cert"}]})";
  SUBCASE("cert without TLS") {
    CHECK(refused_at(with_db(cert_rule), "/auth/rules/0/method").find("TLS") != std::string::npos);
  }
  SUBCASE("cert without a CA") {
    CHECK(refused_at(with_db(cert_rule + ", " + tls_without_ca), "/auth/rules/0/method").find("tls.ca") !=
          std::string::npos);
  }
  SUBCASE("cert for the Unix socket") {
    refused_at(with_db(R"("auth": {"rules": [{"address": "local", "method": "cert"}]}, )" + tls_with_ca),
               "/auth/rules/0/method");
  }
  SUBCASE("cert with TLS and a CA") {
    const auto cfg = loaded(with_db(cert_rule + ", " + tls_with_ca));
    CHECK(cfg.auth.rules[0].method == auth_method::cert);
    CHECK(cfg.tls.mode == tls_mode::require);
    CHECK(cfg.tls.ca == ca.path);
  }
  const std::string password_rule = R"("rules": [{"address": "*", "method": "password"}])";
  SUBCASE("password without TLS") {
    CHECK(refused_at(with_auth(password_rule), "/auth/rules/0/method").find("clear text") != std::string::npos);
  }
  SUBCASE("password without TLS, allowed") {
    loaded(with_auth(password_rule + R"(, "allow_cleartext_without_tls": true)"));
  }
  SUBCASE("password with TLS") { loaded(with_db(R"("auth": {)" + password_rule + "}, " + tls_without_ca)); }
  SUBCASE("password on the Unix socket only") {
    loaded(with_auth(R"("rules": [{"address": "local", "method": "password"}])"));
  }
}

TEST_CASE("the users file is read at load, secrets of both kinds") {
  const std::string scram =
      "SCRAM-SHA-256$4096:BzeQ16dY+zylb8yWjFmCbQ==$eLLOPrvlfUTRCZq+ZAvu3jyZq1B9FA3oAkOMAlLPBRg=:"
      "BqpDQA2RAyTOzx5hIV7un95a1lOIq+ReLYSpOqpNpY0=";
  const temp_file users("// secrets as in pg_authid\n{\"t\": \"" + scram + "\", \"m\": \"md58bbf3f45673bf67d02e4214911f3417f\"}");
  const auto cfg = loaded(with_auth(R"("users_file": ")" + users.path + R"(")"));
  CHECK(cfg.auth.users_file == users.path);
  REQUIRE(cfg.auth.users.size() == 2);
  CHECK(cfg.auth.users.at("t") == scram);
  CHECK(cfg.auth.users.at("m") == "md58bbf3f45673bf67d02e4214911f3417f");
  SUBCASE("an empty object is fine") {
    const temp_file empty("{}");
    CHECK(loaded(with_auth(R"("users_file": ")" + empty.path + R"(")")).auth.users.empty());
  }
  SUBCASE("\"\" is no users file") { CHECK(loaded(with_auth(R"("users_file": "")")).auth.users.empty()); }
}

TEST_CASE("users file errors name the file and the pointer inside it") {
  const auto refused_file = [](const std::string& contents) {
    const temp_file users(contents);
    auto message = refused_at(with_auth(R"("users_file": ")" + users.path + R"(")"), "/auth/users_file");
    CHECK(message.find(users.path) != std::string::npos);
    return message;
  };
  SUBCASE("a plain password") {
    const auto m = refused_file(R"({"good": "md58bbf3f45673bf67d02e4214911f3417f", "bad/user": "pencil"})");
    CHECK(m.find("at /bad~1user:") != std::string::npos);
    CHECK(m.find("pencil") == std::string::npos);  // the secret is not repeated
  }
  SUBCASE("a malformed SCRAM verifier") {
    CHECK(refused_file(R"({"t": "SCRAM-SHA-256$4096:c2FsdA==$x:y"})").find("at /t:") != std::string::npos);
  }
  SUBCASE("a secret that is not a string") {
    CHECK(refused_file(R"({"t": 42})").find("at /t:") != std::string::npos);
  }
  SUBCASE("an empty user name") { refused_file(R"({"": "md58bbf3f45673bf67d02e4214911f3417f"})"); }
  SUBCASE("not an object") { CHECK(refused_file(R"(["t"])").find("object") != std::string::npos); }
  SUBCASE("invalid JSON") { CHECK(refused_file(R"({"t": )").find("JSON") != std::string::npos); }
  SUBCASE("every bad entry is reported") {
    const temp_file users(R"({"a": "x", "b": "md5", "c": "md58bbf3f45673bf67d02e4214911f3417f"})");
    const auto r = load_config_text(with_auth(R"("users_file": ")" + users.path + R"(")"));
    CHECK(r.errors.size() == 2);
  }
  SUBCASE("a missing file") {
    const auto m = refused_at(with_auth(R"("users_file": "/nonexistent/pgmux-users.json")"), "/auth/users_file");
    CHECK(m.find("/nonexistent/pgmux-users.json") != std::string::npos);
  }
  SUBCASE("a directory") { refused_at(with_auth(R"("users_file": "/tmp")"), "/auth/users_file"); }
  SUBCASE("not a string") { refused_at(with_auth(R"("users_file": true)"), "/auth/users_file"); }
}

TEST_CASE("auth settings are read and checked") {
  SUBCASE("auth_query needs $1") {
    CHECK(refused_at(with_auth(R"("auth_query": "SELECT rolpassword FROM pg_authid")"), "/auth/auth_query")
              .find("$1") != std::string::npos);
  }
  SUBCASE("auth_user without auth_query") { refused_at(with_auth(R"("auth_user": "pgmux")"), "/auth/auth_user"); }
  SUBCASE("auth_query without auth_user is fine") {
    CHECK(loaded(with_auth(R"("auth_query": "SELECT p FROM u WHERE n = $1")")).auth.auth_user.empty());
  }
  SUBCASE("auth_query_cache") {
    CHECK(loaded(with_auth(R"("auth_query_cache": "0")")).auth.auth_query_cache == 0s);
    refused_at(with_auth(R"("auth_query_cache": "30")"), "/auth/auth_query_cache");
  }
  SUBCASE("allow_cleartext_without_tls must be a boolean") {
    refused_at(with_auth(R"("allow_cleartext_without_tls": "true")"), "/auth/allow_cleartext_without_tls");
    refused_at(with_auth(R"("allow_cleartext_without_tls": 1)"), "/auth/allow_cleartext_without_tls");
  }
  SUBCASE("max_authenticating") {
    CHECK(loaded(with_auth(R"("max_authenticating": 1)")).auth.max_authenticating == 1);
    refused_at(with_auth(R"("max_authenticating": 0)"), "/auth/max_authenticating");
    refused_at(with_auth(R"("max_authenticating": -3)"), "/auth/max_authenticating");
    refused_at(with_auth(R"("max_authenticating": "100")"), "/auth/max_authenticating");
  }
  SUBCASE("max_authenticating_per_address") {
    CHECK(loaded(with_auth(R"("max_authenticating_per_address": 8)")).auth.max_authenticating_per_address == 8);
    refused_at(with_auth(R"("max_authenticating_per_address": 0)"), "/auth/max_authenticating_per_address");
    refused_at(with_auth(R"("max_authenticating_per_address": "8")"), "/auth/max_authenticating_per_address");
  }
  SUBCASE("startup_timeout") {
    CHECK(loaded(with_auth(R"("startup_timeout": "500ms")")).auth.startup_timeout == 500ms);
    refused_at(with_auth(R"("startup_timeout": 0)"), "/auth/startup_timeout");
    refused_at(with_auth(R"("startup_timeout": "soon")"), "/auth/startup_timeout");
  }
  SUBCASE("failure_delay") {
    CHECK(loaded(with_auth(R"("failure_delay": 0)")).auth.failure_delay == 0s);
    CHECK(loaded(with_auth(R"("failure_delay": "2s")")).auth.failure_delay == 2s);
    refused_at(with_auth(R"("failure_delay": "fast")"), "/auth/failure_delay");
  }
}

TEST_CASE("failure_delay must be shorter than auth_timeout") {
  CHECK(refused_at(with_db(R"("auth_timeout": "5s", "auth": {"failure_delay": "5s"})"), "/auth/failure_delay")
            .find("auth_timeout") != std::string::npos);
  // Only auth_timeout was written: the error goes there.
  CHECK(refused_at(with_db(R"("auth_timeout": "100ms")"), "/auth_timeout").find("failure_delay") != std::string::npos);
  loaded(with_db(R"("auth_timeout": "5s", "auth": {"failure_delay": "4999ms"})"));
}

TEST_CASE("startup_timeout fits in auth_timeout") {
  // The default follows a shorter auth_timeout.
  CHECK(loaded(with_db(R"("auth_timeout": "2s")")).auth.startup_timeout == 2s);
  CHECK(loaded(with_db(R"("auth_timeout": "30s")")).auth.startup_timeout == 5s);
  CHECK(loaded(with_db(R"("auth_timeout": "3s", "auth": {"startup_timeout": "3s"})")).auth.startup_timeout == 3s);
  // Written explicitly, a longer one is an error.
  CHECK(refused_at(with_db(R"("auth_timeout": "3s", "auth": {"startup_timeout": "4s"})"), "/auth/startup_timeout")
            .find("auth_timeout") != std::string::npos);
}

TEST_CASE("tls settings are read and checked") {
  SUBCASE("tls not an object") { refused_at(with_db(R"("tls": true)"), "/tls"); }
  SUBCASE("unknown key") { refused_at(with_tls(R"("certificate": "x")"), "/tls/certificate"); }
  SUBCASE("unknown mode") {
    CHECK(refused_at(with_tls(R"("mode": "prefer")"), "/tls/mode").find("\"prefer\"") != std::string::npos);
  }
  SUBCASE("mode not a string") { refused_at(with_tls(R"("mode": false)"), "/tls/mode"); }
  SUBCASE("min_version") {
    CHECK(loaded(with_tls(R"("min_version": "1.2")")).tls.min_version == tls_version::v1_2);
    CHECK(loaded(with_tls(R"("min_version": "1.3")")).tls.min_version == tls_version::v1_3);
    refused_at(with_tls(R"("min_version": "1.1")"), "/tls/min_version");
    refused_at(with_tls(R"("min_version": 1.3)"), "/tls/min_version");
    refused_at(with_tls(R"("min_version": "TLSv1.3")"), "/tls/min_version");
  }
  SUBCASE("disable needs no files") { CHECK(loaded(with_tls(R"("mode": "disable")")).tls.mode == tls_mode::disable); }
}

TEST_CASE("tls allow and require need a certificate and a key") {
  const tls_files files;
  const auto& cert = files.cert;
  const auto& key = files.key;
  for (const char* mode : {"allow", "require"}) {
    CAPTURE(mode);
    const std::string m = std::string(R"("mode": ")") + mode + "\"";
    CHECK(refused_at(with_tls(m), "/tls/cert").find("missing") != std::string::npos);
    refused_at(with_tls(m), "/tls/key");
    refused_at(with_tls(m + R"(, "cert": ")" + cert.path + "\""), "/tls/key");
    refused_at(with_tls(m + R"(, "key": ")" + key.path + "\""), "/tls/cert");
    const auto cfg = loaded(with_tls(m + ", " + files.cert_and_key()));
    CHECK(cfg.tls.cert == cert.path);
    CHECK(cfg.tls.key == key.path);
    CHECK(cfg.tls.ca.empty());
    CHECK(cfg.tls.cert_pem == files.server.cert);
    CHECK(cfg.tls.key_pem == files.server.key);
  }
  CHECK(loaded(with_tls(R"("mode": "allow", )" + files.cert_and_key())).tls.mode == tls_mode::allow);
}

TEST_CASE("tls files must exist and be readable") {
  const tls_files files;
  const auto& cert = files.cert;
  const auto& key = files.key;
  const std::string good = R"("mode": "require", )" + files.cert_and_key();
  CHECK(refused_at(with_tls(R"("mode": "require", "cert": "/nonexistent/server.crt", "key": ")" + key.path + "\""),
                   "/tls/cert")
            .find("/nonexistent/server.crt") != std::string::npos);
  refused_at(with_tls(R"("mode": "require", "cert": ")" + cert.path + R"(", "key": "/nonexistent/server.key")"), "/tls/key");
  refused_at(with_tls(good + R"(, "ca": "/nonexistent/ca.crt")"), "/tls/ca");
  refused_at(with_tls(good + R"(, "ca": "/tmp")"), "/tls/ca");
  refused_at(with_tls(good + R"(, "ca": "")"), "/tls/ca");
  refused_at(with_tls(R"("cert": "/nonexistent/server.crt")"), "/tls/cert");  // checked even when disabled
}

TEST_CASE("tls files are parsed: certificates, a private key of its owner that matches, the CA") {
  const tls_files files;
  const std::string mode = R"("mode": "allow", )";
  SUBCASE("a good set, with a CA") {
    const auto cfg = loaded(with_tls(mode + files.cert_and_key() + R"(, "ca": ")" + files.ca.path + "\""));
    CHECK(cfg.tls.ca_pem == files.ca_pair.cert);
  }
  SUBCASE("disabled: the files are not parsed") {
    const temp_file junk("not a certificate");
    CHECK(loaded(with_tls(R"("cert": ")" + junk.path + R"(", "key": ")" + junk.path + "\"")).tls.cert_pem.empty());
  }
  SUBCASE("not a certificate") {
    const temp_file junk("not a certificate");
    CHECK(refused_at(with_tls(mode + R"("cert": ")" + junk.path + R"(", "key": ")" + files.key.path + "\""), "/tls/cert")
              .find("no certificate") != std::string::npos);
  }
  SUBCASE("a key of another certificate") {
    const temp_file other(test_certs::self_signed("other").key);
    CHECK(refused_at(with_tls(mode + R"("cert": ")" + files.cert.path + R"(", "key": ")" + other.path + "\""), "/tls/key")
              .find("does not match") != std::string::npos);
  }
  SUBCASE("an encrypted key") {
    const temp_file encrypted(test_certs::encrypted_key(files.server.key));
    CHECK(refused_at(with_tls(mode + R"("cert": ")" + files.cert.path + R"(", "key": ")" + encrypted.path + "\""),
                     "/tls/key")
              .find("encrypted") != std::string::npos);
  }
  SUBCASE("a key others may read") {
    REQUIRE(::chmod(files.key.path.c_str(), 0644) == 0);
    CHECK(refused_at(with_tls(mode + files.cert_and_key()), "/tls/key").find("group or world access") != std::string::npos);
  }
  SUBCASE("a CA file without certificates") {
    const temp_file junk("not a CA");
    refused_at(with_tls(mode + files.cert_and_key() + R"(, "ca": ")" + junk.path + "\""), "/tls/ca");
  }
}

TEST_CASE("DSN TLS files are read at load and checked") {
  const tls_files files;
  const auto dsn = [](const std::string& text) { return R"({"databases": {"app": {"dsn": ")" + text + R"("}}})"; };
  SUBCASE("root certificate, client certificate and key") {
    const auto cfg = loaded(dsn("host=db sslmode=verify-full sslrootcert=" + files.ca.path + " sslcert=" +
                                files.cert.path + " sslkey=" + files.key.path));
    const auto& t = cfg.databases.at("app").target;
    CHECK(t.sslmode == ssl_mode::verify_full);
    CHECK(t.sslrootcert_pem == files.ca_pair.cert);
    CHECK(t.sslcert_pem == files.server.cert);
    CHECK(t.sslkey_pem == files.server.key);
  }
  SUBCASE("a named file that cannot be read") {
    CHECK(refused_at(dsn("host=db sslmode=require sslrootcert=/nonexistent/root.crt"), "/databases/app/dsn")
              .find("/nonexistent/root.crt") != std::string::npos);
    refused_at(dsn("host=db sslcert=/nonexistent/client.crt sslkey=" + files.key.path), "/databases/app/dsn");
  }
  SUBCASE("not a certificate") {
    const temp_file junk("junk");
    refused_at(dsn("host=db sslmode=verify-ca sslrootcert=" + junk.path), "/databases/app/dsn");
  }
  SUBCASE("a key that does not match") {
    const temp_file other(test_certs::self_signed("other").key);
    CHECK(refused_at(dsn("host=db sslcert=" + files.cert.path + " sslkey=" + other.path), "/databases/app/dsn")
              .find("does not match") != std::string::npos);
  }
  SUBCASE("sslmode disable and Unix sockets read nothing") {
    CHECK(loaded(dsn("host=db sslmode=disable sslrootcert=/nonexistent/root.crt")).databases.at("app").target.sslrootcert_pem.empty());
    CHECK(loaded(dsn("host=/run/postgresql sslrootcert=/nonexistent/root.crt")).databases.at("app").target.sslrootcert_pem.empty());
  }
}


TEST_CASE("query_stats is read per pool, inherited from pool_defaults and checked") {
  SUBCASE("defaults") {
    const auto r = load_config_text(with_db(""));
    REQUIRE(r.cfg);
    CHECK(r.cfg->pool_defaults.query_stats.max_entries == 5000);
    CHECK_FALSE(r.cfg->pool_defaults.query_stats.metrics);
    CHECK(r.cfg->pool_defaults.query_stats.metrics_top == 20);
  }
  SUBCASE("set in pool_defaults, overridden per database") {
    const auto r = load_config_text(R"({"pool_defaults": {"query_stats": {"max_entries": 10, "metrics": true}},
      "databases": {"a": {"dsn": "host=h"}, "b": {"dsn": "host=h", "pool": {"query_stats": {"max_entries": 0}}}}})");
    INFO(format_errors(r.errors));
    REQUIRE(r.cfg);
    const auto& a = r.cfg->databases.at("a").pool.query_stats;
    const auto& b = r.cfg->databases.at("b").pool.query_stats;
    CHECK(a.max_entries == 10);
    CHECK(a.metrics);
    CHECK(b.max_entries == 0);
    CHECK(b.metrics);  // inherited: a database's query_stats keys override one by one
  }
  SUBCASE("not an object") { refused_at(with_db(R"("pool_defaults": {"query_stats": true})"), "/pool_defaults/query_stats"); }
  SUBCASE("unknown key") {
    refused_at(with_db(R"("pool_defaults": {"query_stats": {"entries": 5}})"), "/pool_defaults/query_stats/entries");
  }
  SUBCASE("max_entries out of range") {
    refused_at(with_db(R"("pool_defaults": {"query_stats": {"max_entries": 2000000}})"),
               "/pool_defaults/query_stats/max_entries");
  }
  SUBCASE("metrics_top zero") {
    refused_at(with_db(R"("pool_defaults": {"query_stats": {"metrics_top": 0}})"), "/pool_defaults/query_stats/metrics_top");
  }
  SUBCASE("adaptive in session mode") {
    CHECK(refused_at(with_db(R"("pool_defaults": {"mode": "session", "adaptive": {"enabled": true}})"),
                     "/pool_defaults/adaptive/enabled")
              .find("session mode") != std::string::npos);
  }
  SUBCASE("metrics not a bool") {
    refused_at(with_db(R"("pool_defaults": {"query_stats": {"metrics": "yes"}})"), "/pool_defaults/query_stats/metrics");
  }
}

}  // TEST_SUITE
