// Health, drain and several instances on one address, against real processes:
// - /healthz and /readyz answer 200 while pgmux serves, and never open a server connection
// - /readyz answers 503 under PAUSE of every pool, and while a pool that once connected cannot
//   reach its server; 200 again after RESUME and once the server is back; /healthz stays 200
// - SIGTERM: /readyz 503 at once, new clients still served for drain_delay, then refused while
//   an open transaction finishes and /metrics still answers; pgmux then exits 0
// - two workers listen on a socket each; without listen.reuse_port another pgmux on the address
//   is refused, and one that shares it on purpose gets no client
// - rolling restart on a shared port (listen.reuse_port): a new pgmux starts, the old one gets
//   SIGTERM, and pgbench connecting for every transaction across the switch fails none
// - three instances on one port with peers: a CancelRequest sent to an instance other than its
//   client's is sent on and cancels the right query (pgmux_cancel_forwards_total counts each); a
//   forged key cancels nothing, and a request already sent on once is never sent again
#include <doctest/doctest.h>

#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <memory>
#include <regex>
#include <thread>

#include "integration/fault_proxy.hpp"
#include "integration/fixtures.hpp"

// Inside namespace it: libpq declares `struct pg_conn` and `struct pg_result` globally.
namespace it {
namespace {

const std::string admin_user = "pgmux_test";


// Logins a pgmux wrote to its log so far.
std::size_t logins(const proxy_instance& proxy) {
  const auto log = proxy.log();
  std::size_t n = 0;
  for (auto at = log.find(" logged in ("); at != std::string::npos; at = log.find(" logged in (", at + 1)) ++n;
  return n;
}

// Sends a CancelRequest (pid and secret as BackendKeyData gave them) to the Unix socket at `path`.
bool send_cancel(const std::string& path, const std::string& key) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
  bool sent = false;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    const std::string request = wire::be32(16) + wire::be32(80877102) + key;
    sent = ::send(fd, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size());
    char ignored;
    (void)::recv(fd, &ignored, 1, 0);  // the instance closes once it has acted on it
  }
  ::close(fd);
  return sent;
}

int sleeping(const pg_conn& admin) {
  return std::stoi(scalar(admin, "select count(*) from pg_stat_activity where query = 'select pg_sleep(30)'"
                                 " and state = 'active'"));
}

// Reads to ReadyForQuery; the SQLSTATE of the ErrorResponse on the way, or "" when none.
std::string outcome(raw_socket& s, std::chrono::milliseconds timeout) {
  std::string code;
  while (auto m = s.read_message(timeout)) {
    if (m->first == 'E') {
      const auto at = m->second.find('C');
      code = at == std::string::npos ? "?" : m->second.substr(at + 1, 5);
    }
    if (m->first == 'Z') return code;
  }
  return "no ReadyForQuery";
}

}  // namespace

