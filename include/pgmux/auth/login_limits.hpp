// Per-address count of clients that have not finished logging in (auth.max_authenticating_per_address),
// so that connections from one address that stall in their startup cannot take every
// authentication slot. IPv4 addresses are counted one by one; IPv6 addresses by /64, the
// smallest network a site is usually given, so one host cannot dodge the cap by cycling through
// its own /64. Unix-socket clients are not counted (auth.max_authenticating still bounds them).
// Thread-safe: sessions on every worker take and give back slots. An address is in the map only
// while it holds a slot, so the map never holds more entries than clients are logging in.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <unordered_map>

#include "pgmux/auth/rules.hpp"

namespace pgmux::auth {

class login_limits {
 public:
  // The bucket of `peer`: the IPv4 address, or the /64 of an IPv6 one. Unix socket: none.
  using key = std::array<std::uint8_t, 9>;  // family byte, then 4 or 8 address bytes
  static key key_of(const ip_address& address) noexcept;

  // Takes a slot for `peer` when its address holds fewer than `cap`; false (nothing taken) when
  // it holds `cap` already. Unix-socket peers always get one and are not counted.
  bool try_acquire(const client_peer& peer, std::size_t cap);
  // Gives back a slot try_acquire granted.
  void release(const client_peer& peer) noexcept;

  std::size_t count(const client_peer& peer) const;  // slots the peer's bucket holds
  std::size_t addresses() const;                     // buckets holding at least one slot

 private:
  struct key_hash {
    std::size_t operator()(const key& k) const noexcept;
  };
  mutable std::mutex mu_;
  std::unordered_map<key, std::size_t, key_hash> counts_;
};

// A slot held for one login; given back when released or destroyed.
class login_slot {
 public:
  login_slot() = default;
  login_slot(login_limits& limits, const client_peer& peer) noexcept : limits_(&limits), peer_(peer) {}
  login_slot(login_slot&& other) noexcept : limits_(other.limits_), peer_(other.peer_) { other.limits_ = nullptr; }
  login_slot& operator=(login_slot&& other) noexcept {
    if (this != &other) {
      release();
      limits_ = other.limits_;
      peer_ = other.peer_;
      other.limits_ = nullptr;
    }
    return *this;
  }
  ~login_slot() { release(); }
  void release() noexcept {
    if (limits_) limits_->release(peer_);
    limits_ = nullptr;
  }

 private:
  login_limits* limits_ = nullptr;
  client_peer peer_;
};

}  // namespace pgmux::auth
