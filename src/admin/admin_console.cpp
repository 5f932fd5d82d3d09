// Admin console commands and the loop that serves them.
#include "pgmux/admin/admin_console.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <atomic>
#include <memory>
#include <cstdio>
#include <ctime>

#include "pgmux/config/duration.hpp"
#include "pgmux/session/client_session.hpp"
#include "pgmux/session/router.hpp"
#include "pgmux/session/session_registry.hpp"
#include "pgmux/io/timeout.hpp"
#include "pgmux/protocol/admin_command.hpp"
#include "pgmux/protocol/decode.hpp"
#include "pgmux/protocol/encode.hpp"
#include "pgmux/protocol/frame.hpp"
#include "pgmux/version.hpp"

namespace pgmux::net {
namespace {

using namespace std::chrono_literals;

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.0f", v);
  return buf;
}

std::string timestamp(std::chrono::system_clock::time_point t) {
  const auto tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[48];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

// A SHOW result whose `integers` columns are int8, as PgBouncer sends counts and times, so that
// tools reading SHOW POOLS or SHOW STATS get numbers; the other columns are text.
admin_reply table(std::vector<std::string> columns, std::initializer_list<std::string_view> integers = {}) {
  admin_reply r;
  for (const auto& name : columns)
    r.column_types.push_back(std::find(integers.begin(), integers.end(), name) != integers.end() ? protocol::int8_oid
                                                                                                 : protocol::text_oid);
  r.columns = std::move(columns);
  r.command_tag = "SHOW";
  return r;
}

admin_reply show_pools(router& routes) {
  auto r = table({"database", "user", "cl_active", "cl_waiting", "sv_active", "sv_idle", "sv_used", "sv_tested",
                  "sv_login", "maxwait", "maxwait_us", "pool_mode", "concurrency_limit"},
                 {"cl_active", "cl_waiting", "sv_active", "sv_idle", "sv_used", "sv_tested", "sv_login", "maxwait",
                  "maxwait_us", "concurrency_limit"});
  for (const auto& p : routes.pools()) {
    const auto s = p->snapshot();
    const auto waiting = s.core.waiting;
    const auto clients = p->clients();
    const auto wait_us = std::chrono::duration_cast<std::chrono::microseconds>(s.core.longest_wait).count();
    r.rows.push_back({s.database, s.user, std::to_string(clients > waiting ? clients - waiting : 0),
                      std::to_string(waiting), std::to_string(s.core.active), std::to_string(s.core.idle), "0", "0",
                      std::to_string(s.core.connecting), std::to_string(wait_us / 1000000),
                      std::to_string(wait_us % 1000000), config::to_string(s.settings.mode),
                      std::to_string(s.limit.limit)});
  }
  return r;
}

// Pool-size advice (pool/size_advice.hpp): the last minute's load of each pool and the size it
// needs. Rates and times as text with their decimals.
admin_reply show_advice(router& routes) {
  auto r = table({"database", "user", "max_size", "advised_size", "offered_load", "arrival_rate", "avg_hold_us",
                  "peak_demand", "window_s"},
                 {"max_size", "advised_size", "avg_hold_us", "peak_demand"});
  auto fixed = [](double v, int decimals) {
    char text[32];
    std::snprintf(text, sizeof text, "%.*f", decimals, v);
    return std::string(text);
  };
  for (const auto& p : routes.pools()) {
    const auto s = p->snapshot();
    const auto& l = s.load;
    r.rows.push_back({s.database, s.user, std::to_string(s.settings.max_size), std::to_string(l.advised_size),
                      fixed(l.offered_load, 2), fixed(l.arrival_rate, 1),
                      std::to_string(static_cast<long long>(l.mean_hold_seconds * 1e6)),
                      std::to_string(l.peak_demand), fixed(l.seconds, 1)});
  }
  return r;
}

// Per-query statistics (pool/query_stats.hpp): the statements of most total time over every
// pool, as pg_stat_statements names its columns; times in milliseconds.
admin_reply show_queries(router& routes) {
  constexpr std::size_t shown = 100;
  auto r = table({"database", "user", "queryid", "query", "calls", "total_exec_time", "mean_exec_time",
                  "min_exec_time", "max_exec_time", "rows", "errors", "first_seen", "last_seen"},
                 {"calls", "rows", "errors"});
  struct row {
    const server_pool* pool;
    pgmux::pool::query_entry entry;
  };
  std::vector<row> rows;
  for (const auto& p : routes.pools())
    for (auto& e : p->queries().top_by_total_time(shown)) rows.push_back({p.get(), std::move(e)});
  std::stable_sort(rows.begin(), rows.end(), [](const row& a, const row& b) { return a.entry.total_ns > b.entry.total_ns; });
  if (rows.size() > shown) rows.resize(shown);
  auto ms = [](double ns) {
    char text[32];
    std::snprintf(text, sizeof text, "%.3f", ns / 1e6);
    return std::string(text);
  };
  for (const auto& [pool, e] : rows) {
    const double calls = static_cast<double>(e.calls);
    r.rows.push_back({pool->database(), pool->server_user(), e.query_id(), e.text, std::to_string(e.calls),
                      ms(static_cast<double>(e.total_ns)), ms(calls > 0 ? static_cast<double>(e.total_ns) / calls : 0),
                      ms(static_cast<double>(e.min_ns)), ms(static_cast<double>(e.max_ns)), std::to_string(e.rows),
                      std::to_string(e.errors), timestamp(e.first_seen), timestamp(e.last_seen)});
  }
  return r;
}

admin_reply show_stats(router& routes) {
  auto r = table({"database", "user", "total_xact_count", "total_xact_time", "total_wait_time", "avg_xact_time",
                  "avg_wait_time", "total_server_connects", "total_connect_errors", "total_query_wait_timeouts",
                  "total_command_timeouts"},
                 {"total_xact_count", "total_xact_time", "total_wait_time", "avg_xact_time", "avg_wait_time",
                  "total_server_connects", "total_connect_errors", "total_query_wait_timeouts",
                  "total_command_timeouts"});
  for (const auto& p : routes.pools()) {
    const auto s = p->snapshot();
    const auto totals = p->counters();
    const auto& c = *totals;
    const auto xact = c.transaction_seconds.snapshot();
    const auto wait = c.wait_seconds.snapshot();
    const double xacts = static_cast<double>(xact.total());
    const double waits = static_cast<double>(wait.total());
    r.rows.push_back({s.database, s.user, num(xacts), num(xact.sum * 1e6), num(wait.sum * 1e6),
                      num(xacts > 0 ? xact.sum * 1e6 / xacts : 0), num(waits > 0 ? wait.sum * 1e6 / waits : 0),
                      std::to_string(c.server_connects.load()), std::to_string(c.server_connect_errors.load()),
                      std::to_string(c.query_wait_timeouts.load()), std::to_string(c.command_timeouts.load())});
  }
  return r;
}

admin_reply show_clients(session_registry& sessions) {
  auto r = table({"type", "user", "database", "state", "addr", "connect_time", "tls", "pinned"});
  sessions.for_each([&](const std::shared_ptr<client_session>& s) {
    if (auto i = s->info())
      r.rows.push_back({"C", i->user, i->database, i->state, i->peer, timestamp(i->connected_at), i->tls, i->pinned});
  });
  return r;
}

admin_reply show_databases(router& routes) {
  auto r = table({"name", "host", "port", "database", "force_user", "pool_size", "min_pool_size", "pool_mode",
                  "command_timeout", "query_wait_timeout", "paused"},
                 {"port", "pool_size", "min_pool_size", "paused"});
  const auto cfg = routes.config();
  for (const auto& [name, db] : cfg->databases)
    r.rows.push_back({name, db.target.host, std::to_string(db.target.port), db.target.dbname, db.target.user,
                      std::to_string(db.pool.max_size), std::to_string(db.pool.min_size), config::to_string(db.pool.mode),
                      config::format_duration(db.pool.command_timeout), config::format_duration(db.pool.query_wait_timeout),
                      routes.paused(name) ? "1" : "0"});
  return r;
}

admin_reply show_servers(router& routes) {
  auto r = table({"type", "user", "database", "state", "addr", "port", "local_addr", "local_port", "connect_time",
                  "request_time", "close_needed", "remote_pid", "tls"},
                 {"port", "local_port", "close_needed", "remote_pid"});
  for (const auto& p : routes.pools()) {
    for (const auto& s : p->servers()) {
      std::string local_addr = s.local_address, local_port;
      if (auto colon = local_addr.rfind(':'); colon != std::string::npos) {
        local_port = local_addr.substr(colon + 1);
        local_addr.resize(colon);
      }
      r.rows.push_back({"S", s.user, s.database, s.state, s.address, std::to_string(s.port), local_addr, local_port,
                        timestamp(s.connect_time), timestamp(s.request_time), s.close_needed ? "1" : "0",
                        std::to_string(s.remote_pid), s.tls});
    }
  }
  return r;
}

// Lent server connections of the pools a PAUSE covers.
std::size_t lent_connections(router& routes, const std::string& database) {
  std::size_t n = 0;
  for (const auto& p : routes.pools())
    if (database.empty() || p->database() == database) n += p->snapshot().core.active;
  return n;
}

admin_reply show_config(router& routes) {
  auto r = table({"key", "value"});
  const auto cfg = routes.config();
  const auto& d = cfg->pool_defaults;
  auto add = [&](std::string key, std::string value) { r.rows.push_back({std::move(key), std::move(value)}); };
  add("listen.host", cfg->listen.host);
  add("listen.port", std::to_string(cfg->listen.port));
  add("listen.unix_socket_dir", cfg->listen.unix_socket_dir);
  add("listen.reuse_port", cfg->listen.reuse_port ? "true" : "false");
  add("workers", std::to_string(cfg->workers));
  add("max_client_conn", std::to_string(cfg->max_client_conn));
  add("max_message_size", std::to_string(cfg->max_message_size));
  add("auth_timeout", config::format_duration(cfg->auth_timeout));
  add("shutdown_timeout", config::format_duration(cfg->shutdown_timeout));
  add("drain_delay", config::format_duration(cfg->drain_delay));
  add("watch_config", cfg->watch_config ? "true" : "false");
  add("instance_id", std::to_string(cfg->instance_id));
  std::string peers;
  for (const auto& [id, at] : cfg->peers) peers += (peers.empty() ? "" : ", ") + std::to_string(id) + "=" + at;
  add("peers", peers);
  add("metrics.listen", cfg->metrics_listen);
  add("log.level", config::to_string(cfg->log.level));
  add("log.format", config::to_string(cfg->log.format));
  add("log.connections", cfg->log.connections ? "true" : "false");
  add("log.slow_query", config::format_duration(cfg->log.slow_query));
  add("tls.mode", config::to_string(cfg->tls.mode));
  add("tls.cert", cfg->tls.cert);
  add("tls.ca", cfg->tls.ca);
  add("tls.min_version", config::to_string(cfg->tls.min_version));
  add("pool_defaults.mode", config::to_string(d.mode));
  add("pool_defaults.min_size", std::to_string(d.min_size));
  add("pool_defaults.max_size", std::to_string(d.max_size));
  add("pool_defaults.max_inactive_connection_lifetime", config::format_duration(d.max_inactive_connection_lifetime));
  add("pool_defaults.server_lifetime", config::format_duration(d.server_lifetime));
  add("pool_defaults.command_timeout", config::format_duration(d.command_timeout));
  add("pool_defaults.query_wait_timeout", config::format_duration(d.query_wait_timeout));
  add("pool_defaults.idle_transaction_timeout", config::format_duration(d.idle_transaction_timeout));
  add("pool_defaults.client_idle_timeout", config::format_duration(d.client_idle_timeout));
  add("pool_defaults.connect_timeout", config::format_duration(d.connect_timeout));
  add("pool_defaults.max_prepared_statements", std::to_string(d.max_prepared_statements));
  add("pool_defaults.session_state", config::to_string(d.session_state));
  add("pool_defaults.max_replication_connections", std::to_string(d.max_replication_connections));
  add("pool_defaults.query_stats.max_entries", std::to_string(d.query_stats.max_entries));
  add("pool_defaults.query_stats.metrics", d.query_stats.metrics ? "true" : "false");
  add("pool_defaults.query_stats.metrics_top", std::to_string(d.query_stats.metrics_top));
  add("pool_defaults.adaptive.enabled", d.adaptive.enabled ? "true" : "false");
  add("pool_defaults.adaptive.min", std::to_string(d.adaptive.min));
  add("pool_defaults.adaptive.max", std::to_string(d.adaptive.max));
  return r;
}

admin_reply error(std::string code, std::string message) {
  admin_reply r;
  r.error_code = std::move(code);
  r.error = std::move(message);
  return r;
}

}  // namespace

admin_reply run_admin_command(std::string_view sql, router& routes, session_registry& sessions,
                              const admin_hooks* hooks) {
  using protocol::admin_verb;
  const auto cmd = protocol::parse_admin_command(sql);
  switch (cmd.verb) {
    case admin_verb::show_pools: return show_pools(routes);
    case admin_verb::show_advice: return show_advice(routes);
    case admin_verb::show_queries: return show_queries(routes);
    case admin_verb::show_stats: return show_stats(routes);
    case admin_verb::show_clients: return show_clients(sessions);
    case admin_verb::show_servers: return show_servers(routes);
    case admin_verb::show_databases: return show_databases(routes);
    case admin_verb::show_config: return show_config(routes);
    case admin_verb::show_version: {
      auto r = table({"version"});
      r.rows.push_back({std::string("pgmux ") + version()});
      return r;
    }
    case admin_verb::reload:
    case admin_verb::shutdown: {
      const std::string tag = protocol::admin_command_tag(cmd.verb);
      if (!hooks) return error("0A000", tag + " is not available here");
      admin_reply r;
      r.command_tag = tag;
      if (cmd.verb == admin_verb::reload) {
        hooks->reload();
      } else {
        hooks->shutdown();
        r.close_after = true;
      }
      return r;
    }
    case admin_verb::pause:
    case admin_verb::resume: {
      const bool pause = cmd.verb == admin_verb::pause;
      const auto failed = pause ? routes.pause(cmd.database) : routes.resume(cmd.database);
      if (!failed.empty()) return error(pause ? "3D000" : "55000", failed);
      admin_reply r;
      r.command_tag = protocol::admin_command_tag(cmd.verb);
      if (pause) r.wait_for_pause = cmd.database;
      return r;
    }
    case admin_verb::empty:
    case admin_verb::unknown:
      break;
  }
  return error("42601", "unknown admin command: \"" + std::string(sql) +
                            "\"; try SHOW POOLS, SHOW STATS, SHOW ADVICE, SHOW QUERIES, SHOW CLIENTS, SHOW SERVERS, SHOW DATABASES, SHOW CONFIG, "
                            "SHOW VERSION, RELOAD, PAUSE [db], RESUME [db] or SHUTDOWN");
}

asio::awaitable<close_reason> serve_admin_console(stream& client, router& routes, session_registry& sessions,
                                                  const admin_hooks* hooks) {
  std::string in;
  char chunk[4096];
  for (;;) {
    const auto f = protocol::parse_frame(in, 1 << 20);
    if (f.status == protocol::parse_status::invalid) co_return close_reason::client_protocol_error;
    if (f.status == protocol::parse_status::need_more) {
      auto [ec, n] = co_await client.async_read_some(asio::buffer(chunk), nothrow);
      if (ec) co_return close_reason::client_eof;
      in.append(chunk, n);
      continue;
    }
    const char tag = f.msg.tag;
    const auto sql = tag == 'Q' ? protocol::decode_query(f.msg.body) : std::nullopt;
    in.erase(0, f.consumed);
    if (tag == 'X') co_return close_reason::client_terminate;
    std::string out;
    bool close_after = false;
    if (tag != 'Q' || !sql) {
      protocol::encode_error_response(out, "FATAL", "08P01", "the pgmux admin console accepts only simple queries");
      close_after = true;
    } else if (protocol::parse_admin_command(*sql).verb == protocol::admin_verb::empty) {
      protocol::encode_empty_query_response(out);
    } else {
      auto r = run_admin_command(*sql, routes, sessions, hooks);
      if (r.wait_for_pause) {
        // As PgBouncer's PAUSE: answer once running transactions have finished, within
        // shutdown_timeout; the pools stay paused either way.
        const auto limit = routes.config()->shutdown_timeout;
        // Woken when the last of the paused pools has no connection lent (a paused pool lends
        // none), else at the deadline.
        auto drained = std::make_shared<asio::steady_timer>(co_await asio::this_coro::executor, clock::now() + limit);
        std::vector<std::shared_ptr<server_pool>> paused;
        for (auto& p : routes.pools())
          if (r.wait_for_pause->empty() || p->database() == *r.wait_for_pause) paused.push_back(std::move(p));
        auto busy = std::make_shared<std::atomic<std::size_t>>(paused.size());
        for (auto& p : paused)
          p->when_none_lent([drained, busy] {
            if (busy->fetch_sub(1) == 1) asio::post(drained->get_executor(), [drained] { drained->cancel(); });
          });
        if (busy->load() > 0) co_await drained->async_wait(nothrow);
        const std::size_t lent = lent_connections(routes, *r.wait_for_pause);
        if (lent > 0)
          r = error("55000", "paused, but " + std::to_string(lent) + " server connections are still in use after " +
                                 config::format_duration(limit) + " (shutdown_timeout); new transactions wait until RESUME");
      }
      if (!r.error.empty()) {
        protocol::encode_error_response(out, "ERROR", r.error_code, r.error);
      } else {
        if (!r.columns.empty()) {
          protocol::encode_row_description(out, r.columns, r.column_types);
          for (const auto& row : r.rows) protocol::encode_data_row(out, row, r.column_types);
        }
        protocol::encode_command_complete(out, r.command_tag);
      }
      close_after = r.close_after;
    }
    if (!close_after) protocol::encode_ready_for_query(out, 'I');
    auto written = co_await with_timeout(asio::async_write(client, asio::buffer(out), nothrow), 10s);
    if (!written || std::get<0>(*written)) co_return close_reason::client_eof;
    if (close_after) co_return close_reason::shutdown;
  }
}

}  // namespace pgmux::net
