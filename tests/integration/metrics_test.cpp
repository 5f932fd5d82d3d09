// The Prometheus endpoint, scraped over real HTTP, checked for values rather than names:
// - pgmux_pool_used follows transactions held open; pgmux_pool_waiting_clients counts a waiter
// - pgmux_transactions_total rises by exactly the number of transactions run
// - pgmux_command_timeouts_total counts a cancelled statement; build_info is there
// - client states, CancelRequests, config reloads by result and server disconnects by reason
// - queries, their durations and bytes per direction rise by what a known workload sends;
//   client errors are counted by reason; event-loop lag is reported per worker
// - every metric deploy/'s alert rules and Grafana dashboard use is exported
// - 50 idle connections and slow-loris clients do not delay scrapes (each under 1 s, repeatedly);
//   the slow ones are closed at the head deadline
// - a head over the size bound gets 431, garbage 400; connections past the cap are closed at once
// - keep-alive with pipelined requests, HEAD, 404, 405 and HTTP/1.0 on one connection
// - every line of a real scrape is valid text format 0.0.4 (checked by a small parser here)
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <signal.h>

#include <cmath>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include "integration/fixtures.hpp"

namespace it {
namespace {

std::string scrape(int port) { return scrape_metrics(port); }
double value_of(const std::string& body, const std::string& sample) { return metric_value(body, sample); }

const std::string pool_labels = "{database=\"pgmux_test\",user=\"pgmux_test\"}";


struct http_response {
  int status = 0;
  std::string version;
  std::map<std::string, std::string> headers;  // names lowercased
  std::string body;
};

// Cuts the responses out of what one connection received; `head_only[i]` when the i-th
// answered a HEAD (its Content-Length announces a body that is not sent).
std::vector<http_response> split_responses(const std::string& data, const std::vector<bool>& head_only) {
  std::vector<http_response> out;
  std::size_t at = 0;
  while (at < data.size()) {
    const auto end = data.find("\r\n\r\n", at);
    if (end == std::string::npos) break;
    http_response r;
    std::istringstream head(data.substr(at, end - at));
    std::string line;
    std::getline(head, line);
    r.version = line.substr(0, 8);
    r.status = std::atoi(line.substr(9, 3).c_str());
    while (std::getline(head, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      const auto colon = line.find(':');
      if (colon == std::string::npos) continue;
      auto name = line.substr(0, colon);
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      r.headers[name] = line.substr(line.find_first_not_of(' ', colon + 1));
    }
    at = end + 4;
    const std::size_t length = r.headers.count("content-length") ? std::stoul(r.headers["content-length"]) : 0;
    if (out.size() >= head_only.size() || !head_only[out.size()]) {
      r.body = data.substr(at, length);
      at += length;
    }
    out.push_back(std::move(r));
  }
  return out;
}

// GET /metrics with HTTP/1.0 on a raw socket: the whole response, or none if it does not come.
std::optional<http_response> try_scrape(int port, std::chrono::milliseconds timeout) {
  raw_socket s(port);
  if (!s.send("GET /metrics HTTP/1.0\r\n\r\n")) return std::nullopt;
  const auto got = s.read_until_closed(timeout);
  auto responses = split_responses(got.data, {false});
  if (!got.closed || responses.size() != 1) return std::nullopt;
  return responses.front();
}

// Prometheus text format 0.0.4, checked line by line: what a scraper would reject.
bool valid_float(const std::string& v) {
  static const std::regex number("[-+]?([0-9]+(\\.[0-9]*)?|\\.[0-9]+)([eE][-+]?[0-9]+)?");
  return v == "NaN" || v == "+Inf" || v == "-Inf" || std::regex_match(v, number);
}

double parse_float(const std::string& v) {
  if (v == "+Inf") return INFINITY;
  if (v == "-Inf") return -INFINITY;
  if (v == "NaN") return NAN;
  return std::stod(v);
}

std::vector<std::string> text_format_errors(const std::string& body) {
  std::vector<std::string> errors;
  auto fail = [&](std::size_t n, const std::string& line, const std::string& why) {
    errors.push_back("line " + std::to_string(n) + ": " + why + ": " + line.substr(0, 160));
  };
  if (body.empty() || body.back() != '\n') errors.push_back("the body does not end with a newline");
  static const std::regex metric_name("[a-zA-Z_:][a-zA-Z0-9_:]*");
  static const std::regex label_name("[a-zA-Z_][a-zA-Z0-9_]*");
  std::map<std::string, std::string> types;
  std::set<std::string> helps, finished;
  std::string current;  // the family whose samples are being read
  struct histogram_series {
    std::vector<std::pair<double, double>> buckets;  // le, count
    bool saw_inf = false;
    double inf_count = -1, count = -1;
    bool sum = false;
  };
  std::map<std::string, histogram_series> histograms;  // family + labels without le
  std::istringstream in(body);
  std::string line;
  std::size_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty()) {
      fail(n, line, "empty line");
      continue;
    }
    if (line[0] == '#') {
      std::istringstream words(line);
      std::string hash, keyword, name;
      words >> hash >> keyword >> name;
      if (hash != "#") continue;
      if (keyword != "HELP" && keyword != "TYPE") continue;  // any other comment is allowed
      if (!std::regex_match(name, metric_name)) fail(n, line, "bad metric name");
      if (keyword == "HELP") {
        if (!helps.insert(name).second) fail(n, line, "second HELP");
        const auto text = line.substr(std::min(line.size(), 7 + name.size() + 1));
        for (std::size_t i = 0; i < text.size(); ++i)
          if (text[i] == '\\' && (i + 1 == text.size() || (text[++i] != '\\' && text[i] != 'n')))
            fail(n, line, "bad escape in HELP");
        continue;
      }
      std::string type, extra;
      words >> type >> extra;
      if (!extra.empty() || !std::set<std::string>{"counter", "gauge", "histogram", "summary", "untyped"}.count(type))
        fail(n, line, "bad TYPE");
      if (types.count(name)) fail(n, line, "second TYPE");
      if (finished.count(name) || name == current) fail(n, line, "TYPE after the family's samples");
      types[name] = type;
      continue;
    }
    // name{label="value",...} value [timestamp]
    std::size_t i = line.find_first_of("{ ");
    const auto name = line.substr(0, i);
    if (!std::regex_match(name, metric_name)) {
      fail(n, line, "bad metric name");
      continue;
    }
    std::vector<std::pair<std::string, std::string>> labels;
    bool ok = true;
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (ok && i < line.size() && line[i] != '}') {
        const auto eq = line.find('=', i);
        if (eq == std::string::npos || !std::regex_match(line.substr(i, eq - i), label_name) || eq + 1 >= line.size() ||
            line[eq + 1] != '"') {
          ok = false;
          break;
        }
        std::string value;
        std::size_t j = eq + 2;
        for (; j < line.size() && line[j] != '"'; ++j) {
          if (line[j] != '\\') {
            value += line[j];
            continue;
          }
          if (++j >= line.size() || (line[j] != '\\' && line[j] != '"' && line[j] != 'n')) {
            ok = false;
            break;
          }
          value += line[j] == 'n' ? '\n' : line[j];
        }
        if (!ok || j >= line.size()) {
          ok = false;
          break;
        }
        labels.emplace_back(line.substr(i, eq - i), value);
        i = j + 1;
        if (i < line.size() && line[i] == ',') ++i;
      }
      if (!ok || i >= line.size()) {
        fail(n, line, "bad label set");
        continue;
      }
      ++i;  // '}'
    }
    if (i >= line.size() || line[i] != ' ') {
      fail(n, line, "no single space before the value");
      continue;
    }
    const auto rest = line.substr(i + 1);
    const auto space = rest.find(' ');
    const auto value = rest.substr(0, space);
    if (!valid_float(value)) fail(n, line, "bad value spelling");
    if (space != std::string::npos && !std::regex_match(rest.substr(space + 1), std::regex("-?[0-9]+")))
      fail(n, line, "bad timestamp");

