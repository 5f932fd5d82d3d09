// Faults: dying clients, bad input, an unreachable server, shutdown. After each, pgmux is still running
// and other clients did not notice:
// - a client killed with SIGKILL while holding a row lock releases it within two seconds
// - a client that disconnects mid-query, mid-transaction, mid-COPY or mid-result leaks no server connection
// - garbage, oversized, truncated and stalled startup packets end only that client
// - unknown, malformed, oversized and truncated messages after startup end only that client, and
//   its open transaction is rolled back
// - a message over max_message_size ends that client; others are unaffected
// - an unusable server (closes at once, or never answers) gives its clients an error; pgmux keeps
//   serving others, gives up after connect_timeout and does not spin
// - SIGTERM: stops accepting, lets an open transaction finish, then exits 0
// - a query sent together with Terminate runs to its end, as PostgreSQL would run it
// - SIGTERM in session mode: an open transaction finishes, then the client is closed and pgmux exits
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <random>
#include <thread>

#include "integration/fixtures.hpp"

// Inside namespace it: libpq declares `struct pg_conn` and `struct pg_result` globally.
namespace it {
namespace {

int idle_in_transaction(const pg_conn& admin) {
  return std::stoi(scalar(admin, "select count(*) from pg_stat_activity where usename = 'pgmux_test'"
                                 " and state like 'idle in transaction%'"));
}

// Sends a simple query on a raw connection and returns the message types up to ReadyForQuery.
std::string raw_query(raw_socket& s, const std::string& sql) {
  if (!s.send(wire::msg('Q', wire::cstr(sql)))) return "send failed";
  std::string types;
  while (auto m = s.read_message(5s)) {
    types.push_back(m->first);
    if (m->first == 'Z') break;
  }
  return types;
}

// A child process that connects through pgmux, locks the row and then waits to be killed.
pid_t lock_holder(const std::string& conninfo, const std::string& lock_sql, int report_fd) {
  const pid_t parent = ::getpid();
  const pid_t child = ::fork();
  if (child != 0) return child;
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(1);
  PGconn* c = PQconnectdb(conninfo.c_str());
  char report = 'F';
  if (PQstatus(c) == CONNECTION_OK) {
    PGresult* b = PQexec(c, "begin");
    PGresult* r = PQexec(c, lock_sql.c_str());
    if (PQresultStatus(b) == PGRES_COMMAND_OK && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) report = 'L';
  }
  (void)!::write(report_fd, &report, 1);
  for (int i = 0; i < 600; ++i) ::sleep(1);  // killed long before; PDEATHSIG if the test dies
  ::_exit(0);  // never exit(): static destructors belong to the parent
}

// A server that is never usable: it accepts TCP connections and either closes them at once or never
// says a word. Counts the connections, and for silent ones how long pgmux waited before closing.
class unusable_server {
 public:
  explicit unusable_server(bool silent) : port_(free_port()), silent_(silent) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port_));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(fd_, 128) == 0);
    thread_ = std::jthread([this](std::stop_token stop) { serve(stop); });
  }
  ~unusable_server() {
    thread_.request_stop();
    thread_.join();
    ::close(fd_);
  }
  int port() const { return port_; }
  int accepted() const { return accepted_; }
  // Seconds each silent connection stayed open before pgmux closed it.
  std::vector<double> closed_after() const {
    std::lock_guard lock(mutex_);
    return closed_after_;
  }

 private:
  void serve(const std::stop_token& stop) {
    std::vector<std::pair<int, clock::time_point>> open;
    while (!stop.stop_requested()) {
      std::vector<pollfd> fds{{fd_, POLLIN, 0}};
      for (const auto& [c, t] : open) fds.push_back({c, POLLIN, 0});
      if (::poll(fds.data(), fds.size(), 50) <= 0) continue;
      for (std::size_t i = 1; i < fds.size(); ++i) {
        if (!fds[i].revents) continue;
        char buf[256];
        if (::recv(fds[i].fd, buf, sizeof buf, MSG_DONTWAIT) > 0) continue;  // startup bytes: ignore
        std::lock_guard lock(mutex_);
        closed_after_.push_back(seconds_since(open[i - 1].second));
        ::close(fds[i].fd);
        open[i - 1].first = -1;
      }
      std::erase_if(open, [](const auto& o) { return o.first < 0; });
      if (fds[0].revents) {
        const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) continue;
        ++accepted_;
        if (silent_) open.emplace_back(c, clock::now());
        else ::close(c);
      }
    }
    for (const auto& o : open) ::close(o.first);
  }

  int port_;
  bool silent_;
  int fd_ = -1;
  std::atomic<int> accepted_{0};
  mutable std::mutex mutex_;
  std::vector<double> closed_after_;
  std::jthread thread_;
};

}  // namespace

