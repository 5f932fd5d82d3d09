// Replication connections through pgmux:
// - logical replication (replication=database): pg_recvlogical creates a slot, streams the
//   changes up to an end position and drops the slot through pgmux, on a server connection of
//   its own that the pool's max_size does not count; the client is told its walsender's own pid
// - physical replication and invalid replication values are refused with a clear error, and
//   max_replication_connections (0 by default) bounds the logical ones (pgmux_replication_connections
//   counts them); options naming the startup packet (-c user=...) never reach the server's
// - a reload that changes the pool's server login ends its replication streams, and so does
//   shutdown, at once
#include <doctest/doctest.h>

#include <csignal>

#include "integration/fixtures.hpp"

namespace it {
namespace {

// The pool's server user may start walsenders.
void allow_replication() {
  auto admin = connect(pg().admin_conninfo());
  exec_ok(admin, "ALTER ROLE pgmux_test REPLICATION");
}

std::string walsender_count(const pg_conn& admin) {
  return scalar(admin, "select count(*) from pg_stat_activity where backend_type = 'walsender' and usename = 'pgmux_test'");
}

}  // namespace

TEST_SUITE("replication") {

TEST_CASE("pg_recvlogical streams a slot's changes through pgmux on a server connection of its own") {
  allow_replication();
  auto admin = connect(pg().admin_conninfo());
  auto setup = setup_connection();
  exec_ok(setup, "drop table if exists it_repl; create table it_repl (a int)");
  proxy_instance proxy(proxy_options().pool("mode", "session").pool("max_size", "1").pool("max_replication_connections", "2"));
  const std::string via_pgmux = proxy.conninfo() + " replication=database";
  const std::string recvlogical = pg_bindir() + "/pg_recvlogical -d " + shell_quote(proxy.conninfo()) + " --slot it_slot";

  // The pool's one server connection is held by a client in a transaction: replication does
  // not need it.
  auto holder = connect(proxy.conninfo());
  exec_ok(holder, "begin");
  exec_ok(holder, "select 1");

  {
    auto replication = connect(via_pgmux);
    auto identified = replication.exec("IDENTIFY_SYSTEM");
    REQUIRE_MESSAGE(identified.ok(), replication.error());
    CHECK(identified.value(0, 3) == "pgmux_test");
    // Its BackendKeyData carries the walsender's own pid.
    const auto pid = PQbackendPID(replication.get());
    CHECK(scalar(admin, "select backend_type from pg_stat_activity where pid = " + std::to_string(pid)) == "walsender");
  }
  {
    // Settings naming the startup packet itself stay the pool's: no other user, no other database.
    auto sneaky = connect(via_pgmux + " options='-c user=postgres -c database=postgres -c work_mem=3MB'");
    REQUIRE(sneaky.exec("IDENTIFY_SYSTEM").ok());
    const auto pid = std::to_string(PQbackendPID(sneaky.get()));
    CHECK(scalar(admin, "select usename || '@' || datname from pg_stat_activity where pid = " + pid) == "pgmux_test@pgmux_test");
    CHECK(scalar(sneaky, "SHOW work_mem") == "3MB");
  }
  CHECK(wait_until([&] { return walsender_count(admin) == "0"; }, 5s));

  auto created = run(recvlogical + " --create-slot -P test_decoding", 30);
  INFO(proxy.log_tail());
  REQUIRE_MESSAGE(created.code == 0, created.output);
  // Flushed at commit (the test cluster runs with synchronous_commit off), so that the
  // walsender has sent it by the end position.
  exec_ok(setup, "set synchronous_commit = on; insert into it_repl values (1), (2)");
  const auto end = scalar(admin, "select pg_current_wal_lsn()");
  const std::string out = proxy.dir() + "/changes.txt";
  auto streamed = run(recvlogical + " --start --no-loop -f " + shell_quote(out) + " --endpos " + end, 60);
  INFO(streamed.output);
  CHECK_MESSAGE(streamed.code == 0, streamed.output);
  const auto changes = read_file(out);
  INFO(changes);
  CHECK(changes.find("table public.it_repl: INSERT: a[integer]:1") != std::string::npos);
  CHECK(changes.find("table public.it_repl: INSERT: a[integer]:2") != std::string::npos);
  auto dropped = run(recvlogical + " --drop-slot", 30);
  CHECK_MESSAGE(dropped.code == 0, dropped.output);
  CHECK(scalar(admin, "select count(*) from pg_replication_slots where slot_name = 'it_slot'") == "0");
  exec_ok(holder, "commit");
  CHECK(proxy.logged("logged in for logical replication"));
  exec_ok(setup, "drop table it_repl");
}

TEST_CASE("physical replication is refused clearly and max_replication_connections bounds logical replication") {
  allow_replication();
  auto admin = connect(pg().admin_conninfo());
  {
    // Off unless the operator allows it.
    proxy_instance by_default;
    pg_conn refused(by_default.conninfo() + " replication=database");
    CHECK_FALSE(refused.ok());
    CHECK(refused.error().find("too many replication connections") != std::string::npos);
    CHECK(refused.error().find("max_replication_connections 0") != std::string::npos);
  }
  const int mport = free_port();
  proxy_instance proxy(proxy_options()
                           .pool("max_replication_connections", "1")
                           .top_level(metrics_member(mport)));
  const std::string gauge = "pgmux_replication_connections{database=\"pgmux_test\",user=\"pgmux_test\"}";

  pg_conn physical(proxy.conninfo() + " replication=true");
  CHECK_FALSE(physical.ok());
  CHECK(physical.error().find("physical replication connections are not supported through pgmux") != std::string::npos);
  pg_conn bogus(proxy.conninfo() + " replication=sometimes");
  CHECK_FALSE(bogus.ok());
  CHECK(bogus.error().find("invalid value for parameter \"replication\"") != std::string::npos);

  auto first = connect(proxy.conninfo() + " replication=database");
  REQUIRE(first.exec("IDENTIFY_SYSTEM").ok());
  pg_conn second(proxy.conninfo() + " replication=database");
  CHECK_FALSE(second.ok());
  CHECK(second.error().find("too many replication connections") != std::string::npos);
  CHECK(metric_value(scrape_metrics(mport), gauge) == 1);
  // Ordinary clients are not held up by the bound.
  auto client = connect(proxy.conninfo());
  CHECK(scalar(client, "select 1") == "1");
  first.reset();
  CHECK(wait_until([&] { return walsender_count(admin) == "0"; }, 5s));
  CHECK(wait_until([&] { return metric_value(scrape_metrics(mport), gauge) == 0; }, 5s));
  // Its slot is free again once the first one has gone.
  CHECK(wait_until([&] {
    pg_conn again(proxy.conninfo() + " replication=database");
    return again.ok() && again.exec("IDENTIFY_SYSTEM").ok();
  }, 5s));
}

TEST_CASE("a reload that changes the server login, and shutdown, end replication streams") {
  allow_replication();
  auto admin = connect(pg().admin_conninfo());
  proxy_instance proxy(proxy_options().pool("max_replication_connections", "2"));
  const auto streams = [&] { return walsender_count(admin); };
  auto first = connect(proxy.conninfo() + " replication=database");
  REQUIRE(first.exec("IDENTIFY_SYSTEM").ok());
  REQUIRE(streams() == "1");
  // Another server login for the pool (here only its application_name): the stream is cut, so
  // that its client reconnects to what the pool now reaches.
  auto text = proxy.config_text();
  const std::string dsn = json_string(pg().server_dsn("pgmux_test"));
  const auto at = text.find(dsn);
  REQUIRE(at != std::string::npos);
  text.replace(at, dsn.size(), json_string(pg().server_dsn("pgmux_test") + " application_name=relogin"));
  proxy.rewrite_config(text);
  proxy.send_signal(SIGHUP);
  CHECK(wait_until([&] { return streams() == "0"; }, 10s));
  CHECK_FALSE(first.exec("IDENTIFY_SYSTEM").ok());
  // A new one works, and shutdown ends it at once.
  auto second = connect(proxy.conninfo() + " replication=database");
  REQUIRE(second.exec("IDENTIFY_SYSTEM").ok());
  CHECK(streams() == "1");
  CHECK(proxy.terminate(10s));
  CHECK(wait_until([&] { return streams() == "0"; }, 10s));
}

}  // TEST_SUITE
}  // namespace it
