// Server pool glue: carries out pool_core's decisions with sockets, timers and coroutines.
#include "pgmux/server/pool.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>

#include <cstdio>
#include <random>

#include "pgmux/config/duration.hpp"
#include "pgmux/log.hpp"
#include "pgmux/io/spawn.hpp"

namespace pgmux::net {
namespace {

using namespace std::chrono_literals;

// How often idle reaping, connect retries and command / idle-transaction timeouts are checked.
constexpr auto maintenance_period = 100ms;
// How long a request runs before its client is checked for a hang-up.
constexpr std::int64_t client_check_ns = std::chrono::nanoseconds(900ms).count();

pgmux::pool::pool_limits limits_from(const config::pool_settings& s, unsigned workers) {
  pgmux::pool::pool_limits l;
  l.workers = workers;
  l.min_size = s.min_size;
  l.max_size = s.max_size;
  l.idle_lifetime = s.max_inactive_connection_lifetime;
  l.server_lifetime = s.server_lifetime;
  l.unreachable_grace = s.server_connect_failure_grace;
  return l;
}

// The limiter's bounds within the pool's: max 0 (or above max_size) is max_size.
pgmux::pool::limit_settings limit_settings_from(const config::pool_settings& s) {
  const auto& a = s.adaptive;
  pgmux::pool::limit_settings l;
  l.max = a.max == 0 ? s.max_size : std::min(a.max, s.max_size);
  l.min = std::min(a.min, l.max);
  l.window = a.window;
  l.tolerance = a.tolerance;
  l.backoff = a.backoff;
  l.max_error_rate = a.max_error_rate;
  return l;
}

double random_unit() {
  thread_local std::minstd_rand rng{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

}  // namespace

disconnect_kind disconnect_kind_of(close_reason r) noexcept {
  switch (r) {
    case close_reason::server_idle: return disconnect_kind::idle;
    case close_reason::server_lifetime: return disconnect_kind::lifetime;
    case close_reason::server_dirty: return disconnect_kind::dirty;
    case close_reason::pause: return disconnect_kind::pause;
    case close_reason::reload: return disconnect_kind::reload;
    case close_reason::shutdown: return disconnect_kind::shutdown;
    default: return disconnect_kind::error;
  }
}

void pool_counters::add_to(pool_counters& total) const noexcept {
  auto add = [](const std::atomic<std::uint64_t>& from, std::atomic<std::uint64_t>& to) {
    to.fetch_add(from.load(std::memory_order_relaxed), std::memory_order_relaxed);
  };
  for (std::size_t i = 0; i < disconnects.size(); ++i) add(disconnects[i], total.disconnects[i]);
  add(transactions, total.transactions);
  add(server_connects, total.server_connects);
  add(server_connect_errors, total.server_connect_errors);
  add(query_wait_timeouts, total.query_wait_timeouts);
  add(command_timeouts, total.command_timeouts);
  add(cancel_escalations, total.cancel_escalations);
  add(bytes_to_server, total.bytes_to_server);
  add(bytes_to_client, total.bytes_to_client);
  add(statements_prepared, total.statements_prepared);
  add(statements_stale, total.statements_stale);
  add(overload_errors, total.overload_errors);
  for (std::size_t i = 0; i < pinned_clients.size(); ++i)
    total.pinned_clients[i].fetch_add(pinned_clients[i].load(std::memory_order_relaxed), std::memory_order_relaxed);
  wait_seconds.add_to(total.wait_seconds);
  transaction_seconds.add_to(total.transaction_seconds);
  statement_seconds.add_to(total.statement_seconds);
}

struct server_pool::waiter {
  explicit waiter(asio::any_io_executor ex) : timer(std::move(ex)) {}
  asio::steady_timer timer;
  std::weak_ptr<session_control> owner;
  // Set and read on the waiter's executor only: whether it left, and whether acquire() has
  // resumed (then a late request to watch the client is ignored).
  queue_watcher* watcher = nullptr;
  pgmux::pool::worker_id worker = 0;
  bool left = false;
  bool resumed = false;
  bool watch_requested = false;  // under mu_
  clock::time_point since{};
  std::shared_ptr<server_connection> assigned;
  std::optional<acquire_error> failed;  // the server refused logins: give up without waiting
};

lease& lease::operator=(lease&& other) noexcept {
  if (this != &other) {
    release(false);
    pool_ = std::move(other.pool_);
    conn_ = std::move(other.conn_);
  }
  return *this;
}

void lease::release(bool clean) {
  if (!conn_) return;
  auto owner = std::move(pool_);
  owner->give_back(std::move(conn_), clean);
}

replication_connection::~replication_connection() {
  if (!conn_) return;  // moved from
  {
    // Out of the pool's books before the socket closes: stop() never touches a closed one.
    std::lock_guard lock(pool_->mu_);
    auto& open = pool_->replication_conns_;
    std::erase_if(open, [this](const std::weak_ptr<server_connection>& w) { return w.expired() || w.lock() == conn_; });
    pool_->replication_count_.fetch_sub(1, std::memory_order_relaxed);
  }
  conn_->close();
}

void server_pool::end_replication_streams() {
  for (auto& weak : replication_conns_)
    if (auto conn = weak.lock()) conn->abort_request();
}

asio::awaitable<std::variant<replication_connection, acquire_error>> server_pool::open_replication(
    asio::any_io_executor executor, protocol::parameter_list parameters) {
  auto self = shared_from_this();
  server_login login;
  std::uint64_t id = 0;
  std::uint64_t generation = 0;
  {
    std::lock_guard lock(mu_);
    if (stopped_) co_return acquire_error{"57P01", stop_reason_};
    const auto limit = settings_.max_replication_connections;
    if (replication_count_.load(std::memory_order_relaxed) >= limit)
      co_return acquire_error{"53300", "too many replication connections for pool " + name_ + " (max_replication_connections " +
                                           std::to_string(limit) + ")"};
    replication_count_.fetch_add(1, std::memory_order_relaxed);
    login = login_;
    login.timeout = settings_.connect_timeout;
    login.passthrough = passthrough_;
    generation = login_generation_;
    id = next_replication_id_++;
  }
  login.extra_parameters = std::move(parameters);
  auto conn = std::make_shared<server_connection>(loop_executor(executor), id);
  conn->pool_name = name_;
  replication_connection owned(self, conn);  // counted from here: uncounted whatever happens next
  const auto error = co_await conn->open(login);
  if (!error.empty()) {
    log::warn("pool " + name_ + ": replication connection: " + error);
    co_return acquire_error{conn->refusal_code().empty() ? std::string("08001") : conn->refusal_code(), error};
  }
  {
    std::lock_guard lock(mu_);
    if (stopped_) co_return acquire_error{"57P01", stop_reason_};
    if (generation != login_generation_) co_return acquire_error{"57P01", "the pool's server login changed"};
    replication_conns_.push_back(conn);
  }
  co_return std::move(owned);
}

server_pool::server_pool(worker_set& workers, std::string database, std::string entry, server_login login,
                         config::pool_settings settings)
    : workers_(workers), database_(std::move(database)), server_user_(login.user), name_(database_ + "/" + server_user_),
      entry_(std::move(entry)), login_(std::move(login)), settings_(settings),
      shared_settings_(std::make_shared<const config::pool_settings>(settings)), core_(limits_from(settings, workers.size())),
      queries_(settings.query_stats.max_entries) {
  for (unsigned i = 0; i < workers.size(); ++i) worker_counters_.push_back(std::make_unique<pool_counters>());
  configure_limit(false);
}

void server_pool::configure_limit(bool was_enabled) {
  if (!settings_.adaptive.enabled) {
    core_.set_cap(0);
    return;
  }
  // Switched on: a fresh start from min. Already on: the limit is kept within the new bounds.
  if (!was_enabled) {
    limiter_ = pgmux::pool::concurrency_limit(limit_settings_from(settings_));
    overload_errors_fed_ = overload_errors_seen();  // only errors from now on count
    last_transaction_end_ = clock::now();
  }
  else limiter_.configure(limit_settings_from(settings_));
  core_.set_cap(limiter_.limit());
}

std::uint64_t server_pool::overload_errors_seen() const noexcept {
  std::uint64_t seen = counters_.overload_errors.load(std::memory_order_relaxed);
  for (const auto& c : worker_counters_) seen += c->overload_errors.load(std::memory_order_relaxed);
  return seen;
}

void server_pool::feed_overload_errors() {
  const auto seen = overload_errors_seen();
  // Each is one event of the limiter's window; a burst larger than a window cuts once anyway.
  const auto fresh = std::min<std::uint64_t>(seen - overload_errors_fed_, limiter_.settings().window);
  overload_errors_fed_ = seen;
  for (std::uint64_t i = 0; i < fresh; ++i) limit_changed(limiter_.on_error(core_.lent()));
}

void server_pool::limit_changed(pgmux::pool::limit_change change) {
  if (change == pgmux::pool::limit_change::none) return;
  core_.set_cap(limiter_.limit());
  if (!log::enabled(log::level::debug)) return;
  const auto f = limiter_.figures();
  log::debug("pool " + name_ + ": concurrency limit " + (change == pgmux::pool::limit_change::up ? "raised" : "cut") +
             " to " + std::to_string(f.limit) + " (window median " +
             std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(f.last_median).count()) +
             " us, baseline " + std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(f.baseline).count()) +
             " us)");
}

std::unique_ptr<const pool_counters> server_pool::counters() const {
  auto total = std::make_unique<pool_counters>();
  counters_.add_to(*total);
  for (const auto& c : worker_counters_) c->add_to(*total);
  return total;
}

server_pool::~server_pool() = default;

server_login server_pool::login() const {
  std::lock_guard lock(mu_);
  return login_;
}

void server_pool::update(const config::pool_settings& settings, const server_login& login) {
  deferred_work work;
  {
    std::lock_guard lock(mu_);
    if (stopped_) return;
    const bool was_adaptive = settings_.adaptive.enabled;
    settings_ = settings;
    {
      auto fresh = std::make_shared<const config::pool_settings>(settings);
      std::lock_guard records(records_mu_);
      shared_settings_.swap(fresh);
    }  // the old copy is freed outside the lock
    core_.set_limits(limits_from(settings, workers_.size()));
    queries_.set_max_entries(settings.query_stats.max_entries);
    configure_limit(was_adaptive);
    if (!(login == login_)) {
      login_ = login;
      ++login_generation_;
      end_replication_streams();
      canonical_values_.clear();  // perhaps another server now
      last_refusal_code_.clear();
      for (auto it = conns_.begin(); it != conns_.end();) {
        if (it->second.lent) {
          ++it;
          continue;
        }
        core_.forget(it->first);
        counters_.count_disconnect(disconnect_kind::reload);
        work.close.push_back(std::move(it->second.conn));
        it = conns_.erase(it);
      }
    }
    settle(clock::now(), work);
  }
  run(std::move(work));
}

config::pool_settings server_pool::settings() const {
  std::lock_guard lock(mu_);
  return settings_;
}

std::shared_ptr<const config::pool_settings> server_pool::shared_settings() const {
  std::lock_guard lock(records_mu_);
  return shared_settings_;
}

std::shared_ptr<const protocol::session_settings> server_pool::shared_session_settings(protocol::session_settings wanted) {
  std::lock_guard lock(records_mu_);
  return session_settings_.share(std::move(wanted));
}

std::shared_ptr<const std::vector<protocol::parameter_change>> server_pool::shared_restorable(
    std::vector<protocol::parameter_change> values) {
  std::lock_guard lock(records_mu_);
  return restorable_.share(std::move(values));
}

std::shared_ptr<const protocol::login_names> server_pool::shared_names(const protocol::login_names& names) {
  std::lock_guard lock(records_mu_);
  return names_.share(names);
}

void server_pool::start() {
  deferred_work work;
  {
    std::lock_guard lock(mu_);
    settle(clock::now(), work);
    maintenance_timer_ = std::make_shared<asio::steady_timer>(workers_.executor(0));
  }
  run(std::move(work));
  asio::co_spawn(workers_.executor(0), maintain(), log_failure("pool maintenance"));
}

void server_pool::stop(std::string why) {
  deferred_work work;
  std::vector<std::shared_ptr<waiter>> waiting;
  {
    std::lock_guard lock(mu_);
    stopped_ = true;
    stop_reason_ = std::move(why);
    end_replication_streams();
    for (auto& [id, slot] : conns_)
      if (!slot.lent) work.close.push_back(slot.conn);
    for (auto& c : work.close) {
      core_.forget(c->id());
      conns_.erase(c->id());
      counters_.count_disconnect(disconnect_kind::shutdown);
    }
    for (auto& [id, w] : waiters_) {
      core_.remove_waiter(id);
      waiting.push_back(w);
    }
    waiters_.clear();
  }
  work.wake = std::move(waiting);
  run(std::move(work));
  if (maintenance_timer_) asio::post(maintenance_timer_->get_executor(), [t = maintenance_timer_] { t->cancel(); });
}

std::shared_ptr<server_connection> server_pool::take_idle_locked(pgmux::pool::waiter_id* wid, clock::time_point now,
                                                                   pgmux::pool::worker_id worker,
                                                                   const std::weak_ptr<session_control>& owner,
                                                                   deferred_work& work) {
  for (;;) {
    std::optional<pgmux::pool::conn_id> id;
    if (wid) {
      *wid = next_waiter_++;
      id = core_.acquire(*wid, now, worker);
    } else {
      id = core_.take_if_idle(now, worker);
    }
    if (!id) return nullptr;  // queued in the core as *wid, if given
    auto& slot = conns_.at(*id);
    auto conn = slot.conn;
    const bool outdated = slot.login_generation != login_generation_;
    // A connection idle for a while may have been ended by the server (restart, idle timeout)
    // with the watch's wake-up still on the way: one non-blocking peek closes that window. One
    // given back moments ago is lent without the syscall; if the server ended it meanwhile,
    // the relay sees it die before answering and sends the request again elsewhere.
    const bool peek = slot.watching || now - conn->last_used >= maintenance_period ||
                      settings_.mode == config::pool_mode::session;
    if (outdated || (peek && !conn->looks_alive())) {
      log::info(conn->describe() + (outdated ? " closed: reload" : " closed: the server hung up while it was idle"));
      core_.release(*id, now, false);
      conns_.erase(*id);
      counters_.count_disconnect(outdated ? disconnect_kind::reload : disconnect_kind::error);
      work.close.push_back(std::move(conn));
      continue;
    }
    lend(slot, owner, now);
    bring_to(*id, slot, worker);
    return conn;
  }
}

std::optional<std::variant<lease, acquire_error>> server_pool::try_acquire(const std::weak_ptr<session_control>& owner) {
  const auto worker = worker_set::current();
  deferred_work work;
  std::shared_ptr<server_connection> got;
  {
    std::lock_guard lock(mu_);
    if (stopped_) return acquire_error{"57P01", stop_reason_};
    const auto now = clock::now();
    got = take_idle_locked(nullptr, now, worker, owner, work);  // acquire() queues, with its timer
    if (!got && work.close.empty()) return std::nullopt;
    settle(now, work);
  }
  run(std::move(work));
  if (!got) return std::nullopt;
  worker_counters().wait_seconds.observe(0);
  return lease(shared_from_this(), std::move(got));
}

asio::awaitable<std::variant<lease, acquire_error>> server_pool::acquire(clock::time_point deadline,
                                                                       std::weak_ptr<session_control> owner,
                                                                       queue_watcher* watcher) {
  auto self = shared_from_this();
  const auto worker = worker_set::current();
  deferred_work work;
  std::shared_ptr<waiter> w;
  pgmux::pool::waiter_id wid = 0;
  std::shared_ptr<server_connection> got;
  {
    std::lock_guard lock(mu_);
    if (stopped_) co_return acquire_error{"57P01", stop_reason_};
    const auto now = clock::now();
    got = take_idle_locked(&wid, now, worker, owner, work);
    if (!got && !last_refusal_code_.empty() && core_.failing(now)) {
      // The server refused the last login (or stayed unreachable past the grace) moments ago
      // and nothing is open that could be released: answer now rather than after
      // query_wait_timeout. Past the backoff, the next client waits for a fresh attempt.
      core_.remove_waiter(wid);
      co_return acquire_error{last_refusal_code_, last_connect_error_};
    }
    if (!got) {
      w = std::make_shared<waiter>(co_await asio::this_coro::executor);
      w->owner = std::move(owner);
      w->watcher = watcher;
      w->worker = worker;
      w->since = now;
      waiters_.emplace(wid, w);
      load_.update(now, core_.lent(), core_.demand(), false);
    }
    settle(now, work);
  }
  run(std::move(work));
  if (got) {
    worker_counters().wait_seconds.observe(0);
    co_return lease(self, std::move(got));
  }

  const auto wait_start = clock::now();
  if (watcher) watcher->waiting();
  w->timer.expires_at(deadline);
  co_await w->timer.async_wait(nothrow);
  w->resumed = true;

  std::unique_lock lock(mu_);
  if (w->left) {
    // The client hung up while queued: it leaves the queue, and a connection handed to it
    // meanwhile was never used, so it goes back idle.
    if (auto conn = std::move(w->assigned)) {
      lock.unlock();
      give_back(std::move(conn), true, false);
      co_return acquire_error{"", "the client left while waiting"};
    }
    core_.remove_waiter(wid);
    waiters_.erase(wid);
    co_return acquire_error{"", "the client left while waiting"};
  }
  if (w->assigned) {
    worker_counters().wait_seconds.observe(std::chrono::duration<double>(clock::now() - wait_start).count());
    co_return lease(self, std::move(w->assigned));
  }
  core_.remove_waiter(wid);
  waiters_.erase(wid);
  if (w->failed) co_return std::move(*w->failed);
  if (stopped_) co_return acquire_error{"57P01", stop_reason_};
  counters_.query_wait_timeouts.fetch_add(1, std::memory_order_relaxed);
  std::string message = "no server connection available within query_wait_timeout (" +
                        std::to_string(settings_.query_wait_timeout.count()) + "ms)";
  if (!last_connect_error_.empty()) message += "; last server connect error: " + last_connect_error_;
  co_return acquire_error{"53300", std::move(message)};
}

void server_pool::give_back(std::shared_ptr<server_connection> conn, bool clean, bool transaction) {
  deferred_work work;
  std::vector<std::function<void()>> none_lent;
  {
    std::lock_guard lock(mu_);
    const auto now = clock::now();
    const auto id = conn->id();
    bool outdated = false;  // opened for a login a reload has replaced
    conn->flush_figures();
    conn->last_statement.clear();
    if (auto it = conns_.find(id); it != conns_.end()) {
      it->second.lent = false;
      it->second.owner.reset();
      if (transaction) {
        auto& counters = worker_counters();
        counters.transactions.fetch_add(1, std::memory_order_relaxed);
        counters.transaction_seconds.observe(std::chrono::duration<double>(now - it->second.lent_at).count());
        // Still counted as lent here: the demand this transaction saw includes itself.
        if (settings_.adaptive.enabled) {
          last_transaction_end_ = now;
          limit_changed(limiter_.on_transaction(now - it->second.lent_at, core_.lent(), core_.demand()));
        }
      }
      outdated = it->second.login_generation != login_generation_;
    }
    // A CancelRequest still on its way could hit the next client's query: never lend such a
    // connection (the maintenance task counts its cancels under this same lock).
    if (conn->cancels_in_flight.load() > 0) clean = false;
    auto reason = stopped_ ? std::optional(close_reason::shutdown) : core_.release(id, now, clean && !outdated);
    if (reason && outdated && clean) reason = close_reason::reload;
    if (stopped_) core_.forget(id);
    if (reason) {
      conns_.erase(id);
      counters_.count_disconnect(conn->broken() ? disconnect_kind::error : disconnect_kind_of(*reason));
      log::info(conn->describe() + " closed: " + to_string(*reason));
      work.close.push_back(std::move(conn));
    } else {
      // Watched for a hang-up only once it stays idle (maintain()): a connection taken again
      // at once costs no readiness wait armed and cancelled.
      conn->last_used = now;
    }
    load_.update(now, core_.lent(), core_.demand(), false);
    if (!stopped_) settle(now, work);
    if (!none_lent_callbacks_.empty() && core_.stats(now).active == 0) none_lent.swap(none_lent_callbacks_);
  }
  run(std::move(work));
  for (auto& callback : none_lent) callback();
}

void server_pool::when_none_lent(std::function<void()> callback) {
  {
    std::lock_guard lock(mu_);
    if (core_.stats(clock::now()).active > 0) {
      none_lent_callbacks_.push_back(std::move(callback));
      return;
    }
  }
  callback();
}

void server_pool::lend(slot& s, std::weak_ptr<session_control> owner, clock::time_point now) {
  s.conn->cancel_timeout_cap_ns.store(std::chrono::nanoseconds(settings_.cancel_grace).count(), std::memory_order_relaxed);
  s.owner = std::move(owner);
  s.lent = true;
  s.lent_at = now;
  load_.update(now, core_.lent(), core_.demand(), true);
  if (!s.watching) return;
  // The idle watch must not act on, nor hold a wait on, a socket its client now uses.
  s.watching = false;
  ++s.watch_generation;
  error_code ignored;
  s.conn->socket().lowest_layer().cancel(ignored);
}

void server_pool::bring_to(pgmux::pool::conn_id id, slot& s, pgmux::pool::worker_id worker) {
  // The lease's figures go to the counters of the client's worker, which adds them.
  s.conn->counters = worker_counters_[worker].get();
  if (core_.worker_of(id) == worker) return;
  // No idle connection of the client's own worker: this one moves over, so that its reads and
  // writes complete where the client runs (one epoll registration moved, no wake-up per read).
  s.conn->socket().move_to(workers_.executor(worker));
  core_.moved(id, worker);
}

void server_pool::watch_idle(pgmux::pool::conn_id id) {
  auto& s = conns_.at(id);
  s.watching = true;
  const auto generation = ++s.watch_generation;
  // A readiness wait, not a read: nothing is consumed, so the next client finds the stream as
  // it was. An idle server sends nothing; readable means it hung up or reports an error
  // (57P01 after pg_terminate_backend or a shutdown).
  s.conn->socket().lowest_layer().async_wait(
      socket_t::wait_read, [weak = weak_from_this(), id, generation](const error_code& ec) {
        if (ec == asio::error::operation_aborted) return;
        if (auto self = weak.lock()) self->idle_readable(id, generation);
      });
}

void server_pool::watch_settled_waiters(clock::time_point now) {
  for (auto& [id, w] : waiters_) {
    if (w->watch_requested || !w->watcher || now - w->since < maintenance_period) continue;
    w->watch_requested = true;
    asio::post(w->timer.get_executor(), [w = w] {
      if (w->resumed) return;
      w->watcher->queued([w] {
        w->left = true;
        w->timer.cancel();
      });
    });
  }
}

void server_pool::watch_settled_idle(clock::time_point now) {
  for (auto& [id, s] : conns_)
    if (!s.lent && !s.watching && now - s.conn->last_used >= maintenance_period) watch_idle(id);
}

void server_pool::idle_readable(pgmux::pool::conn_id id, std::uint64_t generation) {
  deferred_work work;
  {
    std::lock_guard lock(mu_);
    auto it = conns_.find(id);
    if (stopped_ || it == conns_.end() || it->second.lent || it->second.watch_generation != generation) return;
    it->second.watching = false;
    auto conn = it->second.conn;
    if (conn->looks_alive()) {  // a spurious wake-up
      watch_idle(id);
      return;
    }
    log::info("pool " + name_ + ": " + conn->describe() + " closed: the server hung up while it was idle");
    core_.forget(id);
    conns_.erase(it);
    conn->mark_broken();  // no Terminate into a dead socket
    counters_.count_disconnect(disconnect_kind::error);
    work.close.push_back(std::move(conn));
    settle(clock::now(), work);
  }
  run(std::move(work));
}

void server_pool::settle(clock::time_point now, deferred_work& work) {
  for (const auto& a : core_.dispatch(now)) {
    auto it = waiters_.find(a.waiter);
    auto& slot = conns_.at(a.conn);
    if (it == waiters_.end()) {  // cannot happen: waiters leave the core and the map together
      core_.release(a.conn, now, true);
      continue;
    }
    auto w = std::move(it->second);
    waiters_.erase(it);
    lend(slot, w->owner, now);
    bring_to(a.conn, slot, w->worker);
    w->assigned = slot.conn;
    work.wake.push_back(std::move(w));
  }
  for (auto id : core_.start_connects(now)) work.connect.emplace_back(id, core_.worker_of(id));
}

void server_pool::run(deferred_work work) {
  for (auto& w : work.wake) asio::post(w->timer.get_executor(), [w] { w->timer.cancel(); });
  for (auto& c : work.close) c->close();
  for (auto [id, worker] : work.connect)
    asio::co_spawn(workers_.executor(worker), connect_one(id, worker), log_failure("server connect"));
}

asio::awaitable<void> server_pool::connect_one(pgmux::pool::conn_id id, pgmux::pool::worker_id worker) {
  auto self = shared_from_this();
  auto conn = std::make_shared<server_connection>(workers_.executor(worker), id);
  conn->pool_name = name_;
  conn->counters = &counters_;
  server_login login;
  std::uint64_t generation = 0;
  {
    std::lock_guard lock(mu_);
    login = login_;
    login.timeout = settings_.connect_timeout;
    login.passthrough = passthrough_;
    generation = login_generation_;
    std::vector<std::string> none;  // a new connection holds nothing to evict
    conn->prepared.statements.set_capacity(settings_.max_prepared_statements, none);
  }
  std::string error;
  const auto attempt_started = clock::now();
  try {
    error = co_await conn->open(login);
  } catch (const std::exception& e) {  // the books must hear of every attempt, whatever happens
    error = std::string("server connect failed: ") + e.what();
  }
  deferred_work work;
  {
    std::lock_guard lock(mu_);
    const auto now = clock::now();
    if (!error.empty()) {
      counters_.server_connect_errors.fetch_add(1, std::memory_order_relaxed);
      // Logins refused for want of resources (53300 too many connections, 53200 out of memory):
      // overload feedback for the adaptive limit. A server that is down, restarting or refusing
      // the login for other reasons says nothing about the load.
      if (settings_.adaptive.enabled && protocol::overload_sqlstate(conn->refusal_code()))
        limit_changed(limiter_.on_error(core_.lent()));
      const auto kind = pgmux::pool::classify_connect_failure(conn->refusal_code());
      const bool answer = core_.connect_failed(id, now, kind, attempt_started);
      if (error != last_connect_error_) log::warn("pool " + name_ + ": " + error);
      last_connect_error_ = error;
      // A server restarting (57P03 and kin) or briefly unreachable is waited for; a final
      // refusal, or a server gone past server_connect_failure_grace, is told to everyone
      // waiting now.
      last_refusal_code_ = !answer ? std::string()
                           : kind == pgmux::pool::connect_failure::final ? conn->refusal_code()
                                                                         : std::string("08001");
      if (answer) {
        for (auto& [wid, w] : waiters_) {
          core_.remove_waiter(wid);
          w->failed = acquire_error{last_refusal_code_, error};
          work.wake.push_back(w);
        }
        waiters_.clear();
      }
    } else if (stopped_) {
      core_.forget(id);
      work.close.push_back(conn);
    } else {
      log::connection("pool " + name_ + ": " + conn->describe() + " opened" +
                      (conn->tls.empty() ? std::string() : " (" + conn->tls + ")"));
      conn->last_used = now;
      if (!first_report_)
        first_report_ = std::make_shared<const protocol::server_report>(protocol::make_server_report(conn->parameters()));
      counters_.server_connects.fetch_add(1, std::memory_order_relaxed);
      conns_.emplace(id, slot{conn, generation, {}, false, {}, 0});
      core_.connect_succeeded(id, now, random_unit());
      watch_idle(id);
      last_connect_error_.clear();
      last_refusal_code_.clear();
    }
    if (!stopped_) settle(now, work);
  }
  run(std::move(work));
}

void server_pool::check_timeouts(std::vector<std::shared_ptr<server_connection>>& cancel,
                                 std::vector<std::pair<std::shared_ptr<session_control>, close_reason>>& notify) {
  const auto now = now_ns();
  const auto command_timeout = std::chrono::nanoseconds(settings_.command_timeout).count();
  const auto cancel_grace = std::chrono::nanoseconds(settings_.cancel_grace).count();
  const auto idle_tx_timeout = std::chrono::nanoseconds(settings_.idle_transaction_timeout).count();
  for (const auto& [id, slot] : conns_) {
    if (!slot.lent) continue;
    const auto& conn = slot.conn;
    const auto& owner = slot.owner;
    const auto busy_since = conn->busy_since_ns.load(std::memory_order_relaxed);
    if (command_timeout > 0 && busy_since != 0 && now - busy_since > command_timeout &&
        !conn->cancel_sent.exchange(true)) {
      conn->cancels_in_flight.fetch_add(1);
      counters_.command_timeouts.fetch_add(1, std::memory_order_relaxed);
      if (settings_.adaptive.enabled) limit_changed(limiter_.on_error(core_.lent()));
      cancel.push_back(conn);
    }
    // A cancel that did not end its request within cancel_grace (the backend is blocked
    // writing to a client that stopped reading, or the server stopped answering): give up on
    // the connection. Aborted under mu_, while the slot is lent: its socket is still open.
    if (cancel_grace > 0 && busy_since != 0 &&
        conn->cancelled_request_ns.load(std::memory_order_relaxed) == busy_since &&
        now - conn->cancel_at_ns.load(std::memory_order_relaxed) > cancel_grace && conn->abort_request()) {
      counters_.cancel_escalations.fetch_add(1, std::memory_order_relaxed);
      log::warn("pool " + name_ + ": " + conn->describe() + " still busy " +
                std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(settings_.cancel_grace).count()) +
                "ms after a cancel request: closing it");
      if (auto s = owner.lock()) notify.emplace_back(std::move(s), close_reason::server_error);
      continue;
    }
    // A client that died while its query runs is noticed within about a second.
    if (busy_since != 0 && now - busy_since > client_check_ns &&
        now - conn->client_checked_ns.load(std::memory_order_relaxed) > client_check_ns) {
      conn->client_checked_ns.store(now, std::memory_order_relaxed);
      if (auto s = owner.lock()) notify.emplace_back(std::move(s), close_reason::client_eof);
    }
    if (idle_tx_timeout > 0) {
      const auto since = conn->idle_in_tx_since_ns.load(std::memory_order_relaxed);
      if (since != 0 && now - since > idle_tx_timeout) {
        conn->idle_in_tx_since_ns.store(0, std::memory_order_relaxed);
        if (auto s = owner.lock()) notify.emplace_back(std::move(s), close_reason::idle_transaction_timeout);
      }
    }
  }
}

