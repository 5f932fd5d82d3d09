// Pool-size advice: Erlang C and the sliding window, with a hand-advanced clock.
// Cases:
//   wait_probability matches Erlang C values worked out by hand
//   servers_for is the fewest servers within the wait probability
//   a steady synthetic load gives lambda, L, W = L / lambda and the Erlang C size
//   the advice never exceeds the most clients that held or waited at once
//   long leases count only their time in the window, and a huge load is answered at once
//   a window younger than its span divides by its age, and old seconds drop out
//   a clock near its epoch is no special case
//   max_size is judged against the advice, and a verdict is reported once per unbroken stretch
#include <doctest/doctest.h>

#include <algorithm>
#include <functional>
#include <vector>

#include "pgmux/pool/size_advice.hpp"
#include "support/fake_clock.hpp"

using namespace pgmux::pool;
using namespace std::chrono_literals;

TEST_CASE("wait_probability matches Erlang C values worked out by hand") {
  // A = 2 Erlangs on 3 servers: B = (4/3) / (19/3) = 4/19, C = 3B / (3 - 2(1 - B)) = 4/9.
  CHECK(wait_probability(3, 2.0) == doctest::Approx(4.0 / 9.0));
  // One server: C = A.
  CHECK(wait_probability(1, 0.5) == doctest::Approx(0.5));
  CHECK(wait_probability(2, 2.0) == 1.0);  // no more servers than load: everyone waits
  CHECK(wait_probability(5, 0.0) == 0.0);
  // More servers, less waiting.
  for (std::size_t c = 3; c < 20; ++c) CHECK(wait_probability(c + 1, 2.0) < wait_probability(c, 2.0));
}

TEST_CASE("servers_for is the fewest servers within the wait probability") {
  CHECK(servers_for(0.0, 0.05) == 0);
  CHECK(servers_for(2.0, 0.05) == 6);  // C(5, 2) = 0.060, C(6, 2) = 0.018
  CHECK(wait_probability(6, 2.0) <= 0.05);
  CHECK(wait_probability(5, 2.0) > 0.05);
  CHECK(servers_for(4.0, 0.05) == 9);
  CHECK(servers_for(10.0, 0.05) == 17);
  CHECK(servers_for(0.5, 0.05) == 3);
  CHECK(servers_for(2.0, 0.5) == 3);  // a looser target needs fewer
}

// Drives `window` with leases that each begin every `every` and are held `held`, for `length`,
// with `clients` holding or waiting at most; returns the time at the end.
test::fake_clock::time_point steady_load(load_window& window, test::fake_clock& clock, std::chrono::microseconds every,
                                        std::chrono::microseconds held, std::chrono::microseconds length,
                                        std::size_t clients) {
  // Events in time order: a lease ends `held` after it began.
  std::vector<test::fake_clock::duration> ends;
  std::size_t lent = 0;
  const auto start = clock.now();
  for (auto t = std::chrono::microseconds(0); t < length; t += every) {
    std::sort(ends.begin(), ends.end(), std::greater<>());
    while (!ends.empty() && ends.back() <= t) {
      clock.set(ends.back() + (start - clock.start()));
      window.update(clock.now(), --lent, clients, false);
      ends.pop_back();
    }
    clock.set(t + (start - clock.start()));
    window.update(clock.now(), ++lent, clients, true);
    ends.push_back(t + held);
  }
  clock.set(length + (start - clock.start()));
  return clock.now();
}

TEST_CASE("a steady synthetic load gives lambda, L, W = L / lambda and the Erlang C size") {
  test::fake_clock clock;
  load_window window;  // 60 s
  // 100 leases per second, each held 40 ms, 12 clients at most, for 2 minutes.
  const auto now = steady_load(window, clock, 10ms, 40ms, 120s, 12);
  const auto f = window.figures(now);
  CHECK(f.seconds == doctest::Approx(60.0).epsilon(0.02));
  CHECK(f.arrival_rate == doctest::Approx(100.0).epsilon(0.02));
  CHECK(f.offered_load == doctest::Approx(4.0).epsilon(0.02));
  CHECK(f.mean_hold_seconds == doctest::Approx(0.040).epsilon(0.02));
  CHECK(f.peak_demand == 12);
  CHECK(f.advised_size == 9);  // servers_for(4, 0.05)
}

