// Text and side of each close reason.
#include "pgmux/close_reason.hpp"

namespace pgmux {

const char* to_string(close_reason r) noexcept {
  switch (r) {
    case close_reason::client_terminate: return "client terminated";
    case close_reason::client_eof: return "client closed the connection";
    case close_reason::client_protocol_error: return "client protocol error";
    case close_reason::client_login_timeout: return "client login timeout";
    case close_reason::client_tls_failed: return "client TLS handshake failed";
    case close_reason::client_auth_failed: return "client authentication failed";
    case close_reason::client_idle_timeout: return "client idle timeout";
    case close_reason::idle_transaction_timeout: return "idle transaction timeout";
    case close_reason::unknown_database: return "unknown database";
    case close_reason::query_wait_timeout: return "query wait timeout";
    case close_reason::too_many_clients: return "too many clients";
    case close_reason::transaction_in_statement_mode: return "transaction in statement mode";
    case close_reason::server_idle: return "server idle timeout";
    case close_reason::server_lifetime: return "server lifetime";
    case close_reason::server_error: return "server error";
    case close_reason::server_dirty: return "server not clean";
    case close_reason::server_connect_failed: return "server connect failed";
    case close_reason::server_reset_failed: return "server reset failed";
    case close_reason::pause: return "pause";
    case close_reason::reload: return "reload";
    case close_reason::shutdown: return "shutdown";
  }
  return "unknown";
}

close_side side(close_reason r) noexcept {
  switch (r) {
    case close_reason::client_terminate:
    case close_reason::client_eof:
    case close_reason::client_protocol_error:
    case close_reason::client_login_timeout:
    case close_reason::client_tls_failed:
    case close_reason::client_auth_failed:
    case close_reason::client_idle_timeout:
    case close_reason::idle_transaction_timeout:
    case close_reason::unknown_database:
    case close_reason::query_wait_timeout:
    case close_reason::too_many_clients:
    case close_reason::transaction_in_statement_mode:
      return close_side::client;
    case close_reason::server_idle:
    case close_reason::server_lifetime:
    case close_reason::server_error:
    case close_reason::server_dirty:
    case close_reason::server_connect_failed:
    case close_reason::server_reset_failed:
      return close_side::server;
    case close_reason::pause:
    case close_reason::reload:
    case close_reason::shutdown:
      return close_side::proxy;
  }
  return close_side::proxy;
}

}  // namespace pgmux
