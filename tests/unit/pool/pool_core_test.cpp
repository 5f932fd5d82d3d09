// Pool bookkeeping as a pure state machine, driven by a hand-advanced clock.
// Cases:
//   opens min_size connections at start
//   never counts more than max_size idle, active and connecting
//   lends an idle connection at once, the most recently used first
//   queues a client when nothing is idle
//   opens one connection per waiter not already covered
//   hands released connections to the oldest waiter first
//   a newcomer does not overtake queued clients
//   a waiter that gives up is skipped
//   take_if_idle lends as acquire does but never queues
//   closes idle connections above min_size after idle_lifetime, longest idle first
//   keeps idle connections when idle_lifetime is 0
//   retires connections after server_lifetime, stretched by jitter
//   connections opened together retire apart when jitter differs
//   a dirty release closes the connection
//   backs off after a failed connect, doubling up to the cap
//   probes one connect at a time while connects fail
//   a successful connect resets the backoff
//   retry_now ends the backoff at once, still probing one connect at a time
//   with the default limits a returning server is probed within 500 ms, one probe at a time
//   login refusals are classified: restarts are transient, the rest final, no answer unreachable
//   a final refusal answers the waiters and new clients during the backoff
//   a restarting server (transient refusals) is waited for however long it takes
//   an unreachable server is waited for up to the grace, counted from the first attempt's start
//   an unreachable server is waited for while connections are open
//   a success, a transient refusal or retry_now ends the failing state
//   shrinking max_size closes excess idle at reap and lent ones at release
//   growing max_size allows more connects
//   stats count every state and the longest wait
//   forget drops a connection from the books
//   pause holds new clients, closes idle connections and lets lent ones finish
//   a concurrency cap lends no more than the cap, keeps waiters in order and serves them when raised
//   under a concurrency cap, connects open only for the waiters the cap lets be served
//   random operations under a changing concurrency cap never lend past it and keep FIFO order
//   random operations keep every invariant
//   workers: a client takes an idle connection of its own worker first, the most recent one
//   workers: a client whose worker has nothing idle takes another worker's, which moves to it
//   workers: max_size bounds the connections of all workers together
//   workers: waiters of every worker are served in one FIFO order, each with its own worker's connection if idle
//   workers: connects open on the worker of the waiter they serve, and min_size goes round robin
//   workers: random operations across four workers keep the bound, FIFO and the preference
//   workers: within the slack, a connection goes to a waiter of its own worker rather than move
//   workers: past the slack, the oldest waiter gets the connection of another worker
//   workers: with the slack, random operations serve every waiter in order up to the slack
#include <doctest/doctest.h>

#include <algorithm>
#include <deque>
#include <map>
#include <random>
#include <set>
#include <vector>

#include "pgmux/pool/pool_core.hpp"
#include "support/fake_clock.hpp"

using namespace pgmux::pool;
using pgmux::close_reason;
using namespace std::chrono_literals;

namespace {

pool_limits limits(std::size_t min_size, std::size_t max_size) {
  pool_limits l;
  l.min_size = min_size;
  l.max_size = max_size;
  return l;
}

// Opens what start_connects asks for and reports every connect as a success.
std::vector<conn_id> connect_all(pool_core& pool, time_point now, double jitter = 0.0) {
  auto ids = pool.start_connects(now);
  for (auto id : ids) pool.connect_succeeded(id, now, jitter);
  return ids;
}

// Gets `n` connections idle at `now`, released in the order returned (least recently used first).
std::vector<conn_id> make_idle(pool_core& pool, time_point now, std::size_t n, double jitter = 0.0) {
  for (std::size_t w = 0; w < n; ++w) REQUIRE_FALSE(pool.acquire(1000 + w, now));
  const auto ids = connect_all(pool, now, jitter);
  REQUIRE(ids.size() == n);
  const auto lent = pool.dispatch(now);
  REQUIRE(lent.size() == n);
  std::vector<conn_id> order;
  for (const auto& a : lent) {
    REQUIRE_FALSE(pool.release(a.conn, now, true));
    order.push_back(a.conn);
  }
  return order;
}

std::vector<conn_id> conns_of(const std::vector<closing>& closings) {
  std::vector<conn_id> out;
  for (const auto& c : closings) out.push_back(c.conn);
  return out;
}

// Two connections, one per worker, both lent; returns {worker 0's, worker 1's}.
std::pair<conn_id, conn_id> one_lent_per_worker(pool_core& pool, test::fake_clock& clock) {
  REQUIRE_FALSE(pool.acquire(1, clock.now(), 0));
  REQUIRE_FALSE(pool.acquire(2, clock.now(), 1));
  const auto opened = connect_all(pool, clock.now());
  REQUIRE(opened.size() == 2);
  REQUIRE(pool.dispatch(clock.now()).size() == 2);
  const conn_id on0 = pool.worker_of(opened[0]) == 0 ? opened[0] : opened[1];
  const conn_id on1 = on0 == opened[0] ? opened[1] : opened[0];
  REQUIRE(pool.worker_of(on1) == 1);
  return {on0, on1};
}

// A connection opened at start with `jitter` must retire exactly `lifetime` later.
void check_server_lifetime(double jitter, duration lifetime) {
  test::fake_clock clock;
  auto l = limits(0, 2);
  l.server_lifetime = 100s;
  pool_core pool(l);
  const conn_id c = make_idle(pool, clock.now(), 1, jitter).at(0);

  SUBCASE("closes at release after expiry") {
    REQUIRE(pool.acquire(1, clock.now()) == c);
    clock.set(lifetime - 1ms);
    CHECK_FALSE(pool.release(c, clock.now(), true));
    REQUIRE(pool.acquire(2, clock.now()) == c);  // still lent out just before expiry
    clock.set(lifetime);
    CHECK(pool.release(c, clock.now(), true) == close_reason::server_lifetime);
    CHECK(pool.total() == 0);
  }
  SUBCASE("reaped when idle") {
    clock.set(lifetime - 1ms);
    CHECK(pool.reap(clock.now()).empty());
    clock.set(lifetime);
    const auto closed = pool.reap(clock.now());
    REQUIRE(closed.size() == 1);
    CHECK(closed[0].conn == c);
    CHECK(closed[0].reason == close_reason::server_lifetime);
  }
  SUBCASE("never lent when expired") {
    clock.set(lifetime);
    CHECK_FALSE(pool.acquire(1, clock.now()));
    CHECK(pool.dispatch(clock.now()).empty());
    CHECK(pool.stats(clock.now()).waiting == 1);
    // Once reaped, a fresh connection serves the waiter.
    CHECK(conns_of(pool.reap(clock.now())) == std::vector<conn_id>{c});
    const auto fresh = connect_all(pool, clock.now());
    REQUIRE(fresh.size() == 1);
    CHECK(fresh[0] != c);
    const auto a = pool.dispatch(clock.now());
    REQUIRE(a.size() == 1);
    CHECK(a[0].conn == fresh[0]);
  }
}

}  // namespace

