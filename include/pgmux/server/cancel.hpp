// Query cancellation: the keys pgmux hands to clients in BackendKeyData, and the sessions
// they stand for.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "pgmux/striped.hpp"

#include "pgmux/io/io.hpp"
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
  // `instance_id`: written into every key (protocol/cancel_route), so that other instances can
  // send on a CancelRequest for it; 0 for none.
  explicit cancel_registry(std::uint8_t instance_id = 0) : instance_id_(instance_id) {}
  std::uint8_t instance_id() const noexcept { return instance_id_; }

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
  const std::uint8_t instance_id_;
  striped<std::unordered_map<std::uint64_t, std::weak_ptr<cancel_target>>> targets_;
};

// Sends a CancelRequest for `key` to the pgmux at `peer` ("host:port", a host starting with / being
// a Unix socket directory) and closes. True once written, false when that failed or `timeout`
// passed first.
asio::awaitable<bool> forward_cancel(const std::string& peer, protocol::cancel_key key, clock::duration timeout);

}  // namespace pgmux::net
