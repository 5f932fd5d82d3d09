// The admin console: the virtual database "pgmux", spoken to over the ordinary protocol so
// psql shows tables. Column names follow PgBouncer's where the notion is the same.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pgmux/close_reason.hpp"
#include "pgmux/io/io.hpp"
#include "pgmux/io/stream.hpp"

namespace pgmux::net {

class router;
class session_registry;

inline constexpr std::string_view admin_database = "pgmux";

// What the console may ask of the process; set up by the app layer.
struct admin_hooks {
  std::function<void()> reload;    // as SIGHUP
  std::function<void()> shutdown;  // as SIGTERM
  // The last connected client left (any worker's thread): a graceful shutdown waits for it.
  std::function<void()> clients_gone;
};

// A result the console sends back: a table (possibly empty), or an error.
struct admin_reply {
  std::vector<std::string> columns;
  std::vector<std::int32_t> column_types;  // type OIDs (protocol::int8_oid, text_oid) by column
  std::vector<std::vector<std::string>> rows;
  std::string command_tag;  // "SHOW", "RELOAD", ...
  std::string error;        // non-empty: ErrorResponse with SQLSTATE error_code
  std::string error_code;
  bool close_after = false;
  // PAUSE: the reply is sent once no server connection of these pools is lent ("" = all).
  std::optional<std::string> wait_for_pause;
};

// Runs one console command (pure apart from reading pools and sessions).
admin_reply run_admin_command(std::string_view sql, router& routes, session_registry& sessions,
                              const admin_hooks* hooks);

// Serves console queries on `client` until it leaves.
asio::awaitable<close_reason> serve_admin_console(stream& client, router& routes, session_registry& sessions,
                                                  const admin_hooks* hooks);

}  // namespace pgmux::net
