// The registry of live objects linked through themselves: a walk sees exactly the members added
// and not removed, wherever in its list a member was, and skips one whose owner is gone.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <set>
#include <thread>
#include <vector>

#include "pgmux/intrusive_registry.hpp"

namespace {

struct member : std::enable_shared_from_this<member> {
  explicit member(int id) : id(id) {}
  int id;
  pgmux::intrusive_registry<member>::hook hook;
  pgmux::intrusive_registry<member>::hook& registry_hook() noexcept { return hook; }
};

std::set<int> walk(const pgmux::intrusive_registry<member>& r) {
  std::set<int> seen;
  r.for_each([&](const std::shared_ptr<member>& m) { CHECK(seen.insert(m->id).second); });
  return seen;
}

}  // namespace

TEST_CASE("intrusive registry: removal from the head, the middle and the tail of a list, twice, and re-adding") {
  pgmux::intrusive_registry<member> registry;
  std::vector<std::shared_ptr<member>> members;
  std::set<int> expected;
  // Enough members that every shard's list holds several.
  for (int i = 0; i < 200; ++i) {
    members.push_back(std::make_shared<member>(i));
    registry.add(*members.back());
    expected.insert(i);
  }
  registry.add(*members[0]);  // already there: nothing changes
  CHECK(walk(registry) == expected);
  // Every third, in an order that takes heads, middles and tails of the shards' lists.
  for (int i = 199; i >= 0; i -= 3) {
    registry.remove(*members[i]);
    expected.erase(i);
  }
  CHECK(walk(registry) == expected);
  registry.remove(*members[199]);  // removed before: nothing happens
  CHECK(walk(registry) == expected);
  registry.add(*members[199]);
  expected.insert(199);
  CHECK(walk(registry) == expected);
  for (auto& m : members) registry.remove(*m);
  CHECK(walk(registry).empty());
}

TEST_CASE("intrusive registry: a member whose owners are gone is not handed out") {
  pgmux::intrusive_registry<member> registry;
  auto owned = std::make_shared<member>(1);
  member unowned(2);  // as a member whose last shared_ptr is being destroyed
  registry.add(*owned);
  registry.add(unowned);
  CHECK(walk(registry) == std::set<int>{1});
  registry.remove(unowned);
  registry.remove(*owned);
}

TEST_CASE("intrusive registry: members that come and go on several threads while another walks") {
  // Each member leaves in its destructor, as a session does, and its last reference is often
  // dropped while it is still listed: a walk then meets members whose destructor has begun.
  struct leaving : std::enable_shared_from_this<leaving> {
    leaving(pgmux::intrusive_registry<leaving>& r, int id) : registry(r), id(id) {}
    ~leaving() { registry.remove(*this); }
    pgmux::intrusive_registry<leaving>& registry;
    int id;
    pgmux::intrusive_registry<leaving>::hook hook;
    pgmux::intrusive_registry<leaving>::hook& registry_hook() noexcept { return hook; }
  };
  pgmux::intrusive_registry<leaving> registry;
  constexpr int threads = 3;
  constexpr int rounds = 20000;
  std::atomic<int> started{0};
  std::atomic<int> finished{0};
  std::vector<std::thread> churn;
  for (int t = 0; t < threads; ++t)
    churn.emplace_back([&, t] {
      started.fetch_add(1);
      while (started.load() < threads + 1) std::this_thread::yield();
      std::vector<std::shared_ptr<leaving>> held;
      for (int round = 0; round < rounds; ++round) {
        held.push_back(std::make_shared<leaving>(registry, t * rounds + round));
        registry.add(*held.back());
        if (round % 3 == 0) registry.remove(*held.back());  // some leave first, the rest when freed
        if (held.size() > 50) held.erase(held.begin(), held.begin() + 25);
      }
      finished.fetch_add(1);
    });
  started.fetch_add(1);
  std::size_t walks = 0, seen = 0;
  while (finished.load() < threads) {
    registry.for_each([&](const std::shared_ptr<leaving>& m) {
      CHECK(m->id >= 0);
      CHECK(m->id < threads * rounds);
      ++seen;
    });
    ++walks;
  }
  for (auto& t : churn) t.join();
  INFO(walks << " walks saw " << seen << " members");
  CHECK(walks > 0);
  std::size_t left = 0;
  registry.for_each([&](const std::shared_ptr<leaving>&) { ++left; });
  CHECK(left == 0);
}