TEST_SUITE("pool_core") {

TEST_CASE("opens min_size connections at start") {
  test::fake_clock clock;
  pool_core pool(limits(3, 10));
  const auto ids = pool.start_connects(clock.now());
  CHECK(ids.size() == 3);
  CHECK(std::set<conn_id>(ids.begin(), ids.end()).size() == 3);  // fresh ids
  CHECK(pool.stats(clock.now()).connecting == 3);
  CHECK(pool.total() == 3);
  CHECK(pool.start_connects(clock.now()).empty());  // already on their way
  for (auto id : ids) pool.connect_succeeded(id, clock.now(), 0.0);
  CHECK(pool.stats(clock.now()).idle == 3);
  CHECK(pool.stats(clock.now()).connecting == 0);
  CHECK(pool.start_connects(clock.now()).empty());
}

TEST_CASE("never counts more than max_size idle, active and connecting") {
  test::fake_clock clock;
  pool_core pool(limits(0, 3));
  for (waiter_id w = 1; w <= 5; ++w) CHECK_FALSE(pool.acquire(w, clock.now()));
  const auto first = pool.start_connects(clock.now());
  CHECK(first.size() == 3);
  CHECK(pool.total() == 3);
  CHECK(pool.start_connects(clock.now()).empty());
  pool.connect_succeeded(first[0], clock.now(), 0.0);
  CHECK(pool.start_connects(clock.now()).empty());  // 1 idle + 2 connecting
  CHECK(pool.dispatch(clock.now()).size() == 1);
  CHECK(pool.start_connects(clock.now()).empty());  // 1 active + 2 connecting
  pool.connect_failed(first[1], clock.now());
  pool.connect_succeeded(first[2], clock.now(), 0.0);  // ends the backoff
  CHECK(pool.start_connects(clock.now()).size() == 1);  // the failed slot is free again
  CHECK(pool.total() == 3);
  SUBCASE("min_size above the free room") {
    pool_core p(limits(5, 2));
    CHECK(p.start_connects(clock.now()).size() == 2);
  }
}

TEST_CASE("lends an idle connection at once, the most recently used first") {
  test::fake_clock clock;
  pool_core pool(limits(0, 3));
  const auto order = make_idle(pool, clock.now(), 3);
  clock.advance(1s);
  const auto got = pool.acquire(1, clock.now());
  REQUIRE(got);
  CHECK(*got == order.back());
  CHECK(pool.stats(clock.now()).active == 1);
  CHECK(pool.stats(clock.now()).idle == 2);
  CHECK(pool.stats(clock.now()).waiting == 0);
  // Released again, it is once more the most recently used.
  CHECK_FALSE(pool.release(*got, clock.now(), true));
  CHECK(pool.acquire(2, clock.now()) == got);
}

TEST_CASE("queues a client when nothing is idle") {
  test::fake_clock clock;
  pool_core pool(limits(0, 1));
  CHECK_FALSE(pool.acquire(1, clock.now()));
  CHECK(pool.stats(clock.now()).waiting == 1);
  CHECK(pool.stats(clock.now()).active == 0);
}

TEST_CASE("opens one connection per waiter not already covered") {
  test::fake_clock clock;
  pool_core pool(limits(0, 10));
  CHECK_FALSE(pool.acquire(1, clock.now()));
  CHECK_FALSE(pool.acquire(2, clock.now()));
  CHECK(pool.start_connects(clock.now()).size() == 2);
  CHECK(pool.start_connects(clock.now()).empty());
  CHECK_FALSE(pool.acquire(3, clock.now()));
  CHECK(pool.start_connects(clock.now()).size() == 1);
  CHECK(pool.total() == 3);
}

TEST_CASE("hands released connections to the oldest waiter first") {
  test::fake_clock clock;
  pool_core pool(limits(0, 2));
  for (waiter_id w : {11, 12, 13}) CHECK_FALSE(pool.acquire(w, clock.now()));
  const auto ids = pool.start_connects(clock.now());
  REQUIRE(ids.size() == 2);

  pool.connect_succeeded(ids[0], clock.now(), 0.0);
  auto a = pool.dispatch(clock.now());
  REQUIRE(a.size() == 1);
  CHECK(a[0].waiter == 11);
  CHECK(a[0].conn == ids[0]);

  pool.connect_succeeded(ids[1], clock.now(), 0.0);
  a = pool.dispatch(clock.now());
  REQUIRE(a.size() == 1);
  CHECK(a[0].waiter == 12);
  CHECK(a[0].conn == ids[1]);

  CHECK_FALSE(pool.release(ids[1], clock.now(), true));
  a = pool.dispatch(clock.now());
  REQUIRE(a.size() == 1);
  CHECK(a[0].waiter == 13);
  CHECK(a[0].conn == ids[1]);

  CHECK_FALSE(pool.release(ids[0], clock.now(), true));
  CHECK(pool.dispatch(clock.now()).empty());
  CHECK(pool.stats(clock.now()).idle == 1);

  SUBCASE("several at once, in queue order") {
    pool_core p(limits(0, 3));
    for (waiter_id w : {5, 3, 9}) CHECK_FALSE(p.acquire(w, clock.now()));
    connect_all(p, clock.now());
    const auto all = p.dispatch(clock.now());
    REQUIRE(all.size() == 3);
    CHECK(all[0].waiter == 5);
    CHECK(all[1].waiter == 3);
    CHECK(all[2].waiter == 9);
    CHECK(std::set<conn_id>{all[0].conn, all[1].conn, all[2].conn}.size() == 3);
  }
}

TEST_CASE("a newcomer does not overtake queued clients") {
  test::fake_clock clock;
  pool_core pool(limits(0, 1));
  const auto c = make_idle(pool, clock.now(), 1).at(0);
  REQUIRE(pool.acquire(1, clock.now()) == c);
  CHECK_FALSE(pool.acquire(2, clock.now()));
  CHECK_FALSE(pool.release(c, clock.now(), true));  // idle, but 2 is waiting for it
  CHECK_FALSE(pool.acquire(3, clock.now()));
  auto a = pool.dispatch(clock.now());
  REQUIRE(a.size() == 1);
  CHECK(a[0].waiter == 2);
  CHECK_FALSE(pool.release(c, clock.now(), true));
  a = pool.dispatch(clock.now());
  REQUIRE(a.size() == 1);
  CHECK(a[0].waiter == 3);
}

TEST_CASE("take_if_idle lends as acquire does but never queues") {
  test::fake_clock clock;
  pool_core pool(limits(0, 2));
  CHECK_FALSE(pool.take_if_idle(clock.now()));  // nothing idle, and nothing queued for it
  CHECK(pool.stats(clock.now()).waiting == 0);
  CHECK(pool.start_connects(clock.now()).empty());
  const auto idle = make_idle(pool, clock.now(), 2);
  CHECK(pool.take_if_idle(clock.now()) == idle.back());  // the most recently used, as acquire()
  // With a client queued before it, a newcomer takes nothing (FIFO), and does not queue either.
  CHECK(pool.acquire(1, clock.now()) == idle.front());
  CHECK_FALSE(pool.acquire(2, clock.now()));
  CHECK_FALSE(pool.release(idle.front(), clock.now(), true));
  CHECK_FALSE(pool.take_if_idle(clock.now()));
  CHECK(pool.stats(clock.now()).waiting == 1);
}

TEST_CASE("a waiter that gives up is skipped") {
  test::fake_clock clock;
  pool_core pool(limits(0, 3));
  for (waiter_id w : {1, 2, 3}) CHECK_FALSE(pool.acquire(w, clock.now()));
  CHECK(pool.remove_waiter(2));
  CHECK_FALSE(pool.remove_waiter(2));
  CHECK_FALSE(pool.remove_waiter(99));
  CHECK(pool.stats(clock.now()).waiting == 2);
  CHECK(pool.start_connects(clock.now()).size() == 2);  // only for those still waiting
  for (conn_id id = 1; id <= 2; ++id) pool.connect_succeeded(id, clock.now(), 0.0);
  const auto a = pool.dispatch(clock.now());
  REQUIRE(a.size() == 2);
  CHECK(a[0].waiter == 1);
  CHECK(a[1].waiter == 3);
  CHECK_FALSE(pool.remove_waiter(1));  // already served
}

TEST_CASE("closes idle connections above min_size after idle_lifetime, longest idle first") {
  test::fake_clock clock;
  auto l = limits(0, 3);
  l.idle_lifetime = 10s;
  SUBCASE("min_size 0") {
    pool_core pool(l);
    const auto order = make_idle(pool, clock.now(), 3);
    // The most recently used one is used again at +5s: its idle time restarts.
    clock.set(5s);
    REQUIRE(pool.acquire(1, clock.now()) == order[2]);
    CHECK_FALSE(pool.release(order[2], clock.now(), true));

    clock.set(10s - 1ms);
    CHECK(pool.reap(clock.now()).empty());
    clock.set(10s);
    const auto closed = pool.reap(clock.now());
    CHECK(conns_of(closed) == std::vector<conn_id>{order[0], order[1]});
    for (const auto& c : closed) CHECK(c.reason == close_reason::server_idle);
    CHECK(pool.stats(clock.now()).idle == 1);

    clock.set(15s - 1ms);
    CHECK(pool.reap(clock.now()).empty());
    clock.set(15s);
    CHECK(conns_of(pool.reap(clock.now())) == std::vector<conn_id>{order[2]});
    CHECK(pool.total() == 0);
  }
  SUBCASE("min_size 2") {
    l.min_size = 2;
    pool_core pool(l);
    const auto order = make_idle(pool, clock.now(), 3);
    clock.set(10s);
    const auto closed = pool.reap(clock.now());
    CHECK(conns_of(closed) == std::vector<conn_id>{order[0]});
    clock.set(10h);
    CHECK(pool.reap(clock.now()).empty());
    CHECK(pool.stats(clock.now()).idle == 2);
  }
  SUBCASE("lent connections are not idle") {
    pool_core pool(l);
    const auto order = make_idle(pool, clock.now(), 2);
    REQUIRE(pool.acquire(1, clock.now()) == order[1]);
    clock.set(1h);
    CHECK(conns_of(pool.reap(clock.now())) == std::vector<conn_id>{order[0]});
    CHECK(pool.stats(clock.now()).active == 1);
  }
}

TEST_CASE("keeps idle connections when idle_lifetime is 0") {
  test::fake_clock clock;
  pool_core pool(limits(0, 3));
  make_idle(pool, clock.now(), 3);
  clock.advance(1000h);
  CHECK(pool.reap(clock.now()).empty());
  CHECK(pool.stats(clock.now()).idle == 3);
}

TEST_CASE("retires connections after server_lifetime, stretched by jitter") {
  // Expected expiry: server_lifetime * (1 + 0.1 * jitter), worked out by hand.
  SUBCASE("jitter 0") { check_server_lifetime(0.0, 100s); }
  SUBCASE("jitter 0.99") { check_server_lifetime(0.99, 109'900ms); }
}

TEST_CASE("connections opened together retire apart when jitter differs") {
  test::fake_clock clock;
  auto l = limits(0, 2);
  l.server_lifetime = 100s;
  pool_core pool(l);
  for (waiter_id w : {1, 2}) CHECK_FALSE(pool.acquire(w, clock.now()));
  const auto ids = pool.start_connects(clock.now());
  REQUIRE(ids.size() == 2);
  pool.connect_succeeded(ids[0], clock.now(), 0.0);
  pool.connect_succeeded(ids[1], clock.now(), 0.5);  // 105s
  for (const auto& a : pool.dispatch(clock.now())) CHECK_FALSE(pool.release(a.conn, clock.now(), true));
  clock.set(100s);
  CHECK(conns_of(pool.reap(clock.now())) == std::vector<conn_id>{ids[0]});
  clock.set(105s - 1ms);
  CHECK(pool.reap(clock.now()).empty());
  clock.set(105s);
  CHECK(conns_of(pool.reap(clock.now())) == std::vector<conn_id>{ids[1]});
}

TEST_CASE("a dirty release closes the connection") {
  test::fake_clock clock;
  pool_core pool(limits(0, 2));
  const conn_id c = make_idle(pool, clock.now(), 1).at(0);
  REQUIRE(pool.acquire(1, clock.now()) == c);
  CHECK(pool.release(c, clock.now(), false) == close_reason::server_dirty);
  CHECK(pool.total() == 0);
  CHECK_FALSE(pool.acquire(2, clock.now()));  // nothing idle left behind
  SUBCASE("an unknown or already released connection is never pooled") {
    CHECK(pool.release(c, clock.now(), true) == close_reason::server_dirty);
    CHECK(pool.release(12345, clock.now(), true) == close_reason::server_dirty);
    CHECK(pool.total() == 0);
  }
}

TEST_CASE("backs off after a failed connect, doubling up to the cap") {
  test::fake_clock clock;
  auto l = limits(1, 5);
  l.backoff_initial = 100ms;
  l.backoff_max = 1s;
  pool_core pool(l);
  CHECK_FALSE(pool.retry_at());
  const duration expected[] = {100ms, 200ms, 400ms, 800ms, 1s, 1s, 1s};
  std::uint64_t failures = 0;
  for (auto backoff : expected) {
    CAPTURE(failures);
    const auto ids = pool.start_connects(clock.now());
    REQUIRE(ids.size() == 1);
    pool.connect_failed(ids[0], clock.now());
    ++failures;
    const auto failed_at = clock.now();
    REQUIRE(pool.retry_at());
    CHECK(*pool.retry_at() == failed_at + backoff);
    CHECK(pool.stats(clock.now()).consecutive_connect_failures == failures);
    CHECK(pool.total() == 0);
    // Nothing is opened before the retry time, not even for a waiter.
    clock.advance(backoff - 1ms);
    CHECK(pool.start_connects(clock.now()).empty());
    CHECK_FALSE(pool.acquire(100 + failures, clock.now()));
    CHECK(pool.start_connects(clock.now()).empty());
    clock.advance(1ms);
  }
}

TEST_CASE("probes one connect at a time while connects fail") {
  test::fake_clock clock;
  auto l = limits(3, 5);
  l.backoff_initial = 100ms;
  l.backoff_max = 10s;
  pool_core pool(l);
  const auto first = pool.start_connects(clock.now());
  REQUIRE(first.size() == 3);
  for (auto id : first) pool.connect_failed(id, clock.now());
  REQUIRE(pool.retry_at());
  CHECK(*pool.retry_at() == clock.now() + 400ms);  // third failure: 100ms * 2 * 2
  for (waiter_id w : {1, 2, 3, 4}) CHECK_FALSE(pool.acquire(w, clock.now()));

  clock.advance(400ms);
  const auto probe = pool.start_connects(clock.now());
  CHECK(probe.size() == 1);
  CHECK(pool.start_connects(clock.now()).empty());  // the probe is still out
  clock.advance(1h);
  CHECK(pool.start_connects(clock.now()).empty());
  CHECK(pool.total() == 1);
}

TEST_CASE("a successful connect resets the backoff") {
  test::fake_clock clock;
  auto l = limits(3, 5);
  l.backoff_initial = 100ms;
  l.backoff_max = 10s;
  pool_core pool(l);
  for (auto id : pool.start_connects(clock.now())) pool.connect_failed(id, clock.now());
  clock.advance(1s);
  const auto probe = pool.start_connects(clock.now());
  REQUIRE(probe.size() == 1);
  pool.connect_succeeded(probe[0], clock.now(), 0.0);
  CHECK_FALSE(pool.retry_at());
  CHECK(pool.stats(clock.now()).consecutive_connect_failures == 0);
  CHECK(pool.start_connects(clock.now()).size() == 2);  // the rest of min_size at once
  SUBCASE("the next failure starts again from backoff_initial") {
    pool_core p(l);
    const auto a = p.start_connects(clock.now());
    p.connect_failed(a[0], clock.now());
    p.connect_failed(a[1], clock.now());
    p.connect_succeeded(a[2], clock.now(), 0.0);
    const auto b = (clock.advance(1s), p.start_connects(clock.now()));
    REQUIRE(b.size() == 2);
    p.connect_failed(b[0], clock.now());
    REQUIRE(p.retry_at());
    CHECK(*p.retry_at() == clock.now() + 100ms);
  }
}

TEST_CASE("retry_now ends the backoff at once, still probing one connect at a time") {
  test::fake_clock clock;
  auto l = limits(2, 5);
  l.backoff_initial = 100ms;
  l.backoff_max = 10s;
  pool_core pool(l);
  for (auto id : pool.start_connects(clock.now())) pool.connect_failed(id, clock.now());
  REQUIRE(pool.retry_at());
  CHECK(pool.start_connects(clock.now()).empty());
  pool.retry_now();
  CHECK_FALSE(pool.retry_at());
  const auto probe = pool.start_connects(clock.now());
  REQUIRE(probe.size() == 1);
  CHECK(pool.start_connects(clock.now()).empty());
  pool.connect_succeeded(probe[0], clock.now(), 0.0);
  CHECK(pool.start_connects(clock.now()).size() == 1);  // the rest of min_size
}

TEST_CASE("shrinking max_size closes excess idle at reap and lent ones at release") {
  test::fake_clock clock;
  auto l = limits(0, 3);
  SUBCASE("idle") {
    pool_core pool(l);
    const auto order = make_idle(pool, clock.now(), 3);
    l.max_size = 1;
    pool.set_limits(l);
    CHECK(pool.limits().max_size == 1);
    const auto closed = pool.reap(clock.now());
    CHECK(conns_of(closed) == std::vector<conn_id>{order[0], order[1]});
    for (const auto& c : closed) CHECK(c.reason == close_reason::reload);
    CHECK(pool.total() == 1);
    CHECK(pool.acquire(1, clock.now()) == order[2]);
  }
  SUBCASE("lent") {
    pool_core pool(l);
    const auto order = make_idle(pool, clock.now(), 3);
    std::vector<conn_id> lent;
    for (waiter_id w : {1, 2, 3}) {
      const auto c = pool.acquire(w, clock.now());
      REQUIRE(c);
      lent.push_back(*c);
    }
    l.max_size = 1;
    pool.set_limits(l);
    CHECK(pool.reap(clock.now()).empty());  // nothing idle to close
    CHECK(pool.release(lent[0], clock.now(), true) == close_reason::reload);
    CHECK(pool.release(lent[1], clock.now(), true) == close_reason::reload);
    CHECK_FALSE(pool.release(lent[2], clock.now(), true));  // now within the bound
    CHECK(pool.total() == 1);
  }
  SUBCASE("no new connects while above the bound") {
    pool_core pool(l);
    make_idle(pool, clock.now(), 3);
    for (waiter_id w : {1, 2, 3}) REQUIRE(pool.acquire(w, clock.now()));
    l.max_size = 2;
    pool.set_limits(l);
    CHECK_FALSE(pool.acquire(4, clock.now()));
    CHECK(pool.start_connects(clock.now()).empty());
  }
}

TEST_CASE("growing max_size allows more connects") {
  test::fake_clock clock;
  auto l = limits(0, 1);
  pool_core pool(l);
  for (waiter_id w : {1, 2, 3}) CHECK_FALSE(pool.acquire(w, clock.now()));
  CHECK(pool.start_connects(clock.now()).size() == 1);
  l.max_size = 3;
  pool.set_limits(l);
  CHECK(pool.start_connects(clock.now()).size() == 2);
  CHECK(pool.total() == 3);
}

TEST_CASE("stats count every state and the longest wait") {
  test::fake_clock clock;
  pool_core pool(limits(0, 3));
  auto s = pool.stats(clock.now());
  CHECK(s.idle == 0);
  CHECK(s.active == 0);
  CHECK(s.connecting == 0);
  CHECK(s.waiting == 0);
  CHECK(s.longest_wait == duration::zero());

  CHECK_FALSE(pool.acquire(1, clock.now()));
  clock.set(1s);
  CHECK_FALSE(pool.acquire(2, clock.now()));
  const auto ids = pool.start_connects(clock.now());
  REQUIRE(ids.size() == 2);
  clock.set(3s);
  s = pool.stats(clock.now());
  CHECK(s.waiting == 2);
  CHECK(s.connecting == 2);
  CHECK(s.longest_wait == 3s);

  pool.connect_succeeded(ids[0], clock.now(), 0.0);
  REQUIRE(pool.dispatch(clock.now()).size() == 1);
  pool.connect_failed(ids[1], clock.now());
  s = pool.stats(clock.now());
  CHECK(s.active == 1);
  CHECK(s.connecting == 0);
  CHECK(s.waiting == 1);
  CHECK(s.longest_wait == 2s);  // waiter 2 since 1s
  CHECK(s.consecutive_connect_failures == 1);

  CHECK_FALSE(pool.release(ids[0], clock.now(), true));
  REQUIRE(pool.dispatch(clock.now()).size() == 1);
  CHECK_FALSE(pool.release(ids[0], clock.now(), true));
  s = pool.stats(clock.now());
  CHECK(s.idle == 1);
  CHECK(s.active == 0);
  CHECK(s.waiting == 0);
  CHECK(s.longest_wait == duration::zero());
}

TEST_CASE("forget drops a connection from the books") {
  test::fake_clock clock;
  pool_core pool(limits(0, 3));
  const auto order = make_idle(pool, clock.now(), 2);
  REQUIRE(pool.acquire(1, clock.now()) == order[1]);
  pool.forget(order[0]);  // idle
  CHECK(pool.stats(clock.now()).idle == 0);
  pool.forget(order[1]);  // lent
  CHECK(pool.stats(clock.now()).active == 0);
  CHECK(pool.total() == 0);
  pool.forget(999);  // unknown: no effect
  CHECK(pool.total() == 0);
  CHECK(pool.release(order[1], clock.now(), true) == close_reason::server_dirty);
}

TEST_CASE("pause holds new clients, closes idle connections and lets lent ones finish") {
  test::fake_clock clock;
  pool_core pool(limits(1, 3));
  const auto order = make_idle(pool, clock.now(), 2);
  const auto lent = pool.acquire(1, clock.now());
  REQUIRE(lent);
  pool.set_paused(true);
  CHECK(pool.paused());
  // A new client queues although a connection is idle, and nothing is opened for it.
  CHECK_FALSE(pool.acquire(2, clock.now()));
  CHECK(pool.start_connects(clock.now()).empty());
  CHECK(pool.dispatch(clock.now()).empty());
  // Idle connections close, min_size notwithstanding.
  const auto closed = pool.reap(clock.now());
  REQUIRE(closed.size() == 1);
  CHECK(closed[0].reason == close_reason::pause);
  CHECK(pool.stats(clock.now()).idle == 0);
  // The lent one comes back idle and is closed at the next reap, not lent to the waiter.
  CHECK_FALSE(pool.release(*lent, clock.now(), true));
  CHECK(pool.dispatch(clock.now()).empty());
  CHECK(conns_of(pool.reap(clock.now())) == std::vector<conn_id>{*lent});
  CHECK(pool.total() == 0);
  CHECK(pool.stats(clock.now()).waiting == 1);
  // Resumed: the waiter gets a fresh connection and min_size is kept again.
  pool.set_paused(false);
  const auto fresh = connect_all(pool, clock.now());
  CHECK(fresh.size() == 1);
  const auto a = pool.dispatch(clock.now());
  REQUIRE(a.size() == 1);
  CHECK(a[0].waiter == 2);
  (void)order;
}

TEST_CASE("a concurrency cap lends no more than the cap, keeps waiters in order and serves them when raised") {
  test::fake_clock clock;
  pool_core pool(limits(0, 10));
  const auto idle = make_idle(pool, clock.now(), 4);
  pool.set_cap(2);
  CHECK(pool.cap() == 2);
  const auto a = pool.acquire(1, clock.now());
  const auto b = pool.acquire(2, clock.now());
  REQUIRE(a);
  REQUIRE(b);
  // Two connections still idle, but the cap is reached: clients queue, nothing opens for them.
  CHECK_FALSE(pool.take_if_idle(clock.now()));
  for (waiter_id w : {3, 4, 5}) CHECK_FALSE(pool.acquire(w, clock.now()));
  CHECK(pool.dispatch(clock.now()).empty());
  CHECK(pool.start_connects(clock.now()).empty());
  CHECK(pool.lent() == 2);
  CHECK(pool.stats(clock.now()).idle == 2);
  CHECK(pool.stats(clock.now()).waiting == 3);
  // One comes back: the oldest waiter gets a connection, and only one.
  CHECK_FALSE(pool.release(*a, clock.now(), true));
  auto given = pool.dispatch(clock.now());
  REQUIRE(given.size() == 1);
  CHECK(given[0].waiter == 3);
  CHECK(pool.lent() == 2);
  // Raised: the rest are served in queue order at once.
  pool.set_cap(4);
  given = pool.dispatch(clock.now());
  REQUIRE(given.size() == 2);
  CHECK(given[0].waiter == 4);
  CHECK(given[1].waiter == 5);
  CHECK(pool.lent() == 4);
  // Lowered below what is lent: those finish, nobody new is served until lent < cap.
  pool.set_cap(2);
  CHECK_FALSE(pool.acquire(6, clock.now()));
  for (const auto& g : given) CHECK_FALSE(pool.release(g.conn, clock.now(), true));
  CHECK(pool.lent() == 2);
  CHECK(pool.dispatch(clock.now()).empty());  // still at the cap (b and 3's)
  CHECK_FALSE(pool.release(*b, clock.now(), true));
  given = pool.dispatch(clock.now());
  REQUIRE(given.size() == 1);
  CHECK(given[0].waiter == 6);
  // No cap: idle connections are lent as before.
  pool.set_cap(0);
  CHECK(pool.take_if_idle(clock.now()));
  CHECK(pool.take_if_idle(clock.now()));
  CHECK(pool.lent() == 4);
  (void)idle;
}

TEST_CASE("under a concurrency cap, connects open only for the waiters the cap lets be served") {
  test::fake_clock clock;
  pool_core pool(limits(0, 10));
  pool.set_cap(3);
  for (waiter_id w = 1; w <= 5; ++w) CHECK_FALSE(pool.acquire(w, clock.now()));
  const auto opened = pool.start_connects(clock.now());
  CHECK(opened.size() == 3);
  CHECK(pool.start_connects(clock.now()).empty());  // the three under way cover what the cap allows
  for (auto id : opened) pool.connect_succeeded(id, clock.now(), 0.0);
  const auto given = pool.dispatch(clock.now());
  REQUIRE(given.size() == 3);
  CHECK(given[0].waiter == 1);
  CHECK(given[2].waiter == 3);
  // Raised to 5: two more connects for the two still queued.
  pool.set_cap(5);
  CHECK(pool.start_connects(clock.now()).size() == 2);
  // max_size still bounds everything: a cap above it changes nothing.
  pool_core small(limits(0, 2));
  small.set_cap(8);
  for (waiter_id w = 1; w <= 5; ++w) CHECK_FALSE(small.acquire(w, clock.now()));
  CHECK(small.start_connects(clock.now()).size() == 2);
}

TEST_CASE("random operations keep every invariant") {
  std::mt19937 rng(5432);
  auto pick = [&](std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng); };
  std::uniform_real_distribution<double> unit(0.0, 1.0);

  auto l = limits(2, 5);
  l.idle_lifetime = 5s;
  l.server_lifetime = 20s;
  l.backoff_initial = 100ms;
  l.backoff_max = 1s;
  test::fake_clock clock;
  pool_core pool(l);

  // A model of what the pool should hold.
  std::set<conn_id> connecting, idle, ever;
  std::map<conn_id, waiter_id> lent;
  std::deque<waiter_id> queue;
  waiter_id next_waiter = 1;
  std::size_t served = 0, closed = 0, refused = 0;

  auto take_from_idle = [&](conn_id c, waiter_id w) {
    REQUIRE(idle.count(c) == 1);
    idle.erase(c);
    lent.emplace(c, w);
    ++served;
  };
  auto pick_from = [&](const auto& set) { return *std::next(set.begin(), static_cast<std::ptrdiff_t>(pick(set.size()))); };

  for (int step = 0; step < 20000; ++step) {
    CAPTURE(step);
    switch (pick(9)) {
      case 0: {  // a client arrives
        const waiter_id w = next_waiter++;
        if (auto c = pool.acquire(w, clock.now())) {
          REQUIRE(queue.empty());
          take_from_idle(*c, w);
        } else {
          queue.push_back(w);
        }
        break;
      }
      case 1:
        for (auto id : pool.start_connects(clock.now())) {
          REQUIRE(ever.insert(id).second);  // never reused
          connecting.insert(id);
        }
        break;
      case 2:
        if (!connecting.empty()) {
          const auto id = pick_from(connecting);
          connecting.erase(id);
          if (unit(rng) < 0.8) {
            pool.connect_succeeded(id, clock.now(), unit(rng));
            idle.insert(id);
          } else {
            pool.connect_failed(id, clock.now());
            ++refused;
          }
        }
        break;
      case 3:
        if (!lent.empty()) {
          const auto id = pick_from(lent).first;
          lent.erase(id);
          const bool clean = unit(rng) < 0.9;
          const auto r = pool.release(id, clock.now(), clean);
          if (!clean) REQUIRE(r == close_reason::server_dirty);
          if (r) ++closed;
          else idle.insert(id);
        }
        break;
      case 4:
        for (const auto& a : pool.dispatch(clock.now())) {
          REQUIRE_FALSE(queue.empty());
          REQUIRE(a.waiter == queue.front());  // FIFO
          queue.pop_front();
          take_from_idle(a.conn, a.waiter);
        }
        break;
      case 5:
        for (const auto& c : pool.reap(clock.now())) {
          REQUIRE(idle.erase(c.conn) == 1);  // only idle ones are reaped
          ++closed;
        }
        break;
      case 6:
        if (!queue.empty()) {
          const auto i = pick(queue.size());
          REQUIRE(pool.remove_waiter(queue[i]));
          queue.erase(queue.begin() + static_cast<std::ptrdiff_t>(i));
        } else {
          REQUIRE_FALSE(pool.remove_waiter(next_waiter + 1));
        }
        break;
      case 7:
        if (!idle.empty() && unit(rng) < 0.2) {
          const auto id = pick_from(idle);
          pool.forget(id);
          idle.erase(id);
        }
        break;
      case 8:
        clock.advance(std::chrono::milliseconds(pick(3000)));
        break;
    }
    REQUIRE(pool.total() <= l.max_size);
    const auto s = pool.stats(clock.now());
    REQUIRE(s.idle == idle.size());
    REQUIRE(s.active == lent.size());
    REQUIRE(s.connecting == connecting.size());
    REQUIRE(s.waiting == queue.size());
    REQUIRE(pool.total() == idle.size() + lent.size() + connecting.size());
  }
  // The walk must have gone through the interesting states.
  CHECK(served > 1000);
  CHECK(closed > 100);
  CHECK(refused > 100);
  CHECK(ever.size() > 200);
}

TEST_CASE("random operations under a changing concurrency cap never lend past it and keep FIFO order") {
  std::mt19937 rng(6543);
  auto pick = [&](std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng); };
  test::fake_clock clock;
  pool_core pool(limits(0, 8));
  std::set<conn_id> connecting, idle;
  std::map<conn_id, waiter_id> lent;
  std::deque<waiter_id> queue;
  waiter_id next_waiter = 1;
  std::size_t cap = 3, served = 0, cap_changes = 0, held_back = 0;
  pool.set_cap(cap);
  // Lending is allowed only below the cap (0: none).
  auto may_lend = [&] { return cap == 0 || lent.size() < cap; };
  for (int step = 0; step < 20000; ++step) {
    CAPTURE(step);
    switch (pick(7)) {
      case 0: {
        const waiter_id w = next_waiter++;
        const bool allowed = may_lend() && queue.empty();
        if (auto c = pool.acquire(w, clock.now())) {
          REQUIRE(allowed);
          REQUIRE(idle.erase(*c) == 1);
          lent.emplace(*c, w);
          ++served;
        } else {
          if (!may_lend() && !idle.empty()) ++held_back;
          queue.push_back(w);
        }
        break;
      }
      case 1:
        for (auto id : pool.start_connects(clock.now())) connecting.insert(id);
        break;
      case 2:
        if (!connecting.empty()) {
          const auto id = *connecting.begin();
          connecting.erase(id);
          pool.connect_succeeded(id, clock.now(), 0.0);
          idle.insert(id);
        }
        break;
      case 3:
        if (!lent.empty()) {
          const auto id = std::next(lent.begin(), static_cast<std::ptrdiff_t>(pick(lent.size())))->first;
          lent.erase(id);
          REQUIRE_FALSE(pool.release(id, clock.now(), true));
          idle.insert(id);
        }
        break;
      case 4:
        for (const auto& a : pool.dispatch(clock.now())) {
          REQUIRE(may_lend());
          REQUIRE(a.waiter == queue.front());  // FIFO
          queue.pop_front();
          REQUIRE(idle.erase(a.conn) == 1);
          lent.emplace(a.conn, a.waiter);
          ++served;
        }
        // Nothing left that could be lent: the cap, the queue or the idle set is exhausted.
        REQUIRE((!may_lend() || queue.empty() || idle.empty()));
        break;
      case 5:
        cap = pick(6);  // 0 (none) to 5
        pool.set_cap(cap);
        ++cap_changes;
        break;
      case 6:
        clock.advance(std::chrono::milliseconds(pick(50)));
        break;
    }
    const auto s = pool.stats(clock.now());
    REQUIRE(s.idle == idle.size());
    REQUIRE(s.active == lent.size());
    REQUIRE(s.waiting == queue.size());
    REQUIRE(pool.total() <= 8);
  }
  CHECK(served > 1000);
  CHECK(cap_changes > 1000);
  CHECK(held_back > 100);  // the cap did hold clients back while connections were idle
}

TEST_CASE("workers: a client takes an idle connection of its own worker first, the most recent one") {
  test::fake_clock clock;
  auto l = limits(0, 4);
  l.workers = 2;
  pool_core pool(l);
  // Four connections: two per worker (round robin), all idle.
  const auto ids = connect_all(pool, clock.now());
  REQUIRE(ids.empty());  // nobody waits and min_size is 0: nothing to open yet
  for (waiter_id w = 1; w <= 4; ++w) REQUIRE_FALSE(pool.acquire(w, clock.now(), w % 2));
  const auto opened = connect_all(pool, clock.now());
  REQUIRE(opened.size() == 4);
  const auto lent = pool.dispatch(clock.now());
  REQUIRE(lent.size() == 4);
  for (const auto& a : lent) CHECK(pool.worker_of(a.conn) == a.waiter % 2);
  // Released in id order: the last released of each worker is its most recently used.
  std::vector<conn_id> by_worker[2];
  for (const auto& a : lent) {
    REQUIRE_FALSE(pool.release(a.conn, clock.now(), true));
    by_worker[pool.worker_of(a.conn)].push_back(a.conn);
  }
  for (pgmux::pool::worker_id worker : {0u, 1u}) {
    CAPTURE(worker);
    const auto got = pool.acquire(10 + worker, clock.now(), worker);
    REQUIRE(got);
    CHECK(pool.worker_of(*got) == worker);
    CHECK(*got == by_worker[worker].back());
  }
}

TEST_CASE("workers: a client whose worker has nothing idle takes another worker's, which moves to it") {
  test::fake_clock clock;
  auto l = limits(0, 1);
  l.workers = 2;
  pool_core pool(l);
  REQUIRE_FALSE(pool.acquire(1, clock.now(), 0));
  const auto opened = connect_all(pool, clock.now());
  REQUIRE(opened.size() == 1);
  REQUIRE(pool.dispatch(clock.now()).size() == 1);
  REQUIRE_FALSE(pool.release(opened[0], clock.now(), true));
  CHECK(pool.worker_of(opened[0]) == 0);

  const auto got = pool.acquire(2, clock.now(), 1);
  REQUIRE(got == opened[0]);  // no new connect: the budget is spent, and one is idle
  CHECK(pool.start_connects(clock.now()).empty());
  pool.moved(*got, 1);
  CHECK(pool.worker_of(*got) == 1);
  REQUIRE_FALSE(pool.release(*got, clock.now(), true));
  // Now it belongs to worker 1: a client of worker 1 takes it as its own.
  CHECK(pool.acquire(3, clock.now(), 1) == opened[0]);
}

TEST_CASE("workers: max_size bounds the connections of all workers together") {
  test::fake_clock clock;
  auto l = limits(0, 3);
  l.workers = 4;
  pool_core pool(l);
  for (waiter_id w = 1; w <= 8; ++w) REQUIRE_FALSE(pool.acquire(w, clock.now(), w % 4));
  const auto opened = pool.start_connects(clock.now());
  CHECK(opened.size() == 3);
  for (auto id : opened) pool.connect_succeeded(id, clock.now(), 0.0);
  CHECK(pool.start_connects(clock.now()).empty());
  const auto lent = pool.dispatch(clock.now());
  CHECK(lent.size() == 3);
  CHECK(pool.total() == 3);
  const auto s = pool.stats(clock.now());
  CHECK(s.active == 3);
  CHECK(s.waiting == 5);
}

TEST_CASE("workers: waiters of every worker are served in one FIFO order, each with its own worker's connection if idle") {
  test::fake_clock clock;
  auto l = limits(0, 2);
  l.workers = 2;
  l.cross_worker_slack = 0ms;  // strict order
  l.cross_worker_slack_share = 0;
  pool_core pool(l);
  const auto [on0, on1] = one_lent_per_worker(pool, clock);

  // Queued in this order: a client of worker 1, then one of worker 0, then worker 1 again.
  clock.advance(1ms);
  REQUIRE_FALSE(pool.acquire(11, clock.now(), 1));
  clock.advance(1ms);
  REQUIRE_FALSE(pool.acquire(12, clock.now(), 0));
  clock.advance(1ms);
  REQUIRE_FALSE(pool.acquire(13, clock.now(), 1));
  // A newcomer of worker 0 does not overtake them, even with worker 0's connection coming back.
  REQUIRE_FALSE(pool.acquire(14, clock.now(), 0));

  // Worker 0's connection comes back first: the oldest waiter (worker 1's) gets it.
  REQUIRE_FALSE(pool.release(on0, clock.now(), true));
  auto a = pool.dispatch(clock.now());
  REQUIRE(a.size() == 1);
  CHECK(a[0].waiter == 11);
  CHECK(a[0].conn == on0);
  pool.moved(on0, 1);
  // Both come back, both now on worker 1. The next waiter, of worker 0, has none of its own
  // idle: it takes the most recently used; then worker 1's waiter takes the other.
  REQUIRE_FALSE(pool.release(on1, clock.now(), true));
  REQUIRE_FALSE(pool.release(on0, clock.now(), true));
  a = pool.dispatch(clock.now());
  REQUIRE(a.size() == 2);
  CHECK(a[0].waiter == 12);
  CHECK(a[0].conn == on0);
  CHECK(a[1].waiter == 13);
  CHECK(a[1].conn == on1);
  CHECK(pool.stats(clock.now()).waiting == 1);  // the newcomer, still behind them
}

TEST_CASE("workers: connects open on the worker of the waiter they serve, and min_size goes round robin") {
  test::fake_clock clock;
  SUBCASE("for waiters") {
    auto l = limits(0, 10);
    l.workers = 3;
    pool_core pool(l);
    REQUIRE_FALSE(pool.acquire(1, clock.now(), 2));
    REQUIRE_FALSE(pool.acquire(2, clock.now(), 2));
    REQUIRE_FALSE(pool.acquire(3, clock.now(), 1));
    const auto opened = pool.start_connects(clock.now());
    REQUIRE(opened.size() == 3);
    CHECK(pool.worker_of(opened[0]) == 2);
    CHECK(pool.worker_of(opened[1]) == 2);
    CHECK(pool.worker_of(opened[2]) == 1);
    // A fourth waiter gets a connect of its own, on its own worker.
    REQUIRE_FALSE(pool.acquire(4, clock.now(), 0));
    const auto more = pool.start_connects(clock.now());
    REQUIRE(more.size() == 1);
    CHECK(pool.worker_of(more[0]) == 0);
    pool.connect_succeeded(more[0], clock.now(), 0.0);
    CHECK(pool.worker_of(more[0]) == 0);
  }
  SUBCASE("for min_size") {
    auto l = limits(4, 10);
    l.workers = 2;
    pool_core pool(l);
    const auto opened = pool.start_connects(clock.now());
    REQUIRE(opened.size() == 4);
    std::size_t per_worker[2] = {0, 0};
    for (auto id : opened) ++per_worker[pool.worker_of(id)];
    CHECK(per_worker[0] == 2);
    CHECK(per_worker[1] == 2);
  }
}

TEST_CASE("workers: within the slack, a connection goes to a waiter of its own worker rather than move") {
  test::fake_clock clock;
  auto l = limits(0, 2);
  l.workers = 2;
  l.cross_worker_slack = 5ms;
  l.cross_worker_slack_share = 0;
  pool_core pool(l);
  const auto [on0, on1] = one_lent_per_worker(pool, clock);
  REQUIRE_FALSE(pool.acquire(11, clock.now(), 1));  // the oldest, on worker 1
  clock.advance(2ms);
  REQUIRE_FALSE(pool.acquire(12, clock.now(), 1));
  clock.advance(2ms);
  REQUIRE_FALSE(pool.acquire(13, clock.now(), 0));  // 4 ms after the oldest: within the slack
  REQUIRE_FALSE(pool.release(on0, clock.now(), true));
  auto a = pool.dispatch(clock.now());
  REQUIRE(a.size() == 1);
  CHECK(a[0].waiter == 13);  // worker 0's own waiter: the connection stays where it is
  CHECK(a[0].conn == on0);
  // Worker 1's connection goes to worker 1's waiters, oldest first.
  REQUIRE_FALSE(pool.release(on1, clock.now(), true));
  a = pool.dispatch(clock.now());
  REQUIRE(a.size() == 1);
  CHECK(a[0].waiter == 11);
  CHECK(pool.stats(clock.now()).waiting == 1);
}

TEST_CASE("workers: past the slack, the oldest waiter gets the connection of another worker") {
  test::fake_clock clock;
  auto l = limits(0, 2);
  l.workers = 2;
  l.cross_worker_slack = 5ms;
  l.cross_worker_slack_share = 0;
  pool_core pool(l);
  const auto [on0, on1] = one_lent_per_worker(pool, clock);
  (void)on1;
  REQUIRE_FALSE(pool.acquire(11, clock.now(), 1));
  clock.advance(5ms);
  REQUIRE_FALSE(pool.acquire(12, clock.now(), 0));  // 5 ms later: not within the slack
  REQUIRE_FALSE(pool.release(on0, clock.now(), true));
  const auto a = pool.dispatch(clock.now());
  REQUIRE(a.size() == 1);
  CHECK(a[0].waiter == 11);
  CHECK(a[0].conn == on0);  // it moves to worker 1
}

TEST_CASE("workers: the slack grows with the oldest waiter's wait, by the share set") {
  test::fake_clock clock;
  auto l = limits(0, 2);
  l.workers = 2;
  l.cross_worker_slack = 1ms;
  l.cross_worker_slack_share = 16;
  pool_core pool(l);
  CHECK(pool.cross_worker_slack(0ms) == 1ms);
  CHECK(pool.cross_worker_slack(8ms) == 1ms);
  CHECK(pool.cross_worker_slack(160ms) == 10ms);
  const auto [on0, on1] = one_lent_per_worker(pool, clock);
  (void)on1;
  REQUIRE_FALSE(pool.acquire(11, clock.now(), 1));  // the oldest, on worker 1
  clock.advance(6ms);
  REQUIRE_FALSE(pool.acquire(12, clock.now(), 0));  // 6 ms after it
  clock.advance(154ms);                             // the oldest has waited 160 ms: a 10 ms slack
  REQUIRE_FALSE(pool.release(on0, clock.now(), true));
  auto a = pool.dispatch(clock.now());
  REQUIRE(a.size() == 1);
  CHECK(a[0].waiter == 12);  // within the slack: worker 0's connection stays on worker 0
  CHECK(a[0].conn == on0);
  // Past the share, the oldest gets it even from another worker.
  REQUIRE_FALSE(pool.acquire(13, clock.now(), 0));  // 160 ms after the oldest: past 10 ms
  REQUIRE_FALSE(pool.release(on0, clock.now(), true));
  a = pool.dispatch(clock.now());
  REQUIRE(a.size() == 1);
  CHECK(a[0].waiter == 11);
  CHECK(a[0].conn == on0);
}

TEST_CASE("workers: with the slack, random operations serve every waiter in order up to the slack") {
  std::mt19937 rng(7432);
  auto pick = [&](std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng); };
  using pgmux::pool::worker_id;
  constexpr worker_id n_workers = 3;
  auto l = limits(0, 4);
  l.workers = n_workers;
  l.cross_worker_slack = 10ms;
  test::fake_clock clock;
  pool_core pool(l);

  struct queued {
    waiter_id id;
    worker_id worker;
    time_point since;
  };
  std::deque<queued> queue;
  std::set<conn_id> lent, connecting;
  waiter_id next_waiter = 1;
  std::size_t kept_local = 0, in_order = 0;
  for (int step = 0; step < 20000; ++step) {
    CAPTURE(step);
    switch (pick(4)) {
      case 0: {
        const auto worker = static_cast<worker_id>(pick(n_workers));
        if (auto c = pool.acquire(next_waiter, clock.now(), worker)) {
          REQUIRE(queue.empty());
          lent.insert(*c);
        } else {
          queue.push_back({next_waiter, worker, clock.now()});
        }
        ++next_waiter;
        break;
      }
      case 1:
        for (auto id : pool.start_connects(clock.now())) connecting.insert(id);
        if (!connecting.empty()) {
          const auto id = *connecting.begin();
          connecting.erase(id);
          pool.connect_succeeded(id, clock.now(), 0.0);
        }
        break;
      case 2:
        if (!lent.empty()) {
          const auto id = *std::next(lent.begin(), static_cast<std::ptrdiff_t>(pick(lent.size())));
          lent.erase(id);
          REQUIRE_FALSE(pool.release(id, clock.now(), true));
        }
        break;
      case 3:
        clock.advance(std::chrono::milliseconds(pick(4)));
        break;
    }
    for (const auto& a : pool.dispatch(clock.now())) {
      auto it = std::find_if(queue.begin(), queue.end(), [&](const queued& q) { return q.id == a.waiter; });
      REQUIRE(it != queue.end());
      if (it == queue.begin()) {
        ++in_order;
      } else {
        // Overtaking is allowed only for a waiter of the connection's own worker, within the
        // slack of the oldest, and only when the oldest's worker had no idle connection.
        REQUIRE(it->worker == pool.worker_of(a.conn));
        REQUIRE(it->since - queue.front().since < pool.cross_worker_slack(clock.now() - queue.front().since));
        REQUIRE(queue.front().worker != it->worker);
        ++kept_local;
      }
      pool.moved(a.conn, it->worker);
      queue.erase(it);
      lent.insert(a.conn);
    }
    REQUIRE(pool.total() <= l.max_size);
    REQUIRE(pool.stats(clock.now()).waiting == queue.size());
  }
  CHECK(in_order > 1000);
  CHECK(kept_local > 100);
}

