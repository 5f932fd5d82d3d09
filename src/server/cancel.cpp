// Cancel keys for clients.
#include "pgmux/server/cancel.hpp"

#include <cstring>

#include "pgmux/auth/crypto.hpp"

namespace pgmux::net {

protocol::cancel_key cancel_registry::add(std::weak_ptr<cancel_target> target, std::int32_t pid) {
  std::lock_guard lock(mu_);
  for (;;) {
    const auto bytes = auth::random_bytes(8);
    protocol::cancel_key key;
    std::memcpy(&key.pid, bytes.data(), 4);
    std::memcpy(&key.secret, bytes.data() + 4, 4);
    key.pid &= 0x7fffffff;  // shown as a process id by some clients: keep it positive
    if (pid != 0) key.pid = pid;
    if (key.pid == 0) continue;
    if (targets_.emplace(pack(key), target).second) return key;
  }
}

void cancel_registry::remove(protocol::cancel_key key) {
  std::lock_guard lock(mu_);
  targets_.erase(pack(key));
}

std::shared_ptr<cancel_target> cancel_registry::find(protocol::cancel_key key) const {
  std::lock_guard lock(mu_);
  auto it = targets_.find(pack(key));
  return it == targets_.end() ? nullptr : it->second.lock();
}

}  // namespace pgmux::net
