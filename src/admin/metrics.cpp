// The Prometheus endpoint, served from pgmux's own io_context: pool state collected at scrape
// time, one coroutine per HTTP connection, every wait bounded (see README, Metrics).
#include "pgmux/admin/metrics.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <limits>
#include <stdexcept>

#include "pgmux/log.hpp"
#include "pgmux/admin/health.hpp"
#include "pgmux/admin/metrics_http.hpp"
#include "pgmux/admin/metrics_text.hpp"
#include "pgmux/session/client_session.hpp"
#include "pgmux/io/io.hpp"
#include "pgmux/session/process_counters.hpp"
#include "pgmux/session/router.hpp"
#include "pgmux/session/session_registry.hpp"
#include "pgmux/io/workers.hpp"
#include "pgmux/io/spawn.hpp"
#include "pgmux/io/timeout.hpp"
#include "pgmux/version.hpp"

namespace pgmux::app {
namespace {

namespace text = metrics_text;
using text::metric_type;

text::family make_family(std::string name, std::string help, metric_type type) {
  text::family f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}

// A counter family with one sample per `result` label value.
text::family by_result(std::string name, std::string help,
                       std::initializer_list<std::pair<const char*, double>> counts) {
  auto f = make_family(std::move(name), std::move(help), metric_type::counter);
  for (const auto& [result, n] : counts) {
    text::sample m;
    m.labels = {{"result", result}};
    m.value = n;
    f.samples.push_back(std::move(m));
  }
  return f;
}

text::sample pool_sample(const net::pool_snapshot& p, double value) {
  text::sample m;
  m.labels = {{"database", p.database}, {"user", p.user}};
  m.value = value;
  return m;
}

text::sample histogram_sample(const net::pool_snapshot& p, const pool::atomic_histogram& h) {
  text::sample m;
  m.labels = {{"database", p.database}, {"user", p.user}};
  const auto s = h.snapshot();
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < pool::atomic_histogram::bounds.size(); ++i) {
    cumulative += s.counts[i];
    m.buckets.push_back({pool::atomic_histogram::bounds[i], cumulative});
  }
  cumulative += s.counts.back();
  m.count = cumulative;  // the +Inf bucket
  m.sum = s.sum;
  return m;
}

class collector {
 public:
  collector(net::router& routes, client_figures clients) : routes_(routes), clients_(clients) {}

