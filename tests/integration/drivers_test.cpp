// Real drivers through pgmux in transaction mode, with their default settings and more
// clients than server connections (Debian's python3-asyncpg and python3-psycopg, run by the
// system Python; postgres.js from npm, run by the machine's Node.js):
// - asyncpg with its statement cache: 50 concurrent tasks x 200 parameterized queries, none failing
// - psycopg 3 with prepare_threshold 0 (everything prepared): 10 clients, none failing; and with
//   a cache smaller than its statements, so that it evicts them with SQL DEALLOCATE
// At most max_size server connections are used throughout.
// - psycopg 3 and session state in transaction mode (SET ROLE, set_config, temporary tables,
//   advisory locks), once per session_state policy: "pin" keeps it for its client and nobody
//   else sees it, also in pgmux_pinned_clients; "reset" ends it with the transaction; "refuse"
//   answers 0A000 and runs nothing, in simple and prepared queries
// - asyncpg, whose queries with arguments are all named prepared statements: a session-level
//   set_config of role pins its client under "pin" and gets 0A000 under "refuse"; in session
//   mode get_server_pid() is the client's own backend
// - psycopg 3 sees what a direct connection shows: login ParameterStatus in the server's spelling,
//   application_name '' when it sets none, its server's own backend pid in session mode, and
//   the same error as a direct connection when its backend is terminated mid-transaction
// - psycopg 3 connected with startup settings: RESET, RESET ALL and SET ... TO DEFAULT give them
//   back, in transaction and session mode, as on a direct connection
// - psycopg 3 with a prepared statement whose table changes its columns: 0A000 at every later
//   execution on either server connection, as on a direct connection
// - postgres.js: its cached statement across such a change, as asyncpg's; sql.subscribe() on a
//   logical replication connection receives the rows another client inserts
// - asyncpg's statement cache across such a change: the error it gets is PostgreSQL's own (by
//   its routine), so it prepares the statement again and returns the new rows, on either
//   server connection
#include <doctest/doctest.h>

#include <regex>

#include "integration/fixtures.hpp"

