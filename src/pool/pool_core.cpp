// Pool bookkeeping: bounds, FIFO waiters, idle reaping, lifetimes and connect backoff.
#include "pgmux/pool/pool_core.hpp"

#include <algorithm>

namespace pgmux::pool {

pool_core::pool_core(pool_limits limits) : limits_(limits) {}

void pool_core::set_limits(pool_limits limits) { limits_ = limits; }

std::optional<std::size_t> pool_core::usable_idle(time_point now, worker_id worker) const {
  std::optional<std::size_t> any;
  for (std::size_t i = idle_.size(); i-- > 0;) {
    const auto& e = conns_.at(idle_[i]);
    if (expired(e.expires_at, now)) continue;
    if (e.worker == worker) return i;
    if (!any) any = i;
  }
  return any;
}

conn_id pool_core::take_idle(std::size_t index) {
  const conn_id id = idle_[index];
  if (index + 1 == idle_.size()) idle_.pop_back();
  else idle_.erase(idle_.begin() + static_cast<std::ptrdiff_t>(index));
  conns_.at(id).lent = true;
  ++lent_;
  return id;
}

void pool_core::close_idle(std::size_t index, close_reason why, std::vector<closing>& out) {
  const conn_id id = idle_[index];
  out.push_back({id, why});
  idle_.erase(idle_.begin() + static_cast<std::ptrdiff_t>(index));
  conns_.erase(id);
}

std::optional<conn_id> pool_core::take_if_idle(time_point now, worker_id worker) {
  if (!waiters_.empty() || paused_ || at_cap()) return std::nullopt;
  if (auto i = usable_idle(now, worker)) return take_idle(*i);
  return std::nullopt;
}

std::optional<conn_id> pool_core::acquire(waiter_id w, time_point now, worker_id worker) {
  if (auto id = take_if_idle(now, worker)) return id;
  waiters_.push_back({w, now, worker});
  return std::nullopt;
}

bool pool_core::remove_waiter(waiter_id w) {
  auto it = std::find_if(waiters_.begin(), waiters_.end(), [w](const waiter_entry& e) { return e.id == w; });
  if (it == waiters_.end()) return false;
  waiters_.erase(it);
  return true;
}

std::vector<conn_id> pool_core::start_connects(time_point now) {
  std::vector<conn_id> out;
  if (paused_ || (retry_at_ && now < *retry_at_)) return out;
  const std::size_t have = total();
  if (have >= limits_.max_size) return out;
  // Waiters the cap lets be served (all when there is none), less the connects under way.
  std::size_t servable = waiters_.size();
  if (cap_ != 0) servable = std::min(servable, cap_ > lent_ ? cap_ - lent_ : 0);
  const std::size_t for_waiters = servable > connecting_ ? servable - connecting_ : 0;
  const std::size_t for_min = limits_.min_size > have ? limits_.min_size - have : 0;
  std::size_t n = std::min(std::max(for_waiters, for_min), limits_.max_size - have);
  // While the server refuses us, probe with one connect at a time.
  if (failures_ > 0) n = connecting_ == 0 ? std::min<std::size_t>(n, 1) : 0;
  // Waiters beyond those the connects under way serve get the new ones, in queue order.
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t waiter = connecting_ + i;
    worker_id worker;
    if (waiter < waiters_.size()) {
      worker = waiters_[waiter].worker;
    } else {
      worker = next_warm_worker_;
      next_warm_worker_ = (next_warm_worker_ + 1) % std::max(1u, limits_.workers);
    }
    opening_.emplace(next_id_, worker);
    out.push_back(next_id_++);
  }
  connecting_ += n;
  return out;
}

void pool_core::connect_succeeded(conn_id c, time_point now, double jitter) {
  if (connecting_ > 0) --connecting_;
  const worker_id worker = worker_of(c);
  opening_.erase(c);
  failures_ = 0;
  retry_at_.reset();
  unreachable_since_.reset();
  failing_ = false;
  conn_entry e;
  e.idle_since = now;
  e.worker = worker;
  if (limits_.server_lifetime.count() > 0) {
    const auto stretch = std::chrono::duration_cast<duration>(limits_.server_lifetime * (0.1 * std::clamp(jitter, 0.0, 1.0)));
    e.expires_at = now + limits_.server_lifetime + stretch;
  }
  conns_.emplace(c, e);
  idle_.push_back(c);
}

connect_failure classify_connect_failure(const std::string& sqlstate) noexcept {
  if (sqlstate.empty()) return connect_failure::unreachable;
  // 57P01-57P04: the server is shutting down, crashed or starting up, or the backend was
  // terminated during login; all pass within a restart.
  if (sqlstate.size() == 5 && sqlstate.compare(0, 4, "57P0") == 0 && sqlstate[4] >= '1' && sqlstate[4] <= '4')
    return connect_failure::transient;
  return connect_failure::final;
}

