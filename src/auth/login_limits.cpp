// Per-address login slots.
#include "pgmux/auth/login_limits.hpp"

#include <algorithm>

namespace pgmux::auth {

login_limits::key login_limits::key_of(const ip_address& address) noexcept {
  key k{};
  const auto bytes = address.bytes();
  k[0] = address.is_v4() ? 4 : 6;
  // IPv6: the /64 prefix only.
  const std::size_t n = address.is_v4() ? 4 : 8;
  std::copy_n(bytes.begin(), n, k.begin() + 1);
  return k;
}

std::size_t login_limits::key_hash::operator()(const key& k) const noexcept {
  std::uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (auto b : k) h = (h ^ b) * 1099511628211ull;
  return static_cast<std::size_t>(h);
}

bool login_limits::try_acquire(const client_peer& peer, std::size_t cap) {
  if (peer.unix_socket) return true;
  const auto k = key_of(peer.address);
  std::lock_guard lock(mu_);
  auto it = counts_.find(k);
  if (it == counts_.end()) {
    if (cap == 0) return false;
    counts_.emplace(k, 1);
    return true;
  }
  if (it->second >= cap) return false;
  ++it->second;
  return true;
}

void login_limits::release(const client_peer& peer) noexcept {
  if (peer.unix_socket) return;
  const auto k = key_of(peer.address);
  std::lock_guard lock(mu_);
  auto it = counts_.find(k);
  if (it == counts_.end()) return;
  if (--it->second == 0) counts_.erase(it);
}

std::size_t login_limits::count(const client_peer& peer) const {
  if (peer.unix_socket) return 0;
  const auto k = key_of(peer.address);
  std::lock_guard lock(mu_);
  const auto it = counts_.find(k);
  return it == counts_.end() ? 0 : it->second;
}

std::size_t login_limits::addresses() const {
  std::lock_guard lock(mu_);
  return counts_.size();
}

}  // namespace pgmux::auth
