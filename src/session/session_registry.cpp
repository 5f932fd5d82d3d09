// Registry of live client sessions.
#include "pgmux/session/session_registry.hpp"

#include <vector>

namespace pgmux::net {

void session_registry::add(const std::shared_ptr<client_session>& s) {
  auto& shard = sessions_.of(key(s.get()));
  std::lock_guard lock(shard.mu);
  shard.map.emplace(s.get(), s);
}

void session_registry::remove(const client_session* s) {
  auto& shard = sessions_.of(key(s));
  std::lock_guard lock(shard.mu);
  shard.map.erase(s);
}

void session_registry::for_each(const std::function<void(const std::shared_ptr<client_session>&)>& f) const {
  std::vector<std::shared_ptr<client_session>> live;
  for (const auto& shard : sessions_.all()) {
    std::lock_guard lock(shard.mu);
    live.reserve(live.size() + shard.map.size());
    for (const auto& [ptr, weak] : shard.map)
      if (auto s = weak.lock()) live.push_back(std::move(s));
  }
  for (const auto& s : live) f(s);
}

}  // namespace pgmux::net