bool pool_core::connect_failed(conn_id c, time_point now, connect_failure kind, std::optional<time_point> attempt_started) {
  if (connecting_ > 0) --connecting_;
  opening_.erase(c);
  ++failures_;
  auto backoff = limits_.backoff_initial;
  for (std::uint64_t i = 1; i < failures_ && backoff < limits_.backoff_max; ++i) backoff *= 2;
  retry_at_ = now + std::min(backoff, limits_.backoff_max);
  switch (kind) {
    case connect_failure::final:
      unreachable_since_.reset();
      failing_ = true;
      break;
    case connect_failure::transient:
      unreachable_since_.reset();  // the server is there: it will take logins again
      failing_ = false;
      break;
    case connect_failure::unreachable:
      if (!unreachable_since_) unreachable_since_ = std::min(now, attempt_started.value_or(now));
      failing_ = conns_.empty() && now - *unreachable_since_ >= limits_.unreachable_grace;
      break;
  }
  return failing_;
}

std::optional<close_reason> pool_core::release(conn_id c, time_point now, bool clean) {
  auto it = conns_.find(c);
  if (it == conns_.end() || !it->second.lent) return close_reason::server_dirty;  // not ours to pool
  it->second.lent = false;
  --lent_;
  auto close = [&](close_reason why) {
    conns_.erase(it);
    return std::optional(why);
  };
  if (!clean) return close(close_reason::server_dirty);
  if (expired(it->second.expires_at, now)) return close(close_reason::server_lifetime);
  if (total() > limits_.max_size) return close(close_reason::reload);  // the pool shrank while it was lent
  it->second.idle_since = now;
  idle_.push_back(c);
  return std::nullopt;
}

void pool_core::forget(conn_id c) {
  opening_.erase(c);
  auto it = conns_.find(c);
  if (it == conns_.end()) return;
  if (it->second.lent) {
    --lent_;
  } else {
    auto pos = std::find(idle_.begin(), idle_.end(), c);
    if (pos != idle_.end()) idle_.erase(pos);
  }
  conns_.erase(it);
}

std::vector<assignment> pool_core::dispatch(time_point now) {
  std::vector<assignment> out;
  while (!waiters_.empty() && !paused_ && !at_cap()) {
    const auto& oldest = waiters_.front();
    auto i = usable_idle(now, oldest.worker);
    if (!i) break;
    std::size_t chosen = 0;
    const worker_id where = conns_.at(idle_[*i]).worker;
    if (where != oldest.worker) {
      const auto slack = cross_worker_slack(now - oldest.since);
      // Waiters are in arrival order, so the scan stops at the first one past the slack.
      for (std::size_t k = 1; k < waiters_.size() && waiters_[k].since - oldest.since < slack; ++k) {
        if (waiters_[k].worker == where) {
          chosen = k;
          break;
        }
      }
    }
    out.push_back({waiters_[chosen].id, take_idle(*i)});
    waiters_.erase(waiters_.begin() + static_cast<std::ptrdiff_t>(chosen));
  }
  return out;
}

duration pool_core::cross_worker_slack(duration oldest_wait) const noexcept {
  const auto share = limits_.cross_worker_slack_share;
  return share == 0 ? limits_.cross_worker_slack : std::max(limits_.cross_worker_slack, oldest_wait / share);
}

worker_id pool_core::worker_of(conn_id c) const {
  if (auto it = conns_.find(c); it != conns_.end()) return it->second.worker;
  if (auto it = opening_.find(c); it != opening_.end()) return it->second;
  return 0;
}

void pool_core::moved(conn_id c, worker_id worker) {
  if (auto it = conns_.find(c); it != conns_.end()) it->second.worker = worker;
}

std::vector<closing> pool_core::reap(time_point now) {
  std::vector<closing> out;
  if (paused_) {
    while (!idle_.empty()) close_idle(0, close_reason::pause, out);
    return out;
  }
  for (std::size_t i = 0; i < idle_.size();) {
    if (expired(conns_.at(idle_[i]).expires_at, now)) close_idle(i, close_reason::server_lifetime, out);
    else ++i;
  }
  while (!idle_.empty() && total() > limits_.max_size) close_idle(0, close_reason::reload, out);
  if (limits_.idle_lifetime.count() > 0) {
    // idle_ is least recently used first, so the longest idle go first.
    while (!idle_.empty() && total() > limits_.min_size &&
           now - conns_.at(idle_.front()).idle_since >= limits_.idle_lifetime)
      close_idle(0, close_reason::server_idle, out);
  }
  return out;
}

pool_stats pool_core::stats(time_point now) const {
  pool_stats s;
  s.idle = idle_.size();
  s.active = lent_;
  s.connecting = connecting_;
  s.waiting = waiters_.size();
  if (!waiters_.empty()) s.longest_wait = now - waiters_.front().since;
  s.consecutive_connect_failures = failures_;
  return s;
}

}  // namespace pgmux::pool
