// Adaptive concurrency limit: windows of hold times, a baseline, AIMD decisions.
#include "pgmux/pool/concurrency_limit.hpp"

#include <algorithm>
#include <cmath>

namespace pgmux::pool {

namespace {

limit_settings sane(limit_settings s) {
  s.max = std::max<std::size_t>(s.max, 1);
  s.min = std::clamp<std::size_t>(s.min, 1, s.max);
  s.window = std::max<std::size_t>(s.window, 1);
  s.tolerance = std::max(s.tolerance, 1.0);
  s.backoff = std::clamp(s.backoff, 0.0, 1.0);
  s.max_error_rate = std::clamp(s.max_error_rate, 0.0, 1.0);
  return s;
}

}  // namespace

concurrency_limit::concurrency_limit(limit_settings s) {
  settings_ = sane(s);
  limit_ = settings_.min;
  samples_.reserve(settings_.window);
}

void concurrency_limit::configure(const limit_settings& s) {
  const auto next = sane(s);
  if (next == settings_) return;
  settings_ = next;
  limit_ = std::clamp(limit_, settings_.min, settings_.max);
  samples_.clear();
  samples_.reserve(settings_.window);
  start_window(0);
}

limit_figures concurrency_limit::figures() const noexcept {
  return limit_figures{limit_, increases_, decreases_, baseline_, last_median_};
}

void concurrency_limit::start_window(std::size_t skip) {
  samples_.clear();
  errors_ = 0;
  skip_ = skip;
  binding_ = false;
  peak_lent_ = 0;
}

limit_change concurrency_limit::cut(std::size_t lent) {
  const auto cut_to = static_cast<std::size_t>(std::floor(static_cast<double>(limit_) * settings_.backoff));
  const auto next = std::max(settings_.min, std::min(cut_to, limit_ - 1));
  cut_once_ = true;
  good_streak_ = 0;
  if (next >= limit_) {  // already at min
    start_window(0);
    return limit_change::none;
  }
  // Cut again from the level cut last time: probe it half as often from now on.
  if (limit_ == cut_from_) {
    probe_wait_ = std::min(probe_wait_ * 2, max_probe_wait);
  } else {
    cut_from_ = limit_;
    probe_wait_ = 2;
  }
  limit_ = next;
  ++decreases_;
  start_window(lent);
  just_cut_ = true;
  return limit_change::down;
}

limit_change concurrency_limit::on_error(std::size_t lent) {
  // Errors of work lent under the old limit are left out, as its hold times are, and after a
  // cut so are errors until a transaction has ended under the new one: one burst cuts once,
  // not once per window's allowance of it.
  if (skip_ > 0) {
    --skip_;
    return limit_change::none;
  }
  if (just_cut_) return limit_change::none;
  ++errors_;
  // A burst past the window's allowance cuts at once.
  const auto allowed = static_cast<double>(settings_.window) * settings_.max_error_rate;
  if (static_cast<double>(errors_) > allowed) return cut(lent);
  if (samples_.size() + errors_ >= settings_.window) return close_window(lent);
  return limit_change::none;
}

limit_change concurrency_limit::on_transaction(duration held, std::size_t lent, std::size_t demand) {
  if (skip_ > 0) {
    --skip_;
    return limit_change::none;
  }
  if (demand >= limit_) binding_ = true;
  just_cut_ = false;
  peak_lent_ = std::max(peak_lent_, lent);
  samples_.push_back(std::max<std::int64_t>(held.count(), 0));
  if (samples_.size() + errors_ >= settings_.window) return close_window(lent);
  return limit_change::none;
}

limit_change concurrency_limit::close_window(std::size_t lent) {
  const auto events = samples_.size() + errors_;
  if (static_cast<double>(errors_) > static_cast<double>(events) * settings_.max_error_rate) return cut(lent);
  if (samples_.empty()) {
    start_window(0);
    return limit_change::none;
  }
  auto mid = samples_.begin() + static_cast<std::ptrdiff_t>(samples_.size() / 2);
  std::nth_element(samples_.begin(), mid, samples_.end());
  const duration median{*mid};
  last_median_ = median;
  // Without concurrency the median is the work's own latency, even when it rose.
  if (baseline_.count() == 0 || peak_lent_ <= settings_.min) baseline_ = std::max(median, duration{1});
  // Lower medians pull the baseline halfway down: one lucky window does not set it alone (a
  // baseline too low would make every later window look like queueing).
  else if (median < baseline_) baseline_ = std::max(median + (baseline_ - median) / 2, duration{1});
  const double ratio = static_cast<double>(median.count()) / static_cast<double>(baseline_.count());
  if (ratio > settings_.tolerance) return cut(lent);
  const double grow_below = (1.0 + settings_.tolerance) / 2.0;
  // Past the level cut last time without a cut: that level is forgotten.
  if (cut_from_ != 0 && limit_ > cut_from_) {
    cut_from_ = 0;
    probe_wait_ = 1;
  }
  if (binding_ && ratio < grow_below && limit_ < settings_.max) {
    const std::size_t step = cut_once_ ? 1 : std::max<std::size_t>(1, limit_ / 2);
    // Back up to the level cut last time only after probe_wait good windows in a row.
    if (limit_ >= cut_from_ || limit_ + step < cut_from_ || ++good_streak_ >= probe_wait_) {
      limit_ = std::min(settings_.max, limit_ + step);
      ++increases_;
      good_streak_ = 0;
      start_window(0);
      return limit_change::up;
    }
    start_window(0);
    return limit_change::none;
  }
  good_streak_ = 0;
  start_window(0);
  return limit_change::none;
}

limit_change concurrency_limit::on_stall(duration since_last_transaction, std::size_t lent, std::size_t demand) {
  if (limit_ >= settings_.max || lent < limit_ || demand <= limit_) return limit_change::none;
  if (since_last_transaction < stall_after()) return limit_change::none;
  ++limit_;
  ++increases_;
  good_streak_ = 0;
  start_window(0);
  return limit_change::up;
}

concurrency_limit::duration concurrency_limit::stall_after() const noexcept {
  return std::max<duration>(std::chrono::seconds(1), baseline_ * 4);
}

}  // namespace pgmux::pool
