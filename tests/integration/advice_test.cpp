// Pool-size advice against a synthetic load of known rate and duration:
// - pgbench at 80 transactions/s (Poisson arrivals, -R) of pg_sleep(0.05) each: SHOW ADVICE and
//   /metrics give an offered load within 20% of 80 x 0.05 = 4 connections, and an advised size
//   within 20% of the Erlang C size for that load (9), computed here by hand
// - max_size 40 stays more than twice the advice for advice_log_after (2 s): one log line says so
#include <doctest/doctest.h>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <thread>

#include "integration/fixtures.hpp"

namespace it {
namespace {

// Erlang C, written out independently of pgmux: the chance an arrival waits with c servers
// and offered load a, and the fewest servers keeping it at most p.
double erlang_c(int c, double a) {
  double term = 1, sum = 1;  // sum of a^k / k! for k < c
  for (int k = 1; k < c; ++k) {
    term *= a / k;
    sum += term;
  }
  const double last = term * a / c * c / (c - a);  // a^c / c! * c / (c - a)
  return last / (sum + last);
}

int servers_for(double a, double p) {
  int c = static_cast<int>(std::floor(a)) + 1;
  while (erlang_c(c, a) > p) ++c;
  return c;
}

}  // namespace

TEST_SUITE("advice") {

TEST_CASE("SHOW ADVICE and the advice metrics follow a load of known rate and duration, and a far max_size is logged") {
  constexpr double rate = 80, hold = 0.05;  // transactions per second, seconds each
  const double offered = rate * hold;       // 4 connections busy on average
  const int advised = servers_for(offered, 0.05);
  REQUIRE(advised == 9);
  const int mport = free_port();
  proxy_instance proxy(proxy_options()
                           .pool("max_size", "40")
                           .pool("advice_log_after", "2s")
                           .top_level("\"admin\": {\"users\": [\"pgmux_test\"]}")
                           .top_level(metrics_member(mport)));
  const std::string script = "/tmp/pgmux-advice-" + std::to_string(::getpid()) + ".sql";
  {
    std::FILE* f = std::fopen(script.c_str(), "w");
    REQUIRE(f);
    std::fputs("select pg_sleep(0.05);\n", f);
    std::fclose(f);
  }
  run_result bench;
  std::thread load([&] {
    bench = run("pgbench -n -c 12 -j 2 -R " + std::to_string(int(rate)) + " -T 16 -f " + script +
                    " -h 127.0.0.1 -p " + std::to_string(proxy.port()) + " -U pgmux_test pgmux_test",
                90);
  });
  auto console = connect(proxy.conninfo("pgmux", "pgmux_test"));
  // Read once the window holds 8 s of the load, while it runs.
  pg_result r;
  const bool filled = wait_until(
      [&] {
        r = console.exec("SHOW ADVICE");
        return r.ok() && r.rows() == 1 && std::stod(r.value(0, PQfnumber(r.get(), "window_s"))) >= 8 &&
               std::stoi(r.value(0, PQfnumber(r.get(), "advised_size"))) > 0;
      },
      20s, 100ms);
  const auto body = scrape_metrics(mport);
  load.join();
  std::remove(script.c_str());
  INFO("pgbench: " << bench.output);
  REQUIRE(filled);
  auto col = [&](const char* name) { return r.value(0, PQfnumber(r.get(), name)); };
  MESSAGE("SHOW ADVICE: max_size " << col("max_size") << ", advised " << col("advised_size") << ", offered load "
                                   << col("offered_load") << ", " << col("arrival_rate") << "/s held "
                                   << col("avg_hold_us") << " us, peak " << col("peak_demand") << ", window "
                                   << col("window_s") << " s; by hand: offered " << offered << ", advised " << advised);
  CHECK(col("max_size") == "40");
  CHECK(std::stod(col("offered_load")) == doctest::Approx(offered).epsilon(0.2));
  CHECK(std::stod(col("arrival_rate")) == doctest::Approx(rate).epsilon(0.2));
  CHECK(std::stod(col("avg_hold_us")) == doctest::Approx(hold * 1e6).epsilon(0.2));
  CHECK(std::stoi(col("advised_size")) == doctest::Approx(advised).epsilon(0.2));
  CHECK(std::stoi(col("peak_demand")) <= 12);
  const std::string labels = "{database=\"pgmux_test\",user=\"pgmux_test\"}";
  CHECK(metric_value(body, "pgmux_pool_advised_size" + labels) == doctest::Approx(advised).epsilon(0.2));
  CHECK(metric_value(body, "pgmux_pool_offered_load" + labels) == doctest::Approx(offered).epsilon(0.2));
  // 40 is more than twice what the load needs, for longer than advice_log_after.
  CHECK(wait_until([&] { return proxy.log().find("max_size 40 has been too large for 2s") != std::string::npos; }, 10s));
}

}  // TEST_SUITE

}  // namespace it
