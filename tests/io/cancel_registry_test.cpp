// The cancel keys' table: each live target is found by its key and by no other, whatever the
// table's size went through as targets came and went.
#include <doctest/doctest.h>

#include <memory>
#include <set>
#include <stdexcept>
#include <vector>

#include "pgmux/protocol/cancel_route.hpp"
#include "pgmux/server/cancel.hpp"

namespace {

using pgmux::net::cancel_registry;
using pgmux::net::cancel_target;
using pgmux::protocol::cancel_key;

struct target final : cancel_target, std::enable_shared_from_this<target> {
  int cancels = 0;
  void cancel_current_query() override { ++cancels; }
  std::shared_ptr<cancel_target> keep_alive() noexcept override { return weak_from_this().lock(); }
};

std::int64_t packed(cancel_key k) { return (std::int64_t(k.pid) << 32) | std::uint32_t(k.secret); }

}  // namespace

TEST_CASE("cancel keys: unique, found while registered, not after, through growth and shrinking") {
  cancel_registry registry;
  constexpr std::size_t n = 5000;  // several doublings of every shard's table
  std::vector<std::shared_ptr<target>> targets;
  std::vector<cancel_key> keys;
  std::set<std::int64_t> distinct;
  for (std::size_t i = 0; i < n; ++i) {
    targets.push_back(std::make_shared<target>());
    keys.push_back(registry.add(*targets.back()));
    CHECK(keys.back().pid > 0);
    distinct.insert(packed(keys.back()));
  }
  CHECK(distinct.size() == n);
  for (std::size_t i = 0; i < n; ++i) REQUIRE(registry.find(keys[i]) == targets[i]);
  // Most leave (the tables shrink), a few stay.
  for (std::size_t i = 0; i < n; ++i)
    if (i % 100 != 0) registry.remove(*targets[i]);
  for (std::size_t i = 0; i < n; ++i) {
    INFO("target " << i);
    CHECK(registry.find(keys[i]) == (i % 100 == 0 ? targets[i] : nullptr));
  }
  // A key never handed out, or a registered one with another secret, finds nothing.
  CHECK(registry.find(cancel_key{keys[0].pid, keys[0].secret ^ 1}) == nullptr);
  CHECK(registry.find(cancel_key{12345, 678}) == nullptr);
  // Removed once more (as a session's destructor does after its finish): nothing happens.
  registry.remove(*targets[1]);
  CHECK(registry.find(keys[0]) == targets[0]);
  // A target can be registered again once removed, under a fresh key.
  const auto again = registry.add(*targets[1]);
  CHECK(registry.find(again) == targets[1]);
  CHECK(registry.find(keys[1]) == nullptr);
}

TEST_CASE("cancel keys: a given pid is kept, the instance is written in, a second add is refused") {
  cancel_registry registry(3);
  auto a = std::make_shared<target>();
  const auto key = registry.add(*a, 4242);
  CHECK(key.pid == 4242);
  CHECK(pgmux::protocol::instance_of(key) == 3);
  CHECK_THROWS_AS(registry.add(*a), std::logic_error);
  registry.find(key)->cancel_current_query();
  CHECK(a->cancels == 1);
  registry.remove(*a);
}

TEST_CASE("cancel keys: a target already going away is not handed out") {
  cancel_registry registry;
  auto owner = std::make_shared<target>();
  // Registered, but no longer owned by a shared_ptr that keep_alive could share.
  target detached;
  const auto key = registry.add(detached);
  CHECK(registry.find(key) == nullptr);
  registry.remove(detached);
  const auto live = registry.add(*owner);
  CHECK(registry.find(live) == owner);
  registry.remove(*owner);
  CHECK(registry.find(live) == nullptr);
}
