// A logical replication client (replication=database, as pg_recvlogical and postgres.js
// subscribe connect): served on a server connection of its own rather than from the pool.
#include <boost/asio/write.hpp>

#include "pgmux/log.hpp"
#include "pgmux/protocol/encode.hpp"
#include "pgmux/session/client_session.hpp"
#include "pgmux/session/relay.hpp"
#include "pgmux/session/session_registry.hpp"

namespace pgmux::net {

asio::awaitable<close_reason> client_session::serve_replication() {
  auto self = shared_from_this();
  // The connection is the client's alone: its own settings go into the startup packet, where
  // RESET and SHOW find them as on a direct connection. Never names the startup packet itself
  // uses (an options "-c user=postgres" would log in as another user): those are the pool's.
  protocol::parameter_list parameters{{"replication", "database"}};
  for (std::size_t i = 0; i < wanted_settings_->tracked.size(); ++i)
    if (const auto& value = wanted_settings_->tracked[i])
      parameters.emplace_back(std::string(protocol::tracked_parameters[i]), *value);
  for (const auto& [name, value] : wanted_settings_->extra)
    if (!protocol::is_startup_packet_name(name)) parameters.emplace_back(name, value);
  auto opened = co_await pool_->open_replication(executor(), std::move(parameters));
  if (auto* error = std::get_if<acquire_error>(&opened)) {
    log::warn(label() + ": refused a replication connection: " + error->message);
    co_await send_error("FATAL", error->code, "pgmux: " + error->message);
    co_return close_reason::server_connect_failed;
  }
  auto& server = std::get<replication_connection>(opened);
  if (killed_) co_return kill_reason_;  // shut down (or killed) while it logged in
  // A CancelRequest with the key the client gets reaches this connection, and its pid is the
  // server's own (pg_stat_replication, pg_terminate_backend).
  set_current_server(server.connection());
  const auto cancel_key = services_.cancels.add(*this, server->backend_key().pid);
  std::string out;
  protocol::encode_authentication_ok(out);
  for (const auto& [name, value] : server->parameters()) protocol::encode_parameter_status(out, name, value);
  protocol::encode_backend_key_data(out, cancel_key);
  protocol::encode_ready_for_query(out, 'I');
  auto [ec, n] = co_await asio::async_write(client_, asio::buffer(out), nothrow);
  if (ec) {
    set_current_server(nullptr);
    co_return close_reason::client_eof;
  }
  log::connection(label() + " logged in for logical replication on " + server->describe() + " (" + login_details() + ")");
  enter(phase::active);
  buffer_.ensure();
  // Ended mid-message, perhaps: no error of pgmux's can follow, the client sees the socket close.
  const auto end = co_await relay_unread(client_, buffer_, killed_, *server);
  set_current_server(nullptr);
  enter(phase::idle);
  switch (end) {
    case relay_end::killed: co_return kill_reason_;
    case relay_end::server_error: co_return close_reason::server_error;
    default: co_return close_reason::client_eof;
  }
}

}  // namespace pgmux::net
