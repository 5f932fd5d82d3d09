// Pumping bytes between a client and its server connection in both directions at once,
// until the transaction ends (transaction pooling) or either side goes away.
#pragma once
#include <chrono>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "pgmux/io/io.hpp"
#include "pgmux/io/io_buffer.hpp"
#include "pgmux/server/server_connection.hpp"
#include "pgmux/protocol/session_params.hpp"
#include "pgmux/protocol/sql_inspect.hpp"

namespace pgmux::protocol {
class statement_sink;
struct statement_names;
}
namespace pgmux::pool {
class query_table;
}

namespace pgmux::net {

enum class relay_end {
  transaction_done,       // ReadyForQuery left the server idle; it may go back to the pool
  client_terminate,       // Terminate message (left in the client buffer)
  client_eof,             // client hung up or its socket failed
  client_protocol_error,  // see relay_result::error
  server_error,           // server socket failed or sent garbage; the connection is broken
  server_lost,            // the server hung up (or said FATAL) before answering anything of the
                          // request it got while server.replay was armed: server.replay.sent may
                          // be sent again on another connection
  killed,                 // the session was told to stop (timeouts, shutdown)
};

struct relay_result {
  relay_end end;
  const char* error = nullptr;
};

// What the relay needs from the client side. The buffer and cursor outlive one relay: bytes
// the client sent for its next transaction stay in the buffer.
struct client_side {
  stream& socket;  // the client's stream (TLS or not)
  io_buffer& buffer;
  protocol::stream_cursor& cursor;
  const bool& killed;
  std::size_t max_message_size;
  const bool& draining;  // shutting down: session mode, too, stops at the next idle ReadyForQuery
  // Transaction pooling with prepared statements: the client's statement names. nullptr relays
  // Parse, Bind, Describe and Close unchanged (session mode, or max_prepared_statements 0).
  protocol::client_prepared* prepared = nullptr;
  // Transaction pooling: the settings the client wants, kept up to date from the
  // ParameterStatus its own SETs produce. nullptr in session mode.
  std::shared_ptr<const protocol::session_settings>* settings = nullptr;
  // Transaction pooling: what the client's SQL showed (its LISTEN channels, SQL that may touch
  // prepared statements). Notifications for other channels are dropped. nullptr in session mode.
  protocol::sql_watch* seen_sql = nullptr;
  // The client's startup values that differ from the server connection's login (both modes):
  // a Query that RESETs them gets their restore added. nullptr when there are none.
  const std::vector<protocol::parameter_change>* restorable = nullptr;
  // Per-query statistics: the pool's table the answered statements are recorded in, told the
  // statements' texts through `statement_sink`, and the client's statement names. nullptr: off.
  pool::query_table* queries = nullptr;
  protocol::statement_sink* statement_sink = nullptr;
  std::unique_ptr<protocol::statement_names>* statement_names = nullptr;
};

// Relays until the end named above. With stop_when_idle (transaction and statement modes)
// it stops right after the ReadyForQuery that leaves the server idle. (Not a coroutine itself:
// it returns the one that relays, a frame fewer per transaction.) `client` must outlive the
// relay: a client_side made in the co_await expression itself does.
asio::awaitable<relay_result> relay(const client_side& client, server_connection& server, bool stop_when_idle);

// Logical replication: the client and a server connection of its own speak the protocol
// between them (replication commands, COPY both ways); pgmux passes the bytes on unread, the
// client's already in `client_buffer` first, until either side closes or the session is killed
// (then client_eof or killed; server_error when the server went).
asio::awaitable<relay_end> relay_unread(stream& client, io_buffer& client_buffer, const bool& killed,
                                        server_connection& server);

// Brings a server connection whose client is gone back to idle: ends a COPY, cancels what
// runs (unless `let_finish`: a client that said Terminate after its last request gets that
// request run to the end, as PostgreSQL would), drains the answers and rolls back an open
// transaction, all within `timeout`. True when the connection is clean afterwards.
asio::awaitable<bool> make_clean(std::shared_ptr<server_connection> server, std::chrono::milliseconds timeout,
                                 bool let_finish = false);

// Makes the session settings of a server connection just handed to a client match what the
// client wants (one query of set_config calls, its answers hidden), within `timeout`.
// nullopt on success (or nothing to do); else the server's error (the client's settings are
// invalid: the connection stays clean) or a description of what failed (it is then broken).
asio::awaitable<std::optional<protocol::error_fields>> apply_settings(server_connection& server,
                                                                      const protocol::session_settings& wanted,
                                                                      std::chrono::milliseconds timeout);
// Whether apply_settings has anything to do: checked first, so that the usual transaction, on a
// connection whose settings already match, enters no coroutine for it.
bool settings_differ(const server_connection& server, const protocol::session_settings& wanted);

// The values of `values` (tracked parameters a client sent at startup) as the server spells
// them: set_config with is_local, in a transaction of their own, so nothing stays set
// (client_encoding=utf8 gives UTF8, DateStyle=iso gives "ISO, MDY"). The server's error when it
// refuses one, as it would refuse the login; FATAL when the connection failed (then broken).
asio::awaitable<std::variant<std::vector<std::string>, protocol::error_fields>> canonical_values(
    server_connection& server, std::span<const protocol::parameter_change> values, std::chrono::milliseconds timeout);

// The session values of `names` on the connection now (current_setting, NULL for a custom
// parameter it does not have): what a client's SETs left, to carry them (sql_watch::to_read).
asio::awaitable<std::variant<std::vector<std::optional<std::string>>, protocol::error_fields>> read_settings(
    server_connection& server, std::span<const std::string> names, std::chrono::milliseconds timeout);

// Sends one simple query (e.g. DISCARD ALL) and reads up to its ReadyForQuery. True when it
// succeeded and left the connection clean.
asio::awaitable<bool> run_reset_query(server_connection& server, std::string_view sql, std::chrono::milliseconds timeout);

}  // namespace pgmux::net
