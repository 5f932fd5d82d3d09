// Liveness and readiness verdicts (/healthz, /readyz).
// Cases:
//   live while every worker's probe is recent; a worker silent for 5 s makes it 503, named
//   ready when live and serving; draining, a PAUSE of every pool, or a stalled worker make it 503
//   a pool is unreachable only when it once connected, has nothing open and its connects fail
#include <doctest/doctest.h>

#include <array>

#include "pgmux/admin/health.hpp"

using namespace pgmux::app::health;
using namespace std::chrono_literals;

namespace {

const auto t0 = std::chrono::steady_clock::time_point{} + 1h;

inputs at(std::span<const std::chrono::steady_clock::time_point> probes) {
  inputs in;
  in.now = t0;
  in.last_probe = probes;
  return in;
}

}  // namespace

TEST_SUITE("health") {

TEST_CASE("live while every worker's event loop turns") {
  std::array<std::chrono::steady_clock::time_point, 2> probes{t0 - 250ms, t0 - 4999ms};
  auto in = at(probes);
  CHECK(liveness(in).status == 200);
  CHECK(liveness(in).text == "ok\n");
  probes[1] = t0 - 5s;
  const auto v = liveness(in);
  CHECK(v.status == 503);
  CHECK(v.text == "worker 1: event loop stalled for 5000 ms\n");
  CHECK(readiness(in).status == 503);
}

TEST_CASE("ready unless draining, paused or stalled") {
  std::array<std::chrono::steady_clock::time_point, 1> probes{t0};
  auto in = at(probes);
  CHECK(readiness(in).status == 200);
  in.draining = true;
  CHECK(readiness(in).status == 503);
  CHECK(readiness(in).text == "draining: shutting down\n");
  CHECK(liveness(in).status == 200);  // a draining process is still alive
  in.draining = false;
  in.paused = true;
  CHECK(readiness(in).status == 503);
  in.paused = false;
  CHECK(readiness(in).status == 200);
}

TEST_CASE("a pool is unreachable only once it connected, with nothing open and failing connects") {
  std::array<std::chrono::steady_clock::time_point, 1> probes{t0};
  auto in = at(probes);
  in.pools.push_back({"app/app", false, 0, 7});  // never reached: no verdict on it
  in.pools.push_back({"db/u", true, 0, 0});      // everything closed, nothing failed since
  CHECK(readiness(in).status == 200);
  in.pools.push_back({"db/v", true, 1, 3});  // one connection still open
  CHECK(readiness(in).status == 200);
  in.pools.push_back({"db/w", true, 0, 2});
  const auto v = readiness(in);
  CHECK(v.status == 503);
  CHECK(v.text == "pool db/w: its server cannot be reached (2 failed connects in a row)\n");
  CHECK(liveness(in).status == 200);
}

}
