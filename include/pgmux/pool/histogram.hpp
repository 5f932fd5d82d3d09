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
  // Adds counts gathered elsewhere (a local_histogram flushed once per transaction).
  void add(const std::array<std::uint32_t, bounds.size() + 1>& counts, std::uint64_t sum_us) noexcept {
    for (std::size_t i = 0; i < counts.size(); ++i)
      if (counts[i] != 0) counts_[i].fetch_add(counts[i], std::memory_order_relaxed);
    sum_us_.fetch_add(sum_us, std::memory_order_relaxed);
  }

  // Adds this histogram's counts to `total`.
  void add_to(atomic_histogram& total) const noexcept {
    for (std::size_t i = 0; i < counts_.size(); ++i)
      total.counts_[i].fetch_add(counts_[i].load(std::memory_order_relaxed), std::memory_order_relaxed);
    total.sum_us_.fetch_add(sum_us_.load(std::memory_order_relaxed), std::memory_order_relaxed);
  }

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

// The same buckets, owned by one thread at a time: per-statement figures are gathered here
// during a transaction and flushed into the pool's atomic_histogram when the server
// connection is given back, so statements cost no shared-memory traffic between workers.
class local_histogram {
 public:
  void observe(double seconds) noexcept {
    std::size_t i = 0;
    while (i < atomic_histogram::bounds.size() && seconds > atomic_histogram::bounds[i]) ++i;
    ++counts_[i];
    ++total_;
    sum_us_ += static_cast<std::uint64_t>(seconds * 1e6);
  }
  std::uint64_t total() const noexcept { return total_; }
  // Moves everything into `to` and starts afresh.
  void flush_into(atomic_histogram& to) noexcept {
    if (total_ == 0) return;
    to.add(counts_, sum_us_);
    counts_ = {};
    sum_us_ = 0;
    total_ = 0;
  }

 private:
  std::array<std::uint32_t, atomic_histogram::bounds.size() + 1> counts_{};
  std::uint64_t sum_us_ = 0;
  std::uint64_t total_ = 0;
};

}  // namespace pgmux::pool