    // Which family the sample belongs to; families are contiguous and typed first.
    std::string family = name, suffix;
    if (!types.count(name)) {
      for (const char* s : {"_bucket", "_sum", "_count"}) {
        const std::string sfx = s;
        if (name.size() > sfx.size() && name.compare(name.size() - sfx.size(), sfx.size(), sfx) == 0 &&
            types.count(name.substr(0, name.size() - sfx.size()))) {
          family = name.substr(0, name.size() - sfx.size());
          suffix = sfx;
        }
      }
    }
    if (!types.count(family)) fail(n, line, "sample without a TYPE line before it");
    if (family != current) {
      if (finished.count(family)) fail(n, line, "family's samples are not contiguous");
      if (!current.empty()) finished.insert(current);
      current = family;
    }
    if (types[family] != "histogram") {
      if (!suffix.empty() && types[family] != "summary") fail(n, line, "suffix on a non-histogram");
      continue;
    }
    std::string key = family + "{";
    std::string le;
    for (const auto& [k, v] : labels) {
      if (k == "le") le = v;
      else key += k + "=" + v + ",";
    }
    auto& h = histograms[key];
    if (suffix == "_bucket") {
      if (le.empty() || !valid_float(le)) {
        fail(n, line, "bucket without a valid le");
        continue;
      }
      if (labels.back().first != "le") fail(n, line, "le is not the last label");
      if (h.saw_inf) fail(n, line, "bucket after +Inf");
      const double bound = parse_float(le), count = parse_float(value);
      if (!h.buckets.empty() && !(bound > h.buckets.back().first)) fail(n, line, "le not ascending");
      if (!h.buckets.empty() && count < h.buckets.back().second) fail(n, line, "bucket counts not cumulative");
      h.buckets.emplace_back(bound, count);
      if (le == "+Inf") {
        h.saw_inf = true;
        h.inf_count = count;
      }
    } else if (suffix == "_sum") {
      h.sum = true;
    } else if (suffix == "_count") {
      h.count = parse_float(value);
    } else {
      fail(n, line, "histogram sample without _bucket, _sum or _count");
    }
  }
  for (const auto& [key, h] : histograms) {
    if (!h.saw_inf) errors.push_back(key + ": no +Inf bucket");
    if (!h.sum) errors.push_back(key + ": no _sum");
    if (h.count != h.inf_count) errors.push_back(key + ": _count differs from the +Inf bucket");
  }
  return errors;
}

}  // namespace