TEST_CASE("workers: random operations across four workers keep the bound, FIFO and the preference") {
  std::mt19937 rng(6432);
  auto pick = [&](std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng); };
  using pgmux::pool::worker_id;
  constexpr worker_id n_workers = 4;
  auto l = limits(2, 6);
  l.workers = n_workers;
  l.cross_worker_slack = 0ms;  // strict order: the model checks it
  l.cross_worker_slack_share = 0;
  l.idle_lifetime = 5s;
  test::fake_clock clock;
  pool_core pool(l);

  std::map<conn_id, worker_id> idle;  // the model: idle connections and where they live
  std::set<conn_id> connecting, lent;
  std::deque<std::pair<waiter_id, worker_id>> queue;
  waiter_id next_waiter = 1;
  std::size_t own = 0, moved = 0;

  // A connection handed to a client of `worker`: its own worker's if any was idle.
  auto hand_over = [&](conn_id c, worker_id worker) {
    REQUIRE(idle.count(c) == 1);
    const bool had_own = std::any_of(idle.begin(), idle.end(), [&](const auto& e) { return e.second == worker; });
    if (had_own) {
      REQUIRE(idle.at(c) == worker);
      ++own;
    } else {
      pool.moved(c, worker);
      ++moved;
    }
    idle.erase(c);
    lent.insert(c);
  };

  for (int step = 0; step < 20000; ++step) {
    CAPTURE(step);
    switch (pick(6)) {
      case 0: {
        const waiter_id w = next_waiter++;
        const auto worker = static_cast<worker_id>(pick(n_workers));
        if (auto c = pool.acquire(w, clock.now(), worker)) {
          REQUIRE(queue.empty());
          hand_over(*c, worker);
        } else {
          queue.emplace_back(w, worker);
        }
        break;
      }
      case 1:
        for (auto id : pool.start_connects(clock.now())) {
          REQUIRE(pool.worker_of(id) < n_workers);
          connecting.insert(id);
        }
        break;
      case 2:
        if (!connecting.empty()) {
          const auto id = *std::next(connecting.begin(), static_cast<std::ptrdiff_t>(pick(connecting.size())));
          connecting.erase(id);
          pool.connect_succeeded(id, clock.now(), 0.0);
          idle.emplace(id, pool.worker_of(id));
        }
        break;
      case 3:
        if (!lent.empty()) {
          const auto id = *std::next(lent.begin(), static_cast<std::ptrdiff_t>(pick(lent.size())));
          const auto worker = pool.worker_of(id);
          lent.erase(id);
          if (!pool.release(id, clock.now(), true)) idle.emplace(id, worker);
        }
        break;
      case 4:
        for (const auto& a : pool.dispatch(clock.now())) {
          REQUIRE_FALSE(queue.empty());
          REQUIRE(a.waiter == queue.front().first);  // one FIFO across workers
          hand_over(a.conn, queue.front().second);
          queue.pop_front();
        }
        break;
      case 5:
        for (const auto& c : pool.reap(clock.now())) REQUIRE(idle.erase(c.conn) == 1);
        clock.advance(std::chrono::milliseconds(pick(2000)));
        break;
    }
    REQUIRE(pool.total() <= l.max_size);
    REQUIRE(pool.total() == idle.size() + lent.size() + connecting.size());
    REQUIRE(pool.stats(clock.now()).waiting == queue.size());
  }
  CHECK(own > 1000);
  CHECK(moved > 100);
}

}  // TEST_SUITE

