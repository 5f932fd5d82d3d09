// The validated, immutable configuration. Defaults live in the structs.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "pgmux/config/dsn.hpp"
#include "pgmux/config/duration.hpp"

namespace pgmux::config {

using namespace std::chrono_literals;

enum class pool_mode { session, transaction, statement };
const char* to_string(pool_mode m) noexcept;

struct pool_settings {
  pool_mode mode = pool_mode::transaction;
  std::size_t min_size = 2;
  std::size_t max_size = 20;
  duration max_inactive_connection_lifetime = 300s;
  duration server_lifetime = 3600s;
  duration command_timeout = 30s;            // 0: never cancel
  duration query_wait_timeout = 120s;
  duration idle_transaction_timeout = 0s;    // 0: off
  duration client_idle_timeout = 0s;         // 0: off
  duration connect_timeout = 5s;
  // Transaction mode: server-side prepared statements kept per server connection (least
  // recently used closed first). 0 turns prepared-statement support off.
  std::size_t max_prepared_statements = 1000;
  friend bool operator==(const pool_settings&, const pool_settings&) = default;
};

struct database_config {
  std::string name;  // as clients ask for it; "*" matches any other name
  std::string dsn;
  server_target target;
  pool_settings pool;
};

struct listen_config {
  std::string host = "127.0.0.1";
  std::uint16_t port = 6432;
  std::string unix_socket_dir;  // empty: no Unix socket
};

enum class log_format { text, json };
enum class log_level { debug, info, warn, error };

const char* to_string(log_level l) noexcept;
const char* to_string(log_format f) noexcept;

struct log_config {
  log_level level = log_level::info;
  log_format format = log_format::text;
  bool connections = true;      // a line per client login and disconnect, as PgBouncer's log_connections
  duration slow_query = 0s;     // statements slower than this are logged; 0: off
  friend bool operator==(const log_config&, const log_config&) = default;
};

struct config {
  listen_config listen;
  unsigned workers = 2;
  pool_settings pool_defaults;
  std::map<std::string, database_config> databases;
  std::size_t max_message_size = 64 * 1024 * 1024;
  std::size_t max_client_conn = 10000;
  duration auth_timeout = 10s;  // startup and authentication of a client must finish within this
  duration shutdown_timeout = 30s;  // SIGTERM: how long running transactions may take to finish
  std::string metrics_listen;       // "host:port" of the Prometheus endpoint; empty: none
  std::vector<std::string> admin_users;  // may open the admin console (virtual database "pgmux")
  log_config log;
};

// The database entry serving `name`: the exact entry, else "*", else nullptr.
const database_config* find_database(const config& cfg, std::string_view name) noexcept;

}  // namespace pgmux::config
