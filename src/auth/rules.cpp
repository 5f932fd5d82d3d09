// Client authentication rules: addresses, networks, matching, and the method actually run.
#include "pgmux/auth/rules.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>

namespace pgmux::auth {
namespace {

constexpr std::array<std::uint8_t, 12> v4_mapped_prefix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

constexpr std::pair<auth_method, std::string_view> method_names[] = {
    {auth_method::scram_sha_256, "scram-sha-256"}, {auth_method::md5, "md5"},   {auth_method::password, "password"},
    {auth_method::trust, "trust"},                 {auth_method::cert, "cert"}, {auth_method::reject, "reject"},
};

bool bits_clear_past(std::span<const std::uint8_t> bytes, unsigned prefix) noexcept {
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    const unsigned first_bit = static_cast<unsigned>(i) * 8;
    const unsigned keep = prefix <= first_bit ? 0 : std::min(8u, prefix - first_bit);
    const auto host_mask = static_cast<std::uint8_t>(0xffu >> keep);
    if ((bytes[i] & host_mask) != 0) return false;
  }
  return true;
}

}  // namespace

const char* to_string(auth_method m) noexcept {
  for (const auto& [method, name] : method_names)
    if (method == m) return name.data();
  return "reject";
}

std::optional<auth_method> parse_auth_method(std::string_view text) {
  for (const auto& [method, name] : method_names)
    if (name == text) return method;
  return std::nullopt;
}

ip_address ip_address::v4(const std::array<std::uint8_t, 4>& bytes) noexcept {
  ip_address a;
  std::copy(bytes.begin(), bytes.end(), a.bytes_.begin());
  a.v4_ = true;
  return a;
}

ip_address ip_address::v6(const std::array<std::uint8_t, 16>& bytes) noexcept {
  if (std::equal(v4_mapped_prefix.begin(), v4_mapped_prefix.end(), bytes.begin()))
    return v4({bytes[12], bytes[13], bytes[14], bytes[15]});
  ip_address a;
  a.bytes_ = bytes;
  a.v4_ = false;
  return a;
}

std::optional<ip_address> ip_address::from_bytes(std::span<const std::uint8_t> bytes) noexcept {
  if (bytes.size() == 4) return v4({bytes[0], bytes[1], bytes[2], bytes[3]});
  if (bytes.size() != 16) return std::nullopt;
  std::array<std::uint8_t, 16> raw;
  std::copy(bytes.begin(), bytes.end(), raw.begin());
  return v6(raw);
}

std::optional<ip_address> ip_address::parse(std::string_view text) {
  const std::string z(text);  // inet_pton wants a C string
  if (std::array<std::uint8_t, 4> raw; inet_pton(AF_INET, z.c_str(), raw.data()) == 1) return v4(raw);
  if (std::array<std::uint8_t, 16> raw; inet_pton(AF_INET6, z.c_str(), raw.data()) == 1) return v6(raw);
  return std::nullopt;
}

namespace {

// Decimal digits of `n` at `out`; returns the end. Used on every login (client labels), where
// inet_ntop's and std::to_string's formatting machinery cost more than the rest of the text.
char* put_decimal(char* out, unsigned n) noexcept {
  char digits[10];
  int count = 0;
  do {
    digits[count++] = static_cast<char>('0' + n % 10);
    n /= 10;
  } while (n != 0);
  while (count > 0) *out++ = digits[--count];
  return out;
}

}  // namespace

std::string ip_address::to_string() const {
  char text[INET6_ADDRSTRLEN] = {};
  if (!v4_) {
    inet_ntop(AF_INET6, bytes_.data(), text, sizeof text);
    return text;
  }
  char* end = text;
  for (std::size_t i = 0; i < 4; ++i) {
    if (i > 0) *end++ = '.';
    end = put_decimal(end, bytes_[i]);
  }
  return std::string(text, end);
}

std::string client_peer::to_string() const {
  if (unix_socket) return "unix";
  char port_text[8];
  const std::string_view port_digits(port_text, static_cast<std::size_t>(put_decimal(port_text, port) - port_text));
  std::string text;
  if (address.is_v4()) {
    text = address.to_string();
  } else {
    text = "[";
    text += address.to_string();
    text += ']';
  }
  text += ':';
  text += port_digits;
  return text;
}

