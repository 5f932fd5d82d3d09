// Pooling through pgmux, checked against pg_stat_activity of the real server:
// - pgbench TPC-B-like, 100 clients over max_size 10, -M simple and -M extended: no failed
//   transaction, never more than 10 server connections                    (workers 1, 2 and 4)
// - pgbench select-only (-S), 100 clients over max_size 10: same            (workers 1 and 2)
//   (select-only also with -M prepared: named statements follow clients across server connections)
// - pgbench -M prepared, 50 clients over max_size 5, select-only and TPC-B-like: no failed transaction
// - 100 client threads each get their own results and no committed update is lost (workers 1, 2, 4)
// - min_size server connections are opened at start, without clients, and kept when idle
// - transaction mode: two clients share one server connection; SET LOCAL does not leak (workers 1 and 2)
// - waiting clients get the server in FIFO order when the holder's transaction ends (workers 1, 2, 4)
// - statement mode: the server goes back after every statement; BEGIN ends the client with an error
// - session mode: a client keeps its server and session state; the next client gets it reset
//   (DISCARD ALL) after the first leaves                                   (workers 1 and 2)
// - session mode: LISTEN/NOTIFY notifications reach an idle client
// - session mode: BackendKeyData carries the client's own backend pid, which pg_backend_pid(),
//   notifications' sender and pg_terminate_backend agree with; a cancel with that key works
// - query_wait_timeout: a client waiting beyond it gets 53300 or 08P01; the holder continues
// - idle server connections above min_size close after max_inactive_connection_lifetime
// - server_lifetime retires a connection at its next idle moment, never mid-transaction
// - per-database pool settings override pool_defaults
#include <doctest/doctest.h>

#include <poll.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <regex>
#include <set>
#include <thread>

#include "integration/fixtures.hpp"

