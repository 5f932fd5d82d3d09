// Server faults, most of them injected by the fault proxy between pgmux and PostgreSQL:
// - idle server connections the server terminates are not lent: the next queries all succeed
// - a request lent in turn to every idle connection of a pool whose backends are all ending is
//   sent again each time, beyond the bound on replays to connections opened for it
// - the proxy resets every idle server connection: the next queries succeed
// - a fast restart under load fails only the clients holding a server connection, and queued ones
//   are served once the server is back
// - a server that refuses connections while none is open answers clients with 08001 promptly
// - a server that never answers connects: connect_timeout applies, clients get an error
// - a server that stops answering mid-transaction (command_timeout off): the client's cancel or
//   disconnect frees its server connection after cancel_grace; bystanders are unaffected
// - the first query after the server accepts again succeeds within a second
// - a client that stops reading a large result: its backend is ended after the cancel grace
// - a server connection terminated while its client idles in a transaction: the client's next
//   statement gets the server's FATAL 57P01 as the last message, then the socket closes (no
//   error of pgmux's own after it)
#include <doctest/doctest.h>

#include <signal.h>

#include <atomic>
#include <mutex>
#include <set>
#include <thread>

#include "integration/fault_proxy.hpp"
#include "integration/fixtures.hpp"

namespace it {
namespace {

// A "faulty" database entry reaching pgmux_test through `fp`, with these raw JSON pool members.
std::string faulty_db(const fault_proxy& fp, const std::string& pool_members) {
  return "\"faulty\": {\"dsn\": \"host=127.0.0.1 port=" + std::to_string(fp.port()) +
         " user=pgmux_test password=" + pg().password() + " dbname=pgmux_test\", \"pool\": {" + pool_members + "}}";
}


double metric(int port, const std::string& name, const std::string& db) {
  return metric_value(scrape_metrics(port), name + "{database=\"" + db + "\",user=\"pgmux_test\"}");
}

// Starts up on a raw socket and returns the first ErrorResponse's fields, or empty ones when the
// login succeeded (ReadyForQuery) or nothing came within `timeout`.
std::map<char, std::string> login_error(int port, const std::string& db, std::chrono::milliseconds timeout) {
  raw_socket s(port);
  s.send(wire::startup_message("pgmux_test", db));
  const auto deadline = clock::now() + timeout;
  while (clock::now() < deadline) {
    auto m = s.read_message(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()));
    if (!m || m->first == 'Z') break;
    if (m->first == 'E') return wire::error_fields(m->second);
  }
  return {};
}

int backends(const pg_conn& admin, const std::string& where) {
  return std::stoi(scalar(admin, "select count(*) from pg_stat_activity where usename = 'pgmux_test' and " + where));
}

// Runs `sql` on `n` clients at once, each on its own (already connected) connection; returns the
// SQLSTATEs (or messages) of the failures.
std::vector<std::string> run_at_once(std::vector<pg_conn>& clients, const std::string& sql) {
  std::vector<std::string> failures;
  std::mutex mu;
  std::vector<std::thread> threads;
  for (auto& c : clients)
    threads.emplace_back([&, conn = &c] {
      auto r = conn->exec(sql);
      if (r.ok()) return;
      std::lock_guard lock(mu);
      failures.push_back(r.sqlstate() + " " + r.error() + conn->error());
    });
  for (auto& t : threads) t.join();
  return failures;
}


}  // namespace

