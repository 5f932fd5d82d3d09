// The validated, immutable configuration. Defaults live in the structs.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "pgmux/auth/rules.hpp"
#include "pgmux/config/dsn.hpp"
#include "pgmux/config/duration.hpp"

namespace pgmux::config {

using namespace std::chrono_literals;

enum class pool_mode { session, transaction, statement };
const char* to_string(pool_mode m) noexcept;

// Transaction pooling: what happens when a client's SQL leaves session state on its server
// connection (a SET of an untracked parameter, SET ROLE, a temporary table, ...).
// pin: the client keeps that connection until it leaves; reset: the connection is reset when
// the transaction ends; refuse: the statement fails with 0A000 and nothing runs.
enum class session_state_policy { pin, reset, refuse };
const char* to_string(session_state_policy p) noexcept;

// Per-query statistics of a pool (SHOW QUERIES): statements by their normalised text.
struct query_stats_settings {
  // Statements kept at most (the least recently used make room); 0 turns statistics off.
  std::size_t max_entries = 5000;
  // Per-statement series on /metrics (labels queryid and query) for the metrics_top statements
  // of most total time; off by default: statement text then leaves pgmux only through the
  // admin console. Aggregate figures are always exported.
  bool metrics = false;
  std::size_t metrics_top = 20;
  friend bool operator==(const query_stats_settings&, const query_stats_settings&) = default;
};

// Adaptive concurrency limit of a pool (pool/concurrency_limit.hpp): the pool lends at most a
// limit that moves between min and max by feedback from windows of transactions. Off by default.
struct adaptive_settings {
  bool enabled = false;
  std::size_t min = 2;            // never below; above max_size means max_size
  std::size_t max = 0;            // never above; 0 (or above max_size): max_size
  std::size_t window = 100;       // transactions (and overload errors) per judgement
  double tolerance = 2.0;         // a window's median hold time above baseline x this: cut
  double backoff = 0.75;          // the cut: limit x this, rounded down
  double max_error_rate = 0.05;   // overload errors above this share of a window: cut
  friend bool operator==(const adaptive_settings&, const adaptive_settings&) = default;
};

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
  // With no server connection open, connects that keep failing for want of a server (refused,
  // unreachable, timed out) this long answer waiting clients with 08001 instead of letting them
  // wait for query_wait_timeout. A server that answers, even to refuse during a restart, is
  // waited for.
  duration server_connect_failure_grace = 2s;
  // A statement still unanswered this long after its CancelRequest (command_timeout or the
  // client's) has its server connection closed. 0: never.
  duration cancel_grace = 5s;
  // Transaction mode: server-side prepared statements kept per server connection (least
  // recently used closed first). 0 turns prepared-statement support off.
  std::size_t max_prepared_statements = 1000;
  // Transaction mode: named statements one client may keep prepared, and the bytes of their
  // SQL text (names and parameter types included). Past either, its Parse fails with 54000.
  std::size_t max_client_statements = 10000;
  std::size_t max_client_statement_bytes = 16 * 1024 * 1024;
  session_state_policy session_state = session_state_policy::pin;
  // Logical replication clients (replication=database) get a server connection each, outside
  // min_size and max_size; at most this many at once. 0 (the default) refuses them: a slot
  // holds back WAL, and decoding reads every table, so it is for the operator to allow.
  std::size_t max_replication_connections = 0;
  // A line is logged once max_size has been far from the size the load needs (SHOW ADVICE: above
  // it, or under half of it) this long without a break. 0: never.
  duration advice_log_after = 300s;
  query_stats_settings query_stats;
  adaptive_settings adaptive;
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
  // SO_REUSEPORT on the TCP listener: several pgmux processes may listen on the same address
  // (a rolling restart starts the new one before the old one drains).
  bool reuse_port = false;
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

// How clients authenticate (the "auth" object).
struct auth_config {
  // First match wins; a client no rule matches is rejected. Without "rules": trust for the Unix
  // socket and loopback, nobody else, as before rules existed (auth::default_rules).
  std::vector<auth::auth_rule> rules = auth::default_rules();
  std::string users_file;                     // JSON object user -> secret; "" for none
  std::map<std::string, std::string> users;   // read from users_file at load: user -> md5 or SCRAM secret
  std::string auth_query;                     // SQL returning a user's secret, $1 the user name; "" for none
  std::string auth_user;                      // server user that runs auth_query; "": the database DSN's user
  duration auth_query_cache = 30s;            // how long auth_query answers are reused; 0: not cached
  bool allow_cleartext_without_tls = false;   // "password" method over TCP without TLS
  // Clients still in startup or authentication, at most. A login burst (a fleet of application
  // instances restarting at once) stays well under it; clients that connect and never finish
  // logging in cannot take more than these slots of max_client_conn.
  std::size_t max_authenticating = 1000;
  // Of those, from one address at most (IPv6: one /64; the Unix socket is not counted), so that
  // connections from one address that stall in their startup cannot lock everyone else out.
  std::size_t max_authenticating_per_address = 100;
  // The startup packet (and any TLS handshake before it) must arrive within this, at most
  // auth_timeout: a client that connects and says nothing gives its slot back soon.
  duration startup_timeout = 5s;
  // Added before a failed authentication is answered: slows password guessing, costs a
  // legitimate client little (PostgreSQL's auth_delay module does the same).
  duration failure_delay = 200ms;
};

enum class tls_mode {
  disable,  // no TLS: SSLRequest is refused
  allow,    // TLS when the client asks for it
  require,  // TCP clients must use TLS (Unix-socket clients need not)
};
const char* to_string(tls_mode m) noexcept;

enum class tls_version { v1_2, v1_3 };
const char* to_string(tls_version v) noexcept;  // "1.2", "1.3"

// TLS towards clients (the "tls" object). Unless mode is disable, the files are read and
// checked when the config is loaded (certificates parse, the key is private to its owner and
// matches the certificate), so a reload with a broken file changes nothing.
struct tls_config {
  tls_mode mode = tls_mode::disable;
  std::string cert;  // server certificate chain, PEM; needed unless mode is disable
  std::string key;   // its private key, PEM; needed unless mode is disable
  std::string ca;    // CA certificates that sign client certificates, PEM; needed by the cert method
  tls_version min_version = tls_version::v1_2;
  std::string cert_pem, key_pem, ca_pem;  // the files' contents, read at load (empty when disabled)
};

// The most worker threads "workers" may ask for ("auto" included).
inline constexpr unsigned max_workers = 256;

struct config {
  listen_config listen;
  unsigned workers = 2;
  pool_settings pool_defaults;
  std::map<std::string, database_config> databases;
  std::size_t max_message_size = 64 * 1024 * 1024;
  std::size_t max_client_conn = 10000;
  duration auth_timeout = 10s;  // startup and authentication of a client must finish within this
  duration shutdown_timeout = 30s;  // SIGTERM: how long running transactions may take to finish
  // SIGTERM: how long new clients are still accepted, with /readyz already answering 503, before
  // the listeners close (a load balancer's probe period, so that it stops sending clients first).
  duration drain_delay = 0s;
  // A plaintext client idle between this and twice this leaves the event loop's reactor for its
  // worker's idle_park (io/idle_park.hpp): less memory, five system calls when it comes back.
  // 0: never.
  duration park_idle_clients_after = 50ms;
  // Reload when the config file changes (inotify), as on SIGHUP: for a mounted ConfigMap.
  bool watch_config = false;
  std::string metrics_listen;       // "host:port" of the Prometheus endpoint; empty: none
  // Several instances behind one address: this one's id (1..255, in every cancel key it hands
  // out; 0: none), and where the others take CancelRequests for their keys, by id: "host:port",
  // where a host that starts with / is a Unix socket directory, as in libpq.
  unsigned instance_id = 0;
  std::map<unsigned, std::string> peers;
  std::vector<std::string> admin_users;  // may open the admin console (virtual database "pgmux")
  log_config log;
  auth_config auth;
  tls_config tls;
};

// The database entry serving `name`: the exact entry, else "*", else nullptr.
const database_config* find_database(const config& cfg, std::string_view name) noexcept;

}  // namespace pgmux::config