  std::vector<text::family> collect() const {
    struct gauge_def {
      const char* name;
      const char* help;
      double (*value)(const net::pool_snapshot&);
    };
    static const gauge_def gauges[] = {
        {"pgmux_pool_size", "Open server connections (idle, lent and being opened).",
         [](const net::pool_snapshot& p) { return double(p.core.idle + p.core.active + p.core.connecting); }},
        {"pgmux_pool_idle", "Idle server connections.", [](const net::pool_snapshot& p) { return double(p.core.idle); }},
        {"pgmux_pool_used", "Server connections lent to clients.", [](const net::pool_snapshot& p) { return double(p.core.active); }},
        {"pgmux_pool_min_size", "Configured min_size.", [](const net::pool_snapshot& p) { return double(p.settings.min_size); }},
        {"pgmux_pool_max_size", "Configured max_size.", [](const net::pool_snapshot& p) { return double(p.settings.max_size); }},
        {"pgmux_pool_waiting_clients", "Clients waiting for a server connection.",
         [](const net::pool_snapshot& p) { return double(p.core.waiting); }},
        {"pgmux_pool_max_wait_seconds", "Age of the oldest waiting client.",
         [](const net::pool_snapshot& p) { return std::chrono::duration<double>(p.core.longest_wait).count(); }},
        {"pgmux_pool_offered_load",
         "Server connections lent on average over the last minute.",
         [](const net::pool_snapshot& p) { return p.load.offered_load; }},
        {"pgmux_pool_advised_size",
         "The pool size the last minute's load needs: at most 5% of transactions waiting for a connection (Erlang C), "
         "capped at the most clients that held or waited for one at once; 0 without load.",
         [](const net::pool_snapshot& p) { return double(p.load.advised_size); }},
        {"pgmux_pool_concurrency_limit",
         "Server connections the pool may lend at once: the adaptive concurrency limit, or max_size when adaptive is off.",
         [](const net::pool_snapshot& p) { return double(p.limit.limit); }},
        {"pgmux_replication_connections",
         "Server connections of logical replication clients (outside min_size and max_size).",
         [](const net::pool_snapshot& p) { return double(p.replication_connections); }},
    };
    struct counter_def {
      const char* name;
      const char* help;
      const std::atomic<std::uint64_t> net::pool_counters::*field;
    };
    static const counter_def counters[] = {
        {"pgmux_transactions_total", "Server connections given back after a transaction (or session).",
         &net::pool_counters::transactions},
        {"pgmux_server_connects_total", "Server connections opened.", &net::pool_counters::server_connects},
        {"pgmux_server_connect_errors_total", "Server connection attempts that failed.",
         &net::pool_counters::server_connect_errors},
        {"pgmux_query_wait_timeouts_total", "Clients that waited query_wait_timeout in vain.",
         &net::pool_counters::query_wait_timeouts},
        {"pgmux_command_timeouts_total", "Statements cancelled for command_timeout.", &net::pool_counters::command_timeouts},
        {"pgmux_cancel_escalations_total", "Server connections closed because a statement outlived its cancel by cancel_grace.", &net::pool_counters::cancel_escalations},
        {"pgmux_prepared_statements_prepared_total",
         "Named prepared statements prepared on server connections (transaction mode), the clients' Parses included.",
         &net::pool_counters::statements_prepared},
        {"pgmux_server_overload_errors_total",
         "Requests the server answered with an overload error (SQLSTATE 53000, 53200 out of memory, 53300 too many connections), with per-query statistics on.",
         &net::pool_counters::overload_errors},
        {"pgmux_prepared_statements_stale_total",
         "Prepared statements forgotten because the server reported them missing or stale (re-prepared on next use).",
         &net::pool_counters::statements_stale},
    };

    std::vector<text::family> out;
    auto pools = routes_.pools();
    std::vector<net::pool_snapshot> snaps;
    std::vector<std::unique_ptr<const net::pool_counters>> totals;
    snaps.reserve(pools.size());
    totals.reserve(pools.size());
    for (auto& p : pools) {
      snaps.push_back(p->snapshot());
      totals.push_back(p->counters());
    }

    for (const auto& g : gauges) {
      auto f = make_family(g.name, g.help, metric_type::gauge);
      for (const auto& s : snaps) f.samples.push_back(pool_sample(s, g.value(s)));
      out.push_back(std::move(f));
    }
    for (const auto& c : counters) {
      auto f = make_family(c.name, c.help, metric_type::counter);
      for (std::size_t i = 0; i < pools.size(); ++i)
        f.samples.push_back(pool_sample(snaps[i], double(((*totals[i]).*c.field).load(std::memory_order_relaxed))));
      out.push_back(std::move(f));
    }
    auto disconnects = make_family("pgmux_server_disconnects_total", "Server connections closed, by reason.",
                              metric_type::counter);
    for (std::size_t i = 0; i < pools.size(); ++i) {
      for (std::size_t k = 0; k < std::size(net::disconnect_kind_names); ++k) {
        auto m = pool_sample(snaps[i], double(totals[i]->disconnects[k].load(std::memory_order_relaxed)));
        m.labels.push_back({"reason", net::disconnect_kind_names[k]});
        disconnects.samples.push_back(std::move(m));
      }
    }
    out.push_back(std::move(disconnects));
    auto limit_changes = make_family("pgmux_pool_concurrency_limit_changes_total",
                                     "Decisions of the adaptive concurrency limit, by direction (0 when adaptive is off).",
                                     metric_type::counter);
    for (const auto& s : snaps) {
      for (auto [direction, n] : {std::pair<const char*, std::uint64_t>{"up", s.limit.increases}, {"down", s.limit.decreases}}) {
        auto m = pool_sample(s, double(n));
        m.labels.push_back({"direction", direction});
        limit_changes.samples.push_back(std::move(m));
      }
    }
    out.push_back(std::move(limit_changes));
    auto pinned = make_family("pgmux_pinned_clients",
                              "Clients keeping their server connection in transaction pooling (session_state \"pin\", "
                              "or LISTEN), by what their SQL left on it.",
                              metric_type::gauge);
    for (std::size_t i = 0; i < pools.size(); ++i) {
      for (std::size_t k = 0; k < protocol::session_state::kinds; ++k) {
        auto m = pool_sample(snaps[i], double(totals[i]->pinned_clients[k].load(std::memory_order_relaxed)));
        m.labels.push_back({"reason", protocol::session_state::label(k)});
        pinned.samples.push_back(std::move(m));
      }
    }
    out.push_back(std::move(pinned));

    auto wait = make_family("pgmux_pool_wait_seconds", "Time from a client's request to its server connection.",
                       metric_type::histogram);
    auto held = make_family("pgmux_transaction_duration_seconds", "Time a server connection was held per transaction.",
                       metric_type::histogram);
    for (std::size_t i = 0; i < pools.size(); ++i) {
      wait.samples.push_back(histogram_sample(snaps[i], totals[i]->wait_seconds));
      held.samples.push_back(histogram_sample(snaps[i], totals[i]->transaction_seconds));
    }
    out.push_back(std::move(wait));
    out.push_back(std::move(held));
    auto statements = make_family("pgmux_query_duration_seconds",
                             "Round trip of each request (a Query, or an extended-protocol batch up to Sync) to its ReadyForQuery.",
                             metric_type::histogram);
    auto queries = make_family("pgmux_queries_total", "Requests answered by a ReadyForQuery.", metric_type::counter);
    auto bytes = make_family("pgmux_bytes_total", "Bytes relayed, by direction.", metric_type::counter);
    for (std::size_t i = 0; i < pools.size(); ++i) {
      const auto& c = *totals[i];
      auto h = histogram_sample(snaps[i], c.statement_seconds);
      queries.samples.push_back(pool_sample(snaps[i], double(h.count)));
      statements.samples.push_back(std::move(h));
      for (auto [direction, n] : {std::pair<const char*, const std::atomic<std::uint64_t>*>{"client_to_server", &c.bytes_to_server},
                                  {"server_to_client", &c.bytes_to_client}}) {
        auto m = pool_sample(snaps[i], double(n->load(std::memory_order_relaxed)));
        m.labels.push_back({"direction", direction});
        bytes.samples.push_back(std::move(m));
      }
    }
    out.push_back(std::move(statements));
    out.push_back(std::move(queries));
    out.push_back(std::move(bytes));
    add_query_stats(pools, snaps, out);

    // Clients by state; those still logging in count as idle.
    std::size_t active = 0, waiting = 0;
    clients_.sessions.for_each([&](const std::shared_ptr<net::client_session>& s) {
      if (auto i = s->info()) {
        if (std::string_view(i->state) == "active") ++active;
        else if (std::string_view(i->state) == "waiting") ++waiting;
      }
    });
    const auto total = clients_.connected.load(std::memory_order_relaxed);
    auto connected = make_family("pgmux_client_connections", "Client connections open now, by state.", metric_type::gauge);
    for (auto [state, n] : {std::pair<const char*, double>{"active", double(active)},
                            {"waiting", double(waiting)},
                            {"idle", double(total > active + waiting ? total - active - waiting : 0)}}) {
      text::sample m;
      m.labels = {{"state", state}};
      m.value = n;
      connected.samples.push_back(std::move(m));
    }
    out.push_back(std::move(connected));
    auto errors = make_family("pgmux_client_errors_total", "Clients turned away or dropped by pgmux, by reason.",
                         metric_type::counter);
    for (std::size_t k = 0; k < std::size(net::client_error_names); ++k) {
      text::sample m;
      m.labels = {{"reason", net::client_error_names[k]}};
      m.value = double(clients_.counters.client_errors[k].load(std::memory_order_relaxed));
      errors.samples.push_back(std::move(m));
    }
    out.push_back(std::move(errors));
    auto lag = make_family("pgmux_event_loop_lag_seconds", "How late the last periodic probe timer fired, per worker thread.",
                      metric_type::gauge);
    const auto workers = std::min<std::size_t>(clients_.counters.workers.load(), net::max_lag_workers);
    for (std::size_t w = 0; w < workers; ++w) {
      text::sample m;
      m.labels = {{"worker", std::to_string(w)}};
      m.value = double(clients_.counters.loop_lag_ns[w].load(std::memory_order_relaxed)) / 1e9;
      lag.samples.push_back(std::move(m));
    }
    out.push_back(std::move(lag));
    if (const auto* workers = clients_.workers) {
      auto per_worker = [&](const char* name, const char* help, auto count) {
        auto family = make_family(name, help, metric_type::gauge);
        for (unsigned w = 0; w < workers->size(); ++w) {
          text::sample m;
          m.labels = {{"worker", std::to_string(w)}};
          m.value = double(count(w));
          family.samples.push_back(std::move(m));
        }
        out.push_back(std::move(family));
      };
      per_worker("pgmux_worker_clients", "Clients living on each worker thread (accepted there, or placed there to keep the workers even).",
                 [&](unsigned w) { return workers->clients(w); });
      per_worker("pgmux_worker_parked_clients",
                 "Of those, idle clients whose sockets wait in the worker's idle park rather than in its event loop's reactor.",
                 [&](unsigned w) { return workers->parked_clients(w); });
    }
    auto cancels = make_family("pgmux_cancel_requests_total", "CancelRequests received from clients.", metric_type::counter);
    text::sample cr;
    cr.value = double(clients_.counters.cancel_requests.load(std::memory_order_relaxed));
    cancels.samples.push_back(cr);
    out.push_back(std::move(cancels));
    out.push_back(by_result("pgmux_cancel_forwards_total",
                            "CancelRequests for another instance's key sent on to it (peers), by result.",
                            {{"sent", double(clients_.counters.cancels_forwarded.load())},
                             {"failed", double(clients_.counters.cancel_forward_failures.load())}}));
    out.push_back(by_result("pgmux_config_reloads_total", "Config reloads, by result.",
                            {{"success", double(clients_.counters.reloads_applied.load())},
                             {"error", double(clients_.counters.reloads_failed.load())}}));
    auto last = make_family("pgmux_config_last_reload_success_timestamp_seconds",
                       "Unix time the running config was applied (start or last successful reload).", metric_type::gauge);
    text::sample lr;
    lr.value = double(clients_.counters.last_reload_success_ms.load()) / 1000.0;
    last.samples.push_back(lr);
    out.push_back(std::move(last));
    auto accepted = make_family("pgmux_client_connections_total", "Client connections accepted.", metric_type::counter);
    text::sample a;
    a.value = double(clients_.connections_total.load(std::memory_order_relaxed));
    accepted.samples.push_back(a);
    out.push_back(std::move(accepted));
    auto build = make_family("pgmux_build_info", "Always 1; the version in a label.", metric_type::gauge);
    text::sample b;
    b.labels = {{"version", version()}};
    b.value = 1;
    build.samples.push_back(b);
    out.push_back(std::move(build));
    return out;
  }

