// Pool bookkeeping as a pure state machine: which connections are idle, lent or being opened,
// who waits, what to open or close next. Every method takes `now`; nothing here sleeps,
// does I/O or reads a clock, so all of it is unit-tested with a hand-advanced time.
#pragma once
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "pgmux/close_reason.hpp"

namespace pgmux::pool {

using clock = std::chrono::steady_clock;
using time_point = clock::time_point;
using duration = clock::duration;
using conn_id = std::uint64_t;
using waiter_id = std::uint64_t;
// The worker (event loop) a connection's socket lives on, or a client runs on.
using worker_id = unsigned;

struct pool_limits {
  std::size_t min_size = 0;
  std::size_t max_size = 1;
  duration idle_lifetime{};       // idle connections above min_size close after this; 0: never
  duration server_lifetime{};     // connections close at their next idle moment after this; 0: never
  // Retries of failed connects: doubling from backoff_initial, capped so that a server that
  // comes back is probed again within backoff_max (one probe in flight at a time).
  duration backoff_initial = std::chrono::milliseconds(100);
  duration backoff_max = std::chrono::milliseconds(500);
  // With no connection open, connects failing for want of a server this long (from the start
  // of the first failed attempt) answer the waiters; 0: at the first such failure.
  duration unreachable_grace = std::chrono::seconds(2);
  // Worker threads: connections kept warm for min_size are spread over them.
  unsigned workers = 1;
  // FIFO across workers, within a slack: a connection of one worker goes to a waiter of that
  // worker that queued less than the slack after the oldest waiter (of another worker), so that
  // it need not move between workers. The slack is cross_worker_slack, or the oldest waiter's
  // wait so far divided by cross_worker_slack_share when that is longer: in a long queue (hundreds
  // of clients for a few connections) a move at every other hand-over would cost more than the
  // exact order is worth, while a waiter is still overtaken only by clients that came a small
  // share of its own wait after it. Both 0: strict arrival order.
  duration cross_worker_slack = std::chrono::milliseconds(1);
  unsigned cross_worker_slack_share = 16;  // 0: the fixed slack only
};

// Why a connect failed, as far as waiting clients are concerned.
enum class connect_failure {
  unreachable,  // refused, unreachable, timed out: waited for up to unreachable_grace
  transient,    // the server answered but cannot take logins now (restart, shutdown): waited for
  final,        // the server refused the login for a reason that will not change soon
};
// The kind of a login refusal from its SQLSTATE ("" when the server never answered).
connect_failure classify_connect_failure(const std::string& sqlstate) noexcept;

struct assignment {
  waiter_id waiter;
  conn_id conn;
};

struct closing {
  conn_id conn;
  close_reason reason;
};

struct pool_stats {
  std::size_t idle = 0;
  std::size_t active = 0;
  std::size_t connecting = 0;
  std::size_t waiting = 0;
  duration longest_wait{};        // age of the oldest waiter
  std::uint64_t consecutive_connect_failures = 0;
};

class pool_core {
 public:
  explicit pool_core(pool_limits limits);

  const pool_limits& limits() const noexcept { return limits_; }
  // New bounds (reload). Excess idle connections go at the next reap; lent ones when released.
  void set_limits(pool_limits limits);

  // PAUSE: no connection is lent, opened or kept idle (reap closes the idle ones) until
  // resumed; lent ones finish their transactions and come back. Waiters stay queued.
  void set_paused(bool paused) noexcept { paused_ = paused; }
  bool paused() const noexcept { return paused_; }

  // Adaptive concurrency (concurrency_limit.hpp): at most `cap` connections lent at once; 0: no
  // cap but max_size. Past it nothing is lent nor opened for waiters, who stay queued in order;
  // idle connections stay idle. After raising it, dispatch() and start_connects() serve the queue.
  void set_cap(std::size_t cap) noexcept { cap_ = cap; }
  std::size_t cap() const noexcept { return cap_; }

  // A client on `worker` asks for a connection: the most recently used idle one of its own
  // worker, else of any worker, if nobody is queued before it (on any worker); else the client
  // joins the FIFO queue and nullopt is returned.
  std::optional<conn_id> acquire(waiter_id w, time_point now, worker_id worker = 0);
  // The same without queueing: the connection acquire() would lend at once, or nullopt.
  std::optional<conn_id> take_if_idle(time_point now, worker_id worker = 0);
  // A queued client gives up. True when it was still queued (not yet handed a connection).
  bool remove_waiter(waiter_id w);
  // Connections lent now, and clients holding or waiting for one.
  std::size_t lent() const noexcept { return lent_; }
  std::size_t demand() const noexcept { return lent_ + waiters_.size(); }

