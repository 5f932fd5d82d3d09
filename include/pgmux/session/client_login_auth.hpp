// The authentication exchange with a client, after its startup packet: the method its auth
// rule names (auth::choose_client_method), run over the client's stream. SCRAM-SHA-256 (with
// SCRAM-SHA-256-PLUS offered first over TLS), MD5 and cleartext password against the user's
// stored secret; the TLS client certificate (cert); trust; reject. Every failure reads the
// same to the client, whether the user is unknown or the proof wrong, and is answered only after
// auth.failure_delay. The messages are built and parsed by the protocol layer and the proofs
// checked by the auth layer: this file only moves them.
#pragma once
#include <optional>
#include <string_view>

#include "pgmux/auth/rules.hpp"
#include "pgmux/close_reason.hpp"
#include "pgmux/config/config.hpp"
#include "pgmux/io/io.hpp"
#include "pgmux/server/server_connection.hpp"

namespace pgmux::net {

class router;
class auth_secret_cache;

struct client_login_request {
  stream& client;
  const config::config& cfg;
  router& routes;           // auth_query runs on a pool's server connection
  auth_secret_cache& cache;
  std::string_view database;
  std::string_view user;
  auth::client_peer peer;
  std::string_view label;       // the session's name in log lines
  clock::time_point deadline;   // auth_timeout: when the session gives up on the client
  // Over TLS: the tls-server-end-point data of pgmux's certificate, for SCRAM-SHA-256-PLUS;
  // empty without TLS (or when the certificate has none).
  std::string_view channel_binding;
};

struct client_login_result {
  // Set when the client is turned away; it has been told why unless it left. client_eof
  // also when the exchange was cut short by the session cancelling the socket (auth_timeout).
  std::optional<close_reason> refused;
  auth::auth_method method = auth::auth_method::trust;  // what ran
  scram_keys keys;  // after SCRAM: the client's proven ClientKey and the verifier's ServerKey
};

// Runs the exchange up to, not including, AuthenticationOk (SCRAM's SASLFinal is sent).
asio::awaitable<client_login_result> authenticate_client(const client_login_request& request);

}  // namespace pgmux::net
