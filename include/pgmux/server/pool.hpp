// A pool of server connections for one (database, server user): Asio glue over pool_core.
// Bookkeeping sits behind one short mutex (workers share the pool); waiting clients sleep
// on their own timer, woken by a post to their own executor when a connection is theirs.
#pragma once
#include <array>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <variant>

#include <boost/asio/io_context.hpp>

#include "pgmux/config/config.hpp"
#include "pgmux/small_mutex.hpp"
#include "pgmux/io/io.hpp"
#include "pgmux/server/pool_counters.hpp"
#include "pgmux/server/server_connection.hpp"
#include "pgmux/io/workers.hpp"
#include "pgmux/pool/histogram.hpp"
#include "pgmux/pool/concurrency_limit.hpp"
#include "pgmux/pool/interned.hpp"
#include "pgmux/pool/pool_core.hpp"
#include "pgmux/pool/query_stats.hpp"
#include "pgmux/pool/size_advice.hpp"

namespace pgmux::net {

// What the pool may ask of the client session holding one of its connections. Called from
// the pool's maintenance task; implementations post into the session's own executor.
class session_control {
 public:
  virtual ~session_control() = default;
  virtual void kill(close_reason reason) = 0;
  // The server has been busy for a while: has the client hung up meanwhile? If so, the
  // session stops waiting for the server and cleans it up (the query is cancelled).
  virtual void check_client() = 0;
};

class server_pool;

// Tells a pool's query table the statements its clients send (statement_tracker's sink).
class query_sink final : public protocol::statement_sink {
 public:
  explicit query_sink(pgmux::pool::query_table& table) : table_(table) {}
  void seen(std::uint64_t fingerprint, std::string_view sql) override {
    // Usually known: then neither the clock nor the normaliser is needed.
    if (!table_.contains(fingerprint)) table_.ensure(fingerprint, sql, coarse_wall_now());
  }

 private:
  pgmux::pool::query_table& table_;
};

// A server connection lent to one client. Move-only; give it back with release(). A lease
// dropped without release() closes its connection: its state is unknown.
class lease {
 public:
  lease() = default;
  lease(std::shared_ptr<server_pool> owner, std::shared_ptr<server_connection> conn)
      : pool_(std::move(owner)), conn_(std::move(conn)) {}
  lease(lease&&) noexcept = default;
  lease& operator=(lease&& other) noexcept;
  lease(const lease&) = delete;
  lease& operator=(const lease&) = delete;
  ~lease() { release(false); }

  explicit operator bool() const noexcept { return conn_ != nullptr; }
  server_connection* operator->() const noexcept { return conn_.get(); }
  server_connection& operator*() const noexcept { return *conn_; }
  const std::shared_ptr<server_connection>& connection() const noexcept { return conn_; }
  // Back to the pool when the connection is clean(), else closed.
  void release() { release(conn_ && conn_->clean()); }
  void release(bool clean);

 private:
  std::shared_ptr<server_pool> pool_;
  std::shared_ptr<server_connection> conn_;
};

// A logical replication client's own server connection (server_pool::open_replication), never
// lent to anyone else. Move-only; closed, and no longer counted by its pool, when it goes.
class replication_connection {
 public:
  replication_connection(std::shared_ptr<server_pool> owner, std::shared_ptr<server_connection> conn)
      : pool_(std::move(owner)), conn_(std::move(conn)) {}
  replication_connection(replication_connection&&) noexcept = default;
  replication_connection& operator=(replication_connection&&) = delete;
  replication_connection(const replication_connection&) = delete;
  replication_connection& operator=(const replication_connection&) = delete;
  ~replication_connection();

  server_connection* operator->() const noexcept { return conn_.get(); }
  server_connection& operator*() const noexcept { return *conn_; }
  const std::shared_ptr<server_connection>& connection() const noexcept { return conn_; }

 private:
  std::shared_ptr<server_pool> pool_;
  std::shared_ptr<server_connection> conn_;
};

// Why a client got no server connection: the SQLSTATE and text of its ErrorResponse.
struct acquire_error {
  std::string code;
  std::string message;
};

// Lets a client that has to queue for a connection leave the queue early (it hung up).
class queue_watcher {
 public:
  // acquire() had to queue the client: no connection was idle for it. Called on the client's
  // executor before the wait; nothing else happens yet.
  virtual void waiting() = 0;
  // The client has been queued for a while (about 100 ms; shorter waits are not watched). Called
  // on the client's executor while acquire() waits. Calling `leave` there while acquire() waits
  // ends the wait at once: acquire() then returns an acquire_error with an empty code, and a
  // connection handed over meanwhile goes back idle. Calling it later does nothing.
  virtual void queued(std::function<void()> leave) = 0;