TEST_SUITE("metrics") {

TEST_CASE("pool gauges follow held transactions and waiting clients") {
  const int mport = free_port();
  proxy_instance proxy(proxy_options()
                           .pool("min_size", "0")
                           .pool("max_size", "2")
                           .top_level(metrics_member(mport)));
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
  // The client has its ReadyForQuery a moment before the connection is back in the pool (on
  // another worker's thread than the scrape's, with 2 workers).
  CHECK(wait_until([&] { return value_of(scrape(mport), "pgmux_pool_used" + pool_labels) == 0; }, 5s));
  body = scrape(mport);
  CHECK(value_of(body, "pgmux_pool_waiting_clients" + pool_labels) == 0);
  CHECK(value_of(body, "pgmux_pool_wait_seconds_count" + pool_labels) >= 3);
  CHECK(body.find("pgmux_build_info{version=\"") != std::string::npos);
}

TEST_CASE("counters rise by the expected amounts") {
  const int mport = free_port();
  proxy_instance proxy(proxy_options()
                           .pool("command_timeout", "300ms")
                           .top_level(metrics_member(mport)));
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
                           .top_level(metrics_member(mport)));
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
  proxy_instance proxy(proxy_options().workers(2).top_level(metrics_member(mport)));
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
  proxy_instance proxy(proxy_options().top_level(metrics_member(mport)));
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

TEST_CASE("idle and slow-loris connections do not delay scrapes, and the slow ones meet the head deadline") {
  const int mport = free_port();
  proxy_instance proxy(proxy_options().top_level(metrics_member(mport)));
  std::vector<std::unique_ptr<raw_socket>> idle;
  for (int i = 0; i < 50; ++i) idle.push_back(std::make_unique<raw_socket>(mport));
  struct slow_client {
    std::unique_ptr<raw_socket> socket;
    clock::time_point opened;
    double closed_after = -1;  // seconds, once the endpoint closed it
  };
  std::vector<slow_client> slow;
  for (int i = 0; i < 3; ++i) {
    slow.push_back({std::make_unique<raw_socket>(mport), clock::now()});
    REQUIRE(slow.back().socket->send("GET /metr"));
  }
  // Scrape over and over while the slow clients trickle a byte each round, until they are all
  // closed (the head deadline is 5 s) or 9 s have passed.
  int scrapes = 0;
  double slowest = 0;
  const auto start = clock::now();
  auto all_closed = [&] {
    for (const auto& c : slow)
      if (c.closed_after < 0) return false;
    return true;
  };
  while (!all_closed() && seconds_since(start) < 9) {
    const auto t = clock::now();
    auto r = try_scrape(mport, 3000ms);
    const double took = seconds_since(t);
    REQUIRE_MESSAGE(r, "no scrape answer within 3 s");
    CHECK(r->status == 200);
    CHECK(r->body.find("\npgmux_build_info{") != std::string::npos);
    slowest = std::max(slowest, took);
    ++scrapes;
    for (auto& c : slow) {
      if (c.closed_after >= 0) continue;
      c.socket->send("i");
      if (c.socket->read_until_closed(100ms).closed) c.closed_after = seconds_since(c.opened);
    }
  }
  MESSAGE("scrapes: " << scrapes << ", slowest " << slowest << " s");
  CHECK(scrapes >= 10);
  CHECK(slowest < 1.0);
  for (const auto& c : slow) {
    CHECK(c.closed_after >= 4.5);  // not before the head deadline
    CHECK(c.closed_after < 7.0);
  }
  // The idle ones never sent a request: closed at the same deadline.
  CHECK(idle.front()->read_until_closed(3000ms).closed);
  CHECK(idle.back()->read_until_closed(3000ms).closed);
}

TEST_CASE("oversized and malformed requests get an error, and connections past the cap are closed at once") {
  const int mport = free_port();
  proxy_instance proxy(proxy_options().top_level(metrics_member(mport)));
  {
    raw_socket s(mport);
    REQUIRE(s.send("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + std::string(10000, 'a') + "\r\n\r\n"));
    const auto got = s.read_until_closed(3000ms);
    CHECK(got.closed);
    CHECK(got.data.rfind("HTTP/1.1 431 ", 0) == 0);
  }
  {
    raw_socket s(mport);
    REQUIRE(s.send("GET /" + std::string(9000, 'm')));  // no line end at all
    const auto got = s.read_until_closed(3000ms);
    CHECK(got.closed);
    CHECK(got.data.rfind("HTTP/1.1 431 ", 0) == 0);
  }
  {
    raw_socket s(mport);
    REQUIRE(s.send(wire::startup_message("pgmux_test", "pgmux_test") + "\r\n\r\n"));
    const auto got = s.read_until_closed(3000ms);
    CHECK(got.closed);
    CHECK(got.data.rfind("HTTP/1.1 400 ", 0) == 0);
  }
  // 256 connections are served at a time; one more is closed without an answer.
  std::vector<std::unique_ptr<raw_socket>> held;
  for (int i = 0; i < 256; ++i) held.push_back(std::make_unique<raw_socket>(mport));
  {
    raw_socket extra(mport);
    extra.send("GET /metrics HTTP/1.0\r\n\r\n");
    const auto got = extra.read_until_closed(2000ms);
    CHECK(got.closed);
    CHECK(got.data.empty());
  }
  // Once those leave, scrapes are answered again.
  held.clear();
  CHECK(wait_until([&] { return try_scrape(mport, 1000ms).has_value(); }, 3s));
}

TEST_CASE("keep-alive: pipelined GET and HEAD, 404, 405 and HTTP/1.0 on one connection") {
  const int mport = free_port();
  proxy_instance proxy(proxy_options().top_level(metrics_member(mport)));
  raw_socket s(mport);
  REQUIRE(s.send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\nHEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n"));
  REQUIRE(s.send("GET /other HTTP/1.1\r\nHost: x\r\n\r\n"));
  REQUIRE(s.send("DELETE /metrics HTTP/1.1\r\nHost: x\r\n\r\n"));
  REQUIRE(s.send("GET /metrics HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
  REQUIRE(s.send("GET /metrics?x=1 HTTP/1.0\r\n\r\n"));
  const auto got = s.read_until_closed(3000ms);
  CHECK(got.closed);  // after the last, plain HTTP/1.0 request
  const auto r = split_responses(got.data, {false, true, false, false, false, false});
  REQUIRE(r.size() == 6);
  const std::string type = "text/plain; version=0.0.4; charset=utf-8";
  CHECK(r[0].status == 200);
  CHECK(r[0].headers.at("content-type") == type);
  CHECK(r[0].body.size() == std::stoul(r[0].headers.at("content-length")));
  CHECK(r[0].body.find("# TYPE pgmux_pool_size gauge\n") != std::string::npos);
  CHECK(r[0].headers.count("connection") == 0);
  CHECK(r[1].status == 200);
  CHECK(r[1].body.empty());
  CHECK(std::stoul(r[1].headers.at("content-length")) > 1000);
  CHECK(r[2].status == 404);
  CHECK(r[3].status == 405);
  CHECK(r[3].headers.at("allow") == "GET, HEAD");
  CHECK(r[4].version == "HTTP/1.0");
  CHECK(r[4].status == 200);
  CHECK(r[4].headers.at("connection") == "keep-alive");
  CHECK(r[5].status == 200);
  CHECK(r[5].headers.at("connection") == "close");
  CHECK(text_format_errors(r[5].body).empty());
}

TEST_CASE("every line of a scrape is valid text format 0.0.4") {
  const int mport = free_port();
  // A database name with a quote, a backslash and a newline: its label value must be escaped.
  const std::string odd_name = R"("we\"ird\\db\nx")";  // as a JSON string
  proxy_instance proxy(proxy_options()
                           .workers(2)
                           .pool("command_timeout", "300ms")
                           .database(odd_name + ": {\"dsn\": " + json_string(pg().server_dsn("pgmux_test")) + "}")
                           .top_level(metrics_member(mport)));
  auto c = connect(proxy.conninfo());
  for (int i = 0; i < 5; ++i) CHECK(scalar(c, "select " + std::to_string(i)) == std::to_string(i));
  CHECK(c.exec("select pg_sleep(3)").sqlstate() == "57014");
  REQUIRE(wait_until([&] { return value_of(scrape(mport), "pgmux_queries_total" + pool_labels) >= 6; }, 3s));
  auto r = try_scrape(mport, 3000ms);
  REQUIRE(r);
  CHECK(r->headers.at("content-type") == "text/plain; version=0.0.4; charset=utf-8");
  CHECK(r->body.find("pgmux_pool_max_size{database=\"we\\\"ird\\\\db\\nx\",user=\"pgmux_test\"} ") != std::string::npos);
  const auto errors = text_format_errors(r->body);
  for (const auto& e : errors) MESSAGE(e);
  CHECK(errors.empty());
  // The checker itself rejects what it must.
  CHECK_FALSE(text_format_errors("# TYPE x summary\nx{quantile=\"0.5\"} Nan\n").empty());
  CHECK_FALSE(text_format_errors("# TYPE x gauge\nx{a=\"\\q\"} 1\n").empty());
  CHECK_FALSE(text_format_errors("# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n").empty());
  CHECK_FALSE(text_format_errors("# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n").empty());
  CHECK(text_format_errors("# HELP h A \\\\ b\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 1.5\nh_count 2\n").empty());
}

}  // TEST_SUITE
}  // namespace it
