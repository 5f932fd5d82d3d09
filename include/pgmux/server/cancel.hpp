// Query cancellation: the keys pgmux hands to clients in BackendKeyData, and the sessions
// they stand for.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "pgmux/protocol/messages.hpp"

namespace pgmux::net {

// A session whose running query can be cancelled from another thread.
class cancel_target {
 public:
  virtual ~cancel_target() = default;
  virtual void cancel_current_query() = 0;
};

class cancel_registry {
 public:
  // A fresh random key, unique among live sessions, registered for `target`. With `pid`, the
  // key carries that process id (a session-mode client's own server backend) and a random
  // secret of pgmux's.
  protocol::cancel_key add(std::weak_ptr<cancel_target> target, std::int32_t pid = 0);
  void remove(protocol::cancel_key key);
  std::shared_ptr<cancel_target> find(protocol::cancel_key key) const;

 private:
  static std::uint64_t pack(protocol::cancel_key key) noexcept {
    return (std::uint64_t(std::uint32_t(key.pid)) << 32) | std::uint32_t(key.secret);
  }
  mutable std::mutex mu_;
  std::unordered_map<std::uint64_t, std::weak_ptr<cancel_target>> targets_;
};

}  // namespace pgmux::net