 protected:
  ~queue_watcher() = default;
};

struct pool_snapshot {
  std::string database;
  std::string user;  // the server user
  pgmux::pool::pool_stats core;
  config::pool_settings settings;
  bool paused = false;
  std::size_t replication_connections = 0;  // open for logical replication clients, outside core
  bool ever_connected = false;              // a server connection was opened once (/readyz)
  pgmux::pool::load_figures load;           // the last minute's load and the size it needs
  // Adaptive concurrency: the limit on lent connections now (max_size when adaptive is off) and
  // the limiter's decisions so far.
  bool adaptive = false;
  pgmux::pool::limit_figures limit;
};

// One open server connection, as SHOW SERVERS lists it.
struct server_info {
  std::string database;
  std::string user;
  const char* state;  // "active" (lent to a client) or "idle"
  std::string address;
  std::uint16_t port = 0;
  std::string local_address;
  std::chrono::system_clock::time_point connect_time;
  std::chrono::system_clock::time_point request_time;  // lent at (active) or given back (idle)
  std::int32_t remote_pid = 0;
  bool close_needed = false;  // opened with a login a reload replaced: closed when next idle
  std::string tls;            // "TLSv1.3 TLS_AES_256_GCM_SHA384"; "" without TLS
};

class server_pool : public std::enable_shared_from_this<server_pool> {
 public:
  // `login` carries the server address, user, database and password every connection uses.
  // `database` is the name clients ask for; `entry` the config entry serving it ("*" for the
  // catch-all). The server user is login.user.
  server_pool(worker_set& workers, std::string database, std::string entry, server_login login,
              config::pool_settings settings);
  ~server_pool();

  const std::string& name() const noexcept { return name_; }  // "database/user", for logs
  const std::string& database() const noexcept { return database_; }
  const std::string& server_user() const noexcept { return server_user_; }
  const std::string& entry() const noexcept { return entry_; }
  server_login login() const;
  config::pool_settings settings() const;
  // The same, shared: what a client session keeps from its login on (16 bytes, not a copy).
  std::shared_ptr<const config::pool_settings> shared_settings() const;
  // One record of `wanted` shared by every client of the pool that asked for the same startup
  // settings (an application's clients usually do), instead of one each; likewise for the
  // startup values their RESETs restore (reset_restore.hpp). At most max_shared_records different
  // ones of each are kept (pool/interned.hpp).
  static constexpr std::size_t max_shared_records = 64;
  std::shared_ptr<const protocol::session_settings> shared_session_settings(protocol::session_settings wanted);
  std::shared_ptr<const std::vector<protocol::parameter_change>> shared_restorable(
      std::vector<protocol::parameter_change> values);
  // Likewise the user and database the client logged in with, which SHOW CLIENTS and the log name.
  std::shared_ptr<const protocol::login_names> shared_names(const protocol::login_names& names);

  // Opens min_size connections and starts the maintenance task.
  void start();
  // Closes idle connections and stops maintenance; lent ones close when given back.
  // `why` is what clients that still ask this pool are told.
  void stop(std::string why = "pgmux is shutting down");

  // Reload: new bounds and timeouts take effect at once (a smaller pool closes idle
  // connections first, lent ones as they come back). A changed server address, user or
  // password closes the idle connections and the lent ones when they come back.
  void update(const config::pool_settings& settings, const server_login& login);

  // A connection for `owner`, waiting in FIFO order until `deadline`. On failure, the text
  // for the client's error message. Call it on the client's worker: the connection comes on it.
  asio::awaitable<std::variant<lease, acquire_error>> acquire(clock::time_point deadline,
                                                            std::weak_ptr<session_control> owner,
                                                            queue_watcher* watcher = nullptr);
  // What acquire() gives when it need not wait (an idle connection, or the pool stopped),
  // without entering a coroutine; nullopt when the client is to queue: then acquire().
  std::optional<std::variant<lease, acquire_error>> try_acquire(const std::weak_ptr<session_control>& owner);

  // Logical replication (replication=database): a server connection of the client's own, the
  // pool's login with `parameters` added (replication and the client's settings), outside
  // min_size and max_size; ended by stop() and by a reload that changes the login. At most max_replication_connections at once: past that, or with the
  // pool stopped, an acquire_error (53300), as for a failed login. Opened on `executor`.
  asio::awaitable<std::variant<replication_connection, acquire_error>> open_replication(
      asio::any_io_executor executor, protocol::parameter_list parameters);
  std::size_t replication_connections() const noexcept { return replication_count_.load(std::memory_order_relaxed); }

  // SCRAM passthrough: a client of this pool's server user proved these keys. When the
  // login has no password, new server connections authenticate with them. The latest win.
  void remember_scram_keys(scram_keys keys);