TEST_CASE("with the default limits a returning server is probed within 500 ms, one probe at a time") {
  test::fake_clock clock;
  pool_core pool(limits(0, 5));
  for (waiter_id w : {1, 2, 3}) CHECK_FALSE(pool.acquire(w, clock.now()));
  // A long outage: the backoff must stay short, and never more than one connect in flight.
  for (int i = 0; i < 50; ++i) {
    auto ids = pool.start_connects(clock.now());
    REQUIRE(ids.size() == (i == 0 ? 3u : 1u));
    for (auto id : ids) pool.connect_failed(id, clock.now());
    REQUIRE(pool.retry_at());
    CHECK(*pool.retry_at() - clock.now() <= 500ms);
    clock.advance(*pool.retry_at() - clock.now());
  }
  // The server is back: the probe due now succeeds, then the rest of the queue is served.
  auto probe = pool.start_connects(clock.now());
  REQUIRE(probe.size() == 1);
  CHECK(pool.start_connects(clock.now()).empty());
  pool.connect_succeeded(probe[0], clock.now(), 0.0);
  CHECK(pool.dispatch(clock.now()).size() == 1);
  CHECK(pool.start_connects(clock.now()).size() == 2);
}

TEST_CASE("login refusals are classified: restarts are transient, the rest final, no answer unreachable") {
  CHECK(classify_connect_failure("") == connect_failure::unreachable);
  for (const char* code : {"57P01", "57P02", "57P03", "57P04"}) {
    CAPTURE(code);
    CHECK(classify_connect_failure(code) == connect_failure::transient);
  }
  for (const char* code : {"28P01", "28000", "3D000", "53300", "08001", "57P05", "57P0", "57P011"}) {
    CAPTURE(code);
    CHECK(classify_connect_failure(code) == connect_failure::final);
  }
}

