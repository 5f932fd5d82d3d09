// How a client must prove who it is: the one place where the client authentication method is
// chosen. The first rule matching the client's database, user and address names a method; this
// turns it into what pgmux runs on this connection, or a refusal with the client's message.
#pragma once
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "pgmux/auth/rules.hpp"

namespace pgmux::auth {

struct client_identity {
  std::string_view database;
  std::string_view user;
  client_peer peer;
  bool tls = false;  // the connection uses TLS
};

struct client_auth_policy {
  std::span<const auth_rule> rules;
  bool allow_cleartext_without_tls = false;  // the password method for TCP clients without TLS
};

struct method_choice {
  // trust, scram_sha_256, md5, password, cert (over TLS only), or reject. md5 may still become
  // SCRAM once the user's secret is known (effective_method).
  auth_method method = auth_method::reject;
  std::optional<std::size_t> rule;  // the index of the rule that matched
  std::string reason;               // when rejected: the client's error message (SQLSTATE 28000)
  // When rejected, for the log: which rule (or none) and why.
  std::string detail;
};

method_choice choose_client_method(const client_auth_policy& policy, const client_identity& who);

// True for the methods that check a stored secret: scram-sha-256, md5, password.
bool needs_secret(auth_method m) noexcept;

// The one message for a wrong password and an unknown user alike (SQLSTATE 28P01), as
// PostgreSQL words it: telling them apart would let anyone probe which users exist.
std::string password_failed_message(std::string_view user);

// The client's address as the messages name it: "10.1.2.3", "::1", or "[local]" for the Unix socket.
std::string describe_peer(const client_peer& peer);

}  // namespace pgmux::auth
