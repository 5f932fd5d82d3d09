// Logins under attack from one address (auth.max_authenticating_per_address, auth.startup_timeout).
// Cases:
//   2,000 stalled startups from one address leave other addresses' logins prompt, and all go
//   away within startup_timeout
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "integration/fixtures.hpp"

// Inside namespace it: libpq declares `struct pg_conn` and `struct pg_result` globally.
namespace it {
namespace {

// Raises this process's open-file limit (pgmux, started afterwards, inherits it); returns it.
rlim_t raise_fd_limit(rlim_t want) {
  rlimit l{};
  if (::getrlimit(RLIMIT_NOFILE, &l) != 0) return 0;
  const rlim_t target = l.rlim_max == RLIM_INFINITY ? want : std::min(want, l.rlim_max);
  if (l.rlim_cur < target) {
    l.rlim_cur = target;
    ::setrlimit(RLIMIT_NOFILE, &l);
    ::getrlimit(RLIMIT_NOFILE, &l);
  }
  return l.rlim_cur;
}

// A non-blocking TCP socket from `source` to 127.0.0.1:port, connecting.
int connect_from(const char* source, int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  REQUIRE(fd >= 0);
  sockaddr_in from{};
  from.sin_family = AF_INET;
  ::inet_pton(AF_INET, source, &from.sin_addr);
  REQUIRE_MESSAGE(::bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof from) == 0, "bind " << source << ": " << std::strerror(errno));
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<std::uint16_t>(port));
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const int r = ::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to);
  REQUIRE_MESSAGE((r == 0 || errno == EINPROGRESS), "connect: " << std::strerror(errno));
  return fd;
}

double client_connections(int mport) {
  const auto body = scrape_metrics(mport);
  double sum = 0;
  for (const char* state : {"idle", "waiting", "active"})
    sum += std::max(0.0, metric_value(body, std::string("pgmux_client_connections{state=\"") + state + "\"}"));
  return sum;
}

}  // namespace

TEST_SUITE("login limits") {

TEST_CASE("stalled startups from one address do not lock out other clients") {
  constexpr int attackers = 2000;
  constexpr int per_address = 64;
  REQUIRE_MESSAGE(raise_fd_limit(16384) >= 2 * attackers + 500, "the open-file limit is too low for this test");
  const int mport = free_port();
  // Without the per-address cap, these 2,000 would fill max_authenticating (200) until auth_timeout.
  proxy_instance proxy(proxy_options().workers(2).top_level(
      "\"metrics\": {\"listen\": \"127.0.0.1:" + std::to_string(mport) + "\"}, \"auth_timeout\": \"20s\", " +
      "\"auth\": {\"max_authenticating\": 200, \"max_authenticating_per_address\": " + std::to_string(per_address) +
      ", \"startup_timeout\": \"3s\"}"));
  auto warm = connect(proxy.conninfo());  // the pool learns the server's parameters
  CHECK(scalar(warm, "select 1") == "1");
  warm.reset();

  // Half a startup packet each, then silence.
  const std::string half = wire::startup_message("pgmux_test", "pgmux_test").substr(0, 10);
  std::vector<int> fds;
  fds.reserve(attackers);
  const auto t0 = clock::now();
  for (int i = 0; i < attackers; ++i) fds.push_back(connect_from("127.0.0.2", proxy.port()));
  int sent = 0;
  for (int fd : fds) {
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, 2000) == 1 && ::send(fd, half.data(), half.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(half.size()))
      ++sent;
  }
  REQUIRE(sent == attackers);
  REQUIRE(wait_until([&] { return client_connections(mport) >= attackers; }, 5s));
  MESSAGE(attackers << " stalled connections accepted after " << seconds_since(t0) << " s");

  // Meanwhile clients from 127.0.0.1 log in and run a query, every one promptly.
  double slowest = 0;
  int logged_in = 0;
  for (int i = 0; i < 20; ++i) {
    const auto start = clock::now();
    pg_conn c(proxy.conninfo() + " connect_timeout=5");
    CHECK_MESSAGE(c.ok(), c.error());
    if (!c.ok()) continue;
    CHECK(scalar(c, "select " + std::to_string(i)) == std::to_string(i));
    slowest = std::max(slowest, seconds_since(start));
    ++logged_in;
  }
  const double attack_seconds = seconds_since(t0);
  MESSAGE(logged_in << " logins during the attack, slowest " << slowest << " s");
  CHECK(logged_in == 20);
  CHECK(slowest < 1.0);
  CHECK(attack_seconds < 3.0);  // the logins above all ran while the stalled ones held their slots

  // Every stalled connection is closed by pgmux: those past the cap after the refusal's short
  // deadline, the others after startup_timeout with an error.
  int closed = 0, timed_out = 0;
  const auto deadline = t0 + 6s;
  std::vector<std::string> got(fds.size());
  std::vector<bool> done(fds.size(), false);
  while (closed < attackers && clock::now() < deadline) {
    std::vector<pollfd> polls;
    std::vector<std::size_t> index;
    for (std::size_t i = 0; i < fds.size(); ++i)
      if (!done[i]) {
        polls.push_back({fds[i], POLLIN, 0});
        index.push_back(i);
      }
    if (::poll(polls.data(), polls.size(), 200) <= 0) continue;
    for (std::size_t k = 0; k < polls.size(); ++k) {
      if (!polls[k].revents) continue;
      const auto i = index[k];
      char buf[512];
      const ssize_t n = ::recv(fds[i], buf, sizeof buf, 0);
      if (n > 0) {
        got[i].append(buf, static_cast<std::size_t>(n));
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      done[i] = true;
      ++closed;
      if (got[i].find("startup not completed within auth.startup_timeout") != std::string::npos) ++timed_out;
    }
  }
  const double all_closed = seconds_since(t0);
  for (int fd : fds) ::close(fd);
  MESSAGE(closed << " stalled connections closed by pgmux after " << all_closed << " s, " << timed_out
                 << " of them by startup_timeout");
  CHECK(closed == attackers);
  CHECK(timed_out == per_address);

  // Nothing leaks: no client left, and the refusals were counted as limits.
  CHECK(wait_until([&] { return client_connections(mport) == 0; }, 3s));
  const auto body = scrape_metrics(mport);
  CHECK(metric_value(body, "pgmux_client_errors_total{reason=\"limit\"}") == attackers - per_address);
  auto after = connect(proxy.conninfo());
  CHECK(scalar(after, "select 'after'") == "after");
}

}  // TEST_SUITE
}  // namespace it
