// What the read tests of tests/io share: an event loop turned by hand, and what the one read
// pending on it completed with.
#pragma once
#include <chrono>
#include <optional>
#include <string>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

namespace pgmux::test {

struct read_loop {
  boost::asio::io_context loop;
  std::optional<std::string> got;  // what the pending read completed with

  // One turn of the reactor with no read waiting: epoll reports (and so spends) the edges of
  // what arrived so far. Without outstanding work, poll() would not look at epoll at all.
  void reap_edges() {
    auto work = boost::asio::make_work_guard(loop);
    loop.restart();
    loop.poll();
  }

  // One turn for what is ready now, such as the first try of a read just started.
  void turn_once() {
    loop.restart();
    loop.poll();
  }

  // Runs the loop until the pending read completes, for at most 5 s.
  std::optional<std::string> finish_read() {
    loop.restart();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!got && std::chrono::steady_clock::now() < deadline) loop.run_one_for(std::chrono::milliseconds(100));
    return got;
  }
};

}  // namespace pgmux::test
