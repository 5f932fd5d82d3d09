// Session parameters in transaction mode, with two clients sharing one server connection
// (max_size 1):
// - each client gets its own startup values back in ParameterStatus and sees them in SHOW and
//   pg_stat_activity (application_name), whatever the other client set
// - a client's own SET of a tracked parameter follows it to later transactions; settings that
//   are not reported (extra_float_digits, from options) are applied and reset as clients alternate
// - a startup setting the server refuses ends that client with the server's error: at login for
//   the tracked ones, as PostgreSQL does, at its first statement for the others
// - a client's SET of an untracked parameter (search_path, client_min_messages, statement_timeout)
//   follows it across the shared server connection, never reaches the other client, is undone
//   by a rollback, and does not pin the client
// - a SET whose value is too long to read back whole (over 16 KiB) ends that server connection,
//   logged, and the client goes on
// - a parameter a function SETs (default_transaction_read_only), which pgmux cannot read in the
//   SQL, is reset from the server's ParameterStatus before the other client gets the connection
// - login ParameterStatus spells the client's values as the server does (utf8 is UTF8, iso is
//   "ISO, MDY"), the same as a direct connection reports, also when the pool already knows them
// - a client that sets no application_name sees the server's default ('') at login and in SHOW,
//   also on a server connection another client named
#include <doctest/doctest.h>

#include "integration/fixtures.hpp"

