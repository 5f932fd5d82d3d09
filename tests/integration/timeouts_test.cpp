// Timeouts and cancellation through pgmux:
// - command_timeout cancels a long statement with 57014; the client connection and the server
//   connection stay usable and clean                                          (workers 1 and 2)
// - PQcancel through pgmux cancels the client's running query quickly         (workers 1 and 2)
// - a cancel from a client without a server connection does not touch another client's query
// - a CancelRequest with a wrong key cancels nothing
// - idle_transaction_timeout disconnects a client idle in a transaction and frees its row lock
// - client_idle_timeout closes idle clients outside transactions, not active ones nor open transactions
// - client_idle_timeout also ends a client stalled in the middle of its next message
#include <doctest/doctest.h>

#include <random>
#include <thread>

#include "integration/fixtures.hpp"

// Inside namespace it: libpq declares `struct pg_conn` and `struct pg_result` globally.
namespace it {
namespace {

// Statements running on the server whose text starts with `prefix` (the asking one excluded).
int running(const pg_conn& admin, const std::string& prefix) {
  auto r = admin.exec_params(
      "select count(*) from pg_stat_activity where state = 'active' and pid <> pg_backend_pid()"
      " and starts_with(query, $1)",
      {prefix});
  return r.status() == PGRES_TUPLES_OK ? std::stoi(r.value()) : -1;
}

void cancel(const pg_conn& c) {
  PGcancel* handle = PQgetCancel(c.get());
  CHECK(handle != nullptr);  // CHECK, not REQUIRE: also called from helper threads
  if (!handle) return;
  char err[256] = "";
  const int ok = PQcancel(handle, err, sizeof err);
  PQfreeCancel(handle);
  CHECK_MESSAGE(ok == 1, err);
}

}  // namespace

TEST_SUITE("timeouts") {

TEST_CASE("command_timeout cancels a long statement with 57014 and both connections stay usable") {
  IT_FOR_EACH_WORKER_COUNT(workers);
  proxy_instance proxy(proxy_options().workers(workers).pool("max_size", "1").pool("command_timeout", "500ms"));
  auto c = connect(proxy.conninfo());
  auto admin = connect(pg().admin_conninfo());

  auto t0 = clock::now();
  auto r = c.exec("select pg_sleep(5)");
  double took = seconds_since(t0);
  CHECK(r.sqlstate() == "57014");
  CHECK(took >= 0.4);
  CHECK(took < 2.5);
  // Cancelled on the server, not merely abandoned.
  CHECK(wait_until([&] { return running(admin, "select pg_sleep(5)") == 0; }, 1s));

  CHECK(scalar(c, "select 1") == "1");
  CHECK(PQtransactionStatus(c.get()) == PQTRANS_IDLE);
  exec_ok(c, "begin");
  CHECK(scalar(c, "select 'in a fresh transaction'") == "in a fresh transaction");
  exec_ok(c, "commit");
  CHECK(scalar(c, "select pg_sleep(0.2)::text || 'short'") == "short");

  // Extended protocol too.
  t0 = clock::now();
  r = c.exec_params("select pg_sleep($1::float8)", {"5"});
  CHECK(r.sqlstate() == "57014");
  CHECK(seconds_since(t0) < 2.5);

  // Inside a transaction the statement is cancelled and the transaction aborted, as PostgreSQL does.
  exec_ok(c, "begin");
  CHECK(c.exec("select pg_sleep(5)").sqlstate() == "57014");
  CHECK(c.exec("select 1").sqlstate() == "25P02");
  exec_ok(c, "rollback");
  CHECK(scalar(c, "select 2") == "2");

  // The one server connection went back clean: another client is not inside anything.
  auto other = connect(proxy.conninfo());
  other.collect_notices();
  exec_ok(other, "begin");  // would warn "there is already a transaction in progress"
  CHECK(scalar(other, "select 'clean'") == "clean");
  exec_ok(other, "commit");
  CHECK(other.notices().empty());
  CHECK(server_connections(admin) == 1);
}

TEST_CASE("PQcancel through pgmux cancels the client's running query quickly") {
  IT_FOR_EACH_WORKER_COUNT(workers);
  proxy_instance proxy(proxy_options().workers(workers));
  auto c = connect(proxy.conninfo());
  // Cancelling while idle is harmless.
  cancel(c);
  CHECK(scalar(c, "select 'idle cancel ignored'") == "idle cancel ignored");

  for (const char* how : {"simple", "extended", "in a transaction"}) {
    CAPTURE(how);
    const std::string mode = how;
    if (mode == "in a transaction") exec_ok(c, "begin");
    const auto t0 = clock::now();
    std::jthread canceller([&] {
      std::this_thread::sleep_for(300ms);
      cancel(c);
    });
    auto r = mode == "extended" ? c.exec_params("select pg_sleep($1::float8)", {"10"}) : c.exec("select pg_sleep(10)");
    const double took = seconds_since(t0);
    canceller.join();
    CHECK(r.sqlstate() == "57014");
    CHECK(took < 3.0);
    if (mode == "in a transaction") {
      CHECK(PQtransactionStatus(c.get()) == PQTRANS_INERROR);
      exec_ok(c, "rollback");
    }
    CHECK(PQtransactionStatus(c.get()) == PQTRANS_IDLE);
    CHECK(scalar(c, "select 'usable'") == "usable");
  }
}

TEST_CASE("a cancel from a client without a server connection does not touch another client's query") {
  proxy_instance proxy(proxy_options().pool("max_size", "1"));
  auto idle = connect(proxy.conninfo());
  auto busy = connect(proxy.conninfo());
  CHECK(scalar(idle, "select 1") == "1");  // has used the one server, then given it back

  std::jthread canceller([&] {
    std::this_thread::sleep_for(300ms);
    cancel(idle);
  });
  auto r = busy.exec("select pg_sleep(1.2)::text || 'done'");
  canceller.join();
  CHECK_MESSAGE(r.status() == PGRES_TUPLES_OK, r.error());
  CHECK(r.value() == "done");
}

TEST_CASE("a CancelRequest with a wrong key cancels nothing") {
  proxy_instance proxy;
  auto c = connect(proxy.conninfo());
  const auto pid = static_cast<std::uint32_t>(PQbackendPID(c.get()));
  std::jthread canceller([&] {
    std::this_thread::sleep_for(300ms);
    std::mt19937 gen{std::random_device{}()};
    for (int i = 0; i < 3; ++i) {
      raw_socket s(proxy.port());
      s.send(wire::startup_packet(80877102, wire::be32(pid) + wire::be32(static_cast<std::uint32_t>(gen()))));
      CHECK(s.read_until_closed(3s).closed);  // a CancelRequest gets no answer: just a close
    }
    raw_socket s(proxy.port());  // and an unknown pid
    s.send(wire::startup_packet(80877102, wire::be32(pid + 7777) + wire::be32(1)));
    CHECK(s.read_until_closed(3s).closed);
  });
  auto r = c.exec("select pg_sleep(1.2)::text || 'done'");
  canceller.join();
  CHECK_MESSAGE(r.status() == PGRES_TUPLES_OK, r.error());
  CHECK(r.value() == "done");
}

TEST_CASE("idle_transaction_timeout disconnects a client idle in a transaction and frees its row lock") {
  {
    auto setup = setup_connection();
    exec_ok(setup, "drop table if exists it_idle_lock; create table it_idle_lock (id int primary key, v text);"
                   " insert into it_idle_lock values (1, 'x')");
  }
  proxy_instance proxy(proxy_options().pool("max_size", "2").pool("idle_transaction_timeout", "1s"));
  auto a = connect(proxy.conninfo());
  auto b = connect(proxy.conninfo());

  exec_ok(a, "begin");
  exec_ok(a, "update it_idle_lock set v = 'uncommitted' where id = 1");
  CHECK(scalar(a, "select id from it_idle_lock where id = 1 for update") == "1");
  const auto idle_since = clock::now();

  // The lock is really held...
  CHECK(b.exec("select id from it_idle_lock where id = 1 for update nowait").sqlstate() == "55P03");
  // ...until pgmux ends the idle transaction, without waiting for the client to speak again.
  std::this_thread::sleep_for(2500ms);
  auto r = b.exec("select v from it_idle_lock where id = 1 for update nowait");
  CHECK_MESSAGE(r.status() == PGRES_TUPLES_OK, r.error());
  CHECK(r.value() == "x");  // rolled back
  MESSAGE("lock free " << seconds_since(idle_since) << " s after the client went idle");

  auto next = a.exec("select 1");
  CHECK(next.status() != PGRES_TUPLES_OK);
  CHECK(PQstatus(a.get()) == CONNECTION_BAD);
  MESSAGE("client idle in transaction got: " << a.error());

  auto admin = connect(pg().admin_conninfo());
  CHECK(scalar(admin, "select count(*) from pg_stat_activity where usename = 'pgmux_test'"
                      " and state like 'idle in transaction%'") == "0");
  auto c = connect(proxy.conninfo());
  CHECK(scalar(c, "select 'served'") == "served");
  // An active transaction is not idle: statements every 300 ms keep it alive past the timeout.
  exec_ok(c, "begin");
  for (int i = 0; i < 6; ++i) {
    std::this_thread::sleep_for(300ms);
    CHECK(scalar(c, "select " + std::to_string(i)) == std::to_string(i));
  }
  exec_ok(c, "commit");
}

TEST_CASE("client_idle_timeout closes idle clients outside transactions, not active ones nor open transactions") {
  proxy_instance proxy(proxy_options().pool("client_idle_timeout", "1s"));
  auto idle = connect(proxy.conninfo());
  auto active = connect(proxy.conninfo());
  auto in_tx = connect(proxy.conninfo());
  CHECK(scalar(idle, "select 1") == "1");
  exec_ok(in_tx, "begin");
  CHECK(scalar(in_tx, "select 1") == "1");

  for (int i = 0; i < 8; ++i) {
    std::this_thread::sleep_for(300ms);
    CHECK(scalar(active, "select " + std::to_string(i)) == std::to_string(i));
  }
  auto r = idle.exec("select 1");
  CHECK(r.status() != PGRES_TUPLES_OK);
  CHECK(PQstatus(idle.get()) == CONNECTION_BAD);
  MESSAGE("idle client got: " << idle.error());

  CHECK(scalar(in_tx, "select 'still in transaction'") == "still in transaction");
  exec_ok(in_tx, "commit");
}

TEST_CASE("client_idle_timeout also ends a client that sent part of a message and stalled, alone or after a whole one, not one that completes it") {
  proxy_instance proxy(proxy_options().pool("client_idle_timeout", "3s"));
  const std::string query = wire::msg('Q', wire::cstr("select 42"));

  raw_socket stalled(proxy.port());
  REQUIRE(stalled.startup());
  REQUIRE(stalled.send(query.substr(0, 7)));  // the header and two bytes of the text
  const auto started = clock::now();
  auto error = stalled.read_message(15s);
  REQUIRE(error);
  CHECK(error->first == 'E');
  CHECK(wire::error_fields(error->second)['C'] == "57P05");
  // The timeout, counted from when the client went idle (just before `started`).
  CHECK(clock::now() - started >= 1s);
  CHECK(clock::now() - started < 10s);
  CHECK(stalled.read_until_closed(5s).closed);

  // Part of the next message sent with a whole one: the first is answered, then the deadline
  // holds for the rest.
  raw_socket pipelined(proxy.port());
  REQUIRE(pipelined.startup());
  REQUIRE(pipelined.send(query + query.substr(0, 5)));
  auto m = pipelined.read_message(5s);
  while (m && m->first != 'Z' && m->first != 'E') m = pipelined.read_message(5s);
  REQUIRE(m);
  CHECK(m->first == 'Z');  // the whole query was served
  error = pipelined.read_message(15s);
  REQUIRE(error);
  CHECK(error->first == 'E');
  CHECK(wire::error_fields(error->second)['C'] == "57P05");
  CHECK(pipelined.read_until_closed(5s).closed);

  // The rest of the message within the timeout: the query runs.
  raw_socket slow(proxy.port());
  REQUIRE(slow.startup());
  REQUIRE(slow.send(query.substr(0, 7)));
  std::this_thread::sleep_for(200ms);  // a slow sender: a pause well inside the timeout
  REQUIRE(slow.send(query.substr(7)));
  std::string answer;
  for (auto m = slow.read_message(5s); m && m->first != 'Z'; m = slow.read_message(5s)) {
    CHECK(m->first != 'E');
    if (m->first == 'D') answer = m->second;
  }
  CHECK(answer.ends_with("42"));
}

}  // TEST_SUITE
}  // namespace it
