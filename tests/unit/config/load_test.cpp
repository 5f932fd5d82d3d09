// Config file -> validated config; every error names its JSON pointer.
// Cases:
//   the example config loads, comments and all
//   the shipped example config loads and documents the defaults
//   omitted keys take their documented defaults
//   databases inherit pool_defaults whatever the key order
//   a database pool overrides pool_defaults key by key
//   find_database prefers the exact name, then "*"
//   invalid JSON is reported at "/"
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
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <unistd.h>

#include "pgmux/config/load.hpp"

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
      "idle_transaction_timeout": "5s", "client_idle_timeout": "6s", "connect_timeout": "7s"})";
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
    CHECK(refused_at(R"({"databases": {"app": {"dsn": "host=h sslmode=require"}}})", "/databases/app/dsn")
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
