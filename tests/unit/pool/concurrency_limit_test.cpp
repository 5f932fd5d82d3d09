// Adaptive concurrency limit against synthetic servers whose latency grows with concurrency.
// Cases:
//   a steady overload converges to the knee and then holds still (no oscillation)
//   an error burst cuts the limit within one window, and the limit recovers after it
//   latency far above the baseline cuts the limit, and it recovers when the server does
//   where one step more is already too much, the limit probes it ever more rarely instead of flapping
//   the limit never leaves [min, max], however bad or good the feedback
//   the limit grows only when it was binding
//   work that got heavier for good rebases the baseline instead of pinning the limit at min
//   one lucky window does not set the baseline alone
//   a window after a change ignores the transactions lent under the old limit
//   a reload keeps the limit within the new bounds
//   one burst of errors, larger than a window's allowance, cuts once
//   a binding limit with no transaction ending (long leases) grows by 1 per stall period,
//   never past max, and not while it does not bind or transactions end
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "pgmux/pool/concurrency_limit.hpp"

using namespace pgmux::pool;
using namespace std::chrono_literals;

namespace {

// A server with `cores` that runs one statement in `base` alone: with c running at once each
// takes base x max(1, c / cores) (processor sharing), give or take `noise` (deterministic).
struct synthetic_server {
  std::chrono::nanoseconds base = 10ms;
  double cores = 4;
  double noise = 0.1;
  std::uint32_t seed = 12345;

  std::chrono::nanoseconds latency(std::size_t running) {
    seed = seed * 1664525u + 1013904223u;
    const double jitter = 1.0 + noise * ((double(seed >> 8) / double(1u << 24)) * 2 - 1);
    const double stretch = std::max(1.0, double(running) / cores);
    return std::chrono::nanoseconds(static_cast<std::int64_t>(double(base.count()) * stretch * jitter));
  }
};

// Closed-loop load of `clients` (more than the limit: it binds) for `transactions`; returns the
// limits seen after each transaction.
std::vector<std::size_t> drive(concurrency_limit& l, synthetic_server& server, std::size_t transactions,
                               std::size_t clients = 100) {
  std::vector<std::size_t> seen;
  seen.reserve(transactions);
  for (std::size_t i = 0; i < transactions; ++i) {
    const auto running = std::min(l.limit(), clients);
    l.on_transaction(server.latency(running), running, clients);
    seen.push_back(l.limit());
  }
  return seen;
}

std::size_t changes(const std::vector<std::size_t>& seen) {
  std::size_t n = 0;
  for (std::size_t i = 1; i < seen.size(); ++i) n += seen[i] != seen[i - 1];
  return n;
}

limit_settings settings(std::size_t min = 2, std::size_t max = 40) {
  limit_settings s;
  s.min = min;
  s.max = max;
  return s;  // window 100, tolerance 2, backoff 0.75, max_error_rate 0.05
}

}  // namespace

TEST_CASE("a steady overload converges to the knee and then holds still") {
  concurrency_limit l(settings());
  synthetic_server server;  // knee at 4 running statements
  CHECK(l.limit() == 2);    // starts at min
  drive(l, server, 2000);
  const auto converged = l.limit();
  CAPTURE(converged);
  // At the knee or past it, but not so far past that latency doubled.
  CHECK(converged >= 4);
  CHECK(converged < 8);
  CHECK(l.figures().baseline >= 9ms);
  CHECK(l.figures().baseline <= 11ms);
  // 200 more windows of the same load: no change at all.
  const auto before = l.figures();
  const auto seen = drive(l, server, 20000);
  CHECK(changes(seen) == 0);
  CHECK(l.limit() == converged);
  CHECK(l.figures().increases == before.increases);
  CHECK(l.figures().decreases == before.decreases);
}

TEST_CASE("an error burst cuts the limit within one window, and the limit recovers after it") {
  concurrency_limit l(settings());
  synthetic_server server;
  drive(l, server, 2000);
  const auto converged = l.limit();
  REQUIRE(converged >= 4);
  // Every fourth event an error (53300 at connect, command_timeout): the 6th error, past 5% of
  // a 100-event window, cuts.
  std::size_t events = 0;
  while (l.limit() == converged && events < 100) {
    ++events;
    if (events % 4 == 0) l.on_error(converged);
    else l.on_transaction(server.latency(converged), converged, 100);
  }
  CHECK(l.limit() < converged);
  CHECK(l.limit() == std::max<std::size_t>(2, converged * 3 / 4));
  // At the 6th error of the window under way: within one window of events, wherever it began.
  CHECK(events >= 24);
  CHECK(events <= 24 + 100 / 4 * 3);
  CHECK(l.figures().decreases >= 1);
  // The overload goes on, every other transaction failing: more cuts, never below min.
  for (int i = 0; i < 400; ++i) {
    l.on_transaction(server.latency(l.limit()), l.limit(), 100);
    l.on_error(l.limit());
  }
  CHECK(l.limit() == 2);
  // Clean again: back to where it was, additively now.
  drive(l, server, 3000);
  CHECK(l.limit() >= 4);
  CHECK(l.limit() < 8);
}

