// Per-address login slots (auth.max_authenticating_per_address).
#include <doctest/doctest.h>

#include <string>

#include "pgmux/auth/login_limits.hpp"

using namespace pgmux::auth;

namespace {

client_peer tcp(const char* text) { return client_peer::tcp(*ip_address::parse(text)); }

}  // namespace

TEST_CASE("login_limits caps each address and frees a slot when a login ends") {
  login_limits limits;
  const auto a = tcp("127.0.0.2");
  const auto b = tcp("127.0.0.1");
  CHECK(limits.try_acquire(a, 3));
  CHECK(limits.try_acquire(a, 3));
  CHECK(limits.try_acquire(a, 3));
  CHECK_FALSE(limits.try_acquire(a, 3));  // the fourth from that address
  CHECK(limits.count(a) == 3);
  CHECK(limits.try_acquire(b, 3));        // another address is not affected
  CHECK(limits.count(b) == 1);
  limits.release(a);
  CHECK(limits.try_acquire(a, 3));
  CHECK_FALSE(limits.try_acquire(a, 3));
}

TEST_CASE("login_limits forgets an address once it holds no slot") {
  login_limits limits;
  for (int i = 1; i <= 200; ++i) {
    const auto peer = tcp(("10.0." + std::to_string(i / 100) + "." + std::to_string(i % 100)).c_str());
    REQUIRE(limits.try_acquire(peer, 1));
  }
  CHECK(limits.addresses() == 200);
  for (int i = 1; i <= 200; ++i)
    limits.release(tcp(("10.0." + std::to_string(i / 100) + "." + std::to_string(i % 100)).c_str()));
  CHECK(limits.addresses() == 0);
  limits.release(tcp("10.9.9.9"));  // never acquired: no effect, no underflow
  CHECK(limits.addresses() == 0);
}

TEST_CASE("login_limits counts IPv6 clients by /64") {
  login_limits limits;
  CHECK(limits.try_acquire(tcp("2001:db8:1:2::1"), 2));
  CHECK(limits.try_acquire(tcp("2001:db8:1:2:ffff::9"), 2));
  CHECK_FALSE(limits.try_acquire(tcp("2001:db8:1:2:abcd::7"), 2));  // same /64
  CHECK(limits.try_acquire(tcp("2001:db8:1:3::1"), 2));              // next /64
  CHECK(limits.count(tcp("2001:db8:1:2::5")) == 2);
  // An IPv4 address and an IPv6 one with the same leading bytes are different buckets.
  CHECK(limits.try_acquire(tcp("32.1.13.184"), 1));
  CHECK(limits.addresses() == 3);
  // IPv4-mapped IPv6 is its IPv4 address.
  CHECK_FALSE(limits.try_acquire(tcp("::ffff:32.1.13.184"), 1));
}

TEST_CASE("login_limits does not count Unix-socket clients") {
  login_limits limits;
  for (int i = 0; i < 10; ++i) CHECK(limits.try_acquire(client_peer::local(), 1));
  CHECK(limits.addresses() == 0);
  limits.release(client_peer::local());
  CHECK(limits.addresses() == 0);
}

TEST_CASE("login_slot gives its slot back once, when released or destroyed") {
  login_limits limits;
  const auto a = tcp("192.0.2.1");
  {
    REQUIRE(limits.try_acquire(a, 2));
    login_slot slot(limits, a);
    CHECK(limits.count(a) == 1);
    login_slot moved = std::move(slot);
    slot.release();  // moved from: gives nothing back
    CHECK(limits.count(a) == 1);
  }
  CHECK(limits.count(a) == 0);
  REQUIRE(limits.try_acquire(a, 2));
  login_slot slot(limits, a);
  slot.release();
  slot.release();
  CHECK(limits.count(a) == 0);
}