TEST_CASE("a final refusal answers the waiters and new clients during the backoff") {
  test::fake_clock clock;
  pool_core pool(limits(0, 5));
  CHECK_FALSE(pool.acquire(1, clock.now()));
  auto ids = pool.start_connects(clock.now());
  REQUIRE(ids.size() == 1);
  CHECK(pool.connect_failed(ids[0], clock.now(), connect_failure::final));
  CHECK(pool.failing(clock.now()));
  clock.advance(*pool.retry_at() - clock.now());
  CHECK_FALSE(pool.failing(clock.now()));  // past the backoff: the next client waits for a probe
}

TEST_CASE("a restarting server (transient refusals) is waited for however long it takes") {
  test::fake_clock clock;
  auto l = limits(0, 5);
  l.unreachable_grace = 1s;
  pool_core pool(l);
  CHECK_FALSE(pool.acquire(1, clock.now()));
  for (int i = 0; i < 40; ++i) {
    auto ids = pool.start_connects(clock.now());
    REQUIRE(ids.size() == 1);
    clock.advance(100ms);
    CHECK_FALSE(pool.connect_failed(ids[0], clock.now(), connect_failure::transient));
    CHECK_FALSE(pool.failing(clock.now()));
    clock.advance(*pool.retry_at() - clock.now());
  }
  CHECK(pool.stats(clock.now()).waiting == 1);
}