TEST_SUITE("faults") {

TEST_CASE("a client killed with SIGKILL while holding a row lock releases it within two seconds") {
  {
    auto setup = setup_connection();
    exec_ok(setup, "drop table if exists it_kill_lock; create table it_kill_lock (id int primary key);"
                   " insert into it_kill_lock values (1)");
  }
  proxy_instance proxy(proxy_options().pool("max_size", "2"));
  int pipe_fds[2];
  REQUIRE(::pipe(pipe_fds) == 0);
  const pid_t child = lock_holder(proxy.conninfo(), "select id from it_kill_lock where id = 1 for update", pipe_fds[1]);
  ::close(pipe_fds[1]);
  REQUIRE(child > 0);
  char report = 0;
  pollfd p{pipe_fds[0], POLLIN, 0};
  const bool reported = ::poll(&p, 1, 10000) == 1 && ::read(pipe_fds[0], &report, 1) == 1;
  ::close(pipe_fds[0]);
  if (!reported || report != 'L') {
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    FAIL("the child could not take the lock through pgmux");
  }

  auto other = connect(proxy.conninfo());
  CHECK(other.exec("select id from it_kill_lock where id = 1 for update nowait").sqlstate() == "55P03");

  REQUIRE(::kill(child, SIGKILL) == 0);
  REQUIRE(::waitpid(child, nullptr, 0) == child);
  const auto killed = clock::now();

  exec_ok(other, "begin");
  exec_ok(other, "set local lock_timeout = '2s'");
  auto r = other.exec("select id from it_kill_lock where id = 1 for update");
  const double after = seconds_since(killed);
  CHECK_MESSAGE(r.status() == PGRES_TUPLES_OK, r.error());
  CHECK(after < 2.0);
  MESSAGE("lock taken " << after << " s after the holder was killed");
  exec_ok(other, "commit");

  auto admin = connect(pg().admin_conninfo());
  CHECK(wait_until([&] { return idle_in_transaction(admin) == 0; }, 2s));
  CHECK(proxy.alive());
}

TEST_CASE("a client that disconnects mid-query, mid-transaction, mid-COPY or mid-result leaks no server connection") {
  {
    auto setup = setup_connection();
    exec_ok(setup, "drop table if exists it_mid; create table it_mid (x int)");
  }
  // One server connection: if it leaked, or went back dirty, the next client would see it.
  proxy_instance proxy(proxy_options().pool("max_size", "1").pool("query_wait_timeout", "8s"));
  auto admin = connect(pg().admin_conninfo());
  auto x = connect(proxy.conninfo());

  SUBCASE("mid-query") {
    REQUIRE(PQsendQuery(x.get(), "select pg_sleep(3)") == 1);
    REQUIRE(wait_until([&] { return scalar(admin, "select count(*) from pg_stat_activity where state = 'active'"
                                                  " and query = 'select pg_sleep(3)'") == "1"; },
                       3s));
  }
  SUBCASE("mid-transaction") {
    exec_ok(x, "begin");
    exec_ok(x, "insert into it_mid values (1)");
  }
  SUBCASE("mid-COPY") {
    auto r = x.exec("copy it_mid from stdin");
    REQUIRE(r.status() == PGRES_COPY_IN);
    REQUIRE(PQputCopyData(x.get(), "1\n2\n", 4) == 1);
    REQUIRE(PQflush(x.get()) == 0);
  }
  SUBCASE("mid-result") {
    REQUIRE(PQsendQuery(x.get(), "select g, repeat('y', 100) from generate_series(1, 1000000) g") == 1);
    std::this_thread::sleep_for(300ms);  // the server is streaming into pgmux's buffers
  }
  x.abort_socket();
  const auto gone = clock::now();

  auto y = connect(proxy.conninfo());
  y.collect_notices();
  exec_ok(y, "begin");  // would warn "there is already a transaction in progress"
  CHECK(scalar(y, "select count(*) from it_mid") == "0");
  exec_ok(y, "commit");
  const double took = seconds_since(gone);
  CHECK(y.notices().empty());
  CHECK(took < 5.0);
  MESSAGE("next client served " << took << " s after the disconnect");
  CHECK(wait_until([&] { return idle_in_transaction(admin) == 0; }, 2s));
  CHECK(scalar(admin, "select count(*) from pg_stat_activity where state = 'active' and usename = 'pgmux_test'") == "0");
  CHECK(server_connections(admin) <= 1);
  CHECK(proxy.alive());
}

TEST_CASE("garbage, oversized, truncated and stalled startup packets end only that client") {
  proxy_instance proxy(proxy_options().top_level("\"auth_timeout\": \"1s\""));
  auto guard = connect(proxy.conninfo());
  exec_ok(guard, "begin");
  CHECK(scalar(guard, "select 'before'") == "before");

  std::mt19937 gen{12345};
  std::string random_bytes;
  for (int i = 0; i < 256; ++i) random_bytes.push_back(static_cast<char>(gen()));
  const std::string user = wire::cstr("user") + wire::cstr("pgmux_test");
  struct packet {
    std::string name;
    std::string bytes;
    bool close_write;     // half-close after sending (a truncated packet then EOF)
    bool expect_error;    // an ErrorResponse must come first
    double max_seconds;   // closed within: at once when invalid, after auth_timeout (1s) when stalled
  };
  const std::vector<packet> packets = {
      {"random bytes", random_bytes, false, false, 2},
      {"length 0x7fffffff", wire::be32(0x7fffffff) + wire::be32(196608) + user, false, false, 2},
      {"length below 8", wire::be32(4) + wire::be32(196608), false, false, 2},
      {"protocol 9.9", wire::startup_packet(0x00090009, user + '\0'), false, false, 2},
      {"protocol 2.0", wire::startup_packet(0x00020000, user + '\0'), false, false, 2},
      {"no user", wire::startup_packet(196608, wire::cstr("database") + wire::cstr("pgmux_test") + '\0'), false, true, 2},
      {"unterminated parameters", wire::startup_packet(196608, std::string("user\0pgmux_te", 13)), false, false, 2},
      {"1 MB startup packet",
       wire::startup_packet(196608, user + wire::cstr("options") + std::string(1 << 20, 'x') + '\0' + '\0'), false,
       false, 2},
      {"truncated then closed", wire::be32(100) + wire::be32(196608) + user, true, false, 2},
      {"truncated and stalled", wire::be32(100) + wire::be32(196608) + user, false, false, 3},
      {"nothing at all", "", false, false, 3},
  };
  std::string summary;
  for (const auto& p : packets) {
    CAPTURE(p.name);
    raw_socket s(proxy.port());
    const auto t0 = clock::now();
    s.send(p.bytes);  // may fail part-way once pgmux has had enough: that is fine
    if (p.close_write) s.shutdown_write();
    auto out = s.read_until_closed(8s);
    const double took = seconds_since(t0);
    CHECK(out.closed);
    CHECK(took < p.max_seconds);
    if (!out.data.empty()) CHECK(out.data[0] == 'E');
    if (p.expect_error) CHECK_FALSE(out.data.empty());
    summary += "\n  " + p.name + ": closed after " + std::to_string(took) + " s, " + std::to_string(out.data.size()) +
               " bytes received";
  }
  MESSAGE("bad startup packets:" << summary);

  CHECK(proxy.alive());
  CHECK(scalar(guard, "select 'after'") == "after");
  exec_ok(guard, "commit");
  auto fresh = connect(proxy.conninfo());
  CHECK(scalar(fresh, "select 'fresh'") == "fresh");
}

TEST_CASE("unknown, malformed, oversized and truncated messages after startup end only that client") {
  proxy_instance proxy(proxy_options().pool("max_size", "1").pool("query_wait_timeout", "8s"));
  auto admin = connect(pg().admin_conninfo());
  auto guard = connect(proxy.conninfo());

  struct bad_message {
    std::string name;
    std::string bytes;
    bool close_write;
    bool expect_error;
  };
  const std::vector<bad_message> cases = {
      {"unknown type y", wire::msg('y', ""), false, true},
      {"length below 4", std::string("Q") + wire::be32(2), false, false},
      {"length 0x7fffffff", std::string("Q") + wire::be32(0x7fffffff) + "select", false, false},
      {"truncated then closed", std::string("Q") + wire::be32(100) + "select", true, false},
      {"startup message again", wire::startup_message("pgmux_test", "pgmux_test"), false, false},
  };
  std::string summary;
  for (const auto& bad : cases) {
    CAPTURE(bad.name);
    raw_socket s(proxy.port());
    REQUIRE(s.startup());
    // Inside a transaction that writes, so the one server connection is attached and dirty.
    CHECK(raw_query(s, "begin") == "CZ");
    CHECK(raw_query(s, "create temp table if not exists it_raw (x int); insert into it_raw values (1)") == "CCZ");
    s.send(bad.bytes);
    if (bad.close_write) s.shutdown_write();
    const auto t0 = clock::now();

    // The next client gets that server connection, clean, without a noticeable wait.
    guard.collect_notices();
    exec_ok(guard, "begin");
    CHECK(scalar(guard, "select to_regclass('it_raw') is null") == "t");
    exec_ok(guard, "commit");
    const double guard_waited = seconds_since(t0);
    CHECK(guard.notices().empty());
    CHECK(guard_waited < 3.0);

    auto out = s.read_until_closed(10s);
    const double took = seconds_since(t0);
    CHECK(out.closed);
    if (!out.data.empty()) CHECK(out.data[0] == 'E');
    if (bad.expect_error) CHECK_FALSE(out.data.empty());
    summary += "\n  " + bad.name + ": next client served after " + std::to_string(guard_waited) + " s, closed after " +
               std::to_string(took) + " s, " + std::to_string(out.data.size()) + " bytes received";
    CHECK(wait_until([&] { return idle_in_transaction(admin) == 0; }, 2s));
  }
  MESSAGE("bad messages after startup:" << summary);
  CHECK(proxy.alive());
}

TEST_CASE("a message over max_message_size ends that client and others are unaffected") {
  proxy_instance proxy(proxy_options().pool("max_size", "3").top_level("\"max_message_size\": \"1MB\""));
  auto other = connect(proxy.conninfo());
  exec_ok(other, "begin");
  CHECK(scalar(other, "select 'before'") == "before");

  // Under the limit: fine.
  auto small = connect(proxy.conninfo());
  CHECK(scalar(small, "select length('" + std::string(512 * 1024, 'a') + "')") == "524288");

  SUBCASE("a 2 MB query") {
    auto big = connect(proxy.conninfo());
    const auto t0 = clock::now();
    auto r = big.exec("select length('" + std::string(2 * 1024 * 1024, 'b') + "')");
    CHECK(r.status() != PGRES_TUPLES_OK);
    CHECK(seconds_since(t0) < 5.0);
    MESSAGE("2 MB query: " << r.error() << " / " << big.error());
  }
  SUBCASE("a 2 MB CopyData message") {
    {
      auto setup = setup_connection();
      exec_ok(setup, "drop table if exists it_big_copy; create table it_big_copy (t text)");
    }
    auto big = connect(proxy.conninfo());
    auto r = big.exec("copy it_big_copy from stdin");
    REQUIRE(r.status() == PGRES_COPY_IN);
    const std::string row = std::string(2 * 1024 * 1024, 'c') + "\n";
    PQputCopyData(big.get(), row.data(), static_cast<int>(row.size()));  // one CopyData message
    PQputCopyEnd(big.get(), nullptr);
    bool timed_out = false;
    auto end = get_result(big, 5s, &timed_out);
    CHECK_FALSE(timed_out);
    CHECK(end.status() != PGRES_COMMAND_OK);
    auto setup = setup_connection();
    CHECK(scalar(setup, "select count(*) from it_big_copy") == "0");
  }

  CHECK(proxy.alive());
  CHECK(scalar(other, "select 'after'") == "after");
  exec_ok(other, "commit");
  CHECK(scalar(small, "select 'small still fine'") == "small still fine");
  auto fresh = connect(proxy.conninfo());
  CHECK(scalar(fresh, "select 'fresh'") == "fresh");
}

TEST_CASE("an unusable server gives its clients an error while pgmux keeps serving others without spinning") {
  bool silent = false;
  SUBCASE("server closes every connection at once") { silent = false; }
  SUBCASE("server never answers: connect_timeout gives up") { silent = true; }
  unusable_server dead(silent);
  proxy_instance proxy(proxy_options().database(
      "\"it_dead\": {\"dsn\": \"host=127.0.0.1 port=" + std::to_string(dead.port()) +
      " user=pgmux_test password=x dbname=pgmux_test\", \"pool\": {\"min_size\": 2, \"connect_timeout\": \"500ms\","
      " \"query_wait_timeout\": \"2s\"}}"));
  const double cpu_before = proxy.cpu_seconds();
  const auto t0 = clock::now();

  pg_conn d(proxy.conninfo("it_dead"));
  bool served = false;
  if (d.ok()) served = d.exec("select 1").status() == PGRES_TUPLES_OK;
  CHECK_FALSE(served);
  CHECK(seconds_since(t0) < 6.0);
  MESSAGE("client of the unusable server got: " << d.error());

  auto good = connect(proxy.conninfo());
  CHECK(scalar(good, "select 'unaffected'") == "unaffected");

  std::this_thread::sleep_for(std::chrono::milliseconds(3000) - (clock::now() - t0));
  const double elapsed = seconds_since(t0);
  const double cpu = proxy.cpu_seconds() - cpu_before;
  MESSAGE(dead.accepted() << " connection attempts and " << cpu << " s CPU in " << elapsed << " s");
  CHECK(dead.accepted() >= 1);
  CHECK(dead.accepted() < 200);  // retried with backoff, not in a loop
  CHECK(cpu < 0.5 * elapsed);
  if (silent) {
    const auto closed = dead.closed_after();
    REQUIRE_FALSE(closed.empty());
    for (const double s : closed) CHECK(s < 1.5);  // connect_timeout is 500ms
  }
  CHECK(proxy.alive());
}

TEST_CASE("SIGTERM stops accepting, lets an open transaction finish, then pgmux exits 0") {
  proxy_instance proxy;
  auto c = connect(proxy.conninfo());
  exec_ok(c, "begin");
  CHECK(scalar(c, "select 'before'") == "before");

  proxy.send_signal(SIGTERM);
  CHECK_MESSAGE(wait_until([&] { return !pg_conn(proxy.conninfo()).ok(); }, 2s), "still accepting new clients");
  CHECK(scalar(c, "select 'finishing'") == "finishing");
  exec_ok(c, "commit");

  int status = 0;
  CHECK_MESSAGE(proxy.wait_exit(5s, &status), "pgmux still running 5 s after the transaction ended");
  CHECK_MESSAGE((WIFEXITED(status) && WEXITSTATUS(status) == 0), describe_status(status));
  auto admin = connect(pg().admin_conninfo());
  CHECK(wait_until([&] { return server_connections(admin) == 0; }, 3s));
}


TEST_CASE("a query sent together with Terminate runs to its end") {
  {
    auto setup = setup_connection();
    exec_ok(setup, "drop table if exists it_fire_and_forget; create table it_fire_and_forget (id int)");
  }
  proxy_instance proxy(proxy_options().pool("max_size", "1"));
  {
    raw_socket s(proxy.port());
    REQUIRE(s.startup());
    // The statement takes a while; the client does not wait for its answer.
    REQUIRE(s.send(wire::msg('Q', wire::cstr("select pg_sleep(0.3); insert into it_fire_and_forget values (1)")) +
                   wire::msg('X', "")));
    s.shutdown_write();
  }
  auto c = connect(proxy.conninfo());
  CHECK(wait_until([&] { return scalar(c, "select count(*) from it_fire_and_forget") == "1"; }, 5s));
}


TEST_CASE("SIGTERM in session mode lets the open transaction finish, then ends the session") {
  proxy_instance proxy(proxy_options().pool("mode", "session").top_level(R"("shutdown_timeout": "20s")"));
  auto c = connect(proxy.conninfo());
  exec_ok(c, "begin");
  CHECK(scalar(c, "select 'in transaction'") == "in transaction");
  proxy.send_signal(SIGTERM);
  CHECK(wait_until([&] { return !pg_conn(proxy.conninfo()).ok(); }, 2s));
  CHECK(scalar(c, "select 'finishing'") == "finishing");
  exec_ok(c, "commit");
  const auto committed = clock::now();
  int status = 0;
  CHECK_MESSAGE(proxy.wait_exit(5s, &status), "pgmux waited for shutdown_timeout instead of the transaction");
  CHECK(seconds_since(committed) < 5.0);
  CHECK_MESSAGE((WIFEXITED(status) && WEXITSTATUS(status) == 0), describe_status(status));
}

TEST_CASE("SIGINT with statements running on every worker stops pgmux at once and cleanly") {
  // The clients' coroutines are still queued when the loops stop: each one holds its pool, whose
  // timer belongs to worker 0, and the sessions' registries. Tearing that down in the wrong order
  // is a use after free the sanitize step reports.
  proxy_instance proxy(proxy_options().workers(2));
  std::vector<pg_conn> clients;
  for (int i = 0; i < 4; ++i) {
    clients.push_back(connect(proxy.conninfo()));
    REQUIRE(PQsendQuery(clients.back().get(), "select pg_sleep(30)") == 1);
  }
  REQUIRE(wait_until([] { return server_connections() == 4; }, 10s));
  proxy.send_signal(SIGINT);
  int status = 0;
  REQUIRE_MESSAGE(proxy.wait_exit(10s, &status), "pgmux still runs 10 s after SIGINT");
  CHECK_MESSAGE((WIFEXITED(status) && WEXITSTATUS(status) == 0), describe_status(status));
  CHECK(sanitizer_report(proxy.log()).empty());
  for (auto& c : clients) {
    bool timed_out = false;
    const auto r = get_result(c, 5s, &timed_out);
    CHECK_FALSE(timed_out);
    CHECK_FALSE(r.ok());
  }
  // The backends sleep on, unaware that pgmux is gone: end them for the tests that follow.
  auto admin = connect(pg().admin_conninfo());
  exec_ok(admin, "select pg_terminate_backend(pid) from pg_stat_activity where usename = 'pgmux_test'");
  CHECK(wait_until([&] { return server_connections(admin) == 0; }, 10s));
}

}  // TEST_SUITE
}  // namespace it
