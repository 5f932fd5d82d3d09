// Registry of live client sessions.
#include "pgmux/session/session_registry.hpp"

#include <vector>

namespace pgmux::net {

void session_registry::add(const std::shared_ptr<client_session>& s) {
  std::lock_guard lock(mu_);
  sessions_.emplace(s.get(), s);
}

void session_registry::remove(const client_session* s) {
  std::lock_guard lock(mu_);
  sessions_.erase(s);
}

void session_registry::for_each(const std::function<void(const std::shared_ptr<client_session>&)>& f) const {
  std::vector<std::shared_ptr<client_session>> live;
  {
    std::lock_guard lock(mu_);
    live.reserve(sessions_.size());
    for (const auto& [ptr, weak] : sessions_)
      if (auto s = weak.lock()) live.push_back(std::move(s));
  }
  for (const auto& s : live) f(s);
}

}  // namespace pgmux::net
