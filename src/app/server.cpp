// Process wiring: `workers` threads with an event loop each (net::worker_set). Worker 0 also runs
// the accept loops, signals, reloads, the metrics endpoint and the pools' maintenance.
#include "pgmux/app/server.hpp"

#include <csignal>
#include <memory>
#include <vector>

#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/thread_pool.hpp>

#include "pgmux/log.hpp"
#include "pgmux/admin/metrics.hpp"
#include "pgmux/app/config_watch.hpp"
#include "pgmux/config/load.hpp"
#include "pgmux/admin/admin_console.hpp"
#include "pgmux/session/auth_query.hpp"
#include "pgmux/server/cancel.hpp"
#include "pgmux/session/listener.hpp"
#include "pgmux/session/router.hpp"
#include "pgmux/session/session_registry.hpp"
#include "pgmux/io/spawn.hpp"
#include "pgmux/io/timeout.hpp"
#include "pgmux/io/tls.hpp"
#include "pgmux/io/workers.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

namespace pgmux::app {

namespace asio = boost::asio;

namespace {

// Settings that only a restart applies: said in the log, never half-applied.
void warn_about_restart_settings(const config::config& running, const config::config& loaded) {
  auto warn = [](const char* key) { log::warn(std::string("reload: ") + key + " changed; it takes effect after a restart"); };
  if (running.listen.host != loaded.listen.host || running.listen.port != loaded.listen.port) warn("listen");
  if (running.listen.unix_socket_dir != loaded.listen.unix_socket_dir) warn("listen.unix_socket_dir");
  if (running.listen.reuse_port != loaded.listen.reuse_port) warn("listen.reuse_port");
  if (running.instance_id != loaded.instance_id) warn("instance_id");
  if (running.watch_config != loaded.watch_config) warn("watch_config");
  if (running.workers != loaded.workers) warn("workers");
  if (running.park_idle_clients_after != loaded.park_idle_clients_after) warn("park_idle_clients_after");
  if (running.max_client_conn != loaded.max_client_conn) warn("max_client_conn");
  if (running.metrics_listen != loaded.metrics_listen) warn("metrics.listen");
}

// One probe per worker: how late its timer fires on that worker's event loop. A late timer
// means handlers queue up behind a busy loop: its clients wait for the same reason.
asio::awaitable<void> probe_event_loop(net::process_counters& counters, unsigned worker_index) {
  constexpr auto period = std::chrono::milliseconds(250);
  asio::steady_timer timer(co_await asio::this_coro::executor);
  for (;;) {
    timer.expires_after(period);
    const auto due = timer.expiry();
    auto [ec] = co_await timer.async_wait(net::nothrow);
    if (ec) co_return;
    const auto now = net::clock::now();
    const auto late = std::chrono::duration_cast<std::chrono::nanoseconds>(now - due).count();
    if (worker_index < net::max_lag_workers) {
      counters.loop_lag_ns[worker_index].store(late > 0 ? late : 0, std::memory_order_relaxed);
      counters.loop_probe_ns[worker_index].store(
          std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count(), std::memory_order_relaxed);
    }
  }
}

}  // namespace

int serve(std::shared_ptr<const config::config> cfg, const std::string& config_path) {
  std::signal(SIGPIPE, SIG_IGN);
  log::apply(cfg->log);
  const unsigned workers = cfg->workers;
  net::worker_set loops(workers, cfg->park_idle_clients_after);
  auto& io = loops.io(0);

  // Reading the config file is blocking I/O: it runs here, never on a worker thread.
  asio::thread_pool blocking(1);
  config::config_error tls_error;
  auto tls = net::make_tls_contexts(*cfg, tls_error);
  if (!tls) {
    log::error(tls_error.path + ": " + tls_error.message);
    return 1;
  }
  net::router routes(loops, cfg, std::make_shared<const net::tls_contexts>(std::move(*tls)));
  net::cancel_registry cancels(static_cast<std::uint8_t>(cfg->instance_id));
  net::session_registry sessions;
  std::atomic<std::size_t> client_count{0};
  std::atomic<std::size_t> authenticating{0};
  net::auth_secret_cache auth_secrets;
  net::admin_hooks hooks;  // filled in below, before anything is accepted
  net::process_counters counters;
  counters.last_reload_success_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::system_clock::now().time_since_epoch()).count();
  auth::login_limits login_limits;
  net::listener listener(loops, net::session_services{routes, cancels, sessions, client_count, authenticating,
                                                   auth_secrets, &hooks, &counters, &login_limits, &loops},
                         cfg->max_client_conn);

