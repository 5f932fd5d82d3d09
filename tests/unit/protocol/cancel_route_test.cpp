// Cancel keys across instances (protocol/cancel_route).
// Cases:
//   the instance id takes the secret's top byte and nothing else; instance 0 changes nothing
//   the forward mark is the pid's sign bit, and comes off again
//   routing: a key known here is cancelled here, forwarded requests included
//   routing: another instance's key goes to that peer, marked; everything else is dropped
#include <doctest/doctest.h>

#include "pgmux/protocol/cancel_route.hpp"

using namespace pgmux::protocol;

TEST_SUITE("cancel_route") {

TEST_CASE("the instance id takes the secret's top byte") {
  const cancel_key key{0x12345678, static_cast<std::int32_t>(0xa1b2c3d4u)};
  const auto keyed = with_instance(key, 7);
  CHECK(keyed.pid == key.pid);
  CHECK(static_cast<std::uint32_t>(keyed.secret) == 0x07b2c3d4u);
  CHECK(instance_of(keyed) == 7);
  CHECK(instance_of(with_instance(key, 255)) == 255);
  CHECK(with_instance(key, 0) == key);
}

TEST_CASE("the forward mark is the pid's sign bit") {
  const cancel_key key{4242, 99};
  CHECK_FALSE(is_forwarded(key));
  const auto marked = mark_forwarded(key);
  CHECK(is_forwarded(marked));
  CHECK(marked.secret == key.secret);
  CHECK(without_forward_mark(marked) == key);
  CHECK(without_forward_mark(key) == key);
}

TEST_CASE("routing between instances") {
  const std::map<unsigned, std::string> peers{{2, "127.0.0.1:6433"}, {3, "/run/pgmux3:6432"}};
  const auto mine = with_instance({1001, 0x00abcdef}, 1);
  const auto theirs = with_instance({1002, 0x00abcdef}, 2);

  auto d = route_cancel(mine, 1, true, peers);
  CHECK(d.route == cancel_route::local);
  CHECK(d.key == mine);
  // A request a peer sent on is looked up without its mark.
  d = route_cancel(mark_forwarded(mine), 1, true, peers);
  CHECK(d.route == cancel_route::local);
  CHECK(d.key == mine);

  d = route_cancel(theirs, 1, false, peers);
  CHECK(d.route == cancel_route::forward);
  CHECK(d.peer == 2);
  CHECK(is_forwarded(d.key));
  CHECK(without_forward_mark(d.key) == theirs);

  // Never twice: a forwarded request that is not known here ends here.
  CHECK(route_cancel(mark_forwarded(theirs), 1, false, peers).route == cancel_route::drop);
  // A key of this instance's that no session has (finished, or forged): nothing.
  CHECK(route_cancel(mine, 1, false, peers).route == cancel_route::drop);
  // An instance that is not a peer, or no instance id, or no peering here.
  CHECK(route_cancel(with_instance({5, 5}, 9), 1, false, peers).route == cancel_route::drop);
  CHECK(route_cancel({5, 5}, 1, false, peers).route == cancel_route::drop);
  CHECK(route_cancel(theirs, 0, false, peers).route == cancel_route::drop);
}

}
