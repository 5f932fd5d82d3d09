// Client authentication method choice:
// - local peers (loopback, Unix socket) are trusted
// - anyone else is rejected with a message naming the user
#include <doctest/doctest.h>

#include "pgmux/auth/client_auth.hpp"

using namespace pgmux::auth;

TEST_SUITE("client_auth") {

TEST_CASE("local peers are trusted") {
  const auto c = choose_client_method({"alice", "app", true});
  CHECK(c.method == client_method::trust);
  CHECK(c.reason.empty());
}

TEST_CASE("remote peers are rejected with a message naming the user") {
  const auto c = choose_client_method({"alice", "app", false});
  CHECK(c.method == client_method::reject);
  CHECK(c.reason.find("\"alice\"") != std::string::npos);
}

}  // TEST_SUITE
