// Client authentication rules: addresses, networks, matching, the method actually run.
// Cases:
//   method names round trip, unknown ones are refused
//   addresses parse in both families, IPv4-mapped ones as IPv4
//   addresses from socket bytes, mapped ones as IPv4
//   malformed addresses are refused
//   IPv4 masks, byte-aligned or not
//   IPv6 masks, byte-aligned or not
//   IPv4 rules match IPv4-mapped clients, IPv6 rules never match IPv4 clients
//   a bare address is one host
//   bad networks are refused with a reason
//   address patterns: "*" matches everyone, "local" the Unix socket, networks TCP peers
//   bad address patterns are refused with a reason
//   the first matching rule wins
//   "*" matches any database and user, names match exactly
//   no matching rule, or no rules, is no match
//   default rules trust the Unix socket and loopback only
//   md5 becomes SCRAM unless the user has an md5 secret
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "pgmux/auth/rules.hpp"

using namespace pgmux::auth;

namespace {

ip_address addr(std::string_view text) {
  auto a = ip_address::parse(text);
  REQUIRE_MESSAGE(a, text);
  return *a;
}

ip_network net(std::string_view text) {
  std::string error;
  auto n = parse_ip_network(text, error);
  REQUIRE_MESSAGE(n, text, ": ", error);
  return *n;
}

address_pattern pattern(std::string_view text) {
  std::string error;
  auto p = parse_address_pattern(text, error);
  REQUIRE_MESSAGE(p, text, ": ", error);
  return *p;
}

auth_rule rule(std::string database, std::string user, std::string_view address, auth_method method) {
  return {std::move(database), std::move(user), pattern(address), method};
}

client_peer tcp(std::string_view text) { return client_peer::tcp(addr(text)); }

}  // namespace