  // Per-query statistics: the table's totals per pool, always; per statement only where the
  // pool's query_stats.metrics says so, for its metrics_top statements of most total time.
  static void add_query_stats(const std::vector<std::shared_ptr<net::server_pool>>& pools,
                              const std::vector<net::pool_snapshot>& snaps, std::vector<text::family>& out) {
    auto entries = make_family("pgmux_query_stats_entries", "Statements in the per-query statistics table (SHOW QUERIES).",
                               metric_type::gauge);
    auto evictions = make_family("pgmux_query_stats_evictions_total",
                                 "Statements dropped from the per-query statistics table to make room (query_stats.max_entries).",
                                 metric_type::counter);
    auto calls = make_family("pgmux_query_stats_calls_total", "Statements recorded by the per-query statistics.",
                             metric_type::counter);
    auto errors = make_family("pgmux_query_stats_errors_total", "Recorded statements answered with an error.",
                              metric_type::counter);
    auto seconds = make_family("pgmux_query_stats_seconds_total",
                               "Time of the recorded statements, from the request to its ReadyForQuery.", metric_type::counter);
    struct per_statement_def {
      const char* name;
      const char* help;
      double (*value)(const pool::query_entry&);
    };
    static const per_statement_def per_statement_defs[] = {
        {"pgmux_statement_calls_total", "Calls of one statement (query_stats.metrics).",
         [](const pool::query_entry& e) { return double(e.calls); }},
        {"pgmux_statement_errors_total", "Calls of one statement answered with an error (query_stats.metrics).",
         [](const pool::query_entry& e) { return double(e.errors); }},
        {"pgmux_statement_rows_total", "Rows one statement's CommandComplete tags reported (query_stats.metrics).",
         [](const pool::query_entry& e) { return double(e.rows); }},
        {"pgmux_statement_seconds_total", "Time of one statement's calls (query_stats.metrics).",
         [](const pool::query_entry& e) { return double(e.total_ns) / 1e9; }},
    };
    std::vector<text::family> per_statement;
    for (std::size_t i = 0; i < pools.size(); ++i) {
      const auto totals = pools[i]->queries().totals();
      entries.samples.push_back(pool_sample(snaps[i], double(totals.entries)));
      evictions.samples.push_back(pool_sample(snaps[i], double(totals.evictions)));
      calls.samples.push_back(pool_sample(snaps[i], double(totals.calls)));
      errors.samples.push_back(pool_sample(snaps[i], double(totals.errors)));
      seconds.samples.push_back(pool_sample(snaps[i], double(totals.total_ns) / 1e9));
      const auto& qs = snaps[i].settings.query_stats;
      if (!qs.metrics || qs.max_entries == 0) continue;
      if (per_statement.empty())
        for (const auto& d : per_statement_defs) per_statement.push_back(make_family(d.name, d.help, metric_type::counter));
      for (const auto& e : pools[i]->queries().top_by_total_time(qs.metrics_top)) {
        const auto id = e.query_id();
        const auto query = text::utf8_label_value(e.text, 200);
        for (std::size_t k = 0; k < std::size(per_statement_defs); ++k) {
          auto m = pool_sample(snaps[i], per_statement_defs[k].value(e));
          m.labels.push_back({"queryid", id});
          m.labels.push_back({"query", query});
          per_statement[k].samples.push_back(std::move(m));
        }
      }
    }
    out.push_back(std::move(entries));
    out.push_back(std::move(evictions));
    out.push_back(std::move(calls));
    out.push_back(std::move(errors));
    out.push_back(std::move(seconds));
    for (auto& f : per_statement) out.push_back(std::move(f));
  }