namespace it {
namespace {

std::string conninfo_with(const proxy_instance& proxy, const std::string& extra) {
  return proxy.conninfo() + " " + extra;
}

std::string own_application_name(const pg_conn& c) {
  return scalar(c, "select application_name from pg_stat_activity where pid = pg_backend_pid()");
}

}  // namespace

TEST_SUITE("settings") {

TEST_CASE("a client that sets no application_name sees the server's default, as on a direct connection") {
  proxy_instance proxy(proxy_options().pool("max_size", "1").pool("min_size", "0"));
  auto named = connect(conninfo_with(proxy, "application_name=alpha"));
  CHECK(scalar(named, "show application_name") == "alpha");
  auto anonymous = connect(proxy.conninfo());
  REQUIRE(PQparameterStatus(anonymous.get(), "application_name") != nullptr);
  CHECK(std::string(PQparameterStatus(anonymous.get(), "application_name")).empty());
  CHECK(scalar(anonymous, "show application_name").empty());  // on the connection alpha used
  CHECK(own_application_name(anonymous).empty());
  pg_conn direct(pg().direct_conninfo());
  REQUIRE(direct.ok());
  CHECK(std::string(PQparameterStatus(direct.get(), "application_name")) ==
        std::string(PQparameterStatus(anonymous.get(), "application_name")));
}

TEST_CASE("two clients sharing one server connection each see their own settings") {
  proxy_instance proxy(proxy_options().pool("max_size", "1").pool("min_size", "0"));
  auto a = connect(conninfo_with(proxy, "application_name=alpha options='-c TimeZone=Asia/Tokyo -c extra_float_digits=0'"));
  auto b = connect(conninfo_with(proxy, "application_name=beta options='-c TimeZone=America/New_York'"));
  auto plain = connect(proxy.conninfo());

  CHECK(std::string(PQparameterStatus(a.get(), "TimeZone")) == "Asia/Tokyo");
  CHECK(std::string(PQparameterStatus(a.get(), "application_name")) == "alpha");
  CHECK(std::string(PQparameterStatus(b.get(), "TimeZone")) == "America/New_York");
  CHECK(std::string(PQparameterStatus(b.get(), "application_name")) == "beta");
  const std::string server_default_float_digits = scalar(plain, "show extra_float_digits");

  for (int round = 0; round < 3; ++round) {
    CAPTURE(round);
    CHECK(scalar(a, "show timezone") == "Asia/Tokyo");
    CHECK(own_application_name(a) == "alpha");
    CHECK(scalar(a, "show extra_float_digits") == "0");
    CHECK(scalar(b, "show timezone") == "America/New_York");
    CHECK(own_application_name(b) == "beta");
    CHECK(scalar(b, "show extra_float_digits") == server_default_float_digits);
    CHECK(scalar(plain, "show extra_float_digits") == server_default_float_digits);
  }
  // They really share the one server connection.
  CHECK(scalar(a, "select pg_backend_pid()") == scalar(b, "select pg_backend_pid()"));

  // A's own SET follows A, not B; a SET LOCAL ends with its transaction.
  exec_ok(a, "set timezone = 'Europe/Paris'");
  CHECK(scalar(b, "show timezone") == "America/New_York");
  CHECK(scalar(a, "show timezone") == "Europe/Paris");
  exec_ok(b, "begin");
  exec_ok(b, "set local timezone = 'UTC'");
  CHECK(scalar(b, "show timezone") == "UTC");
  exec_ok(b, "commit");
  CHECK(scalar(a, "show timezone") == "Europe/Paris");
  CHECK(scalar(b, "show timezone") == "America/New_York");
  // A DateStyle set inside a transaction that rolls back is undone for the client too.
  exec_ok(a, "begin; set datestyle = 'German'; rollback");
  CHECK(scalar(b, "select 1") == "1");
  CHECK(scalar(a, "show datestyle") == "ISO, MDY");
}

TEST_CASE("a startup setting the server refuses ends that client with the server's error") {
  proxy_instance proxy(proxy_options().pool("max_size", "1").pool("min_size", "0"));
  // A tracked parameter is checked at login, as PostgreSQL checks it.
  pg_conn bad(conninfo_with(proxy, "options='-c TimeZone=Mars/Olympus_Mons'"));
  CHECK_FALSE(bad.ok());
  CHECK_MESSAGE(bad.error().find("invalid value for parameter \"TimeZone\"") != std::string::npos, bad.error());
  // Another one only when a server connection is lent: at its first statement.
  pg_conn late(conninfo_with(proxy, "options='-c extra_float_digits=99'"));
  REQUIRE(late.ok());
  auto r = late.exec("select 1");
  CHECK(r.status() == PGRES_FATAL_ERROR);
  CHECK_MESSAGE(late.error().find("extra_float_digits") != std::string::npos, late.error());
  // Everyone else is unaffected, on the same server connection.
  auto good = connect(proxy.conninfo());
  CHECK(scalar(good, "show timezone") != "Mars/Olympus_Mons");
  CHECK(scalar(good, "show extra_float_digits") == "1");
  pg_conn refused(conninfo_with(proxy, "options='-x nonsense'"));
  CHECK_FALSE(refused.ok());
}

TEST_CASE("a client's SET of an untracked parameter follows it, never reaches the other client, and pins nothing") {
  proxy_instance proxy(proxy_options().pool("max_size", "1").pool("min_size", "0"));
  auto a = connect(proxy.conninfo());
  auto b = connect(proxy.conninfo());
  const auto default_path = scalar(b, "show search_path");
  exec_ok(a, "SET search_path = it_a, public; SET client_min_messages TO warning");
  CHECK(scalar(b, "show search_path") == default_path);
  CHECK(scalar(b, "show client_min_messages") == "notice");
  CHECK(scalar(a, "show search_path") == "it_a, public");
  CHECK(scalar(a, "show client_min_messages") == "warning");
  exec_ok(a, "begin");
  exec_ok(a, "set statement_timeout = '7s'");
  exec_ok(a, "rollback");
  CHECK(scalar(b, "show statement_timeout") == "0");
  CHECK(scalar(a, "show statement_timeout") == "0");  // rolled back, as on PostgreSQL
  exec_ok(a, "begin; set statement_timeout = '7s'; commit");
  CHECK(scalar(b, "show statement_timeout") == "0");
  CHECK(scalar(a, "show statement_timeout") == "7s");
  CHECK(scalar(b, "select count(*) from pg_stat_activity where usename = 'pgmux_test'") == "1");  // one shared
  CHECK(proxy.settled_log(proxy.conninfo()).find("until it disconnects") == std::string::npos);
}

TEST_CASE("a SET whose value is too long to read back whole costs its server connection, not the client nor pgmux") {
  proxy_instance proxy(proxy_options().pool("max_size", "1").pool("min_size", "0"));
  auto a = connect(proxy.conninfo());
  // About 40 KB of schema names: the value read back is one DataRow longer than the 16 KiB
  // pgmux reads a message of its own queries into.
  std::string path;
  for (int i = 0; i < 2000; ++i) path += (i ? ", s" : "s") + std::to_string(i) + "_padding_padding";
  exec_ok(a, "SET search_path = " + path);
  CHECK(proxy.logged("reading back the client's settings failed: a message from the server longer than pgmux reads whole", 10s));
  CHECK(proxy.alive());
  CHECK(scalar(a, "select 'still served'") == "still served");
  auto b = connect(proxy.conninfo());
  CHECK(scalar(b, "show search_path").size() < 100);  // the long value never reached another client
}

TEST_CASE("a parameter a function SETs where pgmux cannot read it is reset before another client gets the connection") {
  auto setup = setup_connection();
  exec_ok(setup, "create or replace function it_read_only() returns void language plpgsql as "
                 "$$ begin set default_transaction_read_only = on; end $$");
  proxy_instance proxy(proxy_options().pool("max_size", "1").pool("min_size", "0"));
  auto a = connect(proxy.conninfo());
  auto b = connect(proxy.conninfo());
  exec_ok(a, "select it_read_only()");
  CHECK(scalar(b, "show default_transaction_read_only") == "off");
  CHECK(proxy.logged("reset (default_transaction_read_only)"));
  // The client's own SET, which pgmux reads, is carried as any other.
  exec_ok(a, "set default_transaction_read_only = on");
  CHECK(scalar(b, "show default_transaction_read_only") == "off");
  CHECK(scalar(a, "show default_transaction_read_only") == "on");
  CHECK(scalar(b, "select count(*) from pg_stat_activity where usename = 'pgmux_test'") == "1");  // one shared
  exec_ok(setup, "drop function it_read_only()");
}

TEST_CASE("login ParameterStatus spells the client's values as the server does, as a direct connection shows") {
  proxy_instance proxy(proxy_options().pool("max_size", "1").pool("min_size", "0"));
  const std::string settings = "client_encoding=utf8 options='-c DateStyle=iso -c TimeZone=utc -c IntervalStyle=ISO_8601'";
  pg_conn direct(pg().direct_conninfo() + " " + settings);
  REQUIRE(direct.ok());
  for (int round = 0; round < 2; ++round) {  // the second login takes the spellings from the pool's memory
    CAPTURE(round);
    auto c = connect(conninfo_with(proxy, settings));
    for (const char* name : {"client_encoding", "DateStyle", "TimeZone", "IntervalStyle"}) {
      CAPTURE(name);
      REQUIRE(PQparameterStatus(c.get(), name) != nullptr);
      CHECK(std::string(PQparameterStatus(c.get(), name)) == std::string(PQparameterStatus(direct.get(), name)));
    }
    CHECK(std::string(PQparameterStatus(c.get(), "DateStyle")) == "ISO, MDY");
    CHECK(std::string(PQparameterStatus(c.get(), "TimeZone")) == "UTC");
    CHECK(scalar(c, "show DateStyle") == "ISO, MDY");
  }
}

}  // TEST_SUITE
}  // namespace it
