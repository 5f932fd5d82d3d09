// Client authentication method choice (the rules, then what pgmux can run on the connection):
// Cases:
//   the default rules trust the Unix socket and loopback and refuse everyone else
//   the first matching rule decides, by database, user and address
//   a reject rule and no matching rule give the same message, naming host, user and database
//   Unix-socket clients are named [local]
//   cert needs TLS: refused without it, chosen with it
//   password over TCP without TLS needs allow_cleartext_without_tls, the Unix socket does not
//   password-checking methods need a secret
//   one failure message for wrong passwords and unknown users
#include <doctest/doctest.h>

#include <vector>

#include "pgmux/auth/client_auth.hpp"

using namespace pgmux::auth;

namespace {

client_peer tcp(std::string_view address) {
  auto a = ip_address::parse(address);
  REQUIRE(a);
  return client_peer::tcp(*a);
}

auth_rule rule(std::string database, std::string user, std::string_view address, auth_method method) {
  std::string error;
  auto pattern = parse_address_pattern(address, error);
  REQUIRE_MESSAGE(pattern, error);
  return auth_rule{std::move(database), std::move(user), *pattern, method};
}

}  // namespace

TEST_SUITE("client_auth") {

TEST_CASE("the default rules trust the Unix socket and loopback and refuse everyone else") {
  const auto rules = default_rules();
  const client_auth_policy policy{rules};
  CHECK(choose_client_method(policy, {"app", "alice", client_peer::local()}).method == auth_method::trust);
  CHECK(choose_client_method(policy, {"app", "alice", tcp("127.0.0.1")}).method == auth_method::trust);
  CHECK(choose_client_method(policy, {"app", "alice", tcp("::1")}).method == auth_method::trust);
  CHECK(choose_client_method(policy, {"app", "alice", tcp("::ffff:127.0.0.5")}).method == auth_method::trust);
  const auto remote = choose_client_method(policy, {"app", "alice", tcp("10.1.2.3")});
  CHECK(remote.method == auth_method::reject);
  CHECK_FALSE(remote.rule);
}

TEST_CASE("the first matching rule decides, by database, user and address") {
  const std::vector<auth_rule> rules = {
      rule("*", "*", "127.0.0.1", auth_method::reject),
      rule("reports", "*", "*", auth_method::md5),
      rule("*", "alice", "10.0.0.0/8", auth_method::scram_sha_256),
      rule("*", "*", "*", auth_method::trust),
  };
  const client_auth_policy policy{rules};
  const auto local_tcp = choose_client_method(policy, {"reports", "alice", tcp("127.0.0.1")});
  CHECK(local_tcp.method == auth_method::reject);
  CHECK(local_tcp.rule == 0u);
  const auto reports = choose_client_method(policy, {"reports", "alice", tcp("10.1.1.1")});
  CHECK(reports.method == auth_method::md5);
  CHECK(reports.rule == 1u);
  CHECK(reports.reason.empty());
  const auto alice = choose_client_method(policy, {"app", "alice", tcp("10.1.1.1")});
  CHECK(alice.method == auth_method::scram_sha_256);
  CHECK(alice.rule == 2u);
  CHECK(choose_client_method(policy, {"app", "bob", tcp("10.1.1.1")}).method == auth_method::trust);
  CHECK(choose_client_method(policy, {"app", "alice", tcp("192.168.0.1")}).method == auth_method::trust);
}

TEST_CASE("a reject rule and no matching rule give the same message, naming host, user and database") {
  const std::vector<auth_rule> rules = {rule("*", "mallory", "*", auth_method::reject),
                                        rule("app", "*", "*", auth_method::trust)};
  const client_auth_policy policy{rules};
  const auto rejected = choose_client_method(policy, {"app", "mallory", tcp("10.9.8.7")});
  const auto unmatched = choose_client_method(policy, {"other", "mallory2", tcp("10.9.8.7")});
  CHECK(rejected.method == auth_method::reject);
  CHECK(unmatched.method == auth_method::reject);
  CHECK(rejected.reason == "no pgmux auth rule allows connection for host \"10.9.8.7\", user \"mallory\", database \"app\"");
  CHECK(unmatched.reason ==
        "no pgmux auth rule allows connection for host \"10.9.8.7\", user \"mallory2\", database \"other\"");
  // The log tells them apart.
  CHECK(rejected.detail == "auth rule 0 rejects");
  CHECK(unmatched.detail == "no auth rule matches");
  CHECK(choose_client_method({}, {"app", "alice", client_peer::local()}).method == auth_method::reject);
}

TEST_CASE("Unix-socket clients are named [local]") {
  CHECK(describe_peer(client_peer::local()) == "[local]");
  CHECK(describe_peer(tcp("::1")) == "::1");
  const auto c = choose_client_method({}, {"app", "alice", client_peer::local()});
  CHECK(c.reason.find("host \"[local]\"") != std::string::npos);
}

TEST_CASE("cert needs TLS: refused without it, chosen with it") {
  const std::vector<auth_rule> rules = {rule("*", "*", "*", auth_method::cert)};
  const auto c = choose_client_method({rules}, {"app", "alice", tcp("10.0.0.1")});
  CHECK(c.method == auth_method::reject);
  CHECK(c.rule == 0u);
  CHECK(c.reason.find("TLS") != std::string::npos);
  CHECK(c.reason.find("requires a valid client certificate") != std::string::npos);
  const auto over_tls = choose_client_method({rules}, {"app", "alice", tcp("10.0.0.1"), /*tls=*/true});
  CHECK(over_tls.method == auth_method::cert);
  CHECK(over_tls.rule == 0u);
  CHECK(over_tls.reason.empty());
}

TEST_CASE("password over TCP without TLS needs allow_cleartext_without_tls, the Unix socket does not") {
  const std::vector<auth_rule> rules = {rule("*", "*", "*", auth_method::password)};
  const auto refused = choose_client_method({rules, false}, {"app", "alice", tcp("10.0.0.1")});
  CHECK(refused.method == auth_method::reject);
  CHECK(refused.reason.find("allow_cleartext_without_tls") != std::string::npos);
  CHECK(choose_client_method({rules, true}, {"app", "alice", tcp("10.0.0.1")}).method == auth_method::password);
  CHECK(choose_client_method({rules, false}, {"app", "alice", client_peer::local()}).method == auth_method::password);
  CHECK(choose_client_method({rules, false}, {"app", "alice", tcp("10.0.0.1"), /*tls=*/true}).method ==
        auth_method::password);
}

TEST_CASE("password-checking methods need a secret") {
  CHECK(needs_secret(auth_method::scram_sha_256));
  CHECK(needs_secret(auth_method::md5));
  CHECK(needs_secret(auth_method::password));
  CHECK_FALSE(needs_secret(auth_method::trust));
  CHECK_FALSE(needs_secret(auth_method::reject));
  CHECK_FALSE(needs_secret(auth_method::cert));
}

TEST_CASE("one failure message for wrong passwords and unknown users") {
  CHECK(password_failed_message("alice") == "password authentication failed for user \"alice\"");
}

}  // TEST_SUITE