bool ip_network::contains(const ip_address& a) const noexcept {
  if (a.is_v4() != address.is_v4()) return false;
  const auto net = address.bytes(), addr = a.bytes();
  unsigned bits = prefix;
  for (std::size_t i = 0; i < net.size() && bits > 0; ++i) {
    const unsigned take = std::min(8u, bits);
    const auto mask = static_cast<std::uint8_t>(0xff00u >> take);
    if ((net[i] & mask) != (addr[i] & mask)) return false;
    bits -= take;
  }
  return true;
}

std::string ip_network::to_string() const { return address.to_string() + "/" + std::to_string(prefix); }

std::optional<ip_network> parse_ip_network(std::string_view text, std::string& error) {
  const auto slash = text.find('/');
  const auto addr_text = text.substr(0, slash);
  const auto address = ip_address::parse(addr_text);
  if (!address) {
    error = "\"" + std::string(addr_text) + "\" is not an IPv4 or IPv6 address";
    return std::nullopt;
  }
  // A mapped IPv6 address parses as IPv4; its prefix still counts the 96 bits of ::ffff:0:0/96.
  const bool written_v6 = addr_text.find(':') != std::string_view::npos;
  const unsigned written_max = written_v6 ? 128 : 32;
  unsigned prefix = written_max;
  if (slash != std::string_view::npos) {
    const auto p = text.substr(slash + 1);
    const auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), prefix);
    if (p.empty() || ec == std::errc::invalid_argument || end != p.data() + p.size()) {
      error = "\"" + std::string(p) + "\" after '/' in \"" + std::string(text) + "\" is not a prefix length";
      return std::nullopt;
    }
    if (ec == std::errc::result_out_of_range || prefix > written_max) {
      error = "prefix length /" + std::string(p) + " is too long for an " + (written_v6 ? "IPv6" : "IPv4") +
              " address (at most " + std::to_string(written_max) + ")";
      return std::nullopt;
    }
  }
  const unsigned written_prefix = prefix;
  if (written_v6 && address->is_v4()) {
    if (prefix < 96) {
      error = "\"" + std::string(text) + "\" mixes IPv4-mapped and other IPv6 addresses: use a prefix of at least /96";
      return std::nullopt;
    }
    prefix -= 96;
  }
  ip_network net{*address, prefix};
  if (!bits_clear_past(address->bytes(), prefix)) {
    error = "\"" + std::string(text) + "\" has address bits set past the /" + std::to_string(written_prefix) +
            " prefix; write the network address (or /" + std::to_string(written_max) + " for one host)";
    return std::nullopt;
  }
  return net;
}

bool address_pattern::matches(const client_peer& peer) const noexcept {
  switch (type) {
    case kind::any: return true;
    case kind::local: return peer.unix_socket;
    case kind::network: return !peer.unix_socket && network.contains(peer.address);
  }
  return false;
}

std::string address_pattern::to_string() const {
  switch (type) {
    case kind::any: return "*";
    case kind::local: return "local";
    case kind::network: break;
  }
  return network.to_string();
}

std::optional<address_pattern> parse_address_pattern(std::string_view text, std::string& error) {
  if (text == "*") return address_pattern{address_pattern::kind::any, {}};
  if (text == "local") return address_pattern{address_pattern::kind::local, {}};
  if (auto net = parse_ip_network(text, error)) return address_pattern{address_pattern::kind::network, *net};
  // Not even shaped like an address: say what would have been.
  if (text.find('/') == std::string_view::npos)
    error = "expected \"*\", \"local\", an IP address such as \"10.1.2.3\" or a network such as \"10.0.0.0/8\", got \"" +
            std::string(text) + "\"";
  return std::nullopt;
}

std::optional<std::size_t> match_rule(std::span<const auth_rule> rules, std::string_view database,
                                      std::string_view user, const client_peer& peer) noexcept {
  for (std::size_t i = 0; i < rules.size(); ++i) {
    const auto& r = rules[i];
    if ((r.database == "*" || r.database == database) && (r.user == "*" || r.user == user) && r.address.matches(peer))
      return i;
  }
  return std::nullopt;
}

std::vector<auth_rule> default_rules() {
  std::string ignored;
  return {
      {"*", "*", {address_pattern::kind::local, {}}, auth_method::trust},
      {"*", "*", *parse_address_pattern("127.0.0.0/8", ignored), auth_method::trust},
      {"*", "*", *parse_address_pattern("::1/128", ignored), auth_method::trust},
  };
}

auth_method effective_method(auth_method rule_method, secret_kind kind) noexcept {
  if (rule_method == auth_method::md5 && kind != secret_kind::md5) return auth_method::scram_sha_256;
  return rule_method;
}

}  // namespace pgmux::auth
