// The idle park: a member idle for one to two sweeps is asked to park, a member busy before then
// is not, and a parked descriptor comes back (once) when its peer writes or hangs up, when its
// owner takes it back, or is closed when the park is cleared. Real sockets, a real event loop.
#include <doctest/doctest.h>

#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "pgmux/io/idle_park.hpp"

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using pgmux::net::idle_park;

constexpr auto sweep = 20ms;

struct member final : idle_park::member, std::enable_shared_from_this<member> {
  int due = 0;
  std::vector<int> returned;  // descriptors given back, in order
  void park_due() override { ++due; }
  void unparked(int fd) override { returned.push_back(fd); }
};

struct socket_pair {
  int ours = -1;
  int peer = -1;
  socket_pair() {
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) == 0);
    ours = fds[0];
    peer = fds[1];
  }
  ~socket_pair() {
    if (peer >= 0) ::close(peer);
  }
};

// Runs the loop until `done` or a generous deadline (a slow machine must not fail the test).
template <typename Done>
bool run_until(asio::io_context& io, Done done, std::chrono::milliseconds limit = 5000ms) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    io.restart();
    io.run_for(5ms);
  }
  return done();
}

// Runs the loop for `period` at least: whatever the park's timers do meanwhile happens.
void run_for_at_least(asio::io_context& io, std::chrono::milliseconds period) {
  asio::steady_timer timer(io, period);
  bool passed = false;
  timer.async_wait([&](auto) { passed = true; });
  REQUIRE(run_until(io, [&] { return passed; }));
}

}  // namespace

TEST_CASE("idle park: a member idle for a sweep is due, one busy before the next sweep is not") {
  asio::io_context io;
  idle_park park(io, sweep);
  auto stays = std::make_shared<member>();
  auto leaves = std::make_shared<member>();
  const auto start = std::chrono::steady_clock::now();
  park.idle(*stays);
  park.idle(*leaves);
  park.idle(*stays);  // a second idle() while queued changes nothing
  park.busy(*leaves);
  REQUIRE(run_until(io, [&] { return stays->due == 1; }));
  // Never before one whole sweep interval.
  CHECK(std::chrono::steady_clock::now() - start >= sweep);
  // Run a few more sweeps: nobody else becomes due, and nobody twice.
  run_for_at_least(io, 4 * sweep);
  CHECK(stays->due == 1);
  CHECK(leaves->due == 0);
}

TEST_CASE("idle park: the oldest members go first, the newest at a sweep waits for the next") {
  asio::io_context io;
  idle_park park(io, sweep);
  auto first = std::make_shared<member>();
  auto second = std::make_shared<member>();
  auto third = std::make_shared<member>();
  park.idle(*first);
  park.idle(*second);
  // Both were queued before the first sweep: both are due at the second.
  REQUIRE(run_until(io, [&] { return first->due == 1; }));
  CHECK(second->due == 1);
  park.idle(*third);
  park.busy(*second);  // no longer queued: nothing happens
  REQUIRE(run_until(io, [&] { return third->due == 1; }));
  CHECK(first->due == 1);
}

TEST_CASE("idle park: a mark that leaves the queue moves back to the member before it") {
  asio::io_context io;
  idle_park park(io, sweep);
  auto a = std::make_shared<member>();
  auto b = std::make_shared<member>();
  auto c = std::make_shared<member>();
  park.idle(*a);
  park.idle(*b);
  // Let one sweep pass (it sets the mark at b), without parking anything yet.
  run_for_at_least(io, sweep + sweep / 2);
  if (a->due == 0) {  // the machine was not so slow that the second sweep came already
    park.busy(*b);    // the mark leaves: a is still the older one
    park.idle(*c);    // newer than the mark
    REQUIRE(run_until(io, [&] { return a->due == 1; }));
    CHECK(b->due == 0);
  }
  REQUIRE(run_until(io, [&] { return c->due == 1 || a->due == 1; }));
  park.busy(*c);
}

TEST_CASE("idle park: a held descriptor comes back when the peer writes, and the member lives until then") {
  asio::io_context io;
  idle_park park(io, sweep);
  socket_pair sockets;
  std::weak_ptr<member> watch;
  member* raw = nullptr;
  {
    auto m = std::make_shared<member>();
    watch = m;
    raw = m.get();
    REQUIRE(park.hold(*m, sockets.ours, m));
  }
  REQUIRE_FALSE(watch.expired());  // the park keeps it
  CHECK(raw->parked());
  CHECK(park.parked_count() == 1);
  // Nothing comes back while the peer is quiet.
  io.run_for(3 * sweep);
  CHECK(raw->returned.empty());
  auto keep = watch.lock();
  REQUIRE(::write(sockets.peer, "Q", 1) == 1);
  REQUIRE(run_until(io, [&] { return !keep->returned.empty(); }));
  CHECK(keep->returned == std::vector<int>{sockets.ours});
  CHECK_FALSE(keep->parked());
  CHECK(park.parked_count() == 0);
  // The byte is still there for the member's own read.
  char c = 0;
  CHECK(::read(sockets.ours, &c, 1) == 1);
  CHECK(c == 'Q');
  ::close(sockets.ours);
}

