// Cancel keys for clients.
#include "pgmux/server/cancel.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include <boost/asio/write.hpp>

#include "pgmux/auth/crypto.hpp"
#include "pgmux/io/timeout.hpp"
#include "pgmux/protocol/cancel_route.hpp"
#include "pgmux/protocol/encode.hpp"
#include "pgmux/server/server_connection.hpp"

namespace pgmux::net {

std::size_t cancel_registry::table::index_of(std::uint64_t packed) const noexcept {
  // Bits below the top ones, which chose the shard (striped.hpp). The keys are random anyway.
  const std::uint64_t mixed = packed * 0x9E3779B97F4A7C15ull;
  return (mixed >> 24) & (buckets.size() - 1);
}

void cancel_registry::table::resize(std::size_t size) {
  std::vector<cancel_target*> old(size, nullptr);
  old.swap(buckets);
  for (cancel_target* head : old)
    while (head) {
      cancel_target* next = head->next_in_bucket_;
      cancel_target** bucket = &buckets[index_of(head->registered_key_)];
      head->next_in_bucket_ = *bucket;
      *bucket = head;
      head = next;
    }
}

protocol::cancel_key cancel_registry::add(cancel_target& target, std::int32_t pid) {
  if (target.registered_key_ != 0) throw std::logic_error("a cancel target registered twice");
  for (;;) {
    const auto bytes = auth::random_bytes(8);
    protocol::cancel_key key;
    std::memcpy(&key.pid, bytes.data(), 4);
    std::memcpy(&key.secret, bytes.data() + 4, 4);
    key.pid &= 0x7fffffff;  // shown as a process id by some clients: keep it positive
    if (pid != 0) key.pid = pid;
    if (key.pid == 0) continue;
    key = protocol::with_instance(key, instance_id_);
    const auto packed = pack(key);
    auto& shard = targets_.of(packed);
    std::lock_guard lock(shard.mu);
    auto& t = shard.map;
    if (t.count >= t.buckets.size()) t.resize(std::max<std::size_t>(16, t.buckets.size() * 2));
    cancel_target** bucket = &t.buckets[t.index_of(packed)];
    bool taken = false;
    for (cancel_target* other = *bucket; other && !taken; other = other->next_in_bucket_)
      taken = other->registered_key_ == packed;
    if (taken) continue;
    target.registered_key_ = packed;
    target.next_in_bucket_ = *bucket;
    *bucket = &target;
    ++t.count;
    return key;
  }
}

void cancel_registry::remove(cancel_target& target) noexcept {
  // Written only by add() and remove() of this target, which come from its own thread or (in its
  // destructor) after the last reference to it was dropped: read here without the lock.
  const auto packed = target.registered_key_;
  if (packed == 0) return;
  auto& shard = targets_.of(packed);
  std::lock_guard lock(shard.mu);
  auto& t = shard.map;
  for (cancel_target** link = &t.buckets[t.index_of(packed)]; *link; link = &(*link)->next_in_bucket_)
    if (*link == &target) {
      *link = target.next_in_bucket_;
      break;
    }
  target.registered_key_ = 0;
  target.next_in_bucket_ = nullptr;
  --t.count;
  if (t.buckets.size() > 64 && t.count < t.buckets.size() / 8) {
    try {
      t.resize(t.buckets.size() / 4);
    } catch (const std::bad_alloc&) {
      // Kept larger than it need be.
    }
  }
}

std::shared_ptr<cancel_target> cancel_registry::find(protocol::cancel_key key) const {
  const auto packed = pack(key);
  const auto& shard = targets_.of(packed);
  std::lock_guard lock(shard.mu);
  if (shard.map.buckets.empty()) return nullptr;
  for (cancel_target* t = shard.map.buckets[shard.map.index_of(packed)]; t; t = t->next_in_bucket_)
    if (t->registered_key_ == packed) return t->keep_alive();
  return nullptr;
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
