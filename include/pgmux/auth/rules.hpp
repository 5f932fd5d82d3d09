// Client authentication rules in the spirit of pg_hba.conf: the first rule that matches a
// connection's database, user and address says how that client must authenticate; a client no
// rule matches is rejected. Addresses, networks and rules are parsed here with clear errors.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pgmux/auth/secret.hpp"

namespace pgmux::auth {

enum class auth_method : unsigned char {
  scram_sha_256,  // SCRAM-SHA-256 (-PLUS on TLS) against the user's verifier
  md5,            // MD5 challenge; SCRAM instead when the user has a SCRAM verifier (effective_method)
  password,       // cleartext password, checked against the user's secret of either kind
  trust,          // no proof asked
  cert,           // a TLS client certificate, signed by tls.ca, whose CN is the user name
  reject,         // refused
};

const char* to_string(auth_method m) noexcept;  // the config spelling: "scram-sha-256", "md5", ...
std::optional<auth_method> parse_auth_method(std::string_view text);

// An IPv4 or IPv6 address. An IPv4-mapped IPv6 address (::ffff:a.b.c.d, what a dual-stack
// socket reports for an IPv4 client) is taken as the IPv4 address it carries, so that IPv4
// rules match such clients; IPv6 rules never match IPv4 clients.
class ip_address {
 public:
  ip_address() = default;  // 0.0.0.0
  static ip_address v4(const std::array<std::uint8_t, 4>& bytes) noexcept;
  static ip_address v6(const std::array<std::uint8_t, 16>& bytes) noexcept;
  // 4 bytes (IPv4) or 16 (IPv6), network order, as sockets give them; nullopt for other sizes.
  static std::optional<ip_address> from_bytes(std::span<const std::uint8_t> bytes) noexcept;
  // "10.1.2.3", "::1", "::ffff:10.1.2.3"; no zone ids, no shorthand IPv4 ("10.1").
  static std::optional<ip_address> parse(std::string_view text);

  bool is_v4() const noexcept { return v4_; }
  std::span<const std::uint8_t> bytes() const noexcept { return {bytes_.data(), v4_ ? 4u : 16u}; }
  std::string to_string() const;
  friend bool operator==(const ip_address&, const ip_address&) = default;

 private:
  std::array<std::uint8_t, 16> bytes_{};  // IPv4: the first 4
  bool v4_ = true;
};

// A network: an address whose bits past `prefix` are zero.
struct ip_network {
  ip_address address;
  unsigned prefix = 0;  // 0-32 for IPv4, 0-128 for IPv6
  bool contains(const ip_address& a) const noexcept;  // same family only
  std::string to_string() const;                      // "10.0.0.0/8"
  friend bool operator==(const ip_network&, const ip_network&) = default;
};

// "10.0.0.0/8", "::1/128", "::ffff:10.0.0.0/104" (the same as 10.0.0.0/8), or a bare address
// for one host. Refuses a prefix longer than the address, and bits set past the prefix
// ("10.1.2.3/8": probably a typo for 10.0.0.0/8 or 10.1.2.3/32).
std::optional<ip_network> parse_ip_network(std::string_view text, std::string& error);

// Where a client connects from.
struct client_peer {
  bool unix_socket = false;
  ip_address address;      // TCP peers only
  std::uint16_t port = 0;  // TCP peers only
  static client_peer local() noexcept { return {true, {}}; }
  static client_peer tcp(const ip_address& a, std::uint16_t port = 0) noexcept { return {false, a, port}; }
  // "10.1.2.3:5432", "[::1]:5432", or "unix", for logs and SHOW CLIENTS.
  std::string to_string() const;
};

// Which peers a rule is for.
struct address_pattern {
  enum class kind {
    any,      // "*": every peer, TCP or Unix socket
    local,    // "local": the Unix socket
    network,  // an IP network or host: TCP peers in it
  };
  kind type = kind::any;
  ip_network network;  // kind::network only
  bool matches(const client_peer& peer) const noexcept;
  std::string to_string() const;
  friend bool operator==(const address_pattern&, const address_pattern&) = default;
};

std::optional<address_pattern> parse_address_pattern(std::string_view text, std::string& error);

struct auth_rule {
  std::string database = "*";  // "*" or one exact database name
  std::string user = "*";      // "*" or one exact user name
  address_pattern address;     // "*" by default
  auth_method method = auth_method::reject;
  friend bool operator==(const auth_rule&, const auth_rule&) = default;
};

// The index of the first rule that matches; nullopt when none does (the client is rejected).
std::optional<std::size_t> match_rule(std::span<const auth_rule> rules, std::string_view database,
                                      std::string_view user, const client_peer& peer) noexcept;

// The rules when the config has none, as pgmux behaved before rules existed: trust for the Unix
// socket and loopback (127.0.0.0/8, ::1), nothing for anyone else.
std::vector<auth_rule> default_rules();

// The method to run when a rule says `rule_method` and the user's secret is of kind `kind`.
// As PostgreSQL does: md5 becomes SCRAM when the user has a SCRAM verifier (which cannot
// answer an md5 challenge), and also when there is no secret at all (unknown user), so that
// the method offered does not tell whether the user exists (pgmux's default secret kind being
// SCRAM, like PostgreSQL's password_encryption). The other methods are unchanged: SCRAM for a
// user with only an md5 secret, or none, runs a mock exchange that fails.
auth_method effective_method(auth_method rule_method, secret_kind kind) noexcept;

}  // namespace pgmux::auth
