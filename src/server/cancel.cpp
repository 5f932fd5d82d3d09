// Cancel keys for clients.
#include "pgmux/server/cancel.hpp"

#include <cstring>

#include <boost/asio/write.hpp>

#include "pgmux/auth/crypto.hpp"
#include "pgmux/io/timeout.hpp"
#include "pgmux/protocol/cancel_route.hpp"
#include "pgmux/protocol/encode.hpp"
#include "pgmux/server/server_connection.hpp"

namespace pgmux::net {

protocol::cancel_key cancel_registry::add(std::weak_ptr<cancel_target> target, std::int32_t pid) {
  for (;;) {
    const auto bytes = auth::random_bytes(8);
    protocol::cancel_key key;
    std::memcpy(&key.pid, bytes.data(), 4);
    std::memcpy(&key.secret, bytes.data() + 4, 4);
    key.pid &= 0x7fffffff;  // shown as a process id by some clients: keep it positive
    if (pid != 0) key.pid = pid;
    if (key.pid == 0) continue;
    key = protocol::with_instance(key, instance_id_);
    auto& shard = targets_.of(pack(key));
    std::lock_guard lock(shard.mu);
    if (shard.map.emplace(pack(key), target).second) return key;
  }
}

void cancel_registry::remove(protocol::cancel_key key) {
  auto& shard = targets_.of(pack(key));
  std::lock_guard lock(shard.mu);
  shard.map.erase(pack(key));
}

std::shared_ptr<cancel_target> cancel_registry::find(protocol::cancel_key key) const {
  const auto& shard = targets_.of(pack(key));
  std::lock_guard lock(shard.mu);
  auto it = shard.map.find(pack(key));
  return it == shard.map.end() ? nullptr : it->second.lock();
}

namespace {

asio::awaitable<bool> send_cancel(const std::string& peer, protocol::cancel_key key) {
  const auto colon = peer.rfind(':');
  server_address address;
  address.host = peer.substr(0, colon);
  if (address.host.size() >= 2 && address.host.front() == '[' && address.host.back() == ']')
    address.host = address.host.substr(1, address.host.size() - 2);
  address.port = static_cast<std::uint16_t>(std::stoul(peer.substr(colon + 1)));
  socket_t socket(loop_executor(co_await asio::this_coro::executor));
  if (co_await connect_socket(socket, address)) co_return false;
  std::string out;
  protocol::encode_cancel_request(out, key);
  auto [ec, n] = co_await asio::async_write(socket, asio::buffer(out), nothrow);
  co_return !ec;
}

}  // namespace

asio::awaitable<bool> forward_cancel(const std::string& peer, protocol::cancel_key key, clock::duration timeout) {
  const auto sent = co_await with_timeout(send_cancel(peer, key), timeout);
  co_return sent && *sent;
}

}  // namespace pgmux::net
