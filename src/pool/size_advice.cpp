// Pool-size advice: Erlang C over a sliding window of per-second buckets.
#include "pgmux/pool/size_advice.hpp"

#include <algorithm>
#include <cmath>

namespace pgmux::pool {

double wait_probability(std::size_t servers, double offered_load) noexcept {
  if (offered_load <= 0) return 0;
  const auto c = static_cast<double>(servers);
  if (c <= offered_load) return 1;
  // Erlang B by its recurrence (no factorials to overflow), then C from B.
  double b = 1;
  for (std::size_t k = 1; k <= servers; ++k) b = offered_load * b / (static_cast<double>(k) + offered_load * b);
  return c * b / (c - offered_load * (1 - b));
}

std::size_t servers_for(double offered_load, double max_wait_probability) noexcept {
  if (offered_load <= 0) return 0;
  auto c = static_cast<std::size_t>(std::floor(offered_load)) + 1;
  while (wait_probability(c, offered_load) > max_wait_probability) ++c;
  return c;
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

}  // namespace

load_window::load_window(std::chrono::seconds span) : buckets_(static_cast<std::size_t>(std::max<std::int64_t>(span.count(), 1))) {}

load_window::bucket& load_window::at(clock::time_point now) noexcept {
  const auto s = second_of(now);
  if (!first_) first_ = now;
  auto& b = buckets_[static_cast<std::size_t>(s % static_cast<std::int64_t>(buckets_.size()))];
  if (b.second != s) b = bucket{s};
  return b;
}

void load_window::lease_ended(clock::time_point now, clock::duration held) noexcept {
  auto& b = at(now);
  ++b.leases;
  b.held_seconds += std::chrono::duration<double>(held).count();
}

void load_window::demand(clock::time_point now, std::size_t clients) noexcept {
  auto& b = at(now);
  b.peak = std::max(b.peak, clients);
}

load_figures load_window::figures(clock::time_point now) const noexcept {
  load_figures f;
  if (!first_) return f;
  const auto s = second_of(now);
  const auto span = static_cast<std::int64_t>(buckets_.size());
  double held = 0;
  for (const auto& b : buckets_) {
    if (b.second < 0 || b.second > s || b.second <= s - span) continue;
    f.leases += b.leases;
    held += b.held_seconds;
    f.peak_demand = std::max(f.peak_demand, b.peak);
  }
  // The buckets cover the current second up to now and the span's other seconds before it; a
  // window younger than its span covers only its age.
  const double into_second = std::chrono::duration<double>(now.time_since_epoch()).count() - static_cast<double>(s);
  f.seconds = std::min(std::chrono::duration<double>(now - *first_).count(), static_cast<double>(span - 1) + into_second);
  if (f.leases == 0 || f.seconds <= 0) return f;
  f.arrival_rate = static_cast<double>(f.leases) / f.seconds;
  f.mean_hold_seconds = held / static_cast<double>(f.leases);
  f.offered_load = f.arrival_rate * f.mean_hold_seconds;
  f.advised_size = std::min(servers_for(f.offered_load, max_wait_probability), std::max<std::size_t>(f.peak_demand, 1));
  return f;
}

}  // namespace pgmux::pool
