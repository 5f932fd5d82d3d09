// The worker threads, one event loop (io_context) each. A client lives on one worker from
// accept to close; a server connection lives on the worker that opened it, and moves to the
// worker of a client it is lent to only when no connection of that worker's own was idle.
#pragma once
#include <atomic>
#include <memory>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include "pgmux/io/idle_park.hpp"
#include "pgmux/io/io.hpp"

namespace pgmux::net {

class worker_set {
 public:
  // Idle clients are parked after park_idle_after to twice that (idle_park); 0: never.
  explicit worker_set(unsigned count, clock::duration park_idle_after = idle_park::default_sweep_interval);
  ~worker_set();

  unsigned size() const noexcept { return static_cast<unsigned>(loops_.size()); }
  asio::io_context& io(unsigned worker) noexcept { return loops_[worker]->io; }
  asio::io_context::executor_type executor(unsigned worker) { return loops_[worker]->io.get_executor(); }
  // The worker whose thread calls; 0 on any other thread.
  static unsigned current() noexcept { return current_worker_; }
  // Where the next client goes: round robin (clients of the Unix socket, dealt by worker 0).
  unsigned next_for_client() noexcept;
  // Where a client accepted by worker `own`'s listening socket goes: `own`, unless it holds
  // clearly more clients than another worker (pgmux::balanced_worker).
  unsigned worker_for_accepted(unsigned own) const noexcept;
  // Clients living on each worker: counted when one is admitted, and when it ends (on its worker).
  void client_joined(unsigned worker) noexcept { loops_[worker]->clients.fetch_add(1, std::memory_order_relaxed); }
  void client_left(unsigned worker) noexcept { loops_[worker]->clients.fetch_sub(1, std::memory_order_relaxed); }
  long clients(unsigned worker) const noexcept { return loops_[worker]->clients.load(std::memory_order_relaxed); }
  // Of those, the ones idle long enough to wait in the worker's idle_park.
  long parked_clients(unsigned worker) const noexcept { return loops_[worker]->park.parked_count(); }

  // Runs worker 0 on the calling thread and the others on threads of their own, until stop().
  void run();
  // Safe from any thread: every loop returns, whatever it still had to do.
  void stop();
  // After run() has returned: destroys every handler and coroutine still queued on any loop,
  // while whatever they refer to still exists. All loops are cleared before any is destroyed,
  // since a coroutine of one loop may own objects bound to another (a session on worker 1 can
  // hold the last reference to a pool whose timer lives on worker 0). The destructor calls it too.
  void discard_pending() noexcept;

 private:
  // io_context with its shutdown() public: it destroys queued handlers and leaves the services,
  // so that objects bound to the loop can still be destroyed afterwards.
  struct context : asio::io_context {
    using asio::io_context::io_context;
    using asio::execution_context::shutdown;
  };
  struct loop {
    explicit loop(clock::duration park_idle_after) : park(io, park_idle_after) {}
    context io{1};
    asio::executor_work_guard<asio::io_context::executor_type> keep_running{io.get_executor()};
    alignas(64) std::atomic<long> clients{0};  // its own cache line: written at every login and logout
    asio::steady_timer housekeeping{io};       // see housekeeping_interval
    idle_park park;                            // idle_park::current() on the worker's thread
  };
  // How often each worker gives back the relay buffer blocks its free list kept unused since the
  // last time (io_buffer::trim_cache), and the allocator then the pages they took.
  static constexpr std::chrono::seconds housekeeping_interval{1};
  static constexpr std::size_t blocks_worth_a_trim = 8;  // 128 KiB
  static void keep_house(loop& l);
  static inline thread_local unsigned current_worker_ = 0;
  std::vector<std::unique_ptr<loop>> loops_;
  bool parking_ = true;
  unsigned next_ = 0;
};

}  // namespace pgmux::net