TEST_CASE("latency far above the baseline cuts the limit, and it recovers when the server does") {
  concurrency_limit l(settings());
  synthetic_server server;
  drive(l, server, 2000);
  const auto converged = l.limit();
  REQUIRE(converged >= 4);
  // The server slows down under load: its knee drops from 4 to 1 (another tenant takes cores).
  server.cores = 1;
  auto seen = drive(l, server, 1000);
  CHECK(l.limit() < converged);
  CHECK(l.limit() <= 3);
  // Each window after the first cut takes the transactions lent before it out: at most one cut
  // per window and a bit.
  CHECK(changes(seen) <= 10);
  server.cores = 4;
  drive(l, server, 3000);
  CHECK(l.limit() >= 4);
  CHECK(l.limit() <= 8);  // 8 on 4 cores: twice the latency, still not above the tolerance
}

TEST_CASE("where one step more is already too much, the limit probes it ever more rarely instead of flapping") {
  concurrency_limit l(settings());
  // A server fine with 3 statements at once (1.1 x the latency of 2) and swamped by 4 (2.5 x).
  auto latency = [](std::size_t running) { return running <= 2 ? 10ms : running == 3 ? 11ms : 25ms; };
  std::size_t windows_at_4 = 0, transactions = 0;
  std::vector<std::size_t> seen;
  for (int i = 0; i < 40000; ++i) {
    const auto running = l.limit();
    l.on_transaction(std::chrono::duration_cast<std::chrono::nanoseconds>(latency(running)), running, 100);
    seen.push_back(l.limit());
    ++transactions;
    if (running >= 4) ++windows_at_4;
  }
  windows_at_4 /= 100;
  CAPTURE(windows_at_4);
  CAPTURE(l.figures().decreases);
  CHECK(l.limit() <= 4);
  CHECK(l.limit() >= 3);
  // 400 windows: probing 4 after 2, 4, 8, 16, 32 and then every 64 good windows at 3 makes about
  // ten probes, not 200 (one every other window, as plain AIMD would).
  CHECK(l.figures().decreases <= 12);
  CHECK(changes(seen) <= 25);
  CHECK(windows_at_4 <= 15);
  // The server gets faster: 4 now costs no more than 3 did. The next probe succeeds and the
  // limit grows past 4, which forgets the old level.
  concurrency_limit faster(settings());
  for (int i = 0; i < 20000; ++i) {
    const auto running = faster.limit();
    faster.on_transaction(std::chrono::duration_cast<std::chrono::nanoseconds>(latency(running)), running, 100);
  }
  REQUIRE(faster.limit() <= 4);
  synthetic_server server;
  server.cores = 8;
  drive(faster, server, 64 * 100 + 3000);
  CHECK(faster.limit() >= 8);
}

TEST_CASE("the limit never leaves [min, max], however bad or good the feedback") {
  concurrency_limit l(settings(3, 10));
  // A server that never slows down: the limit climbs to max and stays.
  synthetic_server fast{.cores = 1000};
  drive(l, fast, 5000);
  CHECK(l.limit() == 10);
  // Latency 100x the baseline and errors: down to min and no further.
  for (int i = 0; i < 5000; ++i) {
    l.on_transaction(1s, l.limit(), 100);
    CHECK(l.limit() >= 3);
    if (i % 3 == 0) l.on_error(l.limit());
  }
  CHECK(l.limit() == 3);
}

TEST_CASE("the limit grows only when it was binding") {
  concurrency_limit l(settings());
  synthetic_server fast{.cores = 1000};
  // One client at a time: the limit of 2 never binds.
  for (int i = 0; i < 5000; ++i) l.on_transaction(fast.latency(1), 1, 1);
  CHECK(l.limit() == 2);
  CHECK(l.figures().increases == 0);
  // Two at once reach it: now it grows.
  drive(l, fast, 500, 2);
  CHECK(l.limit() == 3);
}

TEST_CASE("work that got heavier for good rebases the baseline instead of pinning the limit at min") {
  concurrency_limit l(settings());
  synthetic_server server;
  drive(l, server, 2000);
  REQUIRE(l.limit() >= 4);
  // Every statement now costs 5 times as much, with the same knee.
  server.base = 50ms;
  drive(l, server, 1000);
  CHECK(l.figures().baseline >= 40ms);
  drive(l, server, 3000);
  CHECK(l.limit() >= 4);
  CHECK(l.limit() < 8);
}