  // What /healthz and /readyz judge: probe times, the drain, PAUSE and each pool's reach. Reads
  // atomics and each pool's short lock, never a server.
  health::verdict check(metrics_http::resource what) const {
    health::inputs in;
    in.now = net::clock::now();
    const auto workers = std::min<std::size_t>(clients_.counters.workers.load(), net::max_lag_workers);
    std::vector<net::clock::time_point> probes;
    for (std::size_t w = 0; w < workers; ++w)
      probes.push_back(net::clock::time_point(std::chrono::duration_cast<net::clock::duration>(
          std::chrono::nanoseconds(clients_.counters.loop_probe_ns[w].load(std::memory_order_relaxed)))));
    in.last_probe = probes;
    if (what == metrics_http::resource::healthz) return health::liveness(in);
    in.draining = clients_.counters.draining.load(std::memory_order_relaxed);
    in.paused = routes_.paused("");
    for (const auto& pool : routes_.pools()) {
      const auto p = pool->snapshot();
      in.pools.push_back({p.database + "/" + p.user, p.ever_connected, p.core.idle + p.core.active,
                          p.core.consecutive_connect_failures});
    }
    return health::readiness(in);
  }

 private:
  net::router& routes_;
  client_figures clients_;
};

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using net::clock;
using net::error_code;
using namespace std::chrono_literals;

// Each connection costs a socket, a coroutine frame and at most a request head of buffer.
constexpr std::size_t max_connections = 256;
// From accept (or the first byte of a later request) to the end of the request head.
constexpr clock::duration head_timeout = 5s;
// From the end of an answer to the first byte of the next request on a kept-alive connection.
constexpr clock::duration idle_timeout = 60s;
// For writing one answer to a client that does not read it.
constexpr clock::duration write_timeout = 10s;
// After an error answer, unread input is drained this long before closing, so that the close
// does not reset the connection before the client has read the answer.
constexpr clock::duration linger_timeout = 1s;

struct endpoint_state {
  endpoint_state(net::router& routes, client_figures clients) : source(routes, clients) {}
  collector source;
  std::atomic<std::size_t> connections{0};
};

// Reads some bytes into `buf` before `deadline`; false on EOF, error or the deadline.
asio::awaitable<bool> read_some(tcp::socket& socket, std::string& buf, clock::time_point deadline) {
  const auto left = deadline - clock::now();
  if (left <= clock::duration::zero()) co_return false;
  std::array<char, 4096> chunk;
  auto got = co_await net::with_timeout(socket.async_read_some(asio::buffer(chunk), net::nothrow), left);
  if (!got) co_return false;
  auto [ec, n] = *got;
  if (ec) co_return false;
  buf.append(chunk.data(), n);
  co_return true;
}

asio::awaitable<bool> write_answer(tcp::socket& socket, const std::string& head, const std::string& body, bool with_body) {
  std::array<asio::const_buffer, 2> buffers{asio::buffer(head), asio::buffer(body.data(), with_body ? body.size() : 0)};
  auto done = co_await net::with_timeout(asio::async_write(socket, buffers, net::nothrow), write_timeout);
  co_return done && !std::get<0>(*done);
}

// Half-closes, then reads and drops what the client still sends until it closes too (bounded).
asio::awaitable<void> close_gracefully(tcp::socket& socket) {
  error_code ignored;
  socket.shutdown(tcp::socket::shutdown_send, ignored);
  const auto deadline = clock::now() + linger_timeout;
  std::string sink;
  while (sink.size() < 64 * 1024 && co_await read_some(socket, sink, deadline)) {
  }
  socket.close(ignored);
}

asio::awaitable<void> serve_connection(std::shared_ptr<endpoint_state> state, tcp::socket socket) {
  struct release {
    std::atomic<std::size_t>& n;
    ~release() { n.fetch_sub(1, std::memory_order_relaxed); }
  } counted{state->connections};
  std::string buf;
  // A new connection owes its first request head at once.
  auto deadline = clock::now() + head_timeout;
  bool in_head = true;
  for (;;) {
    auto parsed = metrics_http::parse_head(buf);
    while (parsed.status == metrics_http::head_status::incomplete) {
      const bool was_empty = buf.empty();
      if (!co_await read_some(socket, buf, deadline)) co_return;  // gone, or too slow: just close
      if (!in_head && was_empty) {
        in_head = true;
        deadline = clock::now() + head_timeout;
      }
      parsed = metrics_http::parse_head(buf);
    }
    std::string body;
    metrics_http::answer answer;
    std::string_view type = "text/plain; charset=utf-8";
    int minor_version = 1;
    if (parsed.status == metrics_http::head_status::complete) {
      answer = metrics_http::decide(parsed.req);
      minor_version = parsed.req.minor_version;
      buf.erase(0, parsed.head_size);
    } else {
      answer = metrics_http::decide(parsed.status);
    }
    if (answer.status == 200 && answer.what == metrics_http::resource::metrics) {
      // Takes each pool's short lock in turn, as the admin console's SHOW does.
      metrics_text::serialize(state->source.collect(), body);
      type = metrics_text::content_type;
    } else if (answer.status == 200) {
      auto verdict = state->source.check(answer.what);
      answer.status = verdict.status;
      body = std::move(verdict.text);
    } else {
      body = metrics_http::error_body(answer.status);
    }
    const auto head = metrics_http::response_head(answer, minor_version, type, body.size());
    if (!co_await write_answer(socket, head, body, answer.body)) co_return;
    if (!answer.keep_alive) {
      co_await close_gracefully(socket);
      co_return;
    }
    // A pipelined request already read owes the rest of its head within head_timeout.
    in_head = !buf.empty();
    deadline = clock::now() + (in_head ? head_timeout : idle_timeout);
  }
}

tcp::endpoint resolve(const std::string& listen) {
  const auto colon = listen.rfind(':');
  if (colon == std::string::npos) throw std::runtime_error("expected host:port");
  auto host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  const auto port = static_cast<std::uint16_t>(std::stoul(listen.substr(colon + 1)));
  error_code ec;
  const auto address = asio::ip::make_address(host, ec);
  if (!ec) return {address, port};
  // A host name: resolved once, before the workers run.
  asio::io_context resolving;
  tcp::resolver resolver(resolving);
  const auto results = resolver.resolve(host, std::to_string(port));
  if (results.empty()) throw std::runtime_error("cannot resolve " + host);
  return results.begin()->endpoint();
}

asio::awaitable<void> accept_loop(asio::io_context& io, tcp::acceptor& acceptor, std::shared_ptr<endpoint_state> state) {
  asio::steady_timer backoff(io);
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(asio::make_strand(io), net::nothrow);
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
    if (ec) {
      // Out of descriptors, most likely: accepting again at once would spin.
      log::warn("metrics: accept failed: " + ec.message());
      backoff.expires_after(100ms);
      co_await backoff.async_wait(net::nothrow);
      continue;
    }
    if (state->connections.load(std::memory_order_relaxed) >= max_connections) {
      error_code ignored;
      socket.close(ignored);
      continue;
    }
    state->connections.fetch_add(1, std::memory_order_relaxed);
    auto executor = socket.get_executor();
    asio::co_spawn(executor, serve_connection(state, std::move(socket)), net::log_failure("metrics connection"));
  }
}

}  // namespace

struct metrics_endpoint::impl {
  tcp::acceptor acceptor;
  std::shared_ptr<endpoint_state> state;

  impl(asio::io_context& io, const std::string& listen, net::router& routes, client_figures clients)
      : acceptor(io), state(std::make_shared<endpoint_state>(routes, clients)) {
    const auto at = resolve(listen);
    acceptor.open(at.protocol());
    acceptor.set_option(tcp::acceptor::reuse_address(true));
    acceptor.bind(at);
    acceptor.listen();
    asio::co_spawn(io, accept_loop(io, acceptor, state), net::log_failure("metrics accept"));
  }
};

metrics_endpoint::metrics_endpoint(asio::io_context& io, const std::string& listen, net::router& routes,
                                   client_figures clients)
    : impl_(std::make_unique<impl>(io, listen, routes, clients)) {}

metrics_endpoint::~metrics_endpoint() {
  error_code ignored;
  impl_->acceptor.close(ignored);
}

}  // namespace pgmux::app
