// A mutex of 4 bytes for short critical sections on state that every client session has one
// of: std::mutex takes 40. Uncontended, lock and unlock are one atomic operation each; a
// contended waiter sleeps on the futex (C++20 atomic wait) instead of spinning.
// States: 0 free, 1 locked, 2 locked with (maybe) sleepers.
#pragma once
#include <atomic>

namespace pgmux {

class small_mutex {
 public:
  void lock() noexcept {
    int expected = 0;
    if (state_.compare_exchange_strong(expected, 1, std::memory_order_acquire, std::memory_order_relaxed)) return;
    // Marked as contended from here on, so that the unlock that lets us in wakes the next one.
    while (state_.exchange(2, std::memory_order_acquire) != 0) state_.wait(2, std::memory_order_relaxed);
  }

  void unlock() noexcept {
    if (state_.exchange(0, std::memory_order_release) == 2) state_.notify_one();
  }

  // Held, with another thread waiting (or about to sleep) for it: for tests and diagnostics.
  bool contended() const noexcept { return state_.load(std::memory_order_relaxed) == 2; }

 private:
  std::atomic<int> state_{0};
};

}  // namespace pgmux