  // What the first real connection reported at its login (null before one opened): shared and
  // never changed, so that a login takes it without copying.
  std::shared_ptr<const protocol::server_report> first_report() const;
  // A tracked parameter's value (index into protocol::tracked_parameters) as the server spells
  // it, for a spelling a client sent at startup: learned once (session/relay canonical_values)
  // and kept, up to max_canonical_values spellings per pool.
  static constexpr std::size_t max_canonical_values = 1024;
  std::optional<std::string> canonical_value(std::size_t parameter, const std::string& spelling) const;
  void remember_canonical_value(std::size_t parameter, std::string spelling, std::string canonical);

  // PAUSE: running transactions finish, new ones wait (query_wait_timeout still applies),
  // idle connections close. RESUME lends and connects again.
  void set_paused(bool paused);
  // Calls `callback` once no connection is lent: at once if none is, else from the thread that
  // gives the last one back. For PAUSE, which answers when running transactions are over.
  void when_none_lent(std::function<void()> callback);

  // Per-query statistics (pool setting query_stats): the table, and its sink for the relay.
  pgmux::pool::query_table& queries() noexcept { return queries_; }
  const pgmux::pool::query_table& queries() const noexcept { return queries_; }
  protocol::statement_sink* query_statements() noexcept { return &query_sink_; }

  pool_snapshot snapshot() const;
  std::vector<server_info> servers() const;
  // The counts of every worker summed, at the moment of the call.
  std::unique_ptr<const pool_counters> counters() const;
  // Clients logged in to this pool (SHOW POOLS: cl_active + cl_waiting).
  void client_joined() noexcept { clients_.fetch_add(1, std::memory_order_relaxed); }
  void client_left() noexcept { clients_.fetch_sub(1, std::memory_order_relaxed); }
  // A client became pinned for `reasons` (protocol::session_state bits; delta +1), or left
  // pinned (-1): the pgmux_pinned_clients gauge.
  void count_pinned(std::uint8_t reasons, int delta) noexcept {
    for (std::size_t bit = 0; bit < counters_.pinned_clients.size(); ++bit)
      if (reasons & (1u << bit)) counters_.pinned_clients[bit].fetch_add(delta, std::memory_order_relaxed);
  }
  std::size_t clients() const noexcept { return clients_.load(std::memory_order_relaxed); }

 private:
  friend class lease;
  friend class replication_connection;
  struct waiter;

  // `transaction`: a lease ended (counted); false for a connection handed to a waiter that left.
  void give_back(std::shared_ptr<server_connection> conn, bool clean, bool transaction = true);
  // With mu_ held: hands idle connections to waiters, starts connects; returns work to do unlocked.
  struct deferred_work {
    std::vector<std::shared_ptr<waiter>> wake;
    std::vector<std::pair<pgmux::pool::conn_id, pgmux::pool::worker_id>> connect;
    std::vector<std::shared_ptr<server_connection>> close;
  };
  void settle(clock::time_point now, deferred_work& work);
  void run(deferred_work work);
  asio::awaitable<void> connect_one(pgmux::pool::conn_id id, pgmux::pool::worker_id worker);

  asio::awaitable<void> maintain();
  // With mu_ held: lent connections whose statement ran past command_timeout (to cancel),
  // and sessions to kill for idle_transaction_timeout or to check for a hung-up client.
  void check_timeouts(std::vector<std::shared_ptr<server_connection>>& cancel,
                      std::vector<std::pair<std::shared_ptr<session_control>, close_reason>>& notify);

  worker_set& workers_;
  const std::string database_;
  const std::string server_user_;  // fixed for the pool's life: another user means another pool
  const std::string name_;
  const std::string entry_;
  server_login login_;            // guarded by mu_
  scram_keys passthrough_;        // guarded by mu_
  std::uint64_t login_generation_ = 0;  // bumped when login_ changes