TEST_CASE("idle park: a hang-up gives the descriptor back, and so does take_back, at once") {
  asio::io_context io;
  idle_park park(io, sweep);
  socket_pair hangs_up;
  socket_pair taken;
  auto a = std::make_shared<member>();
  auto b = std::make_shared<member>();
  REQUIRE(park.hold(*a, hangs_up.ours, a));
  REQUIRE(park.hold(*b, taken.ours, b));
  CHECK(park.parked_count() == 2);
  ::close(hangs_up.peer);
  hangs_up.peer = -1;
  REQUIRE(run_until(io, [&] { return !a->returned.empty(); }));
  CHECK(a->returned == std::vector<int>{hangs_up.ours});
  CHECK(b->returned.empty());
  park.take_back(*b);
  CHECK(b->returned == std::vector<int>{taken.ours});
  park.take_back(*b);  // not parked any more: nothing
  CHECK(b->returned.size() == 1);
  CHECK(park.parked_count() == 0);
  // Given back means no longer watched: a later write brings nothing back.
  REQUIRE(::write(taken.peer, "x", 1) == 1);
  io.run_for(3 * sweep);
  CHECK(b->returned.size() == 1);
  ::close(hangs_up.ours);
  ::close(taken.ours);
}

TEST_CASE("idle park: a descriptor epoll refuses stays the caller's, and clear() closes the held ones") {
  asio::io_context io;
  socket_pair sockets;
  std::weak_ptr<member> watch;
  {
    idle_park park(io, sweep);
    auto refused = std::make_shared<member>();
    CHECK_FALSE(park.hold(*refused, -1, refused));
    CHECK_FALSE(refused->parked());
    auto m = std::make_shared<member>();
    watch = m;
    REQUIRE(park.hold(*m, sockets.ours, m));
    // A queued member too: clear() takes it out of the queue.
    auto queued = std::make_shared<member>();
    park.idle(*queued);
    park.clear();
    CHECK(park.parked_count() == 0);
    io.run_for(3 * sweep);
    CHECK(queued->due == 0);
  }
  CHECK(watch.expired());
  // Closed: the peer reads end of file.
  char c = 0;
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  ssize_t n = -1;
  while ((n = ::read(sockets.peer, &c, 1)) < 0 && std::chrono::steady_clock::now() < deadline) ::usleep(1000);
  CHECK(n == 0);
}

TEST_CASE("idle park: a member back soon after each parking waits twice as long before the next one") {
  asio::io_context io;
  idle_park park(io, sweep);
  socket_pair sockets;
  auto m = std::make_shared<member>();
  int fd = sockets.ours;
  // Its wait before parking, from idle() to park_due(), at backoff 0, 1, 2: at least 1, 2, 4 sweeps.
  for (int round = 0; round < 3; ++round) {
    CAPTURE(round);
    const auto start = std::chrono::steady_clock::now();
    park.idle(*m);
    REQUIRE(run_until(io, [&] { return m->due == round + 1; }));
    CHECK(std::chrono::steady_clock::now() - start >= (1 << round) * sweep);
    REQUIRE(park.hold(*m, fd, m));
    // Back at once: well within 8 times its wait.
    REQUIRE(::write(sockets.peer, "Q", 1) == 1);
    REQUIRE(run_until(io, [&] { return m->returned.size() == std::size_t(round + 1); }));
    CHECK(m->backoff() == unsigned(round + 1));
    char c = 0;
    REQUIRE(::read(fd, &c, 1) == 1);
  }
  // Parked again, it stays away for longer than 8 times its wait (8 * 2^3 sweeps): the backoff
  // comes down one step, counted by the clock even though no sweep runs meanwhile (nobody queued).
  REQUIRE(park.hold(*m, fd, m));
  asio::steady_timer away(io, 8 * (1 << 3) * sweep + 2 * sweep);
  bool back = false;
  away.async_wait([&](auto) { back = ::write(sockets.peer, "Q", 1) == 1; });
  REQUIRE(run_until(io, [&] { return m->returned.size() == 4; }));
  CHECK(back);
  CHECK(m->backoff() == 2);
  ::close(fd);
}