std::optional<server_pool::advice_line> server_pool::judge_size(clock::time_point now) {
  advice_checked_ = now;
  const auto f = load_.figures(now);
  const auto verdict = pgmux::pool::judge_size(f, settings_.max_size);
  if (!advice_alarm_.update(now, verdict, settings_.advice_log_after)) return std::nullopt;
  char figures[160];
  std::snprintf(figures, sizeof figures,
                "%.2f connections lent on average (%.1f transactions/s held %.1f ms each), at most %zu clients at once",
                f.offered_load, f.arrival_rate, f.mean_hold_seconds * 1e3, f.peak_demand);
  const std::string line = "pool " + name_ + ": max_size " + std::to_string(settings_.max_size) + " has been " +
                           to_string(verdict) + " for " + config::format_duration(settings_.advice_log_after) +
                           ": the last " + std::to_string(static_cast<int>(f.seconds)) + " s needed " +
                           std::to_string(f.advised_size) + " (" + figures + "; SHOW ADVICE)";
  return advice_line{line, verdict == pgmux::pool::size_verdict::too_small};
}

asio::awaitable<void> server_pool::maintain() {
  auto self = shared_from_this();
  auto timer = maintenance_timer_;
  for (;;) {
    timer->expires_after(maintenance_period);
    co_await timer->async_wait(nothrow);
    deferred_work work;
    std::vector<std::shared_ptr<server_connection>> cancel;
    std::vector<std::pair<std::shared_ptr<session_control>, close_reason>> notify;
    std::optional<advice_line> advice;
    {
      std::lock_guard lock(mu_);
      if (stopped_) co_return;
      const auto now = clock::now();
      for (const auto& c : core_.reap(now)) {
        auto it = conns_.find(c.conn);
        if (it == conns_.end()) continue;
        log::info("pool " + name_ + ": " + it->second.conn->describe() + " closed: " + to_string(c.reason));
        counters_.count_disconnect(disconnect_kind_of(c.reason));
        work.close.push_back(std::move(it->second.conn));
        conns_.erase(it);
      }
      // The limiter first: a limit it raises serves the queue in this settle.
      if (settings_.adaptive.enabled) {
        feed_overload_errors();
        const auto change = limiter_.on_stall(now - last_transaction_end_, core_.lent(), core_.demand());
        if (change != pgmux::pool::limit_change::none) last_transaction_end_ = now;  // the next stall from here
        limit_changed(change);
      }
      settle(now, work);
      watch_settled_idle(now);
      watch_settled_waiters(now);
      check_timeouts(cancel, notify);
      if (now - advice_checked_ >= 1s) advice = judge_size(now);
    }
    if (advice && advice->warn) log::warn(advice->text);
    else if (advice) log::info(advice->text);
    run(std::move(work));
    for (auto& conn : cancel) {
      log::info("pool " + name_ + ": command_timeout reached on " + conn->describe() + ", cancelling");
      asio::co_spawn(workers_.executor(0), cancel_running_query(conn, settings().connect_timeout),
                     log_failure("cancel request"));
    }
    for (auto& [session, why] : notify) {
      if (why == close_reason::client_eof) session->check_client();
      else session->kill(why);
    }
  }
}

