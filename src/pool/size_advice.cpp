// Pool-size advice: Erlang C over a sliding window of per-second buckets.
#include "pgmux/pool/size_advice.hpp"

#include <algorithm>
#include <cmath>

namespace pgmux::pool {

namespace {

// Erlang C from Erlang B for c servers.
double erlang_c(double c, double a, double b) noexcept { return c * b / (c - a * (1 - b)); }

}  // namespace

double wait_probability(std::size_t servers, double offered_load) noexcept {
  if (offered_load <= 0) return 0;
  const auto c = static_cast<double>(servers);
  if (c <= offered_load) return 1;
  // Erlang B by its recurrence (no factorials to overflow), then C from B.
  double b = 1;
  for (std::size_t k = 1; k <= servers; ++k) b = offered_load * b / (static_cast<double>(k) + offered_load * b);
  return erlang_c(c, offered_load, b);
}

std::size_t servers_for(double offered_load, double max_wait_probability, std::size_t limit) noexcept {
  if (offered_load <= 0 || limit == 0) return 0;
  // Erlang B step by step up to the answer: one pass, however large the load.
  double b = 1;
  for (std::size_t c = 1;; ++c) {
    b = offered_load * b / (static_cast<double>(c) + offered_load * b);
    if (c >= limit) return limit;
    const auto servers = static_cast<double>(c);
    if (servers > offered_load && erlang_c(servers, offered_load, b) <= max_wait_probability) return c;
  }
}

size_verdict judge_size(const load_figures& f, std::size_t max_size, std::uint64_t min_leases) noexcept {
  if (f.leases < min_leases || f.advised_size == 0) return size_verdict::fits;
  if (f.advised_size > max_size) return size_verdict::too_small;
  if (f.advised_size * 2 < max_size) return size_verdict::too_large;
  return size_verdict::fits;
}

const char* to_string(size_verdict v) noexcept {
  switch (v) {
    case size_verdict::fits: return "fits";
    case size_verdict::too_small: return "too small";
    case size_verdict::too_large: return "too large";
  }
  return "?";
}

bool sustained_verdict::update(std::chrono::steady_clock::time_point now, size_verdict v,
                               std::chrono::steady_clock::duration after) noexcept {
  if (v != current_) {
    current_ = v;
    since_ = now;
    reported_ = false;
  }
  if (v == size_verdict::fits || after.count() == 0 || reported_ || now - since_ < after) return false;
  reported_ = true;
  return true;
}

namespace {

std::int64_t second_of(load_window::clock::time_point t) noexcept {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

double seconds_between(load_window::clock::time_point from, load_window::clock::time_point to) noexcept {
  return std::chrono::duration<double>(to - from).count();
}

load_window::clock::time_point start_of(std::int64_t second) noexcept {
  return load_window::clock::time_point(std::chrono::seconds(second));
}

}  // namespace

load_window::load_window(std::chrono::seconds span) : buckets_(static_cast<std::size_t>(std::max<std::int64_t>(span.count(), 1))) {}

load_window::bucket& load_window::at(std::int64_t second) noexcept {
  const auto n = static_cast<std::int64_t>(buckets_.size());
  auto& b = buckets_[static_cast<std::size_t>(((second % n) + n) % n)];
  if (b.second != second) b = bucket{second};
  return b;
}

void load_window::add_busy(clock::time_point from, clock::time_point to, std::size_t lent) noexcept {
  if (lent == 0 || to <= from) return;
  // Only the seconds still in the window matter: a long quiet stretch costs at most a span.
  const auto span = static_cast<std::int64_t>(buckets_.size());
  auto s = std::max(second_of(from), second_of(to) - span + 1);
  for (; s <= second_of(to); ++s) {
    const auto begin = std::max(from, start_of(s)), end = std::min(to, start_of(s + 1));
    if (end > begin) at(s).busy_seconds += static_cast<double>(lent) * seconds_between(begin, end);
  }
}

void load_window::update(clock::time_point now, std::size_t lent, std::size_t demand, bool taken) noexcept {
  if (!first_) first_ = last_ = now;
  add_busy(last_, now, lent_);
  last_ = now;
  lent_ = lent;
  auto& b = at(second_of(now));
  if (taken) ++b.leases;
  b.peak = std::max(b.peak, demand);
}

load_figures load_window::figures(clock::time_point now) const noexcept {
  load_figures f;
  if (!first_) return f;
  const auto s = second_of(now);
  const auto span = static_cast<std::int64_t>(buckets_.size());
  double busy = 0;
  for (const auto& b : buckets_) {
    if (b.second < 0 || b.second > s || b.second <= s - span) continue;
    f.leases += b.leases;
    busy += b.busy_seconds;
    f.peak_demand = std::max(f.peak_demand, b.peak);
  }
  // Still lent since the last update, within the window.
  const auto window_start = std::max(*first_, start_of(s - span + 1));
  busy += static_cast<double>(lent_) * std::max(0.0, seconds_between(std::max(last_, window_start), now));
  if (lent_ > 0) f.peak_demand = std::max(f.peak_demand, lent_);
  // The buckets cover the current second up to now and the span's other seconds before it; a
  // window younger than its span covers only its age.
  f.seconds = seconds_between(window_start, now);
  if (f.seconds <= 0) return f;
  f.offered_load = busy / f.seconds;
  f.arrival_rate = static_cast<double>(f.leases) / f.seconds;
  if (f.leases > 0) f.mean_hold_seconds = f.offered_load / f.arrival_rate;
  if (f.offered_load > 0) f.advised_size = servers_for(f.offered_load, max_wait_probability, std::max<std::size_t>(f.peak_demand, 1));
  return f;
}

}  // namespace pgmux::pool
