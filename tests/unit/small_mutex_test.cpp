#include <doctest/doctest.h>

#include <mutex>
#include <thread>
#include <vector>

#include "pgmux/small_mutex.hpp"

TEST_CASE("small_mutex excludes: four threads adding under it lose no increment") {
  static_assert(sizeof(pgmux::small_mutex) == 4);
  pgmux::small_mutex mu;
  long counter = 0;  // a plain long: only the lock keeps the additions whole
  constexpr int threads = 4, rounds = 200000;
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t)
    workers.emplace_back([&] {
      for (int i = 0; i < rounds; ++i) {
        std::lock_guard lock(mu);
        counter = counter + 1;
      }
    });
  for (auto& w : workers) w.join();
  CHECK(counter == long(threads) * rounds);
}

TEST_CASE("small_mutex wakes a waiter that sleeps while another thread holds it") {
  pgmux::small_mutex mu;
  std::atomic<bool> got{false};
  mu.lock();
  std::thread waiter([&] {
    std::lock_guard lock(mu);
    got = true;
  });
  // The waiter cannot get in while the lock is held; after unlock it must.
  std::this_thread::yield();
  CHECK_FALSE(got.load());
  mu.unlock();
  waiter.join();
  CHECK(got.load());
}