TEST_CASE("an unreachable server is waited for up to the grace, counted from the first attempt's start") {
  test::fake_clock clock;
  auto l = limits(0, 5);
  l.unreachable_grace = 2s;
  pool_core pool(l);
  CHECK_FALSE(pool.acquire(1, clock.now()));

  SUBCASE("refused at once: answered at the first failure past the grace") {
    const auto start = clock.now();
    bool answered = false;
    while (!answered) {
      auto ids = pool.start_connects(clock.now());
      REQUIRE(ids.size() == 1);
      answered = pool.connect_failed(ids[0], clock.now(), connect_failure::unreachable, clock.now());
      CHECK(answered == (clock.now() - start >= 2s));
      if (!answered) clock.advance(*pool.retry_at() - clock.now());
    }
    CHECK(clock.now() - start < 2s + 500ms);
    CHECK(pool.failing(clock.now()));
  }
  SUBCASE("a connect that times out counts its own duration") {
    const auto started = clock.now();
    auto ids = pool.start_connects(clock.now());
    clock.advance(5s);  // connect_timeout
    CHECK(pool.connect_failed(ids[0], clock.now(), connect_failure::unreachable, started));
  }
  SUBCASE("a transient refusal in between starts the grace again") {
    auto ids = pool.start_connects(clock.now());
    CHECK_FALSE(pool.connect_failed(ids[0], clock.now(), connect_failure::unreachable, clock.now()));
    clock.advance(1500ms);
    ids = pool.start_connects(clock.now());
    CHECK_FALSE(pool.connect_failed(ids[0], clock.now(), connect_failure::transient, clock.now()));
    clock.advance(1s);
    ids = pool.start_connects(clock.now());
    CHECK_FALSE(pool.connect_failed(ids[0], clock.now(), connect_failure::unreachable, clock.now()));
    clock.advance(1500ms);
    ids = pool.start_connects(clock.now());
    CHECK_FALSE(pool.connect_failed(ids[0], clock.now(), connect_failure::unreachable, clock.now()));
    clock.advance(500ms);  // 2 s since the first unreachable failure after the transient one
    ids = pool.start_connects(clock.now());
    CHECK(pool.connect_failed(ids[0], clock.now(), connect_failure::unreachable, clock.now()));
  }
}

