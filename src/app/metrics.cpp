// Prometheus exposition of pools and clients, collected at scrape time.
#include "pgmux/app/metrics.hpp"

#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <prometheus/metric_family.h>

#include "pgmux/net/client_session.hpp"
#include "pgmux/net/process_counters.hpp"
#include "pgmux/net/router.hpp"
#include "pgmux/net/session_registry.hpp"
#include "pgmux/version.hpp"

namespace pgmux::app {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

MetricFamily family(std::string name, std::string help, MetricType type) {
  MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}

ClientMetric sample(const net::pool_snapshot& p, double value, MetricType type) {
  ClientMetric m;
  m.label = {{"database", p.database}, {"user", p.user}};
  if (type == MetricType::Counter) m.counter.value = value;
  else m.gauge.value = value;
  return m;
}

ClientMetric histogram_sample(const net::pool_snapshot& p, const pool::atomic_histogram& h) {
  ClientMetric m;
  m.label = {{"database", p.database}, {"user", p.user}};
  const auto s = h.snapshot();
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < pool::atomic_histogram::bounds.size(); ++i) {
    cumulative += s.counts[i];
    m.histogram.bucket.push_back({cumulative, pool::atomic_histogram::bounds[i]});
  }
  cumulative += s.counts.back();
  m.histogram.bucket.push_back({cumulative, std::numeric_limits<double>::infinity()});
  m.histogram.sample_count = cumulative;
  m.histogram.sample_sum = s.sum;
  return m;
}

class collector final : public prometheus::Collectable {
 public:
  collector(net::router& routes, client_figures clients) : routes_(routes), clients_(clients) {}

  std::vector<MetricFamily> Collect() const override {
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
        {"pgmux_prepared_statements_stale_total",
         "Prepared statements forgotten because the server reported them missing or stale (re-prepared on next use).",
         &net::pool_counters::statements_stale},
    };

    std::vector<MetricFamily> out;
    auto pools = routes_.pools();
    std::vector<net::pool_snapshot> snaps;
    snaps.reserve(pools.size());
    for (auto& p : pools) snaps.push_back(p->snapshot());

    for (const auto& g : gauges) {
      auto f = family(g.name, g.help, MetricType::Gauge);
      for (const auto& s : snaps) f.metric.push_back(sample(s, g.value(s), MetricType::Gauge));
      out.push_back(std::move(f));
    }
    for (const auto& c : counters) {
      auto f = family(c.name, c.help, MetricType::Counter);
      for (std::size_t i = 0; i < pools.size(); ++i)
        f.metric.push_back(sample(snaps[i], double((pools[i]->counters().*c.field).load(std::memory_order_relaxed)),
                                  MetricType::Counter));
      out.push_back(std::move(f));
    }
    auto disconnects = family("pgmux_server_disconnects_total", "Server connections closed, by reason.",
                              MetricType::Counter);
    for (std::size_t i = 0; i < pools.size(); ++i) {
      for (std::size_t k = 0; k < std::size(net::disconnect_kind_names); ++k) {
        auto m = sample(snaps[i], double(pools[i]->counters().disconnects[k].load(std::memory_order_relaxed)),
                        MetricType::Counter);
        m.label.push_back({"reason", net::disconnect_kind_names[k]});
        disconnects.metric.push_back(std::move(m));
      }
    }
    out.push_back(std::move(disconnects));

    auto wait = family("pgmux_pool_wait_seconds", "Time from a client's request to its server connection.",
                       MetricType::Histogram);
    auto held = family("pgmux_transaction_duration_seconds", "Time a server connection was held per transaction.",
                       MetricType::Histogram);
    for (std::size_t i = 0; i < pools.size(); ++i) {
      wait.metric.push_back(histogram_sample(snaps[i], pools[i]->counters().wait_seconds));
      held.metric.push_back(histogram_sample(snaps[i], pools[i]->counters().transaction_seconds));
    }
    out.push_back(std::move(wait));
    out.push_back(std::move(held));
    auto statements = family("pgmux_query_duration_seconds",
                             "Round trip of each request (a Query, or an extended-protocol batch up to Sync) to its ReadyForQuery.",
                             MetricType::Histogram);
    auto queries = family("pgmux_queries_total", "Requests answered by a ReadyForQuery.", MetricType::Counter);
    auto bytes = family("pgmux_bytes_total", "Bytes relayed, by direction.", MetricType::Counter);
    for (std::size_t i = 0; i < pools.size(); ++i) {
      const auto& c = pools[i]->counters();
      auto h = histogram_sample(snaps[i], c.statement_seconds);
      queries.metric.push_back(sample(snaps[i], double(h.histogram.sample_count), MetricType::Counter));
      statements.metric.push_back(std::move(h));
      for (auto [direction, n] : {std::pair<const char*, const std::atomic<std::uint64_t>*>{"client_to_server", &c.bytes_to_server},
                                  {"server_to_client", &c.bytes_to_client}}) {
        auto m = sample(snaps[i], double(n->load(std::memory_order_relaxed)), MetricType::Counter);
        m.label.push_back({"direction", direction});
        bytes.metric.push_back(std::move(m));
      }
    }
    out.push_back(std::move(statements));
    out.push_back(std::move(queries));
    out.push_back(std::move(bytes));

