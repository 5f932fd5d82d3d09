// The live client sessions, so that shutdown and the admin console can reach them.
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>

namespace pgmux::net {

class client_session;

class session_registry {
 public:
  void add(const std::shared_ptr<client_session>& s);
  void remove(const client_session* s);
  // Calls f for every live session, outside the lock.
  void for_each(const std::function<void(const std::shared_ptr<client_session>&)>& f) const;

 private:
  // Every login and disconnect writes here, from whichever worker: sharded by the session's
  // address, so that workers seldom wait for each other's lock.
  static constexpr std::size_t shard_count = 16;
  struct alignas(64) shard {
    mutable std::mutex mu;
    std::unordered_map<const client_session*, std::weak_ptr<client_session>> sessions;
  };
  static std::size_t shard_of(const client_session* s) noexcept {
    const auto bits = reinterpret_cast<std::uintptr_t>(s);
    return (bits >> 6 ^ bits >> 12) % shard_count;
  }
  std::array<shard, shard_count> shards_;
};

}  // namespace pgmux::net
