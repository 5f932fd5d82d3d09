// Protocol-level prepared statements in transaction mode, with pools smaller than the number
// of clients so that server connections really change under the clients:
// - PQprepare / PQexecPrepared across many transactions and clients; two clients using the same
//   statement name for different SQL each get their own
// - pipelined Parse/Bind/Execute; PQdescribePrepared
// - the unnamed statement is re-prepared where a client Binds it, and never another client's
// - errors keep their meaning: a bad Parse reports the server's error, an unknown name 26000
// - DISCARD ALL forgets the client's names; a Close answers CloseComplete and leaves other
//   clients' shared statement alone
// - a statement whose result type ALTER TABLE changed fails with 0A000 until the client prepares it again
// - max_prepared_statements bounds what a server connection keeps
#include <doctest/doctest.h>

#include <atomic>
#include <thread>

#include "integration/fixtures.hpp"

namespace it {
namespace {

pg_result exec_prepared(const pg_conn& c, const std::string& name, const std::vector<std::string>& params) {
  std::vector<const char*> values;
  for (const auto& p : params) values.push_back(p.c_str());
  return pg_result(PQexecPrepared(c.get(), name.c_str(), static_cast<int>(values.size()), values.data(), nullptr,
                                  nullptr, 0));
}

pg_result prepare(const pg_conn& c, const std::string& name, const std::string& sql) {
  return pg_result(PQprepare(c.get(), name.c_str(), sql.c_str(), 0, nullptr));
}

proxy_options small_pool(const char* max_size) {
  return proxy_options().workers(2).pool("max_size", max_size).pool("min_size", "0");
}

}  // namespace

TEST_SUITE("prepared") {

TEST_CASE("named statements follow clients across server connections") {
  proxy_instance proxy(small_pool("2"));
  constexpr int clients = 6, rounds = 40;
  std::atomic<int> failures{0};
  std::string first_error;
  std::mutex error_mu;
  auto fail = [&](const std::string& what) {
    if (failures++ == 0) {
      std::lock_guard lock(error_mu);
      first_error = what;
    }
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < clients; ++i) {
    threads.emplace_back([&, i] {
      auto c = connect(proxy.conninfo());
      // Same name everywhere, different SQL per client: each must run its own.
      auto p = prepare(c, "stmt", "select $1::int * " + std::to_string(i + 1) + " as v");
      if (p.status() != PGRES_COMMAND_OK) return fail("prepare: " + p.error());
      auto q = prepare(c, "pid", "select pg_backend_pid()");
      if (q.status() != PGRES_COMMAND_OK) return fail("prepare pid: " + q.error());
      for (int r = 0; r < rounds; ++r) {
        auto x = exec_prepared(c, "stmt", {std::to_string(r)});
        if (x.status() != PGRES_TUPLES_OK) return fail("execute: " + x.error());
        if (x.value() != std::to_string(r * (i + 1))) return fail("client " + std::to_string(i) + " got " + x.value());
        if (r % 10 == 0) {
          // Inside a transaction too, with the statement prepared before it.
          exec_ok(c, "begin");
          auto y = exec_prepared(c, "stmt", {"7"});
          exec_ok(c, "commit");
          if (y.value() != std::to_string(7 * (i + 1))) return fail("in transaction: " + y.value());
        }
      }
      if (exec_prepared(c, "pid", {}).status() != PGRES_TUPLES_OK) fail("pid");
    });
  }
  for (auto& t : threads) t.join();
  CHECK_MESSAGE(failures == 0, first_error);
  // Six clients shared two server connections, so statements were prepared where needed.
  auto admin = connect(pg().admin_conninfo());
  CHECK(server_connections(admin) <= 2);
}

TEST_CASE("pipelined Parse, Bind and Execute, and a Describe of a statement") {
  proxy_instance proxy(small_pool("1"));
  auto other = connect(proxy.conninfo());
  auto c = connect(proxy.conninfo());
  REQUIRE(PQenterPipelineMode(c.get()) == 1);
  REQUIRE(PQsendPrepare(c.get(), "add", "select $1::int + $2::int as sum", 0, nullptr) == 1);
  const char* a[] = {"1", "2"};
  const char* b[] = {"40", "2"};
  REQUIRE(PQsendQueryPrepared(c.get(), "add", 2, a, nullptr, nullptr, 0) == 1);
  REQUIRE(PQsendQueryPrepared(c.get(), "add", 2, b, nullptr, nullptr, 0) == 1);
  REQUIRE(PQpipelineSync(c.get()) == 1);
  std::vector<std::string> got;
  int syncs = 0;
  for (int guard = 0; guard < 20 && syncs == 0; ++guard) {
    PGresult* r = PQgetResult(c.get());
    if (!r) continue;
    const auto status = PQresultStatus(r);
    if (status == PGRES_PIPELINE_SYNC) ++syncs;
    else if (status == PGRES_TUPLES_OK) got.push_back(PQgetvalue(r, 0, 0));
    else if (status != PGRES_COMMAND_OK) got.push_back(std::string("error: ") + PQresultErrorMessage(r));
    PQclear(r);
  }
  REQUIRE(PQexitPipelineMode(c.get()) == 1);
  CHECK(got == std::vector<std::string>{"3", "42"});

  // The other client takes the one server connection in between; the statement is described
  // on it without the client noticing.
  CHECK(scalar(other, "select 1") == "1");
  pg_result d(PQdescribePrepared(c.get(), "add"));
  REQUIRE_MESSAGE(d.status() == PGRES_COMMAND_OK, d.error());
  CHECK(PQnparams(d.get()) == 2);
  CHECK(PQparamtype(d.get(), 0) == 23);  // int4
  CHECK(std::string(PQfname(d.get(), 0)) == "sum");
  CHECK(exec_prepared(c, "add", {"5", "5"}).value() == "10");
}

TEST_CASE("the unnamed statement is re-prepared where it is bound and never shared") {
  proxy_instance proxy(small_pool("1"));
  auto a = connect(proxy.conninfo());
  auto b = connect(proxy.conninfo());
  auto c = connect(proxy.conninfo());
  // Parse in one cycle, Bind in a later one, with another client's unnamed Parse in between on
  // the one server connection.
  REQUIRE(prepare(a, "", "select 'a:' || $1::text").status() == PGRES_COMMAND_OK);
  REQUIRE(prepare(b, "", "select 'b:' || $1::text").status() == PGRES_COMMAND_OK);
  CHECK(exec_prepared(a, "", {"x"}).value() == "a:x");
  CHECK(exec_prepared(b, "", {"y"}).value() == "b:y");
  CHECK(exec_prepared(a, "", {"z"}).value() == "a:z");
  // A client that never prepared one gets PostgreSQL's error, not someone else's statement.
  auto none = exec_prepared(c, "", {"w"});
  CHECK(none.status() == PGRES_FATAL_ERROR);
  CHECK(none.sqlstate() == "26000");
  // After a simple query (which destroys the unnamed statement on PostgreSQL) pgmux still has
  // the client's definition: it prepares it again rather than fail.
  CHECK(scalar(a, "select 1") == "1");
  CHECK(exec_prepared(a, "", {"v"}).value() == "a:v");
}

TEST_CASE("errors keep their meaning and DISCARD ALL forgets the client's names") {
  proxy_instance proxy(small_pool("1"));
  auto c = connect(proxy.conninfo());
  auto bad = prepare(c, "bad", "selec 1");
  CHECK(bad.status() == PGRES_FATAL_ERROR);
  CHECK(bad.sqlstate() == "42601");
  CHECK(exec_prepared(c, "bad", {}).sqlstate() == "26000");
  auto never = exec_prepared(c, "never_prepared", {});
  CHECK(never.sqlstate() == "26000");
  CHECK(never.error().find("never_prepared") != std::string::npos);
  CHECK(scalar(c, "select 'still usable'") == "still usable");

  REQUIRE(prepare(c, "s1", "select 11").status() == PGRES_COMMAND_OK);
  CHECK(exec_prepared(c, "s1", {}).value() == "11");
  exec_ok(c, "DISCARD ALL");
  CHECK(exec_prepared(c, "s1", {}).sqlstate() == "26000");
  // Prepared again after DISCARD ALL, under the same name.
  REQUIRE(prepare(c, "s1", "select 12").status() == PGRES_COMMAND_OK);
  CHECK(exec_prepared(c, "s1", {}).value() == "12");
}

TEST_CASE("Close answers CloseComplete and leaves the shared statement to other clients") {
  proxy_instance proxy(small_pool("1"));
  auto other = connect(proxy.conninfo());
  REQUIRE(prepare(other, "shared", "select 'same sql'").status() == PGRES_COMMAND_OK);

  raw_socket raw(proxy.port());
  REQUIRE(raw.startup());
  raw.send(wire::msg('P', wire::cstr("mine") + wire::cstr("select 'same sql'") + std::string(2, '\0')) +
           wire::msg('S', ""));
  auto m = raw.read_message(3s);
  REQUIRE(m);
  CHECK(m->first == '1');
  REQUIRE(raw.read_message(3s));  // ReadyForQuery
  raw.send(wire::msg('C', "S" + wire::cstr("mine")) + wire::msg('S', ""));
  m = raw.read_message(3s);
  REQUIRE(m);
  CHECK(m->first == '3');  // CloseComplete
  m = raw.read_message(3s);
  REQUIRE(m);
  CHECK(m->first == 'Z');
  // The name is gone for this client...
  raw.send(wire::msg('B', wire::cstr("") + wire::cstr("mine") + std::string(6, '\0')) + wire::msg('E', wire::cstr("") + std::string(4, '\0')) +
           wire::msg('S', ""));
  m = raw.read_message(3s);
  REQUIRE(m);
  CHECK(m->first == 'E');
  CHECK(wire::error_fields(m->second)['C'] == "26000");
  // ...and the other client's statement with the same SQL still runs on the same server.
  CHECK(exec_prepared(other, "shared", {}).value() == "same sql");
}

TEST_CASE("a statement whose result type ALTER TABLE changed fails with 0A000 until the client prepares it again") {
  const int mport = free_port();
  proxy_instance proxy(small_pool("1").top_level(metrics_member(mport)));
  auto setup = setup_connection();
  exec_ok(setup, "drop table if exists it_stale; create table it_stale (a int); insert into it_stale values (1)");
  auto c = connect(proxy.conninfo());
  REQUIRE(prepare(c, "star", "select * from it_stale").status() == PGRES_COMMAND_OK);
  CHECK(exec_prepared(c, "star", {}).value() == "1");  // its portal's description shows one column
  exec_ok(setup, "alter table it_stale add column b int default 2");
  // As on PostgreSQL: the statement keeps failing. First the server says so, then pgmux, which
  // prepares it afresh, sees the new type and answers for it (asking again at each use).
  for (int i = 0; i < 3; ++i) {
    CAPTURE(i);
    auto stale = exec_prepared(c, "star", {});
    CHECK(stale.status() == PGRES_FATAL_ERROR);
    CHECK(stale.sqlstate() == "0A000");
    CHECK(stale.error().find("cached plan must not change result type") != std::string::npos);
  }
  // Prepared again, it has the new type.
  exec_ok(c, "DEALLOCATE star");
  REQUIRE(prepare(c, "star", "select * from it_stale").status() == PGRES_COMMAND_OK);
  auto healed = exec_prepared(c, "star", {});
  REQUIRE_MESSAGE(healed.status() == PGRES_TUPLES_OK, healed.error());
  CHECK(PQnfields(healed.get()) == 2);
  CHECK(healed.value(0, 1) == "2");
  const std::string labels = "{database=\"pgmux_test\",user=\"pgmux_test\"}";
  CHECK(wait_until([&] { return metric_value(scrape_metrics(mport), "pgmux_prepared_statements_stale_total" + labels) == 1; }, 3s));
  // The client's two Parses, and the two that asked the server for the type again (the third
  // execution asked too: the schema might have been back as it was).
  CHECK(metric_value(scrape_metrics(mport), "pgmux_prepared_statements_prepared_total" + labels) == 4);
  exec_ok(setup, "drop table it_stale");
}

TEST_CASE("max_prepared_statements bounds what a server connection keeps") {
  proxy_instance proxy(small_pool("1").pool("max_prepared_statements", "2"));
  auto c = connect(proxy.conninfo());
  for (int i = 0; i < 4; ++i)
    REQUIRE(prepare(c, "s" + std::to_string(i), "select " + std::to_string(i) + " as n").status() == PGRES_COMMAND_OK);
  for (int round = 0; round < 3; ++round)
    for (int i = 0; i < 4; ++i) CHECK(exec_prepared(c, "s" + std::to_string(i), {}).value() == std::to_string(i));
  // Counted on the one server connection, by a statement that is itself prepared there.
  REQUIRE(prepare(c, "count", "select count(*) from pg_prepared_statements").status() == PGRES_COMMAND_OK);
  CHECK(std::stoi(exec_prepared(c, "count", {}).value()) <= 2);
}

}  // TEST_SUITE
}  // namespace it
