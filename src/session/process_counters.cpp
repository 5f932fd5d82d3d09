// Which client close reasons count as errors in pgmux_client_errors_total.
#include "pgmux/session/process_counters.hpp"

namespace pgmux::net {

std::optional<client_error> client_error_of(close_reason r) noexcept {
  switch (r) {
    case close_reason::client_protocol_error:
    case close_reason::client_tls_failed:
    case close_reason::transaction_in_statement_mode: return client_error::protocol;
    case close_reason::client_auth_failed: return client_error::auth;
    case close_reason::too_many_clients: return client_error::limit;
    case close_reason::client_login_timeout:
    case close_reason::client_idle_timeout:
    case close_reason::idle_transaction_timeout:
    case close_reason::query_wait_timeout: return client_error::timeout;
    case close_reason::unknown_database: return client_error::unknown_database;
    case close_reason::server_connect_failed:
    case close_reason::server_error: return client_error::server_unavailable;
    default: return std::nullopt;
  }
}

}  // namespace pgmux::net
