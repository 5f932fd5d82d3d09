// Shared Asio vocabulary of the I/O layers. Included only by I/O code, never by the pure layers.
#pragma once
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/basic_stream_socket.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <ctime>
#include <stdexcept>

namespace pgmux::net {

namespace asio = boost::asio;
using error_code = boost::system::error_code;
// TCP and Unix-domain sockets alike: the relay does not care which. Bound to the io_context's own
// executor type, not the type-erased any_io_executor: a socket and every pending operation on
// it carry an 8-byte executor, and completions dispatch without going through the erasure.
using socket_t = asio::basic_stream_socket<asio::generic::stream_protocol, asio::io_context::executor_type>;
using clock = std::chrono::steady_clock;

// Completion token for operations whose failure is ordinary traffic (EOF, timeouts).
inline constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);

// The event loop behind a coroutine's executor (co_await asio::this_coro::executor), for the
// sockets it opens. Every executor in pgmux is an io_context's.
inline asio::io_context::executor_type loop_executor(const asio::any_io_executor& ex) {
  const auto* loop = ex.target<asio::io_context::executor_type>();
  if (!loop) throw std::logic_error("a socket opened from an executor that is not an event loop's");
  return *loop;
}

inline std::int64_t now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now().time_since_epoch()).count();
}

// The wall clock to the kernel's tick (a few ms), for "last seen" times on the hot path: a
// fraction of the cost of system_clock::now().
inline std::chrono::system_clock::time_point coarse_wall_now() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return std::chrono::system_clock::time_point(std::chrono::duration_cast<std::chrono::system_clock::duration>(
      std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec)));
}

}  // namespace pgmux::net