TEST_SUITE("instances") {

TEST_CASE("healthz and readyz answer 200 while pgmux serves, without opening a server connection") {
  const int mport = free_port();
  proxy_instance proxy(proxy_options().pool("min_size", "0").top_level(metrics_member(mport)));
  for (int i = 0; i < 10; ++i) {
    const auto live = http_get(mport, "/healthz");
    CHECK(live.status == 200);
    CHECK(live.body == "ok\n");
    const auto ready = http_get(mport, "/readyz");
    CHECK(ready.status == 200);
    CHECK(ready.body == "ok\n");
  }
  CHECK(server_connections() == 0);
  CHECK(http_get(mport, "/ready").status == 404);
  auto c = connect(proxy.conninfo());
  CHECK(scalar(c, "select 1") == "1");
  CHECK(http_get(mport, "/readyz").status == 200);
}

TEST_CASE("readyz is 503 under PAUSE of every pool and 200 again after RESUME") {
  const int mport = free_port();
  proxy_instance proxy(proxy_options()
                           .top_level("\"admin\": {\"users\": [\"" + admin_user + "\"]}")
                           .top_level(metrics_member(mport)));
  auto admin = connect(proxy.conninfo("pgmux", admin_user));
  REQUIRE(http_get(mport, "/readyz").status == 200);
  auto paused = admin.exec("PAUSE");
  REQUIRE_MESSAGE(paused.status() == PGRES_COMMAND_OK, paused.error());
  const auto ready = http_get(mport, "/readyz");
  CHECK(ready.status == 503);
  CHECK(ready.body == "paused: PAUSE of every pool\n");
  CHECK(http_get(mport, "/healthz").status == 200);
  // One database paused is not the whole process.
  auto resumed = admin.exec("RESUME");
  REQUIRE_MESSAGE(resumed.status() == PGRES_COMMAND_OK, resumed.error());
  CHECK(http_get(mport, "/readyz").status == 200);
  REQUIRE(admin.exec("PAUSE pgmux_test").status() == PGRES_COMMAND_OK);
  CHECK(http_get(mport, "/readyz").status == 200);
  REQUIRE(admin.exec("RESUME pgmux_test").status() == PGRES_COMMAND_OK);
}

TEST_CASE("readyz is 503 while a pool that once connected cannot reach its server, 200 once it is back") {
  const int mport = free_port();
  fault_proxy fp(pg().port());
  proxy_instance proxy(proxy_options()
                           .database("\"faulty\": {\"dsn\": \"host=127.0.0.1 port=" + std::to_string(fp.port()) +
                                     " user=pgmux_test password=" + pg().password() +
                                     " dbname=pgmux_test\", \"pool\": {\"min_size\": 1, \"connect_timeout\": \"1s\"}}")
                           .top_level(metrics_member(mport)));
  // min_size opens the pool's connection at start: once it is idle, logged in, the pool has
  // reached its server.
  REQUIRE(wait_until(
      [&] { return metric_value(scrape_metrics(mport), "pgmux_pool_idle{database=\"faulty\",user=\"pgmux_test\"}") == 1; },
      10s));
  CHECK(http_get(mport, "/readyz").status == 200);

  fp.refuse();
  fp.cut_all();
  http_answer ready;
  CHECK_MESSAGE(wait_until(
                    [&] {
                      ready = http_get(mport, "/readyz");
                      return ready.status == 503;
                    },
                    10s),
                "readyz stayed " << ready.status << ": " << ready.body << "\nlog:\n" << proxy.log_tail());
  CHECK(ready.body.rfind("pool faulty/pgmux_test: its server cannot be reached (", 0) == 0);
  CHECK(http_get(mport, "/healthz").status == 200);

  fp.pass();
  CHECK_MESSAGE(wait_until([&] { return http_get(mport, "/readyz").status == 200; }, 10s), proxy.log_tail());
}

TEST_CASE("SIGTERM: readyz 503 at once, clients served for drain_delay, then refused while a transaction finishes") {
  const int mport = free_port();
  proxy_instance proxy(
      proxy_options().top_level(metrics_member(mport)).top_level(R"("drain_delay": "5s", "shutdown_timeout": "20s")"));
  auto holder = connect(proxy.conninfo());
  exec_ok(holder, "begin");
  CHECK(scalar(holder, "select 'held'") == "held");

  const auto signalled = clock::now();
  proxy.send_signal(SIGTERM);
  CHECK(wait_until([&] { return http_get(mport, "/readyz").status == 503; }, 5s));
  CHECK(http_get(mport, "/readyz").body == "draining: shutting down\n");
  CHECK(http_get(mport, "/healthz").status == 200);
  // Within drain_delay a new client is still served: a load balancer may not have noticed yet.
  {
    auto late = connect(proxy.conninfo());
    CHECK(scalar(late, "select 'still served'") == "still served");
  }
  CHECK(seconds_since(signalled) < 5.0);
  // Then the listener closes; the open transaction goes on, and metrics still answer.
  CHECK_MESSAGE(wait_until([&] { return !pg_conn(proxy.conninfo()).ok(); }, 10s), "still accepting after drain_delay");
  CHECK(seconds_since(signalled) >= 5.0);
  CHECK(http_get(mport, "/metrics").status == 200);
  CHECK(scalar(holder, "select 'finishing'") == "finishing");
  exec_ok(holder, "commit");
  int status = 0;
  CHECK_MESSAGE(proxy.wait_exit(5s, &status), "pgmux still running 5 s after the transaction ended");
  CHECK_MESSAGE((WIFEXITED(status) && WEXITSTATUS(status) == 0), describe_status(status));
}

// net.ipv4.tcp_migrate_req set for one scope and put back: with it, connections still queued
// on a closing listening socket go to another of its SO_REUSEPORT group instead of being reset.
class migrate_requests {
 public:
  migrate_requests() {
    std::ifstream(path_) >> before_;
    std::ofstream(path_) << 1;
    std::string now;
    std::ifstream(path_) >> now;
    REQUIRE_MESSAGE(now == "1", "cannot set " << path_ << " (root is needed): see README, Operating several instances");
  }
  ~migrate_requests() {
    if (!before_.empty()) std::ofstream(path_) << before_;
  }

 private:
  const char* path_ = "/proc/sys/net/ipv4/tcp_migrate_req";
  std::string before_;
};

TEST_CASE("two workers accept on sockets of their own, and without reuse_port the port stays one pgmux's") {
  const int mport = free_port();
  proxy_instance proxy(proxy_options().workers(2).pool("min_size", "0").top_level(metrics_member(mport)));
  // Clients that stay are spread evenly over the workers, whichever socket the kernel picked.
  constexpr std::size_t held_clients = 10;
  {
    std::vector<pg_conn> held;
    for (std::size_t i = 0; i < held_clients; ++i) held.push_back(connect(proxy.conninfo()));
    const auto text = scrape_metrics(mport);
    const double first = metric_value(text, "pgmux_worker_clients{worker=\"0\"}");
    const double second = metric_value(text, "pgmux_worker_clients{worker=\"1\"}");
    CHECK(first + second == 10);
    CHECK(std::abs(first - second) <= 1);
  }
  CHECK(wait_until([&] {
    const auto text = scrape_metrics(mport);
    return metric_value(text, "pgmux_worker_clients{worker=\"0\"}") + metric_value(text, "pgmux_worker_clients{worker=\"1\"}") == 0;
  }, 5s));
  const char* env_bin = std::getenv("PGMUX_IT_BINARY");
  const std::string bin = env_bin && *env_bin ? env_bin : PGMUX_BINARY;
  // Another pgmux with the same listen address is refused, as by a single listening socket.
  for (const std::string workers : {"1", "2"}) {
    const std::string path = proxy.dir() + "/second-" + workers + ".json";
    std::ofstream(path) << replace_first(proxy.config_text(), "\"workers\": 2", "\"workers\": " + workers);
    const auto second = run(shell_quote(bin) + " --config " + shell_quote(path), 30);
    INFO("second pgmux with " << workers << " worker(s): " << second.output);
    CHECK(second.code == 1);
    CHECK(second.output.find("cannot listen on") != std::string::npos);
    CHECK(second.output.find("in use") != std::string::npos);
  }
  // One that asks to share the port (listen.reuse_port) joins the kernel's group of sockets, but
  // every client still goes to a worker of the first.
  proxy_instance sharer(proxy_options().workers(1).share_port(proxy.port()));
  constexpr std::size_t clients = 40;
  for (std::size_t i = 0; i < clients; ++i) {
    auto c = connect(proxy.conninfo());
    CHECK(scalar(c, "select 1") == "1");
  }
  CHECK_MESSAGE(wait_until([&] { return logins(proxy) >= held_clients + clients; }, 10s), proxy.log_tail());
  CHECK(logins(sharer) == 0);
  CHECK(logins(proxy) == held_clients + clients);
}

TEST_CASE("rolling restart on a shared port: pgbench connecting per transaction fails none") {
  // The setting the README gives for a same-host rolling restart. Without it, a connection that
  // arrives in the instant between the old instance's last accept and its close is reset.
  migrate_requests migrate;
  const int old_metrics = free_port();
  auto old_instance = std::make_unique<proxy_instance>(
      proxy_options().share_port().top_level(metrics_member(old_metrics)).top_level(R"("drain_delay": "1s")"));
  const int port = old_instance->port();
  const std::string script = old_instance->dir() + "/select.sql";
  std::ofstream(script) << "select 1;\n";

  run_result bench;
  std::thread client([&] {
    bench = run("pgbench -n -C -c 4 -j 2 -T 15 -f " + shell_quote(script) + " -h 127.0.0.1 -p " + std::to_string(port) +
                    " -U pgmux_test pgmux_test",
                90);
  });
  // pgbench runs to its end whatever the checks below find: a thread left joinable would abort.
  struct join_at_exit {
    std::thread& t;
    ~join_at_exit() {
      if (t.joinable()) t.join();
    }
  } joined{client};
  REQUIRE_MESSAGE(wait_until([&] { return logins(*old_instance) >= 200; }, 10s), old_instance->log_tail());

  // The new instance listens beside the old one; then the old one drains and exits.
  proxy_instance new_instance(proxy_options().share_port(port));
  old_instance->send_signal(SIGTERM);
  CHECK(wait_until([&] { return http_get(old_metrics, "/readyz").status == 503; }, 1s));
  int status = 0;
  CHECK_MESSAGE(old_instance->wait_exit(10s, &status), old_instance->log_tail());
  CHECK_MESSAGE((WIFEXITED(status) && WEXITSTATUS(status) == 0), describe_status(status));
  const auto served_by_old = logins(*old_instance);
  const auto new_before = logins(new_instance);
  CHECK_MESSAGE(wait_until([&] { return logins(new_instance) >= new_before + 20; }, 10s), new_instance.log_tail());
  client.join();
  CHECK_MESSAGE(logins(new_instance) > new_before + 20, "pgbench ended before the new instance served much");

  INFO("pgbench output:\n" << bench.output);
  CHECK(bench.code == 0);
  std::smatch m;
  REQUIRE(std::regex_search(bench.output, m, std::regex(R"(number of transactions actually processed: (\d+))")));
  const long processed = std::stol(m[1]);
  REQUIRE(std::regex_search(bench.output, m, std::regex(R"(number of failed transactions: (\d+))")));
  CHECK(std::stol(m[1]) == 0);
  CHECK(bench.output.find("aborted") == std::string::npos);
  MESSAGE("rolling restart: " << processed << " transactions, each on a new connection, " << served_by_old
                              << " served by the old instance, " << logins(new_instance) << " by the new one");
}

TEST_CASE("three instances on one port: a cancel sent to any of them cancels the right query, a forged key nothing") {
  const int port = free_port();
  std::vector<std::string> dirs;
  std::vector<int> metrics;
  for (int i = 0; i < 3; ++i) {
    char tmpl[] = "/tmp/pgmux-peer.XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    dirs.emplace_back(tmpl);
    metrics.push_back(free_port());
  }
  std::vector<std::unique_ptr<proxy_instance>> instances;
  for (int i = 0; i < 3; ++i) {
    std::string peers;
    for (int j = 0; j < 3; ++j)
      if (j != i)
        peers += std::string(peers.empty() ? "" : ", ") + "\"" + std::to_string(j + 1) + "\": " +
                 json_string(dirs[j] + ":" + std::to_string(port));
    instances.push_back(std::make_unique<proxy_instance>(
        proxy_options().share_port(port).unix_socket(dirs[i]).top_level(metrics_member(metrics[i])).top_level(
            "\"instance_id\": " + std::to_string(i + 1) + ", \"peers\": {" + peers + "}")));
  }
  const auto socket_of = [&](int instance) { return dirs[instance - 1] + "/.s.PGSQL." + std::to_string(port); };
  const auto forwards = [&] {
    double sent = 0;
    for (int m : metrics) sent += metric_value(scrape_metrics(m), "pgmux_cancel_forwards_total{result=\"sent\"}");
    return static_cast<long>(sent);
  };
  auto admin = connect(pg().admin_conninfo());
  std::vector<double> latencies;
  long expected_forwards = 0;
  // Each cancel goes to an instance that is not its client's (the owner is in the key): the
  // request must be sent on. The last one goes to the owner itself.
  for (int round = 0; round < 7; ++round) {
    CAPTURE(round);
    raw_socket client(port);  // the kernel picks the instance
    REQUIRE(client.startup());
    REQUIRE(client.backend_key().size() == 8);
    const int owner = static_cast<unsigned char>(client.backend_key()[4]);
    REQUIRE((owner >= 1 && owner <= 3));
    REQUIRE(client.send(wire::msg('Q', wire::cstr("select pg_sleep(30)"))));
    REQUIRE(wait_until([&] { return sleeping(admin) == 1; }, 10s));
    const int target = round == 6 ? owner : (owner + round % 2) % 3 + 1;
    CAPTURE(owner);
    CAPTURE(target);
    if (target != owner) ++expected_forwards;
    const auto sent = clock::now();
    REQUIRE(send_cancel(socket_of(target), client.backend_key()));
    CHECK(outcome(client, 5s) == "57014");
    latencies.push_back(seconds_since(sent) * 1000);
  }
  CHECK(forwards() == expected_forwards);

  raw_socket client(port);
  REQUIRE(client.startup());
  const int owner = static_cast<unsigned char>(client.backend_key()[4]);
  const int other = owner % 3 + 1;
  REQUIRE(client.send(wire::msg('Q', wire::cstr("select pg_sleep(30)"))));
  REQUIRE(wait_until([&] { return sleeping(admin) == 1; }, 10s));
  // A forged key (another pid) of the owner's: sent to each instance, forwarded by the two
  // others, cancels nothing.
  std::string forged = client.backend_key();
  forged[3] = static_cast<char>(forged[3] ^ 0x5a);
  for (int i = 1; i <= 3; ++i) REQUIRE(send_cancel(socket_of(i), forged));
  expected_forwards += 2;
  // The client's own key already marked as sent on, arriving at an instance that is not its
  // owner: dropped there, never sent on a second time.
  std::string marked = client.backend_key();
  marked[0] = static_cast<char>(marked[0] | 0x80);
  REQUIRE(send_cancel(socket_of(other), marked));
  CHECK_FALSE(wait_until([&] { return sleeping(admin) == 0; }, 1s));
  CHECK(forwards() == expected_forwards);
  REQUIRE(send_cancel(socket_of(owner), client.backend_key()));
  CHECK(outcome(client, 5s) == "57014");

  std::sort(latencies.begin(), latencies.end());
  MESSAGE("cancels through 3 instances: " << latencies.size() << " cancelled (" << expected_forwards - 2
          << " sent on by another instance), from the CancelRequest to the error in " << latencies.front() << " to "
          << latencies.back() << " ms");
  instances.clear();  // each removes its socket file
  for (const auto& dir : dirs) ::rmdir(dir.c_str());
}

}

}  // namespace it
