// Idle clients parked outside the event loop's reactor (park_idle_clients_after):
// - idle clients are parked (pgmux_worker_parked_clients), and served as before when they come
//   back, their prepared statements kept; with 1 and 2 workers
// - a Unix-socket client and a TCP one are parked and served again side by side (the socket
//   goes back to the event loop with its own address family)
// - more parked clients than one wake-up of the park takes (64) coming back at once are all
//   served (the park's wait re-arms while more are ready)
// - a parked client that hangs up, or sends Terminate, ends its session
// - a parked client gets 57P05 at client_idle_timeout, and a served one 57P01 at SIGTERM
// - in session mode a client is parked before its first request, and that request runs on the
//   backend its login named (BackendKeyData)
// - "park_idle_clients_after": "0" parks nobody
#include <doctest/doctest.h>
#include <signal.h>

#include <string>
#include <vector>

#include "integration/fixtures.hpp"

namespace it {
namespace {

double parked_clients(int metrics_port, unsigned workers) {
  const auto body = scrape_metrics(metrics_port);
  double sum = 0;
  for (unsigned w = 0; w < workers; ++w) {
    const double v = metric_value(body, "pgmux_worker_parked_clients{worker=\"" + std::to_string(w) + "\"}");
    if (v < 0) return -1;
    sum += v;
  }
  return sum;
}

double connected_clients(int metrics_port) {
  const auto body = scrape_metrics(metrics_port);
  double sum = 0;
  for (const char* state : {"active", "waiting", "idle"}) {
    const double v = metric_value(body, std::string("pgmux_client_connections{state=\"") + state + "\"}");
    if (v < 0) return -1;
    sum += v;
  }
  return sum;
}

// `n` clients of `proxy`, each having answered one query of its own.
std::vector<pg_conn> connect_clients(const proxy_instance& proxy, int n) {
  std::vector<pg_conn> clients;
  for (int i = 0; i < n; ++i) {
    clients.push_back(connect(proxy.conninfo()));
    REQUIRE(scalar(clients.back(), "select " + std::to_string(i)) == std::to_string(i));
  }
  return clients;
}

}  // namespace

TEST_CASE("idle clients are parked and served as before when they come back, with 1 and 2 workers") {
  for (unsigned workers : {1u, 2u}) {
    CAPTURE(workers);
    const int mport = free_port();
    proxy_instance proxy(proxy_options().workers(workers).top_level(metrics_member(mport)));
    constexpr int n = 6;
    auto clients = connect_clients(proxy, n);
    // A named prepared statement of the client's own must survive its parking.
    auto prepared = PQprepare(clients[0].get(), "it_parked", "select $1::int * 2", 1, nullptr);
    REQUIRE(PQresultStatus(prepared) == PGRES_COMMAND_OK);
    PQclear(prepared);
    CHECK_MESSAGE(wait_until([&] { return parked_clients(mport, workers) == n; }, 10s),
                  "parked: " << parked_clients(mport, workers));
    // Back from the park: each one's own answer, twice in a row.
    for (int round = 0; round < 2; ++round)
      for (int i = 0; i < n; ++i) CHECK(scalar(clients[i], "select " + std::to_string(i * 10 + round)) == std::to_string(i * 10 + round));
    const char* value = "21";
    pg_result doubled(PQexecPrepared(clients[0].get(), "it_parked", 1, &value, nullptr, nullptr, 0));
    REQUIRE(doubled.ok());
    CHECK(doubled.value() == "42");
    // Idle again: parked again.
    CHECK(wait_until([&] { return parked_clients(mport, workers) == n; }, 10s));
    // A parked client in a transaction block is not idle: BEGIN takes it out for good.
    exec_ok(clients[1], "begin");
    CHECK(wait_until([&] { return parked_clients(mport, workers) == n - 1; }, 10s));
    CHECK(scalar(clients[1], "select 'in transaction'") == "in transaction");
    exec_ok(clients[1], "commit");
    CHECK(wait_until([&] { return parked_clients(mport, workers) == n; }, 10s));
  }
}

TEST_CASE("a Unix-socket client and a TCP client are parked and served again side by side") {
  const int mport = free_port();
  const unsigned workers = default_workers();
  proxy_instance proxy(proxy_options().workers(workers).unix_socket().top_level(metrics_member(mport)));
  auto local = connect("host=" + proxy.dir() + " port=" + std::to_string(proxy.port()) +
                       " dbname=pgmux_test user=pgmux_test connect_timeout=10");
  auto tcp = connect(proxy.conninfo());
  for (int round = 0; round < 2; ++round) {
    CAPTURE(round);
    CHECK(scalar(local, "select 'over unix " + std::to_string(round) + "'") == "over unix " + std::to_string(round));
    CHECK(scalar(tcp, "select 'over tcp " + std::to_string(round) + "'") == "over tcp " + std::to_string(round));
    CHECK_MESSAGE(wait_until([&] { return parked_clients(mport, workers) == 2; }, 10s),
                  "parked: " << parked_clients(mport, workers));
  }
  CHECK(scalar(local, "select 'back over unix'") == "back over unix");
  CHECK(scalar(tcp, "select 'back over tcp'") == "back over tcp");
}

TEST_CASE("more parked clients than one wake-up takes coming back at once are all served") {
  const int mport = free_port();
  const unsigned workers = default_workers();
  proxy_instance proxy(proxy_options().workers(workers).top_level(metrics_member(mport)));
  // Each worker's park hands back at most 64 clients per wake-up: with 200 clients, more than
  // that come back at once on one worker at least.
  constexpr int n = 200;
  auto clients = connect_clients(proxy, n);
  REQUIRE_MESSAGE(wait_until([&] { return parked_clients(mport, workers) == n; }, 30s),
                  "parked: " << parked_clients(mport, workers));
  // pgmux stopped while every client sends its request: all of them are ready in the parks'
  // epoll sets when it resumes.
  REQUIRE(::kill(proxy.pid(), SIGSTOP) == 0);
  for (int i = 0; i < n; ++i) {
    const std::string sql = "select " + std::to_string(i * 7);
    if (PQsendQuery(clients[i].get(), sql.c_str()) != 1) {
      ::kill(proxy.pid(), SIGCONT);
      FAIL("PQsendQuery failed for client " << i << ": " << PQerrorMessage(clients[i].get()));
    }
  }
  REQUIRE(::kill(proxy.pid(), SIGCONT) == 0);
  for (int i = 0; i < n; ++i) {
    CAPTURE(i);
    pg_result answer(PQgetResult(clients[i].get()));
    REQUIRE(answer.ok());
    CHECK(answer.value() == std::to_string(i * 7));
    while (PGresult* rest = PQgetResult(clients[i].get())) PQclear(rest);
  }
  // Idle again, every one parked again and still served.
  CHECK(wait_until([&] { return parked_clients(mport, workers) == n; }, 30s));
  CHECK(scalar(clients[n - 1], "select 'last'") == "last");
}

TEST_CASE("a parked client that hangs up or says goodbye ends its session") {
  const int mport = free_port();
  proxy_instance proxy(proxy_options().top_level(metrics_member(mport)));
  auto vanishes = connect(proxy.conninfo());
  auto says_goodbye = connect(proxy.conninfo());
  auto stays = connect(proxy.conninfo());
  for (auto* c : {&vanishes, &says_goodbye, &stays}) CHECK(scalar(*c, "select 1") == "1");
  REQUIRE(wait_until([&] { return parked_clients(mport, proxy.workers()) == 3; }, 10s));
  REQUIRE(connected_clients(mport) == 3);

  vanishes.abort_socket();  // no Terminate: the socket just closes
  CHECK(wait_until([&] { return connected_clients(mport) == 2; }, 10s));
  CHECK(parked_clients(mport, proxy.workers()) == 2);
  says_goodbye.reset();  // Terminate, then close
  CHECK(wait_until([&] { return connected_clients(mport) == 1; }, 10s));
  CHECK(parked_clients(mport, proxy.workers()) == 1);
  CHECK(scalar(stays, "select 'still here'") == "still here");
}

TEST_CASE("a parked client gets 57P05 at client_idle_timeout and 57P01 at SIGTERM") {
  const int mport = free_port();
  proxy_instance proxy(proxy_options().pool("client_idle_timeout", "2s").top_level(metrics_member(mport)));
  raw_socket timed_out(proxy.port());
  REQUIRE(timed_out.startup());
  REQUIRE(wait_until([&] { return parked_clients(mport, proxy.workers()) == 1; }, 10s));
  auto error = timed_out.read_message(15s);
  REQUIRE(error);
  CHECK(error->first == 'E');
  CHECK(wire::error_fields(error->second)['C'] == "57P05");
  CHECK(timed_out.read_until_closed(5s).closed);

  // One that has been served: the drain ends it at once (one that never sent a request would be
  // given a second's grace first).
  raw_socket shut_down(proxy.port());
  REQUIRE(shut_down.startup());
  REQUIRE(shut_down.send(wire::msg('Q', wire::cstr("select 1"))));
  auto m = shut_down.read_message(5s);
  while (m && m->first != 'Z') m = shut_down.read_message(5s);
  REQUIRE(m);
  REQUIRE(wait_until([&] { return parked_clients(mport, proxy.workers()) == 1; }, 10s));
  proxy.send_signal(SIGTERM);
  error = shut_down.read_message(10s);
  REQUIRE(error);
  CHECK(error->first == 'E');
  CHECK(wire::error_fields(error->second)['C'] == "57P01");
  CHECK(shut_down.read_until_closed(5s).closed);
  int status = 0;
  CHECK(proxy.wait_exit(10s, &status));
  CHECK_MESSAGE((WIFEXITED(status) && WEXITSTATUS(status) == 0), describe_status(status));
}

TEST_CASE("in session mode a client parked before its first request is served by the backend of its login") {
  const int mport = free_port();
  const unsigned workers = default_workers();
  proxy_instance proxy(proxy_options().workers(workers).pool("mode", "session").top_level(metrics_member(mport)));
  auto c = connect(proxy.conninfo());
  const int told = PQbackendPID(c.get());  // from BackendKeyData: the backend held since the login
  REQUIRE(told > 0);
  REQUIRE_MESSAGE(wait_until([&] { return parked_clients(mport, workers) == 1; }, 10s),
                  "parked: " << parked_clients(mport, workers));
  CHECK(scalar(c, "select pg_backend_pid()") == std::to_string(told));
  exec_ok(c, "set application_name = 'parked then served'");
  CHECK(scalar(c, "show application_name") == "parked then served");
  CHECK(scalar(c, "select pg_backend_pid()") == std::to_string(told));
}

TEST_CASE("park_idle_clients_after 0 parks nobody") {
  const int mport = free_port();
  proxy_instance proxy(proxy_options().top_level(metrics_member(mport)).top_level(R"("park_idle_clients_after": "0")"));
  auto c = connect(proxy.conninfo());
  CHECK(scalar(c, "select 1") == "1");
  // Many times the longest wait before parking at the default (100 ms).
  CHECK_FALSE(wait_until([&] { return parked_clients(mport, proxy.workers()) != 0; }, 2s));
  CHECK(scalar(c, "select 2") == "2");
}

}  // namespace it
