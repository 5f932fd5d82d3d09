// Query cancellation: the keys pgmux hands to clients in BackendKeyData, and the sessions
// they stand for.
#pragma once
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
  // A fresh random key, unique among live sessions, registered for `target`.
  protocol::cancel_key add(std::weak_ptr<cancel_target> target);
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
