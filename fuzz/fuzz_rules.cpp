// The hba-like rules' text: addresses, networks, address patterns and method names, each of
// which formats back to text that parses to the same value.
// Input: the text.
#include <string>
#include <vector>

#include "fuzz_support.hpp"
#include "pgmux/auth/rules.hpp"

using namespace pgmux::auth;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (const auto a = ip_address::parse(text)) {
    const auto again = ip_address::parse(a->to_string());
    FUZZ_CHECK(again && *again == *a);
    const auto from = ip_address::from_bytes(a->bytes());
    FUZZ_CHECK(from && *from == *a);
  }
  std::string error;
  if (const auto n = parse_ip_network(text, error)) {
    FUZZ_CHECK(n->prefix <= (n->address.is_v4() ? 32u : 128u));
    FUZZ_CHECK(n->contains(n->address));
    std::string error2;
    const auto again = parse_ip_network(n->to_string(), error2);
    FUZZ_CHECK(again && *again == *n);
  } else {
    FUZZ_CHECK(!error.empty());
  }
  error.clear();
  if (const auto p = parse_address_pattern(text, error)) {
    std::string error2;
    const auto again = parse_address_pattern(p->to_string(), error2);
    FUZZ_CHECK(again && *again == *p);
    // A rule list with it decides for any peer without surprises.
    const std::vector<auth_rule> rules{{"*", "*", *p, auth_method::trust}};
    const auto local = match_rule(rules, "db", "user", client_peer::local());
    FUZZ_CHECK(local.has_value() == (p->type != address_pattern::kind::network));
  } else {
    FUZZ_CHECK(!error.empty());
  }
  if (const auto m = parse_auth_method(text)) FUZZ_CHECK(parse_auth_method(to_string(*m)) == m);
  return 0;
}
