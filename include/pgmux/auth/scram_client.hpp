// SCRAM-SHA-256 (RFC 5802 / RFC 7677) from the client side, without channel binding, as
// PostgreSQL's SASL exchange uses it. A step machine: feed the server's messages, send what
// it returns. It proves either a password or, for SCRAM passthrough, the ClientKey and
// ServerKey a client proved to pgmux (scram_server::client_key), which is all the exchange
// needs when the server holds the same verifier.
#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace pgmux::auth {

class scram_client {
 public:
  // `nonce` is the client nonce (printable, no comma); empty picks a random one.
  // `user` is the SCRAM user name; PostgreSQL ignores it (it takes the startup user), so it
  // stays empty there. Tests pass "user" to check the RFC 7677 example exactly.
  explicit scram_client(std::string password, std::string nonce = {}, std::string_view user = {});

  // Authenticates with keys instead of a password (raw, 32 bytes each). Only works against a
  // server whose verifier has these keys: the salt and iteration count it sends are not used.
  static scram_client from_keys(std::string client_key, std::string server_key, std::string nonce = {},
                                std::string_view user = {});

  // "n,,n=<user>,r=<nonce>": the data of SASLInitialResponse.
  std::string client_first_message() const;

  // Takes server-first-message, returns client-final-message (nullopt and `error` on failure).
  std::optional<std::string> handle_server_first(std::string_view server_first, std::string& error);

  // Checks server-final-message ("v=<signature>"). True when the server proved it knows the verifier.
  bool verify_server_final(std::string_view server_final, std::string& error) const;

 private:
  std::string password_;
  std::string client_key_;  // raw; set by from_keys, else derived from the password
  std::string server_key_;
  std::string nonce_;
  std::string client_first_bare_;
  std::string expected_server_signature_;  // raw bytes
};

}  // namespace pgmux::auth