void server_pool::remember_scram_keys(scram_keys keys) {
  deferred_work work;
  {
    std::lock_guard lock(mu_);
    if (keys.empty() || keys == passthrough_) return;
    passthrough_ = std::move(keys);
    if (!login_.password.empty() || stopped_ || !core_.retry_at()) return;
    // Backing off after failed logins, which may have failed for want of a password and may
    // succeed now: try again at once, and let the next client wait for that attempt instead of
    // getting the old refusal.
    last_refusal_code_.clear();
    core_.retry_now();
    settle(clock::now(), work);
  }
  run(std::move(work));
}

std::shared_ptr<const protocol::server_report> server_pool::first_report() const {
  std::lock_guard lock(mu_);
  return first_report_;
}

std::optional<std::string> server_pool::canonical_value(std::size_t parameter, const std::string& spelling) const {
  std::lock_guard lock(mu_);
  const auto it = canonical_values_.find({parameter, spelling});
  if (it == canonical_values_.end()) return std::nullopt;
  return it->second;
}

void server_pool::remember_canonical_value(std::size_t parameter, std::string spelling, std::string canonical) {
  std::lock_guard lock(mu_);
  if (canonical_values_.size() < max_canonical_values)
    canonical_values_.emplace(std::pair{parameter, std::move(spelling)}, std::move(canonical));
}

