// Shared Asio vocabulary of the I/O layers. Included only by I/O code, never by the pure layers.
#pragma once
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>

namespace pgmux::net {

namespace asio = boost::asio;
using error_code = boost::system::error_code;
// TCP and Unix-domain sockets alike: the relay does not care which.
using socket_t = asio::generic::stream_protocol::socket;
using clock = std::chrono::steady_clock;

// Completion token for operations whose failure is ordinary traffic (EOF, timeouts).
inline constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);

inline std::int64_t now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now().time_since_epoch()).count();
}

}  // namespace pgmux::net