// Inside namespace it: libpq declares `struct pg_conn` and `struct pg_result` globally.
namespace it {
namespace {

// pgbench tables, created once per test process directly against PostgreSQL.
void pgbench_init() {
  static bool done = false;
  if (done) return;
  auto r = run("pgbench -i -s 1 -q -h " + shell_quote(pg().socket_dir()) + " -p " + std::to_string(pg().port()) +
                   " -U pgmux_test pgmux_test",
               120);
  REQUIRE_MESSAGE(r.code == 0, r.output);
  done = true;
}

struct pgbench_outcome {
  run_result result;
  long processed = -1;
  long failed = -1;
};

pgbench_outcome pgbench(const proxy_instance& proxy, const std::string& args, int clients, int threads) {
  pgbench_outcome out;
  out.result = run("pgbench -n -c " + std::to_string(clients) + " -j " + std::to_string(threads) + " -T 4 " + args + " -h 127.0.0.1 -p " + std::to_string(proxy.port()) +
                       " -U pgmux_test pgmux_test",
                   90);
  std::smatch m;
  if (std::regex_search(out.result.output, m, std::regex(R"(number of transactions actually processed: (\d+))")))
    out.processed = std::stol(m[1]);
  if (std::regex_search(out.result.output, m, std::regex(R"(number of failed transactions: (\d+))")))
    out.failed = std::stol(m[1]);
  return out;
}

void check_pgbench(const proxy_instance& proxy, const std::string& args, int clients = 100, int max_size = 10,
                   int threads = 2) {
  CAPTURE(args);
  connection_sampler sampler;
  auto b = pgbench(proxy, args, clients, threads);
  sampler.stop();
  INFO("pgbench output:\n" << b.result.output);
  CHECK(b.result.code == 0);
  CHECK(b.failed == 0);
  CHECK(b.processed > 100);
  CHECK(sampler.samples() > 5);  // few when the machine is saturated, but some
  CHECK(sampler.max_seen() <= max_size);
  CHECK(sampler.max_seen() >= 2);  // the sampler saw the load (and pgmux used more than one server)
  MESSAGE("pgbench " << args << " (workers " << proxy.workers() << "): " << b.processed << " transactions, " << b.failed << " failed, at most "
                     << sampler.max_seen() << " server connections in " << sampler.samples() << " samples");
}

double epoch(const std::string& s) { return std::stod(s); }

// IT_FOR_EACH_WORKER_COUNT and 4 workers, for tests of what workers share: a pool's bound and
// its queue are global while clients and server connections are spread over the workers.
#define IT_FOR_EACH_SHARING_WORKER_COUNT(var) \
  unsigned var = 1;                           \
  SUBCASE("workers=1") { var = 1; }           \
  SUBCASE("workers=2") { var = 2; }           \
  SUBCASE("workers=4") { var = 4; }           \
  CAPTURE(var)

}  // namespace

TEST_SUITE("pooling") {

TEST_CASE("pgbench TPC-B-like with 100 clients over max_size 10: no failed transaction, at most 10 server connections") {
  IT_FOR_EACH_SHARING_WORKER_COUNT(workers);
  pgbench_init();
  proxy_instance proxy(proxy_options().workers(workers).pool("max_size", "10").pool("query_wait_timeout", "60s"));
  for (const char* mode : {"-M simple", "-M extended"}) check_pgbench(proxy, mode);
}

TEST_CASE("pgbench select-only with 100 clients over max_size 10: no failed transaction, at most 10 server connections") {
  IT_FOR_EACH_WORKER_COUNT(workers);
  pgbench_init();
  proxy_instance proxy(proxy_options().workers(workers).pool("max_size", "10").pool("query_wait_timeout", "60s"));
  for (const char* mode : {"-M simple", "-M extended", "-M prepared"}) check_pgbench(proxy, std::string("-S -T 3 ") + mode);
}

TEST_CASE("pgbench -M prepared with 50 clients over max_size 5: no failed transaction") {
  pgbench_init();
  proxy_instance proxy(proxy_options().workers(2).pool("max_size", "5").pool("query_wait_timeout", "60s"));
  check_pgbench(proxy, "-S -T 3 -M prepared", 50, 5);
  // pgbench prepares a client's statements with a blocking PQprepare on the thread it shares
  // with other clients: behind any pool smaller than the client count, a client holding a
  // server mid-transaction on the same thread would wait for it for ever. A thread per client.
  check_pgbench(proxy, "-M prepared", 50, 5, 50);
}

TEST_CASE("100 client threads each get their own results and no committed update is lost") {
  IT_FOR_EACH_SHARING_WORKER_COUNT(workers);
  {
    auto setup = setup_connection();
    exec_ok(setup, "drop table if exists it_counter; create table it_counter (n int); insert into it_counter values (0)");
  }
  proxy_instance proxy(proxy_options().workers(workers).pool("max_size", "10").pool("query_wait_timeout", "60s"));
  connection_sampler sampler;

  constexpr int clients = 100, iterations = 21;  // every third iteration is an update transaction
  std::atomic<int> failures{0}, updates{0};
  std::mutex first_error_mutex;
  std::string first_error;
  auto fail = [&](const std::string& what) {
    if (failures++ == 0) {
      std::lock_guard lock(first_error_mutex);
      first_error = what;
    }
  };
  {
    std::vector<std::jthread> threads;
    for (int id = 0; id < clients; ++id) {
      threads.emplace_back([&, id] {
        pg_conn c(proxy.conninfo());
        if (!c.ok()) return fail("connect: " + c.error());
        for (int i = 0; i < iterations; ++i) {
          const std::string expect = std::to_string(id) + "/" + std::to_string(i);
          if (i % 3 == 0) {
            auto r = c.exec("select '" + expect + "'");
            if (r.status() != PGRES_TUPLES_OK || r.value() != expect)
              return fail("simple: expected " + expect + ", got " + r.value() + r.error());
          } else if (i % 3 == 1) {
            auto r = c.exec_params("select $1::text || '/' || $2::text", {std::to_string(id), std::to_string(i)});
            if (r.status() != PGRES_TUPLES_OK || r.value() != expect)
              return fail("extended: expected " + expect + ", got " + r.value() + r.error());
          } else {
            for (const char* sql : {"begin", "update it_counter set n = n + 1", "commit"}) {
              auto r = c.exec(sql);
              if (!r.ok()) return fail(std::string(sql) + ": " + r.error());
            }
            ++updates;
          }
        }
      });
    }
  }
  sampler.stop();
  CHECK_MESSAGE(failures == 0, first_error);
  CHECK(updates == clients * iterations / 3);
  auto setup = setup_connection();
  CHECK(scalar(setup, "select n from it_counter") == std::to_string(updates.load()));
  CHECK(sampler.max_seen() <= 10);
  CHECK(sampler.max_seen() >= 1);
}

TEST_CASE("min_size server connections are opened at start without clients and kept when idle") {
  proxy_instance proxy(proxy_options().pool("max_inactive_connection_lifetime", "1s").db_pool("min_size", "3"));
  auto admin = connect(pg().admin_conninfo());
  CHECK_MESSAGE(wait_until([&] { return server_connections(admin) == 3; }, 5s),
                "server connections: " << server_connections(admin));
  // Idle beyond max_inactive_connection_lifetime, yet not closed: they are the minimum.
  std::this_thread::sleep_for(2500ms);
  CHECK(server_connections(admin) == 3);

  // A client uses them without opening more.
  auto c = connect(proxy.conninfo());
  for (int i = 0; i < 10; ++i) CHECK(scalar(c, "select " + std::to_string(i)) == std::to_string(i));
  CHECK(server_connections(admin) == 3);
}

TEST_CASE("transaction mode: two clients share one server connection and SET LOCAL does not leak") {
  IT_FOR_EACH_WORKER_COUNT(workers);
  proxy_instance proxy(proxy_options().workers(workers).pool("max_size", "1"));
  auto a = connect(proxy.conninfo());
  auto b = connect(proxy.conninfo());

  const std::string pid = scalar(a, "select pg_backend_pid()");
  CHECK(scalar(b, "select pg_backend_pid()") == pid);

  for (int round = 0; round < 5; ++round) {
    CAPTURE(round);
    exec_ok(a, "begin");
    exec_ok(a, "set local statement_timeout = '1234ms'");
    CHECK(scalar(a, "show statement_timeout") == "1234ms");
    CHECK(scalar(a, "select pg_backend_pid()") == pid);
    exec_ok(a, "commit");

    exec_ok(b, "begin");
    CHECK(scalar(b, "show statement_timeout") == "0");
    CHECK(scalar(b, "select pg_backend_pid()") == pid);
    exec_ok(b, "commit");
  }
  CHECK(server_connections() == 1);
}

TEST_CASE("waiting clients get the server in FIFO order when the holder's transaction ends") {
  IT_FOR_EACH_SHARING_WORKER_COUNT(workers);
  proxy_instance proxy(proxy_options().workers(workers).pool("max_size", "1"));
  auto holder = connect(proxy.conninfo());
  constexpr int waiters = 5;
  std::vector<pg_conn> conns;
  for (int i = 0; i < waiters; ++i) conns.push_back(connect(proxy.conninfo()));

  exec_ok(holder, "begin");
  const double began = epoch(scalar(holder, "select extract(epoch from clock_timestamp())"));
  std::vector<std::string> served(waiters);  // server clock when each waiter's query ran
  {
    std::vector<std::jthread> threads;
    for (int i = 0; i < waiters; ++i) {
      threads.emplace_back([&, i] {
        auto r = conns[i].exec("select extract(epoch from clock_timestamp())");
        served[i] = r.status() == PGRES_TUPLES_OK ? r.value() : "error: " + r.error();
      });
      std::this_thread::sleep_for(250ms);  // queue them one after the other
    }
    std::this_thread::sleep_for(300ms);
    exec_ok(holder, "commit");
  }
  for (int i = 0; i < waiters; ++i) {
    CAPTURE(i);
    REQUIRE_MESSAGE(served[i].rfind("error", 0) != 0, served[i]);
    CHECK(epoch(served[i]) > began + 1.4);  // ran only after the holder's commit
    if (i > 0) CHECK(epoch(served[i]) > epoch(served[i - 1]));
  }
}

TEST_CASE("session mode: a client keeps its server and session state, and the next client gets it reset") {
  IT_FOR_EACH_WORKER_COUNT(workers);
  proxy_instance proxy(proxy_options().workers(workers).pool("mode", "session").pool("max_size", "1").pool("query_wait_timeout", "1s"));
  std::string pid;
  {
    auto a = connect(proxy.conninfo());
    exec_ok(a, "set it.custom = 'leaked'");
    exec_ok(a, "prepare it_p as select 1");
    exec_ok(a, "create temp table it_tmp (x int)");
    exec_ok(a, "listen it_chan");
    pid = scalar(a, "select pg_backend_pid()");
    // Session state survives across transactions of the same client.
    exec_ok(a, "begin; select 1; commit");
    CHECK(scalar(a, "select current_setting('it.custom')") == "leaked");
    CHECK(scalar(a, "select pg_backend_pid()") == pid);

    // While the first client is connected, even idle, the only server is its own.
    const auto t0 = clock::now();
    pg_conn b(proxy.conninfo());
    bool b_served = false;
    if (b.ok()) {
      auto r = b.exec("select 1");
      b_served = r.status() == PGRES_TUPLES_OK;
      if (!b_served) CHECK_MESSAGE((r.sqlstate() == "53300" || r.sqlstate() == "08P01" || !b.ok()), r.error());
    }
    CHECK_FALSE(b_served);
    CHECK(seconds_since(t0) < 5);
    CHECK(scalar(a, "select 'a still fine'") == "a still fine");
  }  // a leaves with Terminate

  auto c = connect(proxy.conninfo());
  CHECK_MESSAGE(scalar(c, "select pg_backend_pid()") == pid, "the server connection should be reset and reused");
  CHECK(scalar(c, "select coalesce(current_setting('it.custom', true), '')") == "");
  CHECK(scalar(c, "select count(*) from pg_prepared_statements") == "0");
  CHECK(scalar(c, "select to_regclass('it_tmp') is null") == "t");
  CHECK(scalar(c, "select count(*) from pg_listening_channels()") == "0");
}

TEST_CASE("session mode: LISTEN/NOTIFY notifications reach an idle client") {
  proxy_instance proxy(proxy_options().pool("mode", "session").pool("max_size", "2"));
  auto listener = connect(proxy.conninfo());
  auto notifier = connect(proxy.conninfo());
  exec_ok(listener, "listen it_chan");
  exec_ok(notifier, "notify it_chan, 'hello'");
  exec_ok(notifier, "select pg_notify('it_chan', 'again')");

  std::vector<std::string> got;
  const auto deadline = clock::now() + 5s;
  while (got.size() < 2 && clock::now() < deadline) {
    pollfd p{PQsocket(listener.get()), POLLIN, 0};
    ::poll(&p, 1, 100);
    REQUIRE(PQconsumeInput(listener.get()) == 1);
    while (PGnotify* n = PQnotifies(listener.get())) {
      got.push_back(std::string(n->relname) + ":" + n->extra);
      PQfreemem(n);
    }
  }
  REQUIRE(got.size() == 2);
  CHECK(got[0] == "it_chan:hello");
  CHECK(got[1] == "it_chan:again");
}

TEST_CASE("session mode: the client's backend pid is its server's, for cancel, notifications and pg_terminate_backend") {
  IT_FOR_EACH_WORKER_COUNT(workers);
  proxy_instance proxy(proxy_options().workers(workers).pool("mode", "session").pool("max_size", "2"));
  auto c = connect(proxy.conninfo());
  const std::string pid = std::to_string(PQbackendPID(c.get()));
  CHECK(scalar(c, "select pg_backend_pid()") == pid);
  exec_ok(c, "listen it_self");
  exec_ok(c, "notify it_self, 'mine'");
  PGnotify* n = PQnotifies(c.get());
  REQUIRE(n != nullptr);
  CHECK(n->be_pid == PQbackendPID(c.get()));
  PQfreemem(n);

  // A cancel with the key the client was given reaches its statement.
  REQUIRE(PQsendQuery(c.get(), "select pg_sleep(30)") == 1);
  auto admin = connect(pg().admin_conninfo());
  REQUIRE(wait_until([&] { return scalar(admin, "select count(*) from pg_stat_activity where pid = " + pid +
                                                    " and query like 'select pg_sleep%'") == "1"; }, 5s));
  PGcancel* cancel = PQgetCancel(c.get());
  char err[256];
  CHECK(PQcancel(cancel, err, sizeof err) == 1);
  PQfreeCancel(cancel);
  bool timed_out = false;
  auto r = get_result(c, 10s, &timed_out);
  CHECK_FALSE(timed_out);
  CHECK(r.sqlstate() == "57014");
  while (get_result(c, 1s)) {
  }

  // Another client ends it by that pid, as on PostgreSQL.
  auto other = connect(proxy.conninfo());
  CHECK(scalar(other, "select pg_terminate_backend(" + pid + ")") == "t");
  auto after = c.exec("select 1");
  CHECK(after.status() == PGRES_FATAL_ERROR);
  CHECK_MESSAGE(c.error().find("terminating connection due to administrator command") != std::string::npos, c.error());
}

TEST_CASE("query_wait_timeout: a client waiting beyond it gets 53300 or 08P01 and the holder continues") {
  proxy_instance proxy(proxy_options().pool("max_size", "1").pool("query_wait_timeout", "1s"));
  auto a = connect(proxy.conninfo());
  exec_ok(a, "begin");
  CHECK(scalar(a, "select 'holding'") == "holding");

  {
    // libpq: the query fails after about the timeout. When pgmux closes the connection after its
    // FATAL ErrorResponse, libpq drops the SQLSTATE but keeps the text in PQerrorMessage.
    auto b = connect(proxy.conninfo());
    const auto t0 = clock::now();
    auto r = b.exec("select 'should wait'");
    const double waited = seconds_since(t0);
    CHECK(r.status() == PGRES_FATAL_ERROR);
    const std::string text = r.error() + b.error();
    if (!r.sqlstate().empty()) CHECK_MESSAGE((r.sqlstate() == "53300" || r.sqlstate() == "08P01"), text);
    CHECK_MESSAGE(text.find("timeout") != std::string::npos, text);
    CHECK(waited >= 0.8);
    CHECK(waited < 3.0);
  }
  {
    // On the wire: an ErrorResponse with the SQLSTATE and a message.
    raw_socket s(proxy.port());
    REQUIRE(s.startup());
    REQUIRE(s.send(wire::msg('Q', wire::cstr("select 'should wait'"))));
    const auto t0 = clock::now();
    auto m = s.read_message(5s);
    REQUIRE(m);
    CHECK(m->first == 'E');
    auto fields = wire::error_fields(m->second);
    CHECK_MESSAGE((fields['C'] == "53300" || fields['C'] == "08P01"), "SQLSTATE " << fields['C']);
    CHECK(fields['M'].size() > 10);
    CHECK(seconds_since(t0) >= 0.8);
    MESSAGE("query_wait_timeout: " << fields['S'] << " " << fields['C'] << " " << fields['M']);
  }

  CHECK(scalar(a, "select 'still holding'") == "still holding");
  exec_ok(a, "commit");
  auto c = connect(proxy.conninfo());
  CHECK(scalar(c, "select 'next'") == "next");
  CHECK(server_connections() == 1);
}

TEST_CASE("idle server connections above min_size close after max_inactive_connection_lifetime") {
  proxy_instance proxy(proxy_options().pool("min_size", "1").pool("max_size", "5").pool("max_inactive_connection_lifetime", "1s"));
  auto admin = connect(pg().admin_conninfo());
  std::vector<pg_conn> clients;
  std::set<std::string> pids;
  for (int i = 0; i < 5; ++i) {
    clients.push_back(connect(proxy.conninfo()));
    exec_ok(clients.back(), "begin");
    pids.insert(scalar(clients.back(), "select pg_backend_pid()"));
  }
  CHECK(pids.size() == 5);
  CHECK(server_connections(admin) == 5);
  for (auto& c : clients) exec_ok(c, "commit");
  const auto released = clock::now();
  CHECK(server_connections(admin) == 5);  // not closed the moment they are released

  CHECK_MESSAGE(wait_until([&] { return server_connections(admin) == 1; }, 5s),
                "server connections: " << server_connections(admin));
  const double reaped_after = seconds_since(released);
  CHECK(reaped_after >= 0.7);
  MESSAGE("idle connections reaped " << reaped_after << " s after release");
  std::this_thread::sleep_for(1500ms);
  CHECK(server_connections(admin) == 1);  // min_size is kept

  // The clients are still connected and served.
  for (auto& c : clients) CHECK(scalar(c, "select 1") == "1");
}

TEST_CASE("server_lifetime retires a connection at its next idle moment, never mid-transaction") {
  proxy_instance proxy(proxy_options().pool("min_size", "1").pool("max_size", "1").pool("server_lifetime", "1s"));
  auto c = connect(proxy.conninfo());
  const std::string first = scalar(c, "select pg_backend_pid()");
  exec_ok(c, "begin");
  std::this_thread::sleep_for(1500ms);
  CHECK(scalar(c, "select pg_backend_pid()") == first);  // past its lifetime but in use
  exec_ok(c, "commit");

  std::string now;
  CHECK_MESSAGE(wait_until([&] { return (now = scalar(c, "select pg_backend_pid()")) != first; }, 4s, 200ms),
                "backend pid still " << first);
  auto admin = connect(pg().admin_conninfo());
  CHECK(wait_until([&] { return scalar(admin, "select count(*) from pg_stat_activity where pid = " + first) == "0"; }, 3s));
  CHECK(server_connections(admin) <= 1);
}

TEST_CASE("per-database pool settings override pool_defaults") {
  proxy_instance proxy(proxy_options().pool("max_size", "10").pool("query_wait_timeout", "10s").database("\"it_small\": {\"dsn\": \"" + pg().server_dsn("pgmux_test") + "\", \"pool\": {\"max_size\": 1, \"query_wait_timeout\": \"700ms\"}}"));
  auto a = connect(proxy.conninfo("it_small"));
  CHECK(scalar(a, "select current_database()") == "pgmux_test");  // the DSN names the server database
  exec_ok(a, "begin");
  CHECK(scalar(a, "select 1") == "1");

  auto b = connect(proxy.conninfo("it_small"));
  const auto t0 = clock::now();
  auto r = b.exec("select 1");
  CHECK(r.status() == PGRES_FATAL_ERROR);
  CHECK(seconds_since(t0) < 2.5);  // its own 700ms, not the default 10s

  // The default pool of the same server database is separate and larger.
  auto c = connect(proxy.conninfo());
  auto d = connect(proxy.conninfo());
  exec_ok(c, "begin");
  CHECK(scalar(c, "select 1") == "1");
  CHECK(scalar(d, "select 2") == "2");
  exec_ok(c, "commit");
  exec_ok(a, "commit");
}

TEST_CASE("statement mode gives the server back after every statement and refuses transaction blocks") {
  proxy_instance proxy(proxy_options().pool("mode", "statement").pool("max_size", "1").pool("min_size", "0"));
  auto a = connect(proxy.conninfo());
  auto b = connect(proxy.conninfo());
  for (int i = 0; i < 3; ++i) {
    CHECK(scalar(a, "select 'a'") == "a");
    CHECK(scalar(b, "select 'b'") == "b");
  }
  // Prepared statements and an implicit multi-statement query are single statements.
  pg_result p(PQprepare(a.get(), "s", "select $1::int * 3", 0, nullptr));
  REQUIRE(p.status() == PGRES_COMMAND_OK);
  const char* v[] = {"14"};
  pg_result x(PQexecPrepared(a.get(), "s", 1, v, nullptr, nullptr, 0));
  CHECK(x.value() == "42");
  exec_ok(b, "select 1; select 2");
  // BEGIN ends that client with a clear error and rolls back; the other is unaffected.
  auto begin = a.exec("begin");
  CHECK(begin.status() == PGRES_FATAL_ERROR);
  // libpq reports the FATAL message, then the closed connection.
  CHECK_MESSAGE(a.error().find("transaction blocks are not allowed in statement pooling mode") != std::string::npos,
                a.error());
  CHECK(a.exec("select 1").status() == PGRES_FATAL_ERROR);
  CHECK(scalar(b, "select 'still served'") == "still served");
  CHECK(scalar(b, "select count(*) from pg_stat_activity where state like 'idle in transaction%'") == "0");
}

}  // TEST_SUITE
}  // namespace it
