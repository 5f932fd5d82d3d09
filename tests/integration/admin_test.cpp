// The admin console (virtual database "pgmux"), driven with libpq:
// - only users listed in admin.users get in; the console never reaches a real server
// - SHOW results carry counts and times as int8 columns, names and text as text
// - SHOW POOLS follows held transactions and waiting clients with PgBouncer's column names
// - SHOW CLIENTS, SHOW DATABASES, SHOW CONFIG, SHOW VERSION answer; an unknown command is an error
//   and the console stays usable
// - RELOAD applies an edited config file; SHUTDOWN lets pgmux exit 0
// - PAUSE answers once running transactions end, holds new ones and closes server
//   connections; RESUME serves the held clients; SHOW SERVERS lists real backends
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <regex>

#include <sys/wait.h>

#include <atomic>
#include <thread>

#include "integration/fixtures.hpp"

namespace it {
namespace {

const std::string admin_user = "pgmux_test";

proxy_options with_admin() {
  return proxy_options().top_level("\"admin\": {\"users\": [\"" + admin_user + "\"]}");
}

// The value of `column` in the first row whose first column is `first`, or "" when none.
std::string cell(const pg_result& r, const std::string& first, const std::string& column) {
  const int col = PQfnumber(r.get(), column.c_str());
  if (col < 0) return "";
  for (int row = 0; row < PQntuples(r.get()); ++row)
    if (first == PQgetvalue(r.get(), row, 0)) return PQgetvalue(r.get(), row, col);
  return "";
}

}  // namespace

TEST_SUITE("admin") {

TEST_CASE("only admin.users reach the console, and it never reaches a server") {
  proxy_instance proxy(with_admin());
  pg_conn stranger(proxy.conninfo("pgmux", "postgres"));
  CHECK_FALSE(stranger.ok());
  CHECK(stranger.error().find("admin") != std::string::npos);
  auto admin = connect(proxy.conninfo("pgmux", admin_user));
  auto r = admin.exec("SHOW VERSION");
  REQUIRE(r.status() == PGRES_TUPLES_OK);
  CHECK(std::string(PQgetvalue(r.get(), 0, 0)).rfind("pgmux ", 0) == 0);
  auto pg_admin = connect(pg().admin_conninfo());
  CHECK(scalar(pg_admin, "select count(*) from pg_stat_activity where datname = 'pgmux'") == "0");
}

TEST_CASE("SHOW results carry counts and times as int8 columns, as PgBouncer's, and names as text") {
  proxy_instance proxy(with_admin().pool("min_size", "1"));
  auto client = connect(proxy.conninfo());
  CHECK(scalar(client, "select 1") == "1");
  auto admin = connect(proxy.conninfo("pgmux", admin_user));
  constexpr Oid int8 = 20, text = 25;
  const std::map<std::string, std::vector<std::string>> integers = {
      {"SHOW POOLS", {"cl_active", "cl_waiting", "sv_active", "sv_idle", "sv_used", "sv_tested", "sv_login", "maxwait",
                      "maxwait_us", "concurrency_limit"}},
      {"SHOW STATS", {"total_xact_count", "total_xact_time", "total_wait_time", "avg_xact_time", "avg_wait_time",
                      "total_server_connects", "total_connect_errors", "total_query_wait_timeouts",
                      "total_command_timeouts"}},
      {"SHOW SERVERS", {"port", "local_port", "close_needed", "remote_pid"}},
      {"SHOW DATABASES", {"port", "pool_size", "min_pool_size", "paused"}},
      {"SHOW CLIENTS", {}},
      {"SHOW CONFIG", {}},
      {"SHOW ADVICE", {"max_size", "advised_size", "avg_hold_us", "peak_demand"}},
  };
  for (const auto& [command, numeric] : integers) {
    CAPTURE(command);
    auto r = admin.exec(command);
    REQUIRE_MESSAGE(r.status() == PGRES_TUPLES_OK, r.error());
    REQUIRE(r.rows() > 0);
    for (int col = 0; col < PQnfields(r.get()); ++col) {
      const std::string name = PQfname(r.get(), col);
      CAPTURE(name);
      const bool is_int = std::find(numeric.begin(), numeric.end(), name) != numeric.end();
      CHECK(PQftype(r.get(), col) == (is_int ? int8 : text));
      if (!is_int) continue;
      for (int row = 0; row < r.rows(); ++row) {
        if (r.is_null(row, col)) continue;
        const std::string v = r.value(row, col);
        CHECK_MESSAGE(std::regex_match(v, std::regex("-?[0-9]+")), v);
      }
    }
  }
  // Counts a tool can add up as numbers.
  auto pools = admin.exec("SHOW POOLS");
  CHECK(std::stoll(cell(pools, "pgmux_test", "sv_idle")) + std::stoll(cell(pools, "pgmux_test", "sv_active")) >= 1);
}

TEST_CASE("SHOW POOLS follows held transactions and waiting clients") {
  proxy_instance proxy(with_admin().pool("min_size", "0").pool("max_size", "1"));
  auto admin = connect(proxy.conninfo("pgmux", admin_user));
  auto holder = connect(proxy.conninfo());
  exec_ok(holder, "begin");
  exec_ok(holder, "select 1");
  auto r = admin.exec("show pools;");
  REQUIRE_MESSAGE(r.status() == PGRES_TUPLES_OK, r.error());
  CHECK(cell(r, "pgmux_test", "sv_active") == "1");
  CHECK(cell(r, "pgmux_test", "cl_active") == "1");
  CHECK(cell(r, "pgmux_test", "pool_mode") == "transaction");
  CHECK(cell(r, "pgmux_test", "concurrency_limit") == "1");  // adaptive off: max_size

  std::thread waiter([&] {
    auto c = connect(proxy.conninfo());
    CHECK(scalar(c, "select 'served'") == "served");
  });
  CHECK(wait_until([&] { return cell(admin.exec("SHOW POOLS"), "pgmux_test", "cl_waiting") == "1"; }, 5s));
  exec_ok(holder, "commit");
  waiter.join();
  // The waiter's session gives the connection back just after its answer went out: with two
  // workers, the console can look in between.
  CHECK(wait_until([&] { return cell(admin.exec("SHOW POOLS"), "pgmux_test", "sv_idle") == "1"; }, 5s));
  r = admin.exec("SHOW POOLS");
  CHECK(cell(r, "pgmux_test", "cl_waiting") == "0");
  CHECK(cell(r, "pgmux_test", "sv_active") == "0");
  CHECK(cell(r, "pgmux_test", "sv_idle") == "1");

  auto stats = admin.exec("SHOW STATS");
  REQUIRE(stats.status() == PGRES_TUPLES_OK);
  CHECK(std::stoi(cell(stats, "pgmux_test", "total_xact_count")) >= 2);
}

TEST_CASE("SHOW CLIENTS, DATABASES and CONFIG answer, and an unknown command is an error") {
  proxy_instance proxy(with_admin());
  auto admin = connect(proxy.conninfo("pgmux", admin_user));
  auto client = connect(proxy.conninfo());
  CHECK(scalar(client, "select 1") == "1");
  auto clients = admin.exec("SHOW CLIENTS");
  REQUIRE(clients.status() == PGRES_TUPLES_OK);
  int app_clients = 0;
  for (int i = 0; i < PQntuples(clients.get()); ++i)
    if (std::string(PQgetvalue(clients.get(), i, PQfnumber(clients.get(), "database"))) == "pgmux_test") ++app_clients;
  CHECK(app_clients == 1);
  auto dbs = admin.exec("SHOW DATABASES");
  REQUIRE(dbs.status() == PGRES_TUPLES_OK);
  CHECK(cell(dbs, "pgmux_test", "pool_size") == "10");
  auto config = admin.exec("SHOW CONFIG");
  REQUIRE(config.status() == PGRES_TUPLES_OK);
  CHECK(cell(config, "listen.port", "value") == std::to_string(proxy.port()));
  auto bad = admin.exec("SHOW NONSENSE");
  CHECK(bad.status() == PGRES_FATAL_ERROR);
  CHECK(bad.sqlstate() == "42601");
  CHECK(admin.exec("SHOW VERSION").status() == PGRES_TUPLES_OK);
}

TEST_CASE("RELOAD applies an edited config and SHUTDOWN stops pgmux") {
  proxy_instance proxy(with_admin());
  auto admin = connect(proxy.conninfo("pgmux", admin_user));
  auto text = proxy.config_text();
  const std::string from = "\"max_size\": 10";
  const auto at = text.find(from);
  REQUIRE(at != std::string::npos);
  text.replace(at, from.size(), "\"max_size\": 7");
  proxy.rewrite_config(text);
  auto r = admin.exec("RELOAD");
  CHECK_MESSAGE(r.status() == PGRES_COMMAND_OK, r.error());
  CHECK(wait_until([&] { return cell(admin.exec("SHOW DATABASES"), "pgmux_test", "pool_size") == "7"; }, 3s));

  auto client = connect(proxy.conninfo());
  CHECK(scalar(client, "select 1") == "1");
  proxy.send_signal(0);  // no signal: only tells the fixture that pgmux will exit now
  admin.exec("SHUTDOWN");
  int status = 0;
  CHECK(proxy.wait_exit(5s, &status));
  CHECK_MESSAGE((WIFEXITED(status) && WEXITSTATUS(status) == 0), describe_status(status));
}

TEST_CASE("PAUSE waits for running transactions and holds new ones until RESUME") {
  proxy_instance proxy(with_admin().pool("min_size", "0").pool("max_size", "2"));
  auto admin = connect(proxy.conninfo("pgmux", admin_user));
  auto holder = connect(proxy.conninfo());
  exec_ok(holder, "begin");
  const auto holder_pid = scalar(holder, "select pg_backend_pid()");

  // SHOW SERVERS lists the real backend behind the held transaction.
  auto servers = admin.exec("SHOW SERVERS");
  REQUIRE_MESSAGE(servers.status() == PGRES_TUPLES_OK, servers.error());
  REQUIRE(PQntuples(servers.get()) == 1);
  CHECK(servers.value(0, PQfnumber(servers.get(), "state")) == "active");
  CHECK(servers.value(0, PQfnumber(servers.get(), "remote_pid")) == holder_pid);
  CHECK(servers.value(0, PQfnumber(servers.get(), "database")) == "pgmux_test");
  CHECK(servers.value(0, PQfnumber(servers.get(), "local_addr")) == "127.0.0.1");

  // PAUSE answers only once the held transaction has ended.
  std::atomic<bool> paused{false};
  std::string pause_error;
  std::thread pauser([&] {
    auto console = connect(proxy.conninfo("pgmux", admin_user));
    auto r = console.exec("PAUSE pgmux_test");
    pause_error = r.status() == PGRES_COMMAND_OK ? "" : r.error() + " ";
    paused = true;
  });
  CHECK(wait_until([&] { return cell(admin.exec("SHOW DATABASES"), "pgmux_test", "paused") == "1"; }, 3s));
  std::this_thread::sleep_for(300ms);
  CHECK_FALSE(paused.load());

  // A new transaction waits while paused.
  std::atomic<bool> served{false};
  std::thread newcomer([&] {
    auto c = connect(proxy.conninfo());
    CHECK(scalar(c, "select 'served'") == "served");
    served = true;
  });
  CHECK(wait_until([&] { return cell(admin.exec("SHOW POOLS"), "pgmux_test", "cl_waiting") == "1"; }, 3s));
  exec_ok(holder, "commit");
  CHECK(wait_until([&] { return paused.load(); }, 3s));
  pauser.join();
  CHECK_MESSAGE(pause_error.empty(), pause_error);
  CHECK_FALSE(served.load());
  // Paused pools keep no server connection, so the database could restart underneath.
  CHECK(wait_until([&] { return PQntuples(admin.exec("SHOW SERVERS").get()) == 0; }, 3s));
  auto pg_admin = connect(pg().admin_conninfo());
  CHECK(wait_until([&] {
    return server_connections(pg_admin) == 0;
  }, 3s));

  auto r = admin.exec("RESUME pgmux_test");
  CHECK_MESSAGE(r.status() == PGRES_COMMAND_OK, r.error());
  CHECK(wait_until([&] { return served.load(); }, 5s));
  newcomer.join();
  CHECK(cell(admin.exec("SHOW DATABASES"), "pgmux_test", "paused") == "0");
  CHECK(admin.exec("RESUME pgmux_test").sqlstate() == "55000");  // not paused any more
  CHECK(scalar(holder, "select 'after resume'") == "after resume");
}

}  // TEST_SUITE
}  // namespace it