    // Clients by state; those still logging in count as idle.
    std::size_t active = 0, waiting = 0;
    clients_.sessions.for_each([&](const std::shared_ptr<net::client_session>& s) {
      if (auto i = s->info()) {
        if (std::string_view(i->state) == "active") ++active;
        else if (std::string_view(i->state) == "waiting") ++waiting;
      }
    });
    const auto total = clients_.connected.load(std::memory_order_relaxed);
    auto connected = family("pgmux_client_connections", "Client connections open now, by state.", MetricType::Gauge);
    for (auto [state, n] : {std::pair<const char*, double>{"active", double(active)},
                            {"waiting", double(waiting)},
                            {"idle", double(total > active + waiting ? total - active - waiting : 0)}}) {
      ClientMetric m;
      m.label = {{"state", state}};
      m.gauge.value = n;
      connected.metric.push_back(std::move(m));
    }
    out.push_back(std::move(connected));
    auto errors = family("pgmux_client_errors_total", "Clients turned away or dropped by pgmux, by reason.",
                         MetricType::Counter);
    for (std::size_t k = 0; k < std::size(net::client_error_names); ++k) {
      ClientMetric m;
      m.label = {{"reason", net::client_error_names[k]}};
      m.counter.value = double(clients_.counters.client_errors[k].load(std::memory_order_relaxed));
      errors.metric.push_back(std::move(m));
    }
    out.push_back(std::move(errors));
    auto lag = family("pgmux_event_loop_lag_seconds", "How late the last periodic probe timer fired, per worker thread.",
                      MetricType::Gauge);
    const auto workers = std::min<std::size_t>(clients_.counters.workers.load(), net::max_lag_workers);
    for (std::size_t w = 0; w < workers; ++w) {
      ClientMetric m;
      m.label = {{"worker", std::to_string(w)}};
      m.gauge.value = double(clients_.counters.loop_lag_ns[w].load(std::memory_order_relaxed)) / 1e9;
      lag.metric.push_back(std::move(m));
    }
    out.push_back(std::move(lag));
    auto cancels = family("pgmux_cancel_requests_total", "CancelRequests received from clients.", MetricType::Counter);
    ClientMetric cr;
    cr.counter.value = double(clients_.counters.cancel_requests.load(std::memory_order_relaxed));
    cancels.metric.push_back(cr);
    out.push_back(std::move(cancels));
    auto reloads = family("pgmux_config_reloads_total", "Config reloads, by result.", MetricType::Counter);
    for (auto [result, n] : {std::pair<const char*, double>{"success", double(clients_.counters.reloads_applied.load())},
                             {"error", double(clients_.counters.reloads_failed.load())}}) {
      ClientMetric m;
      m.label = {{"result", result}};
      m.counter.value = n;
      reloads.metric.push_back(std::move(m));
    }
    out.push_back(std::move(reloads));
    auto last = family("pgmux_config_last_reload_success_timestamp_seconds",
                       "Unix time the running config was applied (start or last successful reload).", MetricType::Gauge);
    ClientMetric lr;
    lr.gauge.value = double(clients_.counters.last_reload_success_ms.load()) / 1000.0;
    last.metric.push_back(lr);
    out.push_back(std::move(last));
    auto accepted = family("pgmux_client_connections_total", "Client connections accepted.", MetricType::Counter);
    ClientMetric a;
    a.counter.value = double(clients_.connections_total.load(std::memory_order_relaxed));
    accepted.metric.push_back(a);
    out.push_back(std::move(accepted));
    auto build = family("pgmux_build_info", "Always 1; the version in a label.", MetricType::Gauge);
    ClientMetric b;
    b.label = {{"version", version()}};
    b.gauge.value = 1;
    build.metric.push_back(b);
    out.push_back(std::move(build));
    return out;
  }

 private:
  net::router& routes_;
  client_figures clients_;
};

}  // namespace

struct metrics_endpoint::impl {
  std::shared_ptr<collector> source;
  prometheus::Exposer exposer;
  impl(const std::string& listen, net::router& routes, client_figures clients)
      : source(std::make_shared<collector>(routes, clients)), exposer(listen, 2) {
    exposer.RegisterCollectable(source, "/metrics");
  }
};

metrics_endpoint::metrics_endpoint(const std::string& listen, net::router& routes, client_figures clients)
    : impl_(std::make_unique<impl>(listen, routes, clients)) {}

metrics_endpoint::~metrics_endpoint() = default;

}  // namespace pgmux::app
