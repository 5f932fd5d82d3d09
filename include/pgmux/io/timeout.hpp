// Bounding an awaitable by a deadline: the operation is cancelled when the timer wins.
#pragma once
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/this_coro.hpp>

#include <optional>
#include <variant>

#include "pgmux/io/io.hpp"

namespace pgmux::net {

// nullopt when `timeout` passed first (the operation was cancelled).
template <typename T>
asio::awaitable<std::optional<T>> with_timeout(asio::awaitable<T> op, clock::duration timeout) {
  using namespace asio::experimental::awaitable_operators;
  asio::steady_timer timer(co_await asio::this_coro::executor);
  timer.expires_after(timeout);
  auto result = co_await (std::move(op) || timer.async_wait(nothrow));
  if (result.index() == 0) co_return std::move(std::get<0>(result));
  co_return std::nullopt;
}

}  // namespace pgmux::net