TEST_CASE("one lucky window does not set the baseline alone") {
  limit_settings s = settings();
  s.window = 10;
  concurrency_limit l(s);
  for (int i = 0; i < 10; ++i) l.on_transaction(10ms, 2, 50);  // baseline 10 ms, up to 3
  for (int i = 0; i < 10; ++i) l.on_transaction(10ms, 3, 50);  // up to 4
  REQUIRE(l.limit() == 4);
  REQUIRE(l.figures().baseline == 10ms);
  // A window of unusually cheap statements: the baseline moves halfway, to 7 ms, not to 4 ms.
  for (int i = 0; i < 10; ++i) l.on_transaction(4ms, 4, 50);
  CHECK(l.figures().baseline == 7ms);
  // The usual 10 ms again at 4: 1.43 x the baseline holds (at 4 ms it would be 2.5 x, a cut).
  for (int w = 0; w < 10; ++w)
    for (int i = 0; i < 10; ++i) l.on_transaction(10ms, l.limit(), 50);
  CHECK(l.figures().decreases == 0);
  CHECK(l.limit() >= 4);
  // Cheap windows that persist do bring it down.
  for (int w = 0; w < 10; ++w)
    for (int i = 0; i < 10; ++i) l.on_transaction(4ms, l.limit(), 50);
  CHECK(l.figures().baseline < 4100us);
}

TEST_CASE("a window after a change ignores the transactions lent under the old limit") {
  limit_settings s = settings();
  s.window = 6;
  concurrency_limit l(s);
  // Baseline 10 ms at min, then windows to grow (binding, at baseline).
  for (int i = 0; i < 6; ++i) l.on_transaction(10ms, 2, 50);
  CHECK(l.limit() == 3);
  for (int i = 0; i < 6; ++i) l.on_transaction(10ms, 3, 50);
  REQUIRE(l.limit() == 4);
  // Latency triples: cut when the window closes, with 4 lent.
  for (int i = 0; i < 6; ++i) l.on_transaction(30ms, 4, 50);
  REQUIRE(l.limit() == 3);
  // The 4 lent before the cut still end slow: they are not the new limit's fault (counted, they
  // would be the median of the next window and cut again).
  for (int i = 0; i < 4; ++i) l.on_transaction(30ms, 4, 50);
  CHECK(l.limit() == 3);
  // A window at the new limit, back near the baseline: no second cut.
  for (int i = 0; i < 6; ++i) l.on_transaction(11ms, 3, 50);
  CHECK(l.limit() == 3);
  CHECK(l.figures().decreases == 1);
  // A second one in a row: back up to the level that was cut (11 ms is within the growth band).
  for (int i = 0; i < 6; ++i) l.on_transaction(11ms, 3, 50);
  CHECK(l.limit() == 4);
  CHECK(l.figures().decreases == 1);
}

TEST_CASE("a reload keeps the limit within the new bounds") {
  concurrency_limit l(settings(2, 40));
  synthetic_server fast{.cores = 1000};
  drive(l, fast, 5000);
  CHECK(l.limit() == 40);
  l.configure(settings(2, 16));
  CHECK(l.limit() == 16);
  l.configure(settings(20, 30));
  CHECK(l.limit() == 20);
  // Nonsense is made safe: min above max means max, a window of 0 means 1.
  limit_settings odd = settings(50, 5);
  odd.window = 0;
  l.configure(odd);
  CHECK(l.limit() == 5);
  CHECK(l.settings().window == 1);
}

TEST_CASE("one burst of errors larger than a window's allowance cuts once") {
  concurrency_limit l(settings(2, 40));
  synthetic_server server;
  drive(l, server, 2000);
  const auto converged = l.limit();
  REQUIRE(converged >= 4);
  // 30 errors at once while `converged` connections are lent (53200 answers to all of them).
  std::size_t cuts = 0;
  for (int i = 0; i < 30; ++i) cuts += l.on_error(converged) == limit_change::down;
  CHECK(cuts == 1);
  CHECK(l.limit() == std::max<std::size_t>(2, converged * 3 / 4));
}

TEST_CASE("a binding limit with no transaction ending grows by 1 per stall period") {
  concurrency_limit l(settings(2, 4));
  REQUIRE(l.limit() == 2);
  CHECK(l.stall_after() == 1s);  // no baseline yet
  // Not binding (demand within the limit), or not stalled long enough: nothing.
  CHECK(l.on_stall(5s, 2, 2) == limit_change::none);
  CHECK(l.on_stall(500ms, 2, 10) == limit_change::none);
  CHECK(l.on_stall(5s, 1, 10) == limit_change::none);
  CHECK(l.limit() == 2);
  // Two leases held for long, clients waiting: one more at a time, up to max.
  CHECK(l.on_stall(1s, 2, 10) == limit_change::up);
  CHECK(l.limit() == 3);
  CHECK(l.on_stall(1s, 3, 10) == limit_change::up);
  CHECK(l.on_stall(1s, 4, 10) == limit_change::none);
  CHECK(l.limit() == 4);
  CHECK(l.figures().increases == 2);
  // With a baseline of 500 ms the stall period is 2 s.
  concurrency_limit slow(settings(2, 40));
  synthetic_server heavy;
  heavy.base = 500ms;
  drive(slow, heavy, 300, 2);  // never more than min lent: the baseline is the work's own latency
  CHECK(slow.stall_after() >= 1800ms);
  CHECK(slow.stall_after() <= 2200ms);
}