void server_pool::set_paused(bool paused) {
  deferred_work work;
  {
    std::lock_guard lock(mu_);
    if (stopped_ || core_.paused() == paused) return;
    core_.set_paused(paused);
    const auto now = clock::now();
    for (const auto& c : core_.reap(now)) {  // paused: every idle connection goes now
      auto it = conns_.find(c.conn);
      if (it == conns_.end()) continue;
      counters_.count_disconnect(disconnect_kind_of(c.reason));
      work.close.push_back(std::move(it->second.conn));
      conns_.erase(it);
    }
    settle(now, work);
  }
  log::info("pool " + name_ + (paused ? ": paused" : ": resumed"));
  run(std::move(work));
}

pool_snapshot server_pool::snapshot() const {
  std::lock_guard lock(mu_);
  const auto now = clock::now();
  pool_snapshot s{database_,         server_user_,  core_.stats(now),
                  settings_,         core_.paused(), replication_count_.load(std::memory_order_relaxed),
                  first_report_ != nullptr, load_.figures(now), settings_.adaptive.enabled, {}};
  if (s.adaptive) s.limit = limiter_.figures();
  else s.limit.limit = settings_.max_size;
  return s;
}

std::vector<server_info> server_pool::servers() const {
  std::lock_guard lock(mu_);
  const auto steady_now = clock::now();
  const auto system_now = std::chrono::system_clock::now();
  auto wall = [&](clock::time_point t) {
    return system_now - std::chrono::duration_cast<std::chrono::system_clock::duration>(steady_now - t);
  };
  std::vector<server_info> out;
  out.reserve(conns_.size());
  for (const auto& [id, slot] : conns_) {
    const auto& c = *slot.conn;
    out.push_back(server_info{database_, server_user_, slot.lent ? "active" : "idle", c.address().host,
                              c.address().port, c.local_address, c.connected_at,
                              wall(slot.lent ? slot.lent_at : c.last_used), c.backend_key().pid,
                              slot.login_generation != login_generation_, c.tls});
  }
  return out;
}

}  // namespace pgmux::net