  if (auto error = listener.listen_tcp(cfg->listen.host, cfg->listen.port, cfg->listen.reuse_port); !error.empty()) {
    log::error(error);
    return 1;
  }
  if (!cfg->listen.unix_socket_dir.empty()) {
    if (auto error = listener.listen_unix(cfg->listen.unix_socket_dir, cfg->listen.port); !error.empty()) {
      log::error(error);
      return 1;
    }
  }

  std::unique_ptr<metrics_endpoint> metrics;
  if (!cfg->metrics_listen.empty()) {
    try {
      metrics = std::make_unique<metrics_endpoint>(io, cfg->metrics_listen, routes,
                                                   client_figures{client_count, listener.accepted_total(), sessions, counters, &loops});
    } catch (const std::exception& e) {
      log::error("cannot serve metrics on " + cfg->metrics_listen + ": " + e.what());
      return 1;
    }
    log::info("metrics at http://" + cfg->metrics_listen + "/metrics");
  }

  std::atomic<bool> shutting_down{false};
  asio::steady_timer all_clients_gone(io);  // a graceful shutdown's wait for the last client
  asio::steady_timer drain_delay(io);       // its wait before the listeners close
  // SIGHUP and the console's RELOAD. The file (and every file it names: users, passfiles,
  // certificates and keys) is read and the TLS contexts are built on the blocking executor;
  // the result is applied on the io_context, all of it or, on any error, nothing.
  auto reload_config = [&io, &routes, &blocking, &shutting_down, &counters, &auth_secrets, config_path] {
    if (shutting_down) return;
    asio::post(blocking, [&io, &routes, &counters, &auth_secrets, config_path] {
      auto loaded = config::load_config_file(config_path);
      std::shared_ptr<const net::tls_contexts> tls;
      if (loaded.cfg) {
        config::config_error error;
        if (auto made = net::make_tls_contexts(*loaded.cfg, error)) {
          tls = std::make_shared<const net::tls_contexts>(std::move(*made));
        } else {
          loaded.errors.push_back(std::move(error));
          loaded.cfg.reset();
        }
      }
      asio::post(io, [&routes, &counters, &auth_secrets, config_path, loaded = std::move(loaded),
                      tls = std::move(tls)]() mutable {
        if (!loaded.cfg) {
          counters.reloads_failed.fetch_add(1);
          for (const auto& e : loaded.errors) log::error("reload: " + config_path + ": " + e.path + ": " + e.message);
          log::error("reload: the config was not applied; pgmux keeps running with the previous one");
          return;
        }
        auto next = std::make_shared<const config::config>(std::move(*loaded.cfg));
        warn_about_restart_settings(*routes.config(), *next);
        log::apply(next->log);
        routes.reload(next, std::move(tls));
        auth_secrets.clear();
        counters.reloads_applied.fetch_add(1);
        counters.last_reload_success_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                              std::chrono::system_clock::now().time_since_epoch()).count();
        log::info("reload: applied " + config_path);
      });
    });
  };
  auto stop_now = [&] {
    drain_delay.cancel();
    listener.stop();
    routes.stop();
    loops.stop();
  };
  // SIGTERM and the console's SHUTDOWN: /readyz turns 503 at once; new clients are still taken
  // for drain_delay, while a load balancer notices; then no new clients, and running
  // transactions finish, up to shutdown_timeout. The metrics endpoint answers until the end.
  auto shut_down_gracefully = [&] {
    if (shutting_down.exchange(true)) return;
    counters.draining = true;
    const auto cfg = routes.config();
    log::info("draining: /readyz answers 503; new clients are taken for " + config::format_duration(cfg->drain_delay) +
              " (drain_delay), then running transactions get " + config::format_duration(cfg->shutdown_timeout) +
              " (shutdown_timeout)");
    asio::co_spawn(io, [&]() -> asio::awaitable<void> {
      drain_delay.expires_after(routes.config()->drain_delay);
      co_await drain_delay.async_wait(net::nothrow);
      // Every listener closes (each on its own worker) before the sessions are told: none
      // accepted after this misses the drain. Bounded, should a worker be stuck.
      auto closed = std::make_shared<asio::steady_timer>(io, std::chrono::seconds(5));
      listener.stop([closed] { closed->cancel(); });
      co_await closed->async_wait(net::nothrow);
      log::info("no new clients: shutting down once running transactions finish");
      sessions.for_each([](const std::shared_ptr<net::client_session>& s) { s->drain(); });
      // Woken by the last client to leave (hooks.clients_gone), else at shutdown_timeout.
      all_clients_gone.expires_after(routes.config()->shutdown_timeout);
      if (client_count.load() > 0) co_await all_clients_gone.async_wait(net::nothrow);
      if (client_count.load() > 0) log::warn("shutdown_timeout reached with " + std::to_string(client_count.load()) + " clients left");
      stop_now();
    }, net::log_failure("shutdown"));
  };
  hooks.reload = reload_config;
  hooks.clients_gone = [&io, &all_clients_gone, &shutting_down] {
    if (shutting_down) asio::post(io, [&all_clients_gone] { all_clients_gone.cancel(); });
  };
  hooks.shutdown = [&io, &shut_down_gracefully] { asio::post(io, shut_down_gracefully); };

  std::unique_ptr<config_watch> watch;
  if (cfg->watch_config) {
    try {
      watch = std::make_unique<config_watch>(io, config_path, [&] {
        log::info("reload: " + config_path + " changed");
        reload_config();
      });
    } catch (const std::exception& e) {
      log::error(std::string("watch_config: ") + e.what());
      return 1;
    }
  }

  asio::signal_set signals(io, SIGINT, SIGTERM, SIGHUP);
  std::function<void(const boost::system::error_code&, int)> on_signal = [&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    if (sig == SIGHUP) {
      signals.async_wait(on_signal);
      reload_config();
    } else if (sig == SIGTERM && !shutting_down) {
      log::info("SIGTERM received");
      signals.async_wait(on_signal);
      shut_down_gracefully();
    } else {
      log::info(sig == SIGINT ? "SIGINT: shutting down now" : "second SIGTERM: shutting down now");
      stop_now();
    }
  };
  signals.async_wait(on_signal);

  routes.start();
  listener.start();
  log::info("pgmux listening on " + cfg->listen.host + ":" + std::to_string(cfg->listen.port) + " with " +
            std::to_string(workers) + " worker" + (workers == 1 ? "" : "s"));

  static_assert(net::max_lag_workers >= config::max_workers, "every worker's loop is probed for /healthz");
  counters.workers = workers;
  for (unsigned i = 0; i < workers; ++i) {
    if (i < net::max_lag_workers) counters.loop_probe_ns[i] = net::now_ns();
    asio::co_spawn(loops.io(i), probe_event_loop(counters, i), asio::detached);
  }

  loops.run();
  // Coroutines still queued (clients cut off by SIGINT or shutdown_timeout) refer to the
  // sessions' registries, the router and its pools: destroy them while all of that exists.
  loops.discard_pending();
  log::info("pgmux stopped");
  return 0;
}

}  // namespace pgmux::app