TEST_SUITE("server faults") {

TEST_CASE("idle server connections terminated by the server are never lent: 10 queries at once all succeed") {
  proxy_instance proxy(proxy_options().pool("min_size", "10").pool("max_size", "10"));
  pg_conn admin(pg().admin_conninfo());
  REQUIRE(admin.ok());
  std::vector<pg_conn> clients;
  for (int i = 0; i < 10; ++i) clients.push_back(connect(proxy.conninfo()));
  REQUIRE(wait_until([&] { return server_connections(admin) == 10; }, 10s));

  CHECK(scalar(admin, "select count(pg_terminate_backend(pid)) from pg_stat_activity where usename = 'pgmux_test'") ==
        "10");
  const auto failures = run_at_once(clients, "select 1");
  for (const auto& f : failures) MESSAGE("failed: " << f);
  CHECK(failures.empty());
  // The pool opened fresh connections for them.
  CHECK(wait_until([&] { return server_connections(admin) == 10; }, 10s));
}

TEST_CASE("a request lent in turn to each ending idle connection of its pool is sent again each time, and succeeds") {
  // Four idle backends are stopped (SIGSTOP) and then told to terminate: each looks alive to
  // pgmux until it runs again. The test resumes the one serving the request, which then dies
  // with 57P01 before answering, and so on: the request meets four dying connections in a row,
  // more than the bound on replays to connections opened after its first loss (2).
  constexpr int pool_size = 4;
  // min_size 0: no connection is opened but for a waiting client, so the request meets all
  // four before a fresh one.
  proxy_instance proxy(
      proxy_options().pool("max_size", std::to_string(pool_size)).top_level("\"admin\": {\"users\": [\"pgmux_test\"]}"));
  pg_conn admin(pg().admin_conninfo());
  REQUIRE(admin.ok());
  std::vector<pg_conn> clients;
  for (int i = 0; i < pool_size; ++i) {
    clients.push_back(connect(proxy.conninfo()));
    REQUIRE(clients.back().exec("begin").ok());  // each holds a server connection of its own
  }
  for (auto& c : clients) REQUIRE(c.exec("commit").ok());
  auto& client = clients.front();
  REQUIRE(server_connections(admin) == pool_size);
  std::set<int> stopped;
  auto pids = admin.exec(
      "select pid from pg_stat_activity where usename = 'pgmux_test' and backend_type = 'client backend'");
  REQUIRE(pids.rows() == pool_size);
  for (int i = 0; i < pids.rows(); ++i) stopped.insert(std::stoi(pids.value(i)));
  // Whatever happens, no backend stays stopped (the cluster could not shut down).
  struct resume_all {
    std::set<int>& pids;
    ~resume_all() {
      for (int pid : pids) ::kill(pid, SIGCONT);
    }
  } resume{stopped};
  for (int pid : stopped) REQUIRE(::kill(pid, SIGSTOP) == 0);
  CHECK(scalar(admin, "select count(pg_terminate_backend(pid)) from pg_stat_activity where usename = 'pgmux_test' "
                      "and backend_type = 'client backend'") == std::to_string(pool_size));

  auto console = connect(proxy.conninfo("pgmux", "pgmux_test"));
  REQUIRE(PQsendQuery(client.get(), "select 42") == 1);
  int resumed_while_lent = 0;
  // The stopped backend now holding the request (SHOW SERVERS: state active), or 0 when none.
  auto lent_stopped = [&] {
    auto r = console.exec("SHOW SERVERS");
    const int state = PQfnumber(r.get(), "state");
    const int pid = PQfnumber(r.get(), "remote_pid");
    for (int row = 0; row < r.rows(); ++row)
      if (r.value(row, state) == "active" && stopped.count(std::stoi(r.value(row, pid))))
        return std::stoi(r.value(row, pid));
    return 0;
  };
  for (;;) {
    int pid = 0;
    // Lent to a stopped backend, or answered by a fresh connection.
    REQUIRE(wait_until(
        [&] {
          if ((pid = lent_stopped()) != 0) return true;
          PQconsumeInput(client.get());
          return PQisBusy(client.get()) == 0;
        },
        10s));
    if (pid == 0) break;
    REQUIRE(::kill(pid, SIGCONT) == 0);
    stopped.erase(pid);
    ++resumed_while_lent;
    // It ends (57P01) and the request moves on.
    REQUIRE(wait_until([&] { return lent_stopped() != pid; }, 10s));
  }
  auto r = get_result(client, 10s);
  CHECK(r.ok());
  CHECK(r.value() == "42");
  CHECK(resumed_while_lent == pool_size);
  CHECK(proxy.logged("sending the request again"));
}

TEST_CASE("a server connection terminated mid-transaction ends its client with the server's FATAL alone") {
  proxy_instance proxy;
  pg_conn admin(pg().admin_conninfo());
  REQUIRE(admin.ok());
  raw_socket s(proxy.port());
  REQUIRE(s.startup());
  REQUIRE(s.send(wire::msg('Q', wire::cstr("begin"))));
  while (auto m = s.read_message(5s))
    if (m->first == 'Z') break;
  REQUIRE(wait_until([&] { return server_connections(admin) == 1; }, 5s));
  CHECK(scalar(admin, "select count(pg_terminate_backend(pid)) from pg_stat_activity where usename = 'pgmux_test'") == "1");
  REQUIRE(wait_until([&] { return server_connections(admin) == 0; }, 5s));
  // The client idles in its transaction: it hears of the end with its next statement.
  s.send(wire::msg('Q', wire::cstr("select 1")));
  const auto got = s.read_until_closed(10s);
  CHECK(got.closed);
  // The messages that came: exactly one ErrorResponse, the server's.
  std::vector<std::string> errors;
  for (std::size_t pos = 0; pos + 5 <= got.data.size();) {
    const auto length = (std::uint32_t(std::uint8_t(got.data[pos + 1])) << 24) | (std::uint32_t(std::uint8_t(got.data[pos + 2])) << 16) |
                        (std::uint32_t(std::uint8_t(got.data[pos + 3])) << 8) | std::uint32_t(std::uint8_t(got.data[pos + 4]));
    if (got.data[pos] == 'E') errors.push_back(got.data.substr(pos + 5, length - 4));
    pos += 1 + length;
  }
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].find("C57P01") != std::string::npos);
}