TEST_CASE("the advice never exceeds the most clients that held or waited at once") {
  test::fake_clock clock;
  load_window window;
  // Four clients in a closed loop, each always holding a connection: L = 4, and Erlang C (which
  // assumes endless arrivals) would ask for 9; four is all they can use.
  const auto now = steady_load(window, clock, 2500us, 10ms, 30s, 4);
  const auto f = window.figures(now);
  CHECK(f.offered_load == doctest::Approx(4.0).epsilon(0.02));
  CHECK(f.advised_size == 4);
}

TEST_CASE("long leases count only their time in the window, and a huge load is answered at once") {
  test::fake_clock clock;
  load_window window;
  // 20 connections lent for 8 hours (session mode, say): 20 busy on average, not 8 h x 20 / 60 s.
  window.update(clock.now(), 20, 20, true);
  clock.advance(8h);
  auto f = window.figures(clock.now());
  CHECK(f.offered_load == doctest::Approx(20.0));
  CHECK(f.advised_size == 20);  // capped at the peak demand
  // A load far beyond any pool: the search stops at the cap.
  CHECK(servers_for(500000.0, 0.05, 25) == 25);
  CHECK(servers_for(1000.0, 0.05) > 1000);
}

TEST_CASE("a window younger than its span divides by its age, and old seconds drop out") {
  test::fake_clock clock;
  load_window window(10s);
  CHECK(window.figures(clock.now()).advised_size == 0);  // no load yet
  // 5 s of 20 leases per second held 100 ms each (L = 2).
  const auto now = steady_load(window, clock, 50ms, 100ms, 5s, 10);
  auto f = window.figures(now);
  CHECK(f.seconds == doctest::Approx(5.0));
  CHECK(f.arrival_rate == doctest::Approx(20.0));
  CHECK(f.offered_load == doctest::Approx(2.0).epsilon(0.03));
  CHECK(f.advised_size == 6);
  // Then the last leases end and nothing comes for 20 s: the window forgets it.
  window.update(now, 0, 0, false);
  clock.advance(20s);
  f = window.figures(clock.now());
  CHECK(f.leases == 0);
  CHECK(f.offered_load == 0.0);
  CHECK(f.advised_size == 0);
  CHECK(f.peak_demand == 0);
}

TEST_CASE("a clock near its epoch is no special case") {
  load_window window(5s);
  const auto t0 = load_window::clock::time_point{};
  window.update(t0, 1, 1, true);
  window.update(t0 + 500ms, 0, 0, false);
  const auto f = window.figures(t0 + 1s);
  CHECK(f.offered_load == doctest::Approx(0.5));
  CHECK(f.leases == 1);
}

TEST_CASE("max_size is judged against the advice, and a verdict is reported once per unbroken stretch") {
  load_figures f;
  f.leases = 1000;
  f.advised_size = 9;
  CHECK(judge_size(f, 9) == size_verdict::fits);
  CHECK(judge_size(f, 18) == size_verdict::fits);
  CHECK(judge_size(f, 19) == size_verdict::too_large);
  CHECK(judge_size(f, 8) == size_verdict::too_small);
  f.leases = 99;
  CHECK(judge_size(f, 8) == size_verdict::fits);  // too few leases to say
  f.leases = 1000;
  f.advised_size = 0;
  CHECK(judge_size(f, 100) == size_verdict::fits);  // no load

  test::fake_clock clock;
  sustained_verdict alarm;
  const auto after = std::chrono::duration_cast<std::chrono::steady_clock::duration>(300s);
  CHECK_FALSE(alarm.update(clock.now(), size_verdict::too_small, after));
  clock.advance(299s);
  CHECK_FALSE(alarm.update(clock.now(), size_verdict::too_small, after));
  clock.advance(1s);
  CHECK(alarm.update(clock.now(), size_verdict::too_small, after));
  clock.advance(1s);
  CHECK_FALSE(alarm.update(clock.now(), size_verdict::too_small, after));  // said once
  // A break starts a new stretch.
  CHECK_FALSE(alarm.update(clock.now(), size_verdict::fits, after));
  CHECK_FALSE(alarm.update(clock.now(), size_verdict::too_large, after));
  clock.advance(300s);
  CHECK(alarm.update(clock.now(), size_verdict::too_large, after));
  // Never for fits, never with 0.
  sustained_verdict off;
  CHECK_FALSE(off.update(clock.now(), size_verdict::too_small, {}));
  clock.advance(1000s);
  CHECK_FALSE(off.update(clock.now(), size_verdict::too_small, {}));
}
