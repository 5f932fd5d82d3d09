// The live client sessions, so that shutdown and the admin console can reach them.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "pgmux/striped.hpp"

namespace pgmux::net {

class client_session;

class session_registry {
 public:
  void add(const std::shared_ptr<client_session>& s);
  void remove(const client_session* s);
  // Calls f for every live session, outside the lock.
  void for_each(const std::function<void(const std::shared_ptr<client_session>&)>& f) const;

 private:
  striped<std::unordered_map<const client_session*, std::weak_ptr<client_session>>> sessions_;
  static std::uint64_t key(const client_session* s) noexcept { return reinterpret_cast<std::uintptr_t>(s); }
};

}  // namespace pgmux::net
