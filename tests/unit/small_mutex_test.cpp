#include <doctest/doctest.h>

#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
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

namespace {

// The scheduler state of thread `tid` of this process ('R' running, 'S' asleep, ...).
char thread_state(pid_t tid) {
  std::ifstream stat("/proc/self/task/" + std::to_string(tid) + "/stat");
  std::string line;
  std::getline(stat, line);
  const auto close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size() ? line[close + 2] : '?';
}

}  // namespace

TEST_CASE("small_mutex wakes a waiter that sleeps while another thread holds it") {
  // Shared with the waiter, which outlives the test case should it never wake.
  struct state {
    pgmux::small_mutex mu;
    std::atomic<bool> got{false};
    std::atomic<pid_t> tid{0};
  };
  auto s = std::make_shared<state>();
  s->mu.lock();
  std::thread waiter([s] {
    s->tid = static_cast<pid_t>(::syscall(SYS_gettid));
    std::lock_guard lock(s->mu);
    s->got = true;
  });
  // The waiter has marked the lock contended and gone to sleep on it (past any spinning).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!(s->mu.contended() && s->tid != 0 && thread_state(s->tid) == 'S') &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::yield();
  CHECK(s->mu.contended());
  CHECK(thread_state(s->tid) == 'S');
  CHECK_FALSE(s->got.load());
  s->mu.unlock();
  // The unlock must wake it: without the wake-up it would sleep for good.
  const auto woken_by = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!s->got.load() && std::chrono::steady_clock::now() < woken_by) std::this_thread::yield();
  CHECK(s->got.load());
  if (s->got.load()) waiter.join();
  else waiter.detach();  // stuck in the lock: the failure is reported, the other tests go on
}
