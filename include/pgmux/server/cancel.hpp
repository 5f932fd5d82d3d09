// Query cancellation: the keys pgmux hands to clients in BackendKeyData, and the sessions
// they stand for.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "pgmux/striped.hpp"

#include "pgmux/io/io.hpp"
#include "pgmux/protocol/messages.hpp"

namespace pgmux::net {

class cancel_registry;

// A session whose running query can be cancelled from another thread. It carries its own place
// in the registry (its key and the next target of its bucket), so that registering costs an idle
// client no allocation.
class cancel_target {
 public:
  cancel_target() = default;
  cancel_target(const cancel_target&) = delete;  // a copy would claim the original's place
  cancel_target& operator=(const cancel_target&) = delete;
  virtual ~cancel_target() = default;
  virtual void cancel_current_query() = 0;
  // The target, kept alive while the cancel is sent; null when it is already going away.
  virtual std::shared_ptr<cancel_target> keep_alive() noexcept = 0;
  // Read by the target's own thread (the only one to add or remove it), or by its destructor.
  bool cancel_registered() const noexcept { return registered_key_ != 0; }

 private:
  friend class cancel_registry;
  // Both written under the registry's lock: the key only when the target itself is added or
  // removed, the link also when a neighbour in its bucket is, or the table is resized.
  std::uint64_t registered_key_ = 0;  // packed; 0: not registered (a key's pid is never 0)
  cancel_target* next_in_bucket_ = nullptr;
};

class cancel_registry {
 public:
  // `instance_id`: written into every key (protocol/cancel_route), so that other instances can
  // send on a CancelRequest for it; 0 for none.
  explicit cancel_registry(std::uint8_t instance_id = 0) : instance_id_(instance_id) {}
  std::uint8_t instance_id() const noexcept { return instance_id_; }

  // A fresh random key, unique among live sessions, registered for `target` (not registered
  // yet). With `pid`, the key carries that process id (a session-mode client's own server
  // backend) and a random secret of pgmux's.
  protocol::cancel_key add(cancel_target& target, std::int32_t pid = 0);
  // Nothing when `target` is not registered: a session removes itself when it finishes and
  // again, to be sure, when it is destroyed.
  void remove(cancel_target& target) noexcept;
  std::shared_ptr<cancel_target> find(protocol::cancel_key key) const;

 private:
  static std::uint64_t pack(protocol::cancel_key key) noexcept {
    return (std::uint64_t(std::uint32_t(key.pid)) << 32) | std::uint32_t(key.secret);
  }
  // One shard's hash table, chained through the targets themselves. It grows to keep at most
  // one target per bucket on average, and shrinks when a crowd of clients has left.
  struct table {
    std::vector<cancel_target*> buckets;
    std::size_t count = 0;
    std::size_t index_of(std::uint64_t packed) const noexcept;
    void resize(std::size_t size);
  };
  const std::uint8_t instance_id_;
  striped<table> targets_;
};

// Sends a CancelRequest for `key` to the pgmux at `peer` ("host:port", a host starting with / being
// a Unix socket directory) and closes. True once written, false when that failed or `timeout`
// passed first.
asio::awaitable<bool> forward_cancel(const std::string& peer, protocol::cancel_key key, clock::duration timeout);

}  // namespace pgmux::net
