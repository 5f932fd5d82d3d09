// SCRAM-SHA-256 (RFC 5802 / RFC 7677) from the server side, as PostgreSQL runs it towards its
// clients, with tls-server-end-point channel binding (SCRAM-SHA-256-PLUS) when TLS is on.
// A step machine: offer mechanisms(), feed the client's SASLInitialResponse to
// handle_client_first and its SASLResponse to handle_client_final, send back what they return.
//
// As in PostgreSQL:
// - the user name inside the SCRAM messages is ignored; the startup packet's user counts;
// - a user that does not exist (or has no usable SCRAM verifier) goes through the same
//   exchange with a fake salt derived from the user name, and fails at the end exactly as a
//   wrong password does, so that a client cannot probe which users exist (for_unknown_user).
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pgmux/auth/scram_verifier.hpp"

namespace pgmux::auth {

inline constexpr std::string_view scram_sha_256_mechanism = "SCRAM-SHA-256";
inline constexpr std::string_view scram_sha_256_plus_mechanism = "SCRAM-SHA-256-PLUS";

enum class scram_failure {
  none,
  protocol_violation,  // malformed or unexpected message, channel binding refused: SQLSTATE 08P01
  invalid_proof,       // wrong password or unknown user (indistinguishable by design): SQLSTATE 28P01
};

struct scram_reply {
  scram_failure failure = scram_failure::none;
  std::string message;  // no failure: the data of AuthenticationSASLContinue / AuthenticationSASLFinal
  std::string error;    // failure: what was wrong, for the ErrorResponse and the log
  explicit operator bool() const noexcept { return failure == scram_failure::none; }
};

class scram_server {
 public:
  // `channel_binding` is the tls-server-end-point data of the connection (the hash of the
  // server certificate, RFC 5929 section 4.1), raw bytes; empty when the client is not on TLS,
  // and then only SCRAM-SHA-256 is offered. `server_nonce` is the server's part of the nonce;
  // empty picks 18 random bytes in base64, as PostgreSQL does (tests pass a fixed one).
  explicit scram_server(scram_verifier verifier, std::string channel_binding = {}, std::string server_nonce = {});

  // An exchange that looks like a real one and always ends in scram_failure::invalid_proof,
  // with the same error as a wrong password. The salt is the first 16 bytes of
  // SHA-256(mock_secret + user), so it is the same on every attempt for a user, as a real
  // salt would be. `mock_secret` must stay fixed for the life of the process (random bytes
  // made at startup) and must not be empty: with a known secret, anyone could compute the
  // fake salt and tell an unknown user from a real one.
  static scram_server for_unknown_user(std::string_view user, std::string_view mock_secret,
                                       std::string channel_binding = {}, std::string server_nonce = {});

  // The mechanisms for AuthenticationSASL, preferred first: SCRAM-SHA-256-PLUS (only with
  // channel binding data), then SCRAM-SHA-256.
  std::vector<std::string_view> mechanisms() const;

  // SASLInitialResponse: the mechanism the client picked and its client-first-message.
  // Returns the server-first-message.
  scram_reply handle_client_first(std::string_view mechanism, std::string_view client_first);

  // SASLResponse: the client-final-message. Returns the server-final-message ("v=...") when the
  // proof is right; after that authenticated() is true. Any failure, or any message after the
  // exchange, ends it for good: later calls fail and authenticated() stays false.
  scram_reply handle_client_final(std::string_view client_final);

  bool authenticated() const noexcept { return state_ == state::succeeded; }

  // The client's ClientKey (raw, 32 bytes), recovered from its proof; empty until authenticated().
  // With the verifier's ServerKey it lets pgmux log in to a server that holds the same
  // verifier, without knowing the password (scram_client::from_keys).
  const std::string& client_key() const noexcept { return client_key_; }

  // True when the client used SCRAM-SHA-256-PLUS and its channel binding matched.
  bool channel_bound() const noexcept { return authenticated() && plus_; }

  // True for for_unknown_user exchanges. For the server log only: telling the client would undo the point.
  bool is_mock() const noexcept { return mock_; }

 private:
  enum class state { expect_first, expect_final, succeeded, failed };

  scram_reply fail(scram_failure failure, std::string error);

  scram_verifier verifier_;
  std::string channel_binding_;
  std::string server_nonce_;
  bool mock_ = false;
  state state_ = state::expect_first;
  bool plus_ = false;              // the client picked SCRAM-SHA-256-PLUS
  std::string gs2_header_;         // as the client sent it, e.g. "n,,"
  std::string client_first_bare_;
  std::string server_first_;
  std::string nonce_;              // client nonce + server nonce
  std::string client_key_;
};

}  // namespace pgmux::auth
