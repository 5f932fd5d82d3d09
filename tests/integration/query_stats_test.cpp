// Per-query statistics (SHOW QUERIES, /metrics) against a real server, driven by libpq and pgbench:
// - simple queries that differ only in constants, case and blanks are one statement; an
//   extended-protocol query and a named prepared statement count under their SQL text, in
//   transaction and in session pooling; errors and the rows of CommandComplete are counted
// - no constant of a client's SQL (a password in a literal, a parameter) is shown anywhere
// - max_entries bounds the table: the least recently used go, and the evictions are counted; a
//   reload to 0 empties it
// - /metrics has aggregate figures only, unless query_stats.metrics is on: then the
//   metrics_top statements of most total time, with queryid and query labels
// - pgbench's statements are each counted once per transaction
// - with clients running at once, a COPY FROM STDIN among them, every statement keeps its own
//   timing: slow ones are never charged to fast ones
#include <doctest/doctest.h>

#include <unistd.h>

#include <map>
#include <thread>

#include "integration/fixtures.hpp"

namespace it {
namespace {

struct query_row {
  std::string query;
  long long calls = 0;
  long long rows = 0;
  long long errors = 0;
  double total_ms = 0;
  double mean_ms = 0;
};

// SHOW QUERIES by normalised text.
std::map<std::string, query_row> show_queries(const pg_conn& console) {
  std::map<std::string, query_row> out;
  const auto r = console.exec("SHOW QUERIES");
  REQUIRE(r.ok());
  auto col = [&](int row, const char* name) { return r.value(row, PQfnumber(r.get(), name)); };
  for (int i = 0; i < r.rows(); ++i) {
    query_row q;
    q.query = col(i, "query");
    q.calls = std::stoll(col(i, "calls"));
    q.rows = std::stoll(col(i, "rows"));
    q.errors = std::stoll(col(i, "errors"));
    q.total_ms = std::stod(col(i, "total_exec_time"));
    q.mean_ms = std::stod(col(i, "mean_exec_time"));
    out[q.query] = q;
  }
  return out;
}

std::string everything(const std::map<std::string, query_row>& rows) {
  std::string all;
  for (const auto& [text, row] : rows) all += text + " | calls " + std::to_string(row.calls) + "\n";
  return all;
}

void run_statements(const pg_conn& c) {
  REQUIRE(c.exec("select 1").ok());
  REQUIRE(c.exec("SELECT   2").ok());
  REQUIRE(c.exec("select 'hunter2-secret' as password").ok());
  REQUIRE(c.exec("select generate_series(1, 5)").ok());
  CHECK(c.exec("select 1/0").sqlstate() == "22012");
  CHECK(c.exec("select 2/0").sqlstate() == "22012");
  // Extended protocol, the unnamed statement, with a parameter the statistics never keep.
  auto p = c.exec_params("select $1::text as k", {"param-secret-42"});
  REQUIRE(p.ok());
  // A named prepared statement, executed three times: counted under its SQL text.
  pg_result prep(PQprepare(c.get(), "qs_named", "select $1::int + 100 as n", 1, nullptr));
  REQUIRE(prep.ok());
  for (const char* v : {"1", "2", "3"}) {
    const char* args[] = {v};
    pg_result r(PQexecPrepared(c.get(), "qs_named", 1, args, nullptr, nullptr, 0));
    REQUIRE(r.ok());
  }
}

void check_statements(const std::map<std::string, query_row>& rows) {
  INFO("SHOW QUERIES:\n" << everything(rows));
  REQUIRE(rows.count("select ?") == 1);
  CHECK(rows.at("select ?").calls == 2);
  CHECK(rows.at("select ?").rows == 2);
  CHECK(rows.at("select ?").errors == 0);
  REQUIRE(rows.count("select generate_series(?, ?)") == 1);
  CHECK(rows.at("select generate_series(?, ?)").rows == 5);
  REQUIRE(rows.count("select ?/?") == 1);
  CHECK(rows.at("select ?/?").calls == 2);
  CHECK(rows.at("select ?/?").errors == 2);
  REQUIRE(rows.count("select ?::text as k") == 1);
  CHECK(rows.at("select ?::text as k").calls == 1);
  REQUIRE(rows.count("select ?::int + ? as n") == 1);
  CHECK(rows.at("select ?::int + ? as n").calls == 3);
  CHECK(rows.at("select ?::int + ? as n").rows == 3);
  // Mean is total over calls.
  const auto& named = rows.at("select ?::int + ? as n");
  CHECK(named.mean_ms == doctest::Approx(named.total_ms / 3).epsilon(0.05));
  const auto all = everything(rows);
  CHECK(all.find("hunter2") == std::string::npos);
  CHECK(all.find("param-secret") == std::string::npos);
}

}  // namespace

TEST_SUITE("query stats") {

TEST_CASE("SHOW QUERIES counts statements by their normalised text in transaction pooling, and metrics stay aggregate") {
  const int mport = free_port();
  proxy_instance proxy(proxy_options()
                           .top_level("\"admin\": {\"users\": [\"pgmux_test\"]}")
                           .top_level(metrics_member(mport)));
  auto c = connect(proxy.conninfo());
  run_statements(c);
  auto console = connect(proxy.conninfo("pgmux", "pgmux_test"));
  check_statements(show_queries(console));
  const auto body = scrape_metrics(mport);
  const std::string labels = "{database=\"pgmux_test\",user=\"pgmux_test\"}";
  // 2 + 1 + 1 + 2 + 1 + 3 statements ran (the Prepare alone runs none).
  CHECK(metric_value(body, "pgmux_query_stats_calls_total" + labels) == 10);
  CHECK(metric_value(body, "pgmux_query_stats_errors_total" + labels) == 2);
  CHECK(metric_value(body, "pgmux_query_stats_entries" + labels) >= 5);
  CHECK(body.find("pgmux_statement_calls_total") == std::string::npos);
  CHECK(body.find("hunter2") == std::string::npos);
}

TEST_CASE("SHOW QUERIES counts prepared statements under their SQL text in session pooling too") {
  proxy_instance proxy(proxy_options().pool("mode", "session").top_level("\"admin\": {\"users\": [\"pgmux_test\"]}"));
  auto c = connect(proxy.conninfo());
  run_statements(c);
  auto console = connect(proxy.conninfo("pgmux", "pgmux_test"));
  check_statements(show_queries(console));
}

TEST_CASE("max_entries bounds the table and the least recently used statements make room") {
  const int mport = free_port();
  proxy_instance proxy(proxy_options()
                           .pool("query_stats", "{\"max_entries\": 3}")
                           .top_level("\"admin\": {\"users\": [\"pgmux_test\"]}")
                           .top_level(metrics_member(mport)));
  auto c = connect(proxy.conninfo());
  for (int i = 0; i < 10; ++i) REQUIRE(c.exec("select " + std::to_string(i) + " as c" + std::to_string(i)).ok());
  REQUIRE(c.exec("select 1 as c7").ok());  // c7 is used again: the newest
  auto console = connect(proxy.conninfo("pgmux", "pgmux_test"));
  const auto rows = show_queries(console);
  INFO("SHOW QUERIES:\n" << everything(rows));
  CHECK(rows.size() == 3);
  CHECK(rows.count("select ? as c7") == 1);
  CHECK(rows.count("select ? as c9") == 1);
  CHECK(rows.count("select ? as c8") == 1);
  const auto body = scrape_metrics(mport);
  const std::string labels = "{database=\"pgmux_test\",user=\"pgmux_test\"}";
  CHECK(metric_value(body, "pgmux_query_stats_evictions_total" + labels) == 7);
  CHECK(metric_value(body, "pgmux_query_stats_calls_total" + labels) == 11);

  // A reload to max_entries 0 empties the table at once; the totals stay.
  proxy.edit_config("{\"max_entries\": 3}", "{\"max_entries\": 0}");
  REQUIRE(console.exec("RELOAD").ok());
  CHECK(wait_until([&] { return console.exec("SHOW QUERIES").rows() == 0; }, 5s));
  const auto after = scrape_metrics(mport);
  CHECK(metric_value(after, "pgmux_query_stats_entries" + labels) == 0);
  CHECK(metric_value(after, "pgmux_query_stats_calls_total" + labels) == 11);
}

TEST_CASE("query_stats.metrics exports the top statements with their queryid and pgbench statements count once per transaction") {
  const int mport = free_port();
  proxy_instance proxy(proxy_options()
                           .pool("query_stats", "{\"metrics\": true, \"metrics_top\": 2}")
                           .top_level("\"admin\": {\"users\": [\"pgmux_test\"]}")
                           .top_level(metrics_member(mport)));
  const std::string script = "/tmp/pgmux-qstats-" + std::to_string(::getpid()) + ".sql";
  {
    std::FILE* f = std::fopen(script.c_str(), "w");
    REQUIRE(f);
    std::fputs("\\set v random(1, 1000)\nselect :v + 1 as a;\nselect pg_sleep(0.001), :v as b;\n", f);
    std::fclose(f);
  }
  const auto bench = run("pgbench -n -c 4 -j 2 -t 50 -M prepared -f " + script + " -h 127.0.0.1 -p " +
                             std::to_string(proxy.port()) + " -U pgmux_test pgmux_test",
                         120);
  std::remove(script.c_str());
  INFO("pgbench: " << bench.output);
  REQUIRE(bench.code == 0);
  auto console = connect(proxy.conninfo("pgmux", "pgmux_test"));
  auto c = connect(proxy.conninfo());
  REQUIRE(c.exec("select 42 as rare").ok());
  const auto rows = show_queries(console);
  INFO("SHOW QUERIES:\n" << everything(rows));
  REQUIRE(rows.count("select ? + ? as a") == 1);
  CHECK(rows.at("select ? + ? as a").calls == 200);
  REQUIRE(rows.count("select pg_sleep(?), ? as b") == 1);
  CHECK(rows.at("select pg_sleep(?), ? as b").calls == 200);
  CHECK(rows.at("select pg_sleep(?), ? as b").mean_ms >= 1.0);
  const auto body = scrape_metrics(mport);
  INFO("metrics:\n" << body);
  CHECK(body.find("query=\"select pg_sleep(?), ? as b\"") != std::string::npos);
  // Two statements at most (metrics_top), of most total time: the rare one is not exported.
  CHECK(body.find("as rare") == std::string::npos);
  std::size_t series = 0;
  for (auto at = body.find("pgmux_statement_calls_total{"); at != std::string::npos;
       at = body.find("pgmux_statement_calls_total{", at + 1))
    ++series;
  CHECK(series == 2);
}

TEST_CASE("concurrent clients and a COPY keep each statement's own timing") {
  proxy_instance proxy(proxy_options().top_level("\"admin\": {\"users\": [\"pgmux_test\"]}"));
  auto setup = connect(proxy.conninfo());
  REQUIRE(setup.exec("create table if not exists qs_copy (n int)").ok());
  REQUIRE(setup.exec("truncate qs_copy").ok());
  std::thread slow([&] {
    auto c = connect(proxy.conninfo());
    for (int i = 0; i < 20; ++i) CHECK(c.exec("select pg_sleep(0.02) as slow").ok());
  });
  {
    auto c = connect(proxy.conninfo());
    for (int round = 0; round < 10; ++round) {
      pg_result started(PQexec(c.get(), "copy qs_copy from stdin"));
      REQUIRE(started.status() == PGRES_COPY_IN);
      REQUIRE(PQputCopyData(c.get(), "1\n2\n3\n", 6) == 1);
      REQUIRE(PQputCopyEnd(c.get(), nullptr) == 1);
      pg_result done(PQgetResult(c.get()));
      REQUIRE(done.ok());
      while (PGresult* more = PQgetResult(c.get())) PQclear(more);
      for (int i = 0; i < 5; ++i) CHECK(c.exec("select 7 as fast").ok());
    }
  }
  slow.join();
  auto console = connect(proxy.conninfo("pgmux", "pgmux_test"));
  const auto rows = show_queries(console);
  INFO("SHOW QUERIES:\n" << everything(rows));
  REQUIRE(rows.count("select pg_sleep(?) as slow") == 1);
  REQUIRE(rows.count("select ? as fast") == 1);
  REQUIRE(rows.count("copy qs_copy from stdin") == 1);
  const auto& slow_row = rows.at("select pg_sleep(?) as slow");
  const auto& fast_row = rows.at("select ? as fast");
  const auto& copy_row = rows.at("copy qs_copy from stdin");
  CHECK(slow_row.calls == 20);
  CHECK(slow_row.mean_ms >= 19.0);
  CHECK(fast_row.calls == 50);
  CHECK(fast_row.rows == 50);
  CHECK(fast_row.mean_ms < 19.0);
  CHECK(copy_row.calls == 10);
  CHECK(copy_row.rows == 30);
  CHECK(copy_row.errors == 0);
}

}  // TEST_SUITE

}  // namespace it