  // Connections to open now, each given a fresh id and counted as connecting: enough for
  // the queue and for min_size, never above max_size, one at a time while connects fail.
  // Each is meant for the worker of the waiter it serves (round robin for min_size): worker_of().
  std::vector<conn_id> start_connects(time_point now);
  // `jitter` in [0, 1) stretches this connection's lifetime by up to 10% so that
  // connections opened together do not all retire together.
  void connect_succeeded(conn_id c, time_point now, double jitter);
  // True when the clients waiting now should be answered with this failure rather than wait
  // on: a final refusal, or the server unreachable past the grace with nothing open.
  // `attempt_started`: when the failed attempt began (its connect_timeout counts as downtime).
  bool connect_failed(conn_id c, time_point now, connect_failure kind = connect_failure::unreachable,
                      std::optional<time_point> attempt_started = std::nullopt);
  // The last connect failed in a way that answers clients, nothing is open and the next probe
  // is not due yet: a new client is answered at once instead of queued.
  bool failing(time_point now) const noexcept {
    return failing_ && conns_.empty() && connecting_ == 0 && retry_at_ && now < *retry_at_;
  }

  // A lease ends. nullopt: the connection is idle again; otherwise close it for that reason.
  std::optional<close_reason> release(conn_id c, time_point now, bool clean);
  // A connection vanished by itself (I/O error while idle): drop it from the books.
  void forget(conn_id c);

  // Hands idle connections to the oldest waiters, in queue order, each preferring one of its
  // own worker. A connection of another worker goes instead to a waiter of its own worker that
  // queued within the slack after the oldest (pool_limits::cross_worker_slack), if there is one.
  std::vector<assignment> dispatch(time_point now);
  // The slack of dispatch() while the oldest waiter has waited `oldest_wait`.
  duration cross_worker_slack(duration oldest_wait) const noexcept;

  // The worker a connection's socket lives on (or is opened on); moved(): it now lives on
  // `worker` (a lent connection handed to a client of another worker).
  worker_id worker_of(conn_id c) const;
  void moved(conn_id c, worker_id worker);

  // Idle connections to close now: past their lifetime, idle too long above min_size, or
  // above max_size after a shrink.
  std::vector<closing> reap(time_point now);

  // When the connect backoff ends, if one is running.
  std::optional<time_point> retry_at() const noexcept { return retry_at_; }
  // Ends the backoff: something changed that may make the next connect succeed. Connects stay
  // one at a time until one does.
  void retry_now() noexcept {
    retry_at_.reset();
    failing_ = false;
  }

  std::size_t total() const noexcept { return conns_.size() + connecting_; }
  pool_stats stats(time_point now) const;

 private:
  // Every open connection has one entry from connect to close, so lending and returning
  // move no memory: the hot path only flips `lent` and pushes or pops an id.
  struct conn_entry {
    bool lent = false;
    worker_id worker = 0;
    time_point idle_since{};
    std::optional<time_point> expires_at;
  };
  struct waiter_entry {
    waiter_id id;
    time_point since;
    worker_id worker;
  };

  bool expired(const std::optional<time_point>& expires_at, time_point now) const noexcept {
    return expires_at && now >= *expires_at;
  }
  // Index into idle_ of the most recently used connection of `worker` that has not expired,
  // else of the most recently used one of any worker.
  std::optional<std::size_t> usable_idle(time_point now, worker_id worker) const;
  conn_id take_idle(std::size_t index);
  void close_idle(std::size_t index, close_reason why, std::vector<closing>& out);

  pool_limits limits_;
  std::unordered_map<conn_id, conn_entry> conns_;   // idle and lent
  std::deque<conn_id> idle_;                         // least recently used first
  std::size_t lent_ = 0;
  std::deque<waiter_entry> waiters_;                 // FIFO
  std::size_t connecting_ = 0;
  std::unordered_map<conn_id, worker_id> opening_;  // connecting: the worker each is opened on
  conn_id next_id_ = 1;
  std::uint64_t failures_ = 0;
  worker_id next_warm_worker_ = 0;  // round robin for min_size connects
  std::optional<time_point> retry_at_;
  std::optional<time_point> unreachable_since_;  // start of the current run of unreachable failures
  bool failing_ = false;                         // the last failure answered the waiters
  bool paused_ = false;
  std::size_t cap_ = 0;
  bool at_cap() const noexcept { return cap_ != 0 && lent_ >= cap_; }
};

}  // namespace pgmux::pool