TEST_CASE("the fault proxy resets every idle server connection: the next queries succeed") {
  fault_proxy fp(pg().port());
  proxy_instance proxy(proxy_options().database(faulty_db(fp, "\"min_size\": 4, \"max_size\": 4")));
  std::vector<pg_conn> clients;
  for (int i = 0; i < 4; ++i) clients.push_back(connect(proxy.conninfo("faulty")));
  REQUIRE(wait_until([&] { return fp.open_connections() == 4; }, 10s));

  fp.reset_all();
  const auto failures = run_at_once(clients, "select 1");
  for (const auto& f : failures) MESSAGE("failed: " << f);
  CHECK(failures.empty());
  CHECK(fp.accepted() >= 8);  // the four were replaced
}

TEST_CASE("a fast restart under load fails only clients holding a server connection, and queued ones are served after it") {
  constexpr int n_clients = 20;
  constexpr int pool_size = 4;
  proxy_instance proxy(proxy_options().pool("max_size", std::to_string(pool_size)).pool("query_wait_timeout", "15s"));
  pg_conn admin(pg().admin_conninfo());
  REQUIRE(admin.ok());

  std::atomic<bool> stop{false};
  std::atomic<bool> restarted{false};
  std::atomic<int> served_after{0};
  std::mutex mu;
  std::vector<std::string> failures;
  std::vector<std::thread> threads;
  for (int i = 0; i < n_clients; ++i)
    threads.emplace_back([&, i] {
      pg_conn c(proxy.conninfo());
      while (!stop) {
        if (!c.ok()) c = pg_conn(proxy.conninfo());
        if (!c.ok()) {
          std::lock_guard lock(mu);
          failures.push_back("connect: " + c.error());
          continue;
        }
        const bool after = restarted;
        // A quarter of the clients run transactions, the rest single statements; every one
        // holds its server connection a while, so most clients are queued at any moment.
        auto r = i % 4 == 0 ? c.exec("begin; select pg_sleep(0.02); commit") : c.exec("select pg_sleep(0.01)");
        if (r.ok()) {
          if (after) ++served_after;
          continue;
        }
        std::lock_guard lock(mu);
        failures.push_back(r.sqlstate() + " " + r.error() + c.error());
        c.reset();
      }
    });
  REQUIRE(wait_until([&] { return server_connections(admin) == pool_size; }, 10s));

  // -l: the new postmaster must not inherit run()'s output pipe, or run() waits for it forever.
  const auto r = run(pg().pg_ctl_command("-m fast -w -t 30 -l " + shell_quote(pg().socket_dir() + "/postgres.log") + " restart"), 60);
  REQUIRE_MESSAGE(r.code == 0, r.output);
  restarted = true;
  admin = pg_conn(pg().admin_conninfo());
  CHECK(wait_until([&] { return served_after >= 2 * n_clients; }, 10s));
  stop = true;
  for (auto& t : threads) t.join();

  MESSAGE(failures.size() << " failures; " << served_after.load() << " queries served after the restart");
  // Only clients that held one of the pool_size server connections when it went down may fail,
  // and only with the server's termination or the lost connection, never with a refused login
  // (57P03), a connect error (08001) or a wait timeout (53300).
  CHECK(failures.size() <= pool_size);
  for (const auto& f : failures) {
    MESSAGE("failed: " << f);
    CAPTURE(f);
    CHECK((f.rfind("57P01", 0) == 0 || f.rfind("08006", 0) == 0 || f.rfind(" ", 0) == 0));
  }
}

