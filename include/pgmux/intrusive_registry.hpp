// A set of live objects that every worker adds to and removes from (at each login and logout)
// and that other threads walk (shutdown, the admin console, metrics): a list per shard, linked
// through the members themselves, so that registering allocates nothing. Members are owned by
// shared_ptr; a walk hands out shared_ptrs, skipping a member whose destructor has begun.
//
// A member provides `registry_hook()` (a `hook` of its own) and must leave the registry before
// it is freed: its destructor's remove() waits for any walk of its shard to finish.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "pgmux/striped.hpp"

namespace pgmux {

template <class Member>
class intrusive_registry {
 public:
  struct hook {
    Member* prev = nullptr;
    Member* next = nullptr;
  };

  void add(Member& m);
  // Nothing when `m` is not registered.
  void remove(Member& m) noexcept;
  // Calls f for every live member, outside the locks.
  void for_each(const std::function<void(const std::shared_ptr<Member>&)>& f) const;

 private:
  struct list {
    Member* head = nullptr;
  };
  static bool listed(const list& l, Member& m) noexcept { return m.registry_hook().prev || l.head == &m; }
  static std::uint64_t key(const Member& m) noexcept { return reinterpret_cast<std::uintptr_t>(&m); }
  striped<list> lists_;
};

// Defined out of the class, so that a user may instantiate them once for its member type (extern
// template) rather than in every translation unit that registers or walks.
template <class Member>
void intrusive_registry<Member>::add(Member& m) {
  auto& shard = lists_.of(key(m));
  std::lock_guard lock(shard.mu);
  if (listed(shard.map, m)) return;
  auto& h = m.registry_hook();
  h.next = shard.map.head;
  if (h.next) h.next->registry_hook().prev = &m;
  shard.map.head = &m;
}

template <class Member>
void intrusive_registry<Member>::remove(Member& m) noexcept {
  auto& shard = lists_.of(key(m));
  std::lock_guard lock(shard.mu);
  if (!listed(shard.map, m)) return;
  auto& h = m.registry_hook();
  (h.prev ? h.prev->registry_hook().next : shard.map.head) = h.next;
  if (h.next) h.next->registry_hook().prev = h.prev;
  h = {};
}

template <class Member>
void intrusive_registry<Member>::for_each(const std::function<void(const std::shared_ptr<Member>&)>& f) const {
  std::vector<std::shared_ptr<Member>> live;
  for (const auto& shard : lists_.all()) {
    std::lock_guard lock(shard.mu);
    for (Member* m = shard.map.head; m; m = m->registry_hook().next) {
      // Room first: a reference dropped here, should growing fail, could be the last one, and
      // the member's destructor would then wait for this very lock.
      live.emplace_back();
      live.back() = m->weak_from_this().lock();
      if (!live.back()) live.pop_back();
    }
  }
  for (const auto& m : live) f(m);
}

}  // namespace pgmux
