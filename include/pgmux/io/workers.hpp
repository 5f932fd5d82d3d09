// The worker threads, one event loop (io_context) each. A client lives on one worker from
// accept to close; a server connection lives on the worker that opened it, and moves to the
// worker of a client it is lent to only when no connection of that worker's own was idle.
#pragma once
#include <memory>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include "pgmux/io/io.hpp"

namespace pgmux::net {

class worker_set {
 public:
  explicit worker_set(unsigned count);
  ~worker_set();

  unsigned size() const noexcept { return static_cast<unsigned>(loops_.size()); }
  asio::io_context& io(unsigned worker) noexcept { return loops_[worker]->io; }
  asio::any_io_executor executor(unsigned worker) { return loops_[worker]->io.get_executor(); }
  // The worker whose thread calls; 0 on any other thread.
  static unsigned current() noexcept;
  // Where the next client goes: round robin.
  unsigned next_for_client() noexcept;

  // Runs worker 0 on the calling thread and the others on threads of their own, until stop().
  void run();
  // Safe from any thread: every loop returns, whatever it still had to do.
  void stop();

 private:
  struct loop {
    asio::io_context io{1};
    asio::executor_work_guard<asio::io_context::executor_type> keep_running{io.get_executor()};
  };
  std::vector<std::unique_ptr<loop>> loops_;
  unsigned next_ = 0;
};

}  // namespace pgmux::net
