// A fixed-bucket histogram that any thread may feed without a lock (relaxed atomics), read
// whole at scrape time. Buckets are upper bounds in seconds, as Prometheus expects.
#pragma once
#include <array>
#include <atomic>
#include <cstdint>

namespace pgmux::pool {

class atomic_histogram {
 public:
  static constexpr std::array<double, 14> bounds{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                 0.1,    0.25,  0.5,    1.0,   2.5,  5.0,   10.0};

  void observe(double seconds) noexcept {
    std::size_t i = 0;
    while (i < bounds.size() && seconds > bounds[i]) ++i;
    counts_[i].fetch_add(1, std::memory_order_relaxed);
    sum_us_.fetch_add(static_cast<std::uint64_t>(seconds * 1e6), std::memory_order_relaxed);
  }

  struct snapshot_t {
    std::array<std::uint64_t, bounds.size() + 1> counts{};  // per bucket, the last one is +Inf
    double sum = 0;
    std::uint64_t total() const noexcept {
      std::uint64_t t = 0;
      for (auto c : counts) t += c;
      return t;
    }
  };
  snapshot_t snapshot() const noexcept {
    snapshot_t s;
    for (std::size_t i = 0; i < counts_.size(); ++i) s.counts[i] = counts_[i].load(std::memory_order_relaxed);
    s.sum = static_cast<double>(sum_us_.load(std::memory_order_relaxed)) / 1e6;
    return s;
  }

 private:
  std::array<std::atomic<std::uint64_t>, bounds.size() + 1> counts_{};
  std::atomic<std::uint64_t> sum_us_{0};
};

}  // namespace pgmux::pool