TEST_CASE("a server that refuses connections while none is open answers clients with 08001 promptly") {
  fault_proxy fp(pg().port());
  fp.refuse();
  proxy_instance proxy(proxy_options().database(
      faulty_db(fp, "\"min_size\": 0, \"connect_timeout\": \"1s\", \"server_connect_failure_grace\": \"500ms\", "
                    "\"query_wait_timeout\": \"30s\"")));
  for (int client = 0; client < 2; ++client) {
    CAPTURE(client);
    const auto t0 = clock::now();
    const auto e = login_error(proxy.port(), "faulty", 10s);
    const double took = seconds_since(t0);
    MESSAGE("answered in " << took << " s: " << (e.count('M') ? e.at('M') : std::string("(nothing)")));
    REQUIRE(e.count('C'));
    CHECK(e.at('C') == "08001");
    CHECK(e.at('M').find("refused") != std::string::npos);
    CHECK(took < 2.0);  // grace 500ms plus at most one backoff step; connect_timeout 1s
  }
  // The server comes back: served again.
  fp.pass();
  pg_conn c;
  CHECK(wait_until([&] {
    c = pg_conn(proxy.conninfo("faulty"));
    return c.ok();
  }, 5s, 100ms));
  CHECK(scalar(c, "select 'back'") == "back");
}

TEST_CASE("a server that never answers connects: connect_timeout applies and clients get an error") {
  fault_proxy fp(pg().port());
  fp.blackhole_new();
  proxy_instance proxy(proxy_options().database(
      faulty_db(fp, "\"min_size\": 0, \"connect_timeout\": \"700ms\", \"query_wait_timeout\": \"30s\"")));
  const auto t0 = clock::now();
  const auto e = login_error(proxy.port(), "faulty", 10s);
  const double took = seconds_since(t0);
  REQUIRE(e.count('C'));
  MESSAGE("answered in " << took << " s: " << e.at('M'));
  CHECK(e.at('C') == "08001");
  CHECK(e.at('M').find("timed out") != std::string::npos);
  // Default grace 2s: attempts of 700ms each, the first one past the grace answers.
  CHECK(took < 3.5);
  CHECK(fp.accepted() >= 2);
  CHECK(fp.accepted() <= 4);  // one probe at a time
}

TEST_CASE("a server that stops answering mid-transaction: the client's cancel or disconnect frees its connection") {
  fault_proxy fp(pg().port());
  const int mport = free_port();
  proxy_instance proxy(proxy_options().top_level(metrics_member(mport)).database(
      faulty_db(fp, "\"min_size\": 0, \"max_size\": 1, \"command_timeout\": \"0\", \"cancel_grace\": \"500ms\", "
                    "\"connect_timeout\": \"2s\", \"query_wait_timeout\": \"20s\"")));
  auto bystander = connect(proxy.conninfo());
  auto a = connect(proxy.conninfo("faulty"));
  exec_ok(a, "begin");
  exec_ok(a, "select 1");
  fp.blackhole();
  REQUIRE(PQsendQuery(a.get(), "select 2") == 1);

  bool cancel = false;
  SUBCASE("the client cancels") { cancel = true; }
  SUBCASE("the client disconnects") { cancel = false; }
  const auto t0 = clock::now();
  if (cancel) {
    PGcancel* c = PQgetCancel(a.get());
    char err[256];
    CHECK(PQcancel(c, err, sizeof err) == 1);
    PQfreeCancel(c);
    bool timed_out = false;
    auto r = get_result(a, 5s, &timed_out);
    CHECK_FALSE(timed_out);
    MESSAGE("the client got: " << r.sqlstate() << " " << r.error() << a.error());
    CHECK_FALSE(r.ok());
  } else {
    a.abort_socket();
  }
  CHECK(scalar(bystander, "select 'unaffected'") == "unaffected");

  // The only server connection of the pool is closed while the server still says nothing.
  CHECK(wait_until([&] { return metric(mport, "pgmux_pool_used", "faulty") == 0; }, 5s, 50ms));
  MESSAGE("released " << seconds_since(t0) << " s after the cancel or disconnect");
  CHECK(seconds_since(t0) < 0.5 + 2.0);  // cancel_grace, plus noticing the disconnect (about 1 s)
  CHECK(metric(mport, "pgmux_cancel_escalations_total", "faulty") == 1);
  // A new client is served once the server answers again.
  fp.pass();
  auto b = connect(proxy.conninfo("faulty"));
  CHECK(scalar(b, "select 'served'") == "served");
}