namespace it {
namespace {

const std::string python = "/usr/bin/python3";

std::string script(const char* name) { return std::string(PGMUX_SOURCE_DIR) + "/tests/integration/drivers/" + name; }

long ok_count(const std::string& output) {
  std::smatch m;
  if (std::regex_search(output, m, std::regex(R"(^ok (\d+)$)", std::regex::multiline))) return std::stol(m[1]);
  return -1;
}

// A role pgmux_test may SET ROLE to.
void create_other_role() {
  auto admin = connect(pg().admin_conninfo());
  exec_ok(admin, "DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'it_other') THEN "
                 "CREATE ROLE it_other NOLOGIN; END IF; END$$");
  exec_ok(admin, "GRANT it_other TO pgmux_test");
}

void run_session_state_script(const std::string& policy) {
  create_other_role();
  const int metrics_port = free_port();
  proxy_instance proxy(proxy_options()
                           .pool("max_size", policy == "pin" ? "2" : "1")
                           .pool("session_state", policy)
                           .top_level(metrics_member(metrics_port)));
  const auto r = run(python + " " + script("psycopg_session_state.py") + " '" + proxy.conninfo() + "' " + policy +
                         " it_other " + std::to_string(metrics_port),
                     60);
  INFO(r.output);
  INFO(proxy.log_tail());
  CHECK(r.code == 0);
  CHECK(r.output.find("\nok\n") != std::string::npos);
}

// postgres.js, installed beside the scripts by deploy/test (npm).
run_result run_node(const std::string& check, const proxy_instance& proxy) {
  return run("node " + script("postgresjs_check.cjs") + " " + check + " 127.0.0.1 " + std::to_string(proxy.port()) + " '" +
                 pg().direct_conninfo() + "'",
             60);
}

bool run_transparency_script(const std::string& check, const proxy_instance& proxy) {
  const auto r = run(python + " " + script("psycopg_transparency.py") + " " + check + " '" + proxy.conninfo() + "' '" +
                         pg().direct_conninfo() + "' '" + pg().admin_conninfo() + "'",
                     60);
  INFO(r.output);
  INFO(proxy.log_tail());
  CHECK(r.code == 0);
  return r.output.find("\nok\n") != std::string::npos;
}

}  // namespace

TEST_SUITE("drivers") {

TEST_CASE("psycopg 3: session_state pin keeps a client's role and temp table for it alone") {
  run_session_state_script("pin");
}

TEST_CASE("psycopg 3: session_state reset ends a client's role, lock and temp table with its transaction") {
  run_session_state_script("reset");
}

TEST_CASE("psycopg 3: session_state refuse answers 0A000 and runs nothing") { run_session_state_script("refuse"); }

TEST_CASE("asyncpg: a prepared set_config of role pins its client, or is refused, and never reaches another client") {
  create_other_role();
  for (const std::string policy : {"pin", "refuse"}) {
    CAPTURE(policy);
    proxy_instance proxy(proxy_options().pool("max_size", "2").pool("session_state", policy));
    const auto r = run(python + " " + script("asyncpg_session_state.py") + " 127.0.0.1 " + std::to_string(proxy.port()) +
                           " " + policy + " it_other",
                       60);
    INFO(r.output);
    CHECK(r.code == 0);
    CHECK(r.output.find("\nok\n") != std::string::npos);
  }
}

TEST_CASE("asyncpg in session mode: get_server_pid() is the client's own backend") {
  proxy_instance proxy(proxy_options().pool("mode", "session").pool("max_size", "2"));
  const auto r = run(python + " " + script("asyncpg_session_state.py") + " 127.0.0.1 " + std::to_string(proxy.port()) +
                         " backend-pid it_other",
                     60);
  INFO(r.output);
  CHECK(r.code == 0);
  CHECK(r.output.find("\nok\n") != std::string::npos);
}

TEST_CASE("psycopg 3 sees the server's spelling of its settings and application_name, as a direct connection") {
  proxy_instance proxy(proxy_options().pool("max_size", "2"));
  CHECK(run_transparency_script("parameters", proxy));
}

TEST_CASE("psycopg 3 in session mode is given its server's own backend pid") {
  proxy_instance proxy(proxy_options().pool("mode", "session").pool("max_size", "2"));
  CHECK(run_transparency_script("backend-pid", proxy));
}

TEST_CASE("psycopg 3 whose backend is terminated mid-transaction gets what a direct connection gets") {
  proxy_instance proxy(proxy_options().pool("max_size", "2"));
  CHECK(run_transparency_script("terminated", proxy));
}

TEST_CASE("psycopg 3: RESET goes back to the client's startup values in transaction mode") {
  proxy_instance proxy(proxy_options().pool("max_size", "2"));
  CHECK(run_transparency_script("reset", proxy));
}

TEST_CASE("psycopg 3: RESET goes back to the client's startup values in session mode") {
  proxy_instance proxy(proxy_options().pool("mode", "session").pool("max_size", "2"));
  CHECK(run_transparency_script("reset", proxy));
}

TEST_CASE("psycopg 3: a prepared statement whose result type changed fails with 0A000 on every server connection") {
  proxy_instance proxy(proxy_options().pool("max_size", "2").pool("query_wait_timeout", "30s"));
  CHECK(run_transparency_script("result-type", proxy));
}

TEST_CASE("asyncpg: a cached statement whose result type changed is prepared again on either server connection") {
  proxy_instance proxy(proxy_options().pool("max_size", "2").pool("query_wait_timeout", "30s"));
  const auto r = run(python + " " + script("asyncpg_result_type.py") + " 127.0.0.1 " + std::to_string(proxy.port()) +
                         " '" + pg().direct_conninfo() + "'",
                     60);
  INFO(r.output);
  INFO(proxy.log_tail());
  CHECK(r.code == 0);
  CHECK(r.output.find("\nok\n") != std::string::npos);
}

TEST_CASE("postgres.js: a cached statement whose result type changed is prepared again on either server connection") {
  proxy_instance proxy(proxy_options().pool("max_size", "2").pool("query_wait_timeout", "30s"));
  const auto r = run_node("result-type", proxy);
  INFO(r.output);
  INFO(proxy.log_tail());
  CHECK(r.code == 0);
  CHECK(r.output.find("\nok\n") != std::string::npos);
}

TEST_CASE("postgres.js: sql.subscribe() receives inserts through pgmux on a replication connection of its own") {
  auto admin = connect(pg().admin_conninfo());
  exec_ok(admin, "ALTER ROLE pgmux_test REPLICATION");
  auto setup = setup_connection();
  exec_ok(setup, "drop table if exists it_pgjs; create table it_pgjs (a int primary key)");
  exec_ok(setup, "drop publication if exists it_pgjs_pub; create publication it_pgjs_pub for table it_pgjs");
  proxy_instance proxy(proxy_options().pool("max_size", "2").pool("max_replication_connections", "1"));
  const auto r = run_node("subscribe", proxy);
  INFO(r.output);
  INFO(proxy.log_tail());
  CHECK(r.code == 0);
  CHECK(r.output.find("\nok\n") != std::string::npos);
  CHECK(proxy.logged("logged in for logical replication"));
  exec_ok(setup, "drop publication it_pgjs_pub; drop table it_pgjs");
}

TEST_CASE("asyncpg with its statement cache: 50 tasks, 200 queries each, no error") {
  proxy_instance proxy(proxy_options().workers(2).pool("max_size", "5").pool("query_wait_timeout", "60s"));
  connection_sampler sampler;
  const auto r = run(python + " " + script("asyncpg_load.py") + " 127.0.0.1 " + std::to_string(proxy.port()) +
                         " pgmux_test pgmux_test 50 200",
                     150);
  sampler.stop();
  INFO(r.output);
  CHECK(r.code == 0);
  CHECK(ok_count(r.output) == 50 * 201);
  CHECK(sampler.max_seen() <= 5);
}

TEST_CASE("psycopg 3 with prepare_threshold 0: every query prepared, no error") {
  proxy_instance proxy(proxy_options().workers(2).pool("max_size", "3").pool("query_wait_timeout", "60s"));
  connection_sampler sampler;
  const auto r = run(python + " " + script("psycopg_load.py") + " " +
                         shell_quote("host=127.0.0.1 port=" + std::to_string(proxy.port()) +
                                     " user=pgmux_test dbname=pgmux_test") +
                         " 10 100",
                     150);
  sampler.stop();
  INFO(r.output);
  CHECK(r.code == 0);
  // Two statements per query, plus two per transaction every 20 queries.
  CHECK(ok_count(r.output) == 10 * (100 * 2 + 5 * 2));
  CHECK(sampler.max_seen() <= 3);

  // A cache of 2 for 4 statements: DEALLOCATE of the client's own names all along.
  const auto small = run(python + " " + script("psycopg_load.py") + " " +
                             shell_quote("host=127.0.0.1 port=" + std::to_string(proxy.port()) +
                                         " user=pgmux_test dbname=pgmux_test") +
                             " 4 60 2",
                         150);
  INFO(small.output);
  CHECK(small.code == 0);
  CHECK(ok_count(small.output) == 4 * (60 * 2 + 3 * 2));
}

}  // TEST_SUITE
}  // namespace it