  mutable std::mutex mu_;
  config::pool_settings settings_;
  // What a login takes from the pool, behind a lock of its own so that logins do not wait for
  // the bookkeeping of transactions (mu_): the settings (a copy of settings_, made when it
  // changes, under both locks) and the shared startup records.
  mutable small_mutex records_mu_;
  std::shared_ptr<const config::pool_settings> shared_settings_;
  pgmux::pool::interned<protocol::session_settings> session_settings_{max_shared_records};
  pgmux::pool::interned<std::vector<protocol::parameter_change>> restorable_{max_shared_records};
  pgmux::pool::interned<protocol::login_names> names_{max_shared_records};
  pgmux::pool::pool_core core_;
  pgmux::pool::load_window load_;  // under mu_: what the pool carried, for size advice
  pgmux::pool::query_table queries_;  // its own lock
  query_sink query_sink_{queries_};
  // Under mu_: the adaptive concurrency limit (settings_.adaptive.enabled), which caps core_.
  pgmux::pool::concurrency_limit limiter_;
  // With mu_ held: the limiter's settings from settings_, and its feedback passed on to core_.
  void configure_limit(bool was_enabled);
  void limit_changed(pgmux::pool::limit_change change);
  // With mu_ held (maintenance): the overload errors the relays counted since the last call
  // (pool_counters::overload_errors) go to the limiter.
  void feed_overload_errors();
  std::uint64_t overload_errors_seen() const noexcept;
  std::uint64_t overload_errors_fed_ = 0;
  clock::time_point last_transaction_end_{};  // under mu_: for the limiter's stall check
  // Under mu_: when maintain() last judged max_size against the advice, and for how long.
  clock::time_point advice_checked_{};
  pgmux::pool::sustained_verdict advice_alarm_;
  // Under mu_: judges max_size against the advice; a line to log (outside mu_) when it is time.
  struct advice_line {
    std::string text;
    bool warn = false;
  };
  std::optional<advice_line> judge_size(clock::time_point now);
  struct slot {
    std::shared_ptr<server_connection> conn;
    std::uint64_t login_generation = 0;     // opened with an older login: close, never lend again
    std::weak_ptr<session_control> owner;  // while lent
    bool lent = false;
    clock::time_point lent_at{};
    std::uint64_t watch_generation = 0;  // bumped at every lend and idle watch: stale wake-ups are ignored
    bool watching = false;               // an idle watch is pending
  };
  // With mu_ held: the lent connection `id` is about to serve a client on `worker`.
  void bring_to(pgmux::pool::conn_id id, slot& s, pgmux::pool::worker_id worker);
  // With mu_ held: marks the slot lent to `owner` and ends its idle watch.
  void lend(slot& s, std::weak_ptr<session_control> owner, clock::time_point now);
  // Under mu_: an idle connection lent to `owner` at once; nullptr when none can be. With `wid`,
  // the core then queues the request under the id left there; without, nothing is queued.
  // Connections found dead or outdated on the way go to `work`.
  std::shared_ptr<server_connection> take_idle_locked(pgmux::pool::waiter_id* wid, clock::time_point now,
                                                      pgmux::pool::worker_id worker,
                                                      const std::weak_ptr<session_control>& owner, deferred_work& work);
  // With mu_ held: waits for the idle connection to become readable, which means the server
  // hung up or reported an error; idle_readable() then drops it from the pool.
  void watch_idle(pgmux::pool::conn_id id);
  void idle_readable(pgmux::pool::conn_id id, std::uint64_t generation);
  // With mu_ held: asks the sessions of clients queued for a maintenance period to watch their
  // client for a hang-up (a short wait costs no syscall).
  void watch_settled_waiters(clock::time_point now);
  // With mu_ held: starts the idle watch of connections idle for a maintenance period.
  void watch_settled_idle(clock::time_point now);
  std::unordered_map<pgmux::pool::conn_id, slot> conns_;  // idle and lent, from connect to close
  std::unordered_map<pgmux::pool::waiter_id, std::shared_ptr<waiter>> waiters_;
  pgmux::pool::waiter_id next_waiter_ = 1;
  std::shared_ptr<const protocol::server_report> first_report_;
  std::map<std::pair<std::size_t, std::string>, std::string> canonical_values_;
  std::string last_connect_error_;
  std::string last_refusal_code_;  // the server refused the last login: waiters fail at once
  std::string stop_reason_ = "pgmux is shutting down";
  pool_counters counters_;  // rare events, counted under mu_ or from the maintenance task
  // Per worker, written only by that worker's thread: transactions, bytes, waits, statements.
  std::vector<std::unique_ptr<pool_counters>> worker_counters_;
  pool_counters& worker_counters() noexcept { return *worker_counters_[worker_set::current()]; }
  std::atomic<std::size_t> clients_{0};
  bool stopped_ = false;
  std::atomic<std::size_t> replication_count_{0};  // open replication connections (changed under mu_)
  std::uint64_t next_replication_id_ = 1;          // their own ids, for logs
  // The open ones (under mu_): stop() and a new login end their streams, whose clients then
  // reconnect, as they would after a server restart.
  std::vector<std::weak_ptr<server_connection>> replication_conns_;
  // With mu_ held: shuts the open replication connections down (their sessions see the server go).
  void end_replication_streams();
  std::shared_ptr<asio::steady_timer> maintenance_timer_;
  std::vector<std::function<void()>> none_lent_callbacks_;  // guarded by mu_
};

}  // namespace pgmux::net