TEST_CASE("the first query after the server accepts again succeeds within a second") {
  fault_proxy fp(pg().port());
  fp.refuse();
  const int mport = free_port();
  proxy_instance proxy(proxy_options()
                           .top_level(metrics_member(mport))
                           .database(faulty_db(fp, "\"min_size\": 0, \"server_connect_failure_grace\": \"1h\", "
                                                   "\"query_wait_timeout\": \"30s\"")));
  std::atomic<double> served_at{0};
  std::string error;
  std::thread client([&] {
    pg_conn c(proxy.conninfo("faulty"));
    if (c.ok() && c.exec("select 1").ok()) served_at = seconds_since(clock::time_point{});
    else error = c.error();
  });
  // Let the backoff reach its cap: 100, 200, 400 ms, then 500 ms.
  CHECK(wait_until([&] { return metric(mport, "pgmux_server_connect_errors_total", "faulty") >= 6; }, 10s, 50ms));
  const double back_at = seconds_since(clock::time_point{});
  fp.pass();
  client.join();
  CHECK(error.empty());
  const double took = served_at - back_at;
  MESSAGE("served " << took << " s after the server accepted again");
  CHECK(took > 0);
  CHECK(took < 1.0);
}

TEST_CASE("a client that stops reading a large result has its backend ended after the cancel grace") {
  proxy_instance proxy(proxy_options()
                           .pool("max_size", "1")
                           .pool("command_timeout", "500ms")
                           .pool("cancel_grace", "1s"));
  pg_conn admin(pg().admin_conninfo());
  REQUIRE(admin.ok());
  raw_socket s(proxy.port());
  REQUIRE(s.startup());
  // generate_series in the select list streams its rows (in FROM it would build them all first).
  REQUIRE(s.send(wire::msg('Q', wire::cstr("select repeat('x', 1000), generate_series(1, 10000000)"))));
  // The backend blocks writing once the client and pgmux buffers are full.
  const std::string blocked = "wait_event = 'ClientWrite' and query like 'select repeat%'";
  const bool blocked_seen = wait_until([&] { return backends(admin, blocked) == 1; }, 10s);
  if (!blocked_seen) {
    auto r = admin.exec("select state, wait_event_type, wait_event, left(query, 40) from pg_stat_activity where usename = 'pgmux_test'");
    for (int i = 0; i < r.rows(); ++i) MESSAGE(r.value(i, 0) << " " << r.value(i, 1) << " " << r.value(i, 2) << " " << r.value(i, 3));
  }
  REQUIRE(blocked_seen);
  const auto t0 = clock::now();
  // The cancel may stop the statement or not; either way the server connection still owes rows to
  // a client that does not read, so after the grace it is closed and the backend ends.
  CHECK(wait_until([&] { return backends(admin, "true") == 0; }, 6s));
  const double took = seconds_since(t0);
  MESSAGE("backend ended " << took << " s after it blocked writing");
  // command_timeout + cancel_grace + the 1 s the error to the (non-reading) client may take + margin
  CHECK(took < 0.5 + 1.0 + 1.0 + 1.0);

  // The only server connection is free again: another client is served.
  auto next = connect(proxy.conninfo());
  CHECK(scalar(next, "select 'served'") == "served");
}

}  // TEST_SUITE

}  // namespace it
