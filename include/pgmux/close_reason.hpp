// Why a client or server connection was closed: one value for the log line, the metric
// label and the client's error message.
#pragma once

namespace pgmux {

enum class close_reason : unsigned char {
  // client side
  client_terminate,        // Terminate message
  client_eof,              // socket closed by the client
  client_protocol_error,   // garbage, oversized or truncated input
  client_login_timeout,    // startup not finished within auth_timeout
  client_tls_failed,       // the TLS handshake with the client failed
  client_auth_failed,      // no method lets this client in, or it failed to prove who it is
  client_idle_timeout,
  idle_transaction_timeout,
  unknown_database,
  query_wait_timeout,
  too_many_clients,
  transaction_in_statement_mode,  // BEGIN (or any open transaction) in statement pooling
  // server side
  server_idle,             // idle above min_size for max_inactive_connection_lifetime
  server_lifetime,
  server_error,            // I/O or protocol error on the server connection
  server_dirty,            // could not be proven clean after its client left
  server_connect_failed,
  server_reset_failed,
  // proxy side
  pause,                   // PAUSE from the admin console
  reload,
  shutdown,
};

const char* to_string(close_reason r) noexcept;

enum class close_side { client, server, proxy };
close_side side(close_reason r) noexcept;

}  // namespace pgmux