TEST_CASE("an unreachable server is waited for while connections are open") {
  test::fake_clock clock;
  auto l = limits(0, 5);
  l.unreachable_grace = 0s;
  pool_core pool(l);
  const auto held = make_idle(pool, clock.now(), 1);
  REQUIRE(pool.acquire(1, clock.now()) == held[0]);
  CHECK_FALSE(pool.acquire(2, clock.now()));  // waits: the open one may come back
  auto ids = pool.start_connects(clock.now());
  REQUIRE(ids.size() == 1);
  CHECK_FALSE(pool.connect_failed(ids[0], clock.now(), connect_failure::unreachable, clock.now()));
  CHECK_FALSE(pool.failing(clock.now()));
  // It closes instead of coming back: the next failure answers.
  pool.forget(held[0]);
  clock.advance(*pool.retry_at() - clock.now());
  ids = pool.start_connects(clock.now());
  REQUIRE(ids.size() == 1);
  CHECK(pool.connect_failed(ids[0], clock.now(), connect_failure::unreachable, clock.now()));
}

TEST_CASE("a success, a transient refusal or retry_now ends the failing state") {
  test::fake_clock clock;
  auto l = limits(0, 5);
  l.unreachable_grace = 0s;
  pool_core pool(l);
  auto fail = [&] {
    clock.advance(1h);
    auto ids = pool.start_connects(clock.now());
    if (ids.empty()) {
      CHECK_FALSE(pool.acquire(99, clock.now()));
      ids = pool.start_connects(clock.now());
    }
    REQUIRE(ids.size() == 1);
    REQUIRE(pool.connect_failed(ids[0], clock.now(), connect_failure::unreachable, clock.now()));
    REQUIRE(pool.failing(clock.now()));
  };
  SUBCASE("success") {
    fail();
    clock.advance(1h);
    auto ids = pool.start_connects(clock.now());
    REQUIRE(ids.size() == 1);
    pool.connect_succeeded(ids[0], clock.now(), 0.0);
    CHECK_FALSE(pool.failing(clock.now()));
  }
  SUBCASE("transient") {
    fail();
    clock.advance(1h);
    auto ids = pool.start_connects(clock.now());
    REQUIRE(ids.size() == 1);
    CHECK_FALSE(pool.connect_failed(ids[0], clock.now(), connect_failure::transient));
    CHECK_FALSE(pool.failing(clock.now()));
  }
  SUBCASE("retry_now") {
    fail();
    pool.retry_now();
    CHECK_FALSE(pool.failing(clock.now()));
  }
}
