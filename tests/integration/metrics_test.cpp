// The Prometheus endpoint, scraped over real HTTP, checked for values rather than names:
// - pgmux_pool_used follows transactions held open; pgmux_pool_waiting_clients counts a waiter
// - pgmux_transactions_total rises by exactly the number of transactions run
// - pgmux_command_timeouts_total counts a cancelled statement; build_info is there
// - client states, CancelRequests, config reloads by result and server disconnects by reason
// - queries, their durations and bytes per direction rise by what a known workload sends;
//   client errors are counted by reason; event-loop lag is reported per worker
// - every metric deploy/'s alert rules and Grafana dashboard use is exported
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <signal.h>

#include <regex>
#include <thread>

#include "integration/fixtures.hpp"

namespace it {
namespace {

std::string scrape(int port) { return scrape_metrics(port); }
double value_of(const std::string& body, const std::string& sample) { return metric_value(body, sample); }

const std::string pool_labels = "{database=\"pgmux_test\",user=\"pgmux_test\"}";

}  // namespace

TEST_SUITE("metrics") {

TEST_CASE("pool gauges follow held transactions and waiting clients") {
  const int mport = free_port();
  proxy_instance proxy(proxy_options()
                           .pool("min_size", "0")
                           .pool("max_size", "2")
                           .top_level("\"metrics\": {\"listen\": \"127.0.0.1:" + std::to_string(mport) + "\"}"));
  auto a = connect(proxy.conninfo());
  auto b = connect(proxy.conninfo());
  CHECK(value_of(scrape(mport), "pgmux_pool_used" + pool_labels) == 0);
  exec_ok(a, "begin");
  exec_ok(a, "select 1");
  exec_ok(b, "begin");
  exec_ok(b, "select 1");
  auto body = scrape(mport);
  CHECK(value_of(body, "pgmux_pool_used" + pool_labels) == 2);
  CHECK(value_of(body, "pgmux_pool_size" + pool_labels) == 2);
  CHECK(value_of(body, "pgmux_pool_max_size" + pool_labels) == 2);

  // A third client has to wait for one of the two.
  std::thread waiter([&] {
    auto c = connect(proxy.conninfo());
    CHECK(scalar(c, "select 'served'") == "served");
  });
  CHECK(wait_until([&] { return value_of(scrape(mport), "pgmux_pool_waiting_clients" + pool_labels) == 1; }, 5s));
  CHECK(value_of(scrape(mport), "pgmux_pool_max_wait_seconds" + pool_labels) > 0);
  exec_ok(a, "commit");
  waiter.join();
  exec_ok(b, "commit");
  body = scrape(mport);
  CHECK(value_of(body, "pgmux_pool_used" + pool_labels) == 0);
  CHECK(value_of(body, "pgmux_pool_waiting_clients" + pool_labels) == 0);
  CHECK(value_of(body, "pgmux_pool_wait_seconds_count" + pool_labels) >= 3);
  CHECK(body.find("pgmux_build_info{version=\"") != std::string::npos);
}

TEST_CASE("counters rise by the expected amounts") {
  const int mport = free_port();
  proxy_instance proxy(proxy_options()
                           .pool("command_timeout", "300ms")
                           .top_level("\"metrics\": {\"listen\": \"127.0.0.1:" + std::to_string(mport) + "\"}"));
  auto c = connect(proxy.conninfo());
  CHECK(scalar(c, "select 1") == "1");
  // A server connection goes back just after the client has its answer: let that happen.
  std::this_thread::sleep_for(300ms);
  const auto before = scrape(mport);
  const double tx0 = value_of(before, "pgmux_transactions_total" + pool_labels);
  const double timeouts0 = value_of(before, "pgmux_command_timeouts_total" + pool_labels);
  REQUIRE(tx0 >= 1);
  for (int i = 0; i < 20; ++i) CHECK(scalar(c, "select " + std::to_string(i)) == std::to_string(i));
  exec_ok(c, "begin; select 1; select 2; commit");
  auto r = c.exec("select pg_sleep(3)");
  CHECK(r.sqlstate() == "57014");
  // The last server connection is given back just after the client has its answer.
  wait_until([&] { return value_of(scrape(mport), "pgmux_transactions_total" + pool_labels) >= tx0 + 22; }, 3s);
  const auto after = scrape(mport);
  CHECK(value_of(after, "pgmux_transactions_total" + pool_labels) == tx0 + 22);
  CHECK(value_of(after, "pgmux_command_timeouts_total" + pool_labels) == timeouts0 + 1);
  CHECK(value_of(after, "pgmux_client_connections{state=\"idle\"}") >= 1);
  CHECK(value_of(after, "pgmux_client_connections_total") >= 1);
}


TEST_CASE("client states, cancel requests, reloads and disconnect reasons are counted") {
  const int mport = free_port();
  proxy_instance proxy(proxy_options()
                           .pool("min_size", "0")
                           .top_level("\"metrics\": {\"listen\": \"127.0.0.1:" + std::to_string(mport) + "\"}"));
  auto c = connect(proxy.conninfo());
  auto idle = connect(proxy.conninfo());
  exec_ok(c, "begin");
  exec_ok(c, "select 1");
  auto body = scrape(mport);
  CHECK(value_of(body, "pgmux_client_connections{state=\"active\"}") == 1);
  CHECK(value_of(body, "pgmux_client_connections{state=\"idle\"}") == 1);
  exec_ok(c, "commit");

  // A CancelRequest through pgmux.
  std::thread canceller([&] {
    std::this_thread::sleep_for(300ms);
    char err[256];
    PGcancel* cancel = PQgetCancel(c.get());
    PQcancel(cancel, err, sizeof err);
    PQfreeCancel(cancel);
  });
  auto r = c.exec("select pg_sleep(5)");
  canceller.join();
  CHECK(r.sqlstate() == "57014");
  CHECK(value_of(scrape(mport), "pgmux_cancel_requests_total") == 1);

  // One invalid and one valid reload; the valid one changes the DSN's application_name, so
  // the idle server connections close for "reload".
  auto text = proxy.config_text();
  auto broken = text;
  broken.replace(broken.find("\"workers\""), 9, "\"wrokers\"");
  proxy.rewrite_config(broken);
  proxy.send_signal(SIGHUP);
  CHECK(wait_until([&] { return value_of(scrape(mport), "pgmux_config_reloads_total{result=\"error\"}") == 1; }, 3s));
  const auto at = text.find("dbname=pgmux_test");
  REQUIRE(at != std::string::npos);
  text.insert(at, "application_name=it_reloaded ");
  proxy.rewrite_config(text);
  proxy.send_signal(SIGHUP);
  CHECK(wait_until([&] { return value_of(scrape(mport), "pgmux_config_reloads_total{result=\"success\"}") == 1; }, 3s));
  // Closed at once when idle, or when given back if the reload found it still lent.
  const std::string reload_closes =
      "pgmux_server_disconnects_total{database=\"pgmux_test\",user=\"pgmux_test\",reason=\"reload\"}";
  CHECK(wait_until([&] { return value_of(scrape(mport), reload_closes) >= 1; }, 3s));
  body = scrape(mport);
  CHECK(value_of(body, "pgmux_config_last_reload_success_timestamp_seconds") > 1.7e9);
  CHECK(scalar(idle, "select application_name from pg_stat_activity where pid = pg_backend_pid()") == "it_reloaded");
}

TEST_CASE("queries, bytes, client errors and event-loop lag are reported") {
  const int mport = free_port();
  proxy_instance proxy(proxy_options().workers(2).top_level("\"metrics\": {\"listen\": \"127.0.0.1:" +
                                                            std::to_string(mport) + "\"}"));
  auto c = connect(proxy.conninfo());
  CHECK(scalar(c, "select 1") == "1");
  const std::string queries = "pgmux_queries_total" + pool_labels;
  const std::string durations = "pgmux_query_duration_seconds_count" + pool_labels;
  const std::string to_server =
      "pgmux_bytes_total{database=\"pgmux_test\",user=\"pgmux_test\",direction=\"client_to_server\"}";
  const std::string to_client =
      "pgmux_bytes_total{database=\"pgmux_test\",user=\"pgmux_test\",direction=\"server_to_client\"}";
  REQUIRE(wait_until([&] { return value_of(scrape(mport), queries) >= 1; }, 3s));
  const auto before = scrape(mport);
  const double q0 = value_of(before, queries), in0 = value_of(before, to_server), out0 = value_of(before, to_client);

  // Ten simple queries of known size, then one extended-protocol request (one Sync).
  const std::string sql = "select repeat('x', 5000)";
  for (int i = 0; i < 10; ++i) CHECK(scalar(c, sql).size() == 5000);
  const char* param = "42";
  pg_result extended(PQexecParams(c.get(), "select $1::int", 1, nullptr, &param, nullptr, nullptr, 0));
  CHECK(extended.value() == "42");
  CHECK(wait_until([&] { return value_of(scrape(mport), queries) == q0 + 11; }, 3s));
  const auto after = scrape(mport);
  CHECK(value_of(after, queries) == q0 + 11);
  CHECK(value_of(after, durations) == value_of(after, queries));
  // Each Query message is a tag, a length and the text with its NUL.
  CHECK(value_of(after, to_server) >= in0 + 10 * (5 + sql.size() + 1));
  CHECK(value_of(after, to_client) >= out0 + 10 * 5000);
  CHECK(value_of(after, to_client) < out0 + 10 * 5000 + 4000);  // rows, not more

  // Client errors by reason: an unknown database, a protocol violation.
  pg_conn unknown(proxy.conninfo("no_such_database"));
  CHECK_FALSE(unknown.ok());
  {
    raw_socket raw(proxy.port());
    REQUIRE(raw.startup());
    raw.send(wire::msg('?', "garbage"));
    CHECK(raw.read_until_closed(3s).closed);
  }
  const std::string unknown_db = "pgmux_client_errors_total{reason=\"unknown_database\"}";
  const std::string protocol = "pgmux_client_errors_total{reason=\"protocol\"}";
  CHECK(wait_until([&] { return value_of(scrape(mport), protocol) == 1; }, 3s));
  const auto errors = scrape(mport);
  CHECK(value_of(errors, unknown_db) == 1);
  CHECK(value_of(errors, protocol) == 1);
  CHECK(value_of(errors, "pgmux_client_errors_total{reason=\"auth\"}") == 0);

  // One lag gauge per worker, small on an idle proxy.
  CHECK(wait_until([&] { return value_of(scrape(mport), "pgmux_event_loop_lag_seconds{worker=\"1\"}") >= 0; }, 3s));
  for (const char* w : {"0", "1"}) {
    const double lag = value_of(scrape(mport), std::string("pgmux_event_loop_lag_seconds{worker=\"") + w + "\"}");
    CHECK(lag >= 0);
    CHECK(lag < 0.5);
  }
}

TEST_CASE("every metric the alert rules and the dashboard use is exported") {
  const int mport = free_port();
  proxy_instance proxy(proxy_options().top_level("\"metrics\": {\"listen\": \"127.0.0.1:" + std::to_string(mport) + "\"}"));
  auto c = connect(proxy.conninfo());
  CHECK(scalar(c, "select 1") == "1");
  const auto body = scrape(mport);
  const std::regex name("pgmux_[a-z_]+");
  int checked = 0;
  for (const char* file : {"/deploy/pgmux-alerts.yml", "/deploy/grafana-dashboard.json"}) {
    const auto text = read_file(std::string(PGMUX_SOURCE_DIR) + file);
    REQUIRE_MESSAGE(!text.empty(), file);
    for (auto it = std::sregex_iterator(text.begin(), text.end(), name); it != std::sregex_iterator(); ++it) {
      const auto metric = it->str();
      ++checked;
      CHECK_MESSAGE(body.find("\n" + metric) != std::string::npos, file << " uses " << metric << ", which pgmux does not export");
    }
  }
  CHECK(checked > 10);
}

}  // TEST_SUITE
}  // namespace it