TEST_SUITE("auth_rules") {

TEST_CASE("method names round trip, unknown ones are refused") {
  for (auto m : {auth_method::scram_sha_256, auth_method::md5, auth_method::password, auth_method::trust,
                 auth_method::cert, auth_method::reject}) {
    const auto back = parse_auth_method(to_string(m));
    REQUIRE(back);
    CHECK(*back == m);
  }
  CHECK(std::string(to_string(auth_method::scram_sha_256)) == "scram-sha-256");
  for (const char* bad : {"", "scram", "SCRAM-SHA-256", "scram_sha_256", "MD5", "ident", "peer", "trust "})
    CHECK_FALSE(parse_auth_method(bad));
}

TEST_CASE("addresses parse in both families, IPv4-mapped ones as IPv4") {
  const auto v4 = addr("10.1.2.3");
  CHECK(v4.is_v4());
  CHECK(v4.bytes().size() == 4);
  CHECK(v4.to_string() == "10.1.2.3");
  const auto v6 = addr("2001:db8::1");
  CHECK_FALSE(v6.is_v4());
  CHECK(v6.bytes().size() == 16);
  CHECK(v6.to_string() == "2001:db8::1");
  const auto mapped = addr("::ffff:10.1.2.3");
  CHECK(mapped.is_v4());
  CHECK(mapped == v4);
  CHECK(addr("::FFFF:0a01:0203") == v4);
  CHECK(addr("::1").to_string() == "::1");
  CHECK(addr("::").to_string() == "::");
  CHECK_FALSE(addr("::").is_v4());
}

TEST_CASE("addresses and peers print as inet_ntop and PostgreSQL's logs do") {
  // Every IPv4 octet from 0 to 255, in each position: the text reads back as the same address.
  for (unsigned octet = 0; octet < 256; ++octet) {
    const auto o = static_cast<std::uint8_t>(octet);
    for (const auto& bytes : {std::array<std::uint8_t, 4>{o, 0, 0, 0}, std::array<std::uint8_t, 4>{1, o, 2, o},
                              std::array<std::uint8_t, 4>{255, 255, 255, o}}) {
      const auto a = ip_address::v4(bytes);
      const auto text = a.to_string();
      CHECK(ip_address::parse(text) == a);
      CHECK(text == std::to_string(bytes[0]) + "." + std::to_string(bytes[1]) + "." + std::to_string(bytes[2]) + "." +
                        std::to_string(bytes[3]));
    }
  }
  CHECK(addr("0.0.0.0").to_string() == "0.0.0.0");
  CHECK(addr("255.255.255.255").to_string() == "255.255.255.255");
  CHECK(client_peer::tcp(addr("192.168.100.7"), 54321).to_string() == "192.168.100.7:54321");
  CHECK(client_peer::tcp(addr("10.0.0.1"), 0).to_string() == "10.0.0.1:0");
  CHECK(client_peer::tcp(addr("10.0.0.1"), 65535).to_string() == "10.0.0.1:65535");
  CHECK(client_peer::tcp(addr("2001:db8::1"), 5432).to_string() == "[2001:db8::1]:5432");
  CHECK(client_peer::local().to_string() == "unix");
}

TEST_CASE("addresses from socket bytes, mapped ones as IPv4") {
  const std::uint8_t four[] = {127, 0, 0, 1};
  CHECK(ip_address::from_bytes(four) == addr("127.0.0.1"));
  const std::uint8_t mapped[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 2, 3};
  CHECK(ip_address::from_bytes(mapped) == addr("10.1.2.3"));
  const std::uint8_t loop6[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  CHECK(ip_address::from_bytes(loop6) == addr("::1"));
  const std::uint8_t five[] = {1, 2, 3, 4, 5};
  CHECK_FALSE(ip_address::from_bytes(five));
  CHECK_FALSE(ip_address::from_bytes({}));
  CHECK(ip_address::v4({192, 168, 0, 1}) == addr("192.168.0.1"));
}

TEST_CASE("malformed addresses are refused") {
  for (const char* bad : {"", "10.1", "10.1.2", "256.0.0.1", "10.1.2.3.4", "010.1.2.3x", " 10.1.2.3", "10.1.2.3 ",
                          "fe80::1%eth0", ":::1", "2001:db8::g", "localhost", "*", "10.0.0.0/8"}) {
    CAPTURE(bad);
    CHECK_FALSE(ip_address::parse(bad));
  }
}

TEST_CASE("IPv4 masks, byte-aligned or not") {
  const auto ten = net("10.0.0.0/8");
  CHECK(ten.contains(addr("10.0.0.0")));
  CHECK(ten.contains(addr("10.255.255.255")));
  CHECK_FALSE(ten.contains(addr("11.0.0.0")));
  CHECK_FALSE(ten.contains(addr("9.255.255.255")));
  const auto upper = net("192.168.1.128/25");
  CHECK(upper.contains(addr("192.168.1.128")));
  CHECK(upper.contains(addr("192.168.1.200")));
  CHECK_FALSE(upper.contains(addr("192.168.1.127")));
  CHECK_FALSE(upper.contains(addr("192.168.2.200")));
  const auto odd = net("172.16.0.0/12");
  CHECK(odd.contains(addr("172.31.255.255")));
  CHECK_FALSE(odd.contains(addr("172.32.0.0")));
  CHECK(net("10.1.2.3/32").contains(addr("10.1.2.3")));
  CHECK_FALSE(net("10.1.2.3/32").contains(addr("10.1.2.2")));
  CHECK(net("10.1.2.2/31").contains(addr("10.1.2.3")));
  CHECK(net("0.0.0.0/0").contains(addr("203.0.113.9")));
  CHECK(net("10.0.0.0/8").to_string() == "10.0.0.0/8");
}

TEST_CASE("IPv6 masks, byte-aligned or not") {
  const auto doc = net("2001:db8::/32");
  CHECK(doc.contains(addr("2001:db8::1")));
  CHECK(doc.contains(addr("2001:db8:ffff:ffff::1")));
  CHECK_FALSE(doc.contains(addr("2001:db9::1")));
  const auto link = net("fe80::/10");
  CHECK(link.contains(addr("fe80::1")));
  CHECK(link.contains(addr("febf:ffff::1")));
  CHECK_FALSE(link.contains(addr("fec0::1")));
  CHECK(net("::1/128").contains(addr("::1")));
  CHECK_FALSE(net("::1/128").contains(addr("::2")));
  CHECK(net("::/0").contains(addr("2001:db8::1")));
  CHECK(net("2001:db8::/32").to_string() == "2001:db8::/32");
}

TEST_CASE("IPv4 rules match IPv4-mapped clients, IPv6 rules never match IPv4 clients") {
  CHECK(net("10.0.0.0/8").contains(addr("::ffff:10.1.2.3")));
  const std::uint8_t mapped[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 2, 3};
  CHECK(net("10.0.0.0/8").contains(*ip_address::from_bytes(mapped)));
  CHECK_FALSE(net("10.0.0.0/8").contains(addr("::ffff:11.1.2.3")));
  // A mapped network is the IPv4 network it carries.
  CHECK(net("::ffff:10.0.0.0/104") == net("10.0.0.0/8"));
  CHECK(net("::ffff:0.0.0.0/96") == net("0.0.0.0/0"));
  CHECK(net("::ffff:10.1.2.3") == net("10.1.2.3/32"));
  // IPv6 networks are for IPv6 clients; IPv4 networks for IPv4 clients.
  CHECK_FALSE(net("::/0").contains(addr("10.1.2.3")));
  CHECK_FALSE(net("::/0").contains(addr("::ffff:10.1.2.3")));
  CHECK_FALSE(net("0.0.0.0/0").contains(addr("2001:db8::1")));
  CHECK_FALSE(net("0.0.0.0/0").contains(addr("::1")));
}

TEST_CASE("a bare address is one host") {
  CHECK(net("10.1.2.3") == net("10.1.2.3/32"));
  CHECK(net("::1") == net("::1/128"));
  CHECK(net("10.1.2.3").contains(addr("10.1.2.3")));
  CHECK_FALSE(net("10.1.2.3").contains(addr("10.1.2.4")));
}

TEST_CASE("bad networks are refused with a reason") {
  const std::pair<const char*, const char*> cases[] = {
      {"10.0.0.0/33", "too long"},
      {"::/129", "too long"},
      {"10.0.0.0/99999999999", "too long"},
      {"::ffff:10.0.0.0/129", "too long"},
      {"10.0.0.0/", "prefix length"},
      {"10.0.0.0/a", "prefix length"},
      {"10.0.0.0/-1", "prefix length"},
      {"10.0.0.0/+8", "prefix length"},
      {"10.0.0.0/8/8", "prefix length"},
      {"10.0.0.0/ 8", "prefix length"},
      {"300.0.0.0/8", "not an IPv4 or IPv6 address"},
      {"/8", "not an IPv4 or IPv6 address"},
      {"10.0/8", "not an IPv4 or IPv6 address"},
      {"10.1.2.3/8", "bits set"},
      {"192.168.1.1/24", "bits set"},
      {"2001:db8::1/32", "bits set"},
      {"::ffff:10.0.0.0/95", "/96"},
  };
  for (const auto& [text, reason] : cases) {
    CAPTURE(text);
    std::string error;
    CHECK_FALSE(parse_ip_network(text, error));
    CHECK_MESSAGE(error.find(reason) != std::string::npos, error);
  }
}

TEST_CASE("address patterns: \"*\" matches everyone, \"local\" the Unix socket, networks TCP peers") {
  const auto any = pattern("*"), local = pattern("local"), ten = pattern("10.0.0.0/8");
  CHECK(any.matches(client_peer::local()));
  CHECK(any.matches(tcp("203.0.113.9")));
  CHECK(any.matches(tcp("2001:db8::1")));
  CHECK(local.matches(client_peer::local()));
  CHECK_FALSE(local.matches(tcp("127.0.0.1")));
  CHECK(ten.matches(tcp("10.9.9.9")));
  CHECK_FALSE(ten.matches(tcp("11.9.9.9")));
  CHECK_FALSE(ten.matches(client_peer::local()));
  CHECK_FALSE(pattern("0.0.0.0/0").matches(client_peer::local()));
  CHECK(any.to_string() == "*");
  CHECK(local.to_string() == "local");
  CHECK(ten.to_string() == "10.0.0.0/8");
  CHECK(pattern("::ffff:10.0.0.0/104").to_string() == "10.0.0.0/8");
}

TEST_CASE("bad address patterns are refused with a reason") {
  for (const char* bad : {"", "all", "LOCAL", "localhost", "**", "10.0.0.0/33", "10.1.2.3/8", "10.0.0.0/x"}) {
    CAPTURE(bad);
    std::string error;
    CHECK_FALSE(parse_address_pattern(bad, error));
    CHECK_FALSE(error.empty());
  }
  std::string error;
  parse_address_pattern("localhost", error);
  CHECK(error.find("\"localhost\"") != std::string::npos);
  CHECK(error.find("\"local\"") != std::string::npos);
  parse_address_pattern("10.0.0.0/33", error);
  CHECK(error.find("too long") != std::string::npos);
}

TEST_CASE("the first matching rule wins") {
  const std::vector<auth_rule> rules = {
      rule("*", "mallory", "*", auth_method::reject),
      rule("app", "*", "10.1.0.0/16", auth_method::scram_sha_256),
      rule("*", "*", "10.0.0.0/8", auth_method::md5),
      rule("*", "*", "*", auth_method::cert),
  };
  CHECK(match_rule(rules, "app", "mallory", tcp("10.1.2.3")) == 0u);
  CHECK(match_rule(rules, "app", "alice", tcp("10.1.2.3")) == 1u);
  CHECK(match_rule(rules, "app", "alice", tcp("::ffff:10.1.2.3")) == 1u);
  CHECK(match_rule(rules, "app", "alice", tcp("10.2.0.1")) == 2u);
  CHECK(match_rule(rules, "other", "alice", tcp("10.1.2.3")) == 2u);
  CHECK(match_rule(rules, "app", "alice", tcp("192.0.2.1")) == 3u);
  CHECK(match_rule(rules, "app", "alice", client_peer::local()) == 3u);
}

TEST_CASE("\"*\" matches any database and user, names match exactly") {
  const std::vector<auth_rule> rules = {rule("app", "alice", "*", auth_method::trust)};
  CHECK(match_rule(rules, "app", "alice", client_peer::local()) == 0u);
  CHECK_FALSE(match_rule(rules, "App", "alice", client_peer::local()));
  CHECK_FALSE(match_rule(rules, "app", "Alice", client_peer::local()));
  CHECK_FALSE(match_rule(rules, "app2", "alice", client_peer::local()));
  CHECK_FALSE(match_rule(rules, "", "", client_peer::local()));
  const std::vector<auth_rule> wild = {rule("*", "*", "*", auth_method::trust)};
  CHECK(match_rule(wild, "", "", client_peer::local()) == 0u);
  CHECK(match_rule(wild, "anything", "anyone", tcp("2001:db8::1")) == 0u);
}

TEST_CASE("no matching rule, or no rules, is no match") {
  const std::vector<auth_rule> rules = {rule("*", "*", "10.0.0.0/8", auth_method::trust),
                                        rule("*", "*", "local", auth_method::trust)};
  CHECK_FALSE(match_rule(rules, "app", "alice", tcp("192.0.2.1")));
  CHECK_FALSE(match_rule(rules, "app", "alice", tcp("2001:db8::1")));
  CHECK_FALSE(match_rule({}, "app", "alice", client_peer::local()));
}

TEST_CASE("default rules trust the Unix socket and loopback only") {
  const auto rules = default_rules();
  REQUIRE(rules.size() == 3);
  for (const auto& r : rules) {
    CHECK(r.method == auth_method::trust);
    CHECK(r.database == "*");
    CHECK(r.user == "*");
  }
  for (const auto& peer : {client_peer::local(), tcp("127.0.0.1"), tcp("127.1.2.3"), tcp("::1"), tcp("::ffff:127.0.0.1")}) {
    CAPTURE(peer.address.to_string());
    const auto i = match_rule(rules, "app", "alice", peer);
    REQUIRE(i);
    CHECK(rules[*i].method == auth_method::trust);
  }
  for (const char* remote : {"10.0.0.1", "192.0.2.1", "128.0.0.1", "::2", "2001:db8::1", "::ffff:10.0.0.1"}) {
    CAPTURE(remote);
    CHECK_FALSE(match_rule(rules, "app", "alice", tcp(remote)));
  }
}

TEST_CASE("md5 becomes SCRAM unless the user has an md5 secret") {
  CHECK(effective_method(auth_method::md5, secret_kind::md5) == auth_method::md5);
  CHECK(effective_method(auth_method::md5, secret_kind::scram_sha_256) == auth_method::scram_sha_256);
  CHECK(effective_method(auth_method::md5, secret_kind::none) == auth_method::scram_sha_256);
  for (auto kind : {secret_kind::none, secret_kind::md5, secret_kind::scram_sha_256}) {
    CAPTURE(to_string(kind));
    CHECK(effective_method(auth_method::scram_sha_256, kind) == auth_method::scram_sha_256);
    CHECK(effective_method(auth_method::password, kind) == auth_method::password);
    CHECK(effective_method(auth_method::trust, kind) == auth_method::trust);
    CHECK(effective_method(auth_method::cert, kind) == auth_method::cert);
    CHECK(effective_method(auth_method::reject, kind) == auth_method::reject);
  }
}

}  // TEST_SUITE
