// Worker threads.
#include "pgmux/io/workers.hpp"

#include <thread>

#include "pgmux/balance.hpp"
#include "pgmux/io/io_buffer.hpp"
#include "pgmux/io/memory.hpp"

namespace pgmux::net {
worker_set::worker_set(unsigned count, clock::duration park_idle_after) : parking_(park_idle_after > clock::duration::zero()) {
  for (unsigned i = 0; i < std::max(count, 1u); ++i) loops_.push_back(std::make_unique<loop>(park_idle_after));
}

worker_set::~worker_set() { discard_pending(); }

unsigned worker_set::next_for_client() noexcept {
  const unsigned n = next_;
  next_ = (next_ + 1) % size();
  return n;
}

unsigned worker_set::worker_for_accepted(unsigned own) const noexcept {
  return balanced_worker(own, size(), [this](unsigned w) { return clients(w); });
}

void worker_set::keep_house(loop& l) {
  l.housekeeping.expires_after(housekeeping_interval);
  l.housekeeping.async_wait([&l](const error_code& ec) {
    if (ec) return;
    // malloc_trim holds the allocator's arena locks while it walks them: only for a sizeable
    // give-back (a few blocks stay with malloc, which reuses them for other allocations).
    if (io_buffer::trim_cache() >= blocks_worth_a_trim) release_freed_memory();
    keep_house(l);
  });
}

void worker_set::run() {
  // Each worker's housekeeping runs on its own thread, which owns the free list it trims.
  for (auto& l : loops_) keep_house(*l);
  std::vector<std::thread> threads;
  for (unsigned i = 1; i < size(); ++i) threads.emplace_back([this, i] {
    current_worker_ = i;
    if (parking_) idle_park::make_current(&loops_[i]->park);
    loops_[i]->io.run();
  });
  current_worker_ = 0;
  if (parking_) idle_park::make_current(&loops_[0]->park);
  loops_[0]->io.run();
  idle_park::make_current(nullptr);
  for (auto& t : threads) t.join();
}

void worker_set::stop() {
  for (auto& l : loops_) l->io.stop();
}

void worker_set::discard_pending() noexcept {
  // A coroutine may post more work as it unwinds (a waiter's wake-up, say): the second pass
  // destroys what the first one queued; ~io_context makes one more. Parked clients go first:
  // their sessions may still post work.
  for (auto& l : loops_) l->park.clear();
  for (int pass = 0; pass < 2; ++pass)
    for (auto& l : loops_) l->io.shutdown();
}

}  // namespace pgmux::net
