// One connection to PostgreSQL: pgmux's own frontend side of the protocol over an Asio socket.
// It is opened (connect, startup, authentication), then lent to one client at a time, which
// relays raw bytes through it while the tracker follows transaction state.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "pgmux/config/dsn.hpp"
#include "pgmux/io/io.hpp"
#include "pgmux/io/io_buffer.hpp"
#include "pgmux/server/pool_counters.hpp"
#include "pgmux/io/stream.hpp"
#include "pgmux/protocol/frame.hpp"
#include "pgmux/protocol/messages.hpp"
#include "pgmux/protocol/prepared.hpp"
#include "pgmux/protocol/session_settings.hpp"
#include "pgmux/protocol/statement_tracker.hpp"
#include "pgmux/protocol/stream.hpp"

namespace pgmux::net {

// What a session needs to reach a server again, for CancelRequests.
struct server_address {
  friend bool operator==(const server_address&, const server_address&) = default;
  std::string host;  // name, address, or Unix socket directory
  std::uint16_t port = 5432;
};

// SCRAM passthrough: the ClientKey a client proved to pgmux and the ServerKey of the verifier it
// was proven against (raw, 32 bytes each). With these pgmux logs in to a server that holds the
// same verifier without knowing the password.
struct scram_keys {
  friend bool operator==(const scram_keys&, const scram_keys&) = default;
  std::string client_key;
  std::string server_key;
  bool empty() const noexcept { return client_key.empty() || server_key.empty(); }
};

// TLS towards the server, from the DSN. Compared by settings and files, not by context identity,
// so that a reload that rebuilds the same context changes nothing.
struct server_tls {
  config::ssl_mode mode = config::ssl_mode::disable;  // disable for Unix sockets, whatever the DSN says
  std::string host;  // checked by verify-full, sent as SNI
  bool sni = true;
  std::shared_ptr<const tls_client_context> context;  // set unless mode is disable
  std::string context_key;                            // context->key()
  friend bool operator==(const server_tls& a, const server_tls& b) {
    return a.mode == b.mode && a.host == b.host && a.sni == b.sni && a.context_key == b.context_key;
  }
};

struct server_login {
  friend bool operator==(const server_login&, const server_login&) = default;
  server_address address;
  std::string user;
  std::string database;
  std::string password;
  std::string application_name;
  std::string options;
  std::chrono::milliseconds timeout{5000};
  // More startup parameters, after the ones above (a replication client's own: replication,
  // its settings); one of the same name replaces application_name.
  protocol::parameter_list extra_parameters;
  server_tls tls;
  // Used when the server asks for SCRAM and there is no password. Never from the config: the
  // pool fills it in at connect time with the keys its clients proved.
  scram_keys passthrough;
};

class server_connection {
 public:
  server_connection(asio::io_context::executor_type ex, std::uint64_t id);

  // Connects, starts up and authenticates, all within login.timeout. Empty string on success,
  // else what went wrong (for logs and for clients waiting on this pool).
  asio::awaitable<std::string> open(const server_login& login);

  std::uint64_t id() const noexcept { return id_; }
  // The connection's byte stream (TLS when the server agreed to it); lowest_layer() is the socket.
  stream& socket() noexcept { return socket_; }
  io_buffer& buffer() noexcept { return buffer_; }
  protocol::stream_cursor& cursor() noexcept { return cursor_; }
  protocol::tx_tracker& tx() noexcept { return tx_; }
  const protocol::parameter_list& parameters() const noexcept { return parameters_; }
  protocol::cancel_key backend_key() const noexcept { return backend_key_; }
  const server_address& address() const noexcept { return address_; }
  std::string describe() const;
  // When open() failed because the server refused the login (or asked for a password pgmux
  // lacks): the SQLSTATE to give clients. Empty for network failures and timeouts.
  const std::string& refusal_code() const noexcept { return refusal_code_; }

  // Reads until the buffer holds one whole message, which the result views: consume it after
  // use. Logins and pgmux's own queries read their answers so; the relay scans instead.
  struct message_read {
    protocol::frame_result frame;  // status complete, else the error below
    std::string error;
    bool lost = false;             // the connection failed, not the bytes
    bool complete() const noexcept { return frame.status == protocol::parse_status::complete; }
  };
  asio::awaitable<message_read> read_message();

  // Clean: idle, nothing half-read. Only such a connection may go back to the pool.
  bool clean() const noexcept {
    return !broken() && tx_.idle() && buffer_.empty() && cursor_.remaining == 0 && prepared.responses.empty();
  }
  void mark_broken() noexcept { broken_ = true; }
  bool broken() const noexcept {
    return broken_ || aborted_.load(std::memory_order_acquire) || unusable_.load(std::memory_order_acquire);
  }
  // The pool gave up on the request running here (cancel_grace): shuts the socket down so that
  // whatever waits on it wakes up, and marks the connection broken. The caller makes sure the
  // socket is still open (the connection is lent, under the pool's lock). Once only: false after.
  bool abort_request();
  // A CancelRequest for it may still be on its way: never lend it again.
  void mark_unusable() noexcept { unusable_.store(true, std::memory_order_release); }
  // True when the server has not hung up or sent anything unasked while idle (one non-blocking peek).
  bool looks_alive();
  // Sends Terminate without waiting and closes the socket.
  void close();

  // Read by the pool's maintenance task from another thread: when the oldest unanswered
  // request was sent (0: none), when the client went idle inside a transaction (0: not),
  // and whether a CancelRequest already went out for the current request.
  std::atomic<std::int64_t> busy_since_ns{0};
  std::atomic<std::int64_t> idle_in_tx_since_ns{0};
  std::atomic<bool> cancel_sent{false};
  // CancelRequests sent for this connection that PostgreSQL has not yet acknowledged by
  // closing their socket. A connection is not lent to the next client before they land, so
  // a late cancel can never hit someone else's query.
  std::atomic<int> cancels_in_flight{0};
  // A cancel counted in cancels_in_flight is over (sent, or given up): the last one calls the
  // callback set with on_cancels_landed(), from the thread that sent it.
  void cancel_landed();
  void on_cancels_landed(std::function<void()> callback);
  std::atomic<std::int64_t> client_checked_ns{0};  // last check_client() for the current request
  // The last CancelRequest: when it was sent and the busy_since_ns of the request it was for.
  // Still that request after cancel_grace: the cancel could not take effect.
  std::atomic<std::int64_t> cancel_at_ns{0};
  std::atomic<std::int64_t> cancelled_request_ns{0};
  // Set by the pool: a CancelRequest gives up after this at most (cancel_grace; 0: no cap),
  // since the pool gives up on the connection then anyway.
  std::atomic<std::int64_t> cancel_timeout_cap_ns{0};
  clock::time_point last_used{};
  std::chrono::system_clock::time_point connected_at{};  // when open() succeeded
  clock::time_point opened{};                            // the same on the steady clock
  std::string local_address;  // "host:port" of pgmux's end, for SHOW SERVERS
  std::string tls;            // "TLSv1.3 TLS_AES_256_GCM_SHA384" when TLS is on, for SHOW SERVERS and logs
  std::string pool_name;      // "database/user", for log lines

  // Figures of the current lease, owned by the session holding it and added to the pool's
  // counters when the connection is given back.
  struct lease_figures {
    std::uint64_t bytes_to_server = 0;
    std::uint64_t bytes_to_client = 0;
    pgmux::pool::local_histogram statements;  // per request, to its ReadyForQuery
  } figures;
  // With slow-query logging on: the start of the SQL of the latest request sent.
  std::string last_statement;
  pool_counters* counters = nullptr;  // the owning pool's, which outlives every lease
  // Transaction pooling: the prepared statements it holds and the requests in flight.
  protocol::server_prepared prepared;
  // Per-query statistics: the statements of the requests in flight (the relay's).
  protocol::statement_tracker statements;
  std::string translated;  // scratch for rewritten client messages, reused
  // Transaction pooling: notifications dropped during the current lease because they were for
  // channels its client did not LISTEN on: the connection carries someone else's LISTEN.
  unsigned dropped_notifications = 0;
  // Transaction pooling: while armed, what the client sent on this lease before the server's
  // first byte, so that a connection found dead before it answered (a hang-up, or a FATAL such
  // as 57P01 as its first word) can be replaced and the request sent again elsewhere.
  struct replay_buffer {
    bool armed = false;
    std::string sent;
    // Keeps `n` bytes about to be sent; past a bound the request is too big to replay.
    void keep(const char* data, std::size_t n) {
      if (!armed) return;
      if (sent.size() + n > 16 * 1024) {
        armed = false;
        return;
      }
      sent.append(data, n);
    }
  } replay;
  // Session settings it has now, and had right after login (what DISCARD ALL returns to).
  protocol::session_settings settings;
  protocol::session_settings startup_settings;
  // A reset ran on it: RESET ALL (`settings`: back to the login values), DISCARD ALL as well
  // (`statements`: every prepared statement gone, pgmux's own included).
  void forget_session(bool settings_reset, bool statements_dropped) noexcept;
  // The session user is no longer the one it logged in as (SET SESSION AUTHORIZATION, in SQL or
  // a function pgmux could not read): it must never serve anyone else.
  bool session_user_changed() const noexcept {
    return settings.session_authorization != startup_settings.session_authorization;
  }
  // Adds the lease's figures to the pool's counters and starts afresh (end of a transaction).
  void flush_figures() noexcept;

 private:
  asio::awaitable<std::string> login(const server_login& login);
  struct attempt {
    std::string error;   // empty: logged in
    bool retry = false;  // sslmode allow/prefer: worth one more try the other way (with or without TLS)
  };
  asio::awaitable<attempt> try_login(const server_login& login, bool use_tls);
  // Negotiates TLS on the connected socket; an error ends the attempt.
  asio::awaitable<attempt> start_tls(const server_tls& tls);

  std::uint64_t id_;
  stream socket_;
  std::mutex landed_mu_;
  std::function<void()> cancels_landed_;  // guarded by landed_mu_
  io_buffer buffer_;
  protocol::stream_cursor cursor_;
  protocol::tx_tracker tx_;
  protocol::parameter_list parameters_;
  protocol::cancel_key backend_key_;
  server_address address_;
  bool broken_ = false;
  std::atomic<bool> aborted_{false};   // abort_request() ran
  std::atomic<bool> unusable_{false};  // a CancelRequest may still land
  std::string refusal_code_;
};

// Opens a socket to a server address (TCP, or the Unix socket when host is a directory).
asio::awaitable<error_code> connect_socket(socket_t& socket, const server_address& address);

// Sends a CancelRequest for `key` to the server at `address`, giving up after `timeout`.
// True when PostgreSQL took it (closed the connection) in time.
asio::awaitable<bool> send_cancel_request(server_address address, protocol::cancel_key key,
                                          std::chrono::milliseconds timeout);
// The same for the query running on `conn`; the caller has counted it in cancels_in_flight,
// which this decrements when PostgreSQL has taken the request, or when it gave up (the
// connection is then marked unusable: the request may still land later).
asio::awaitable<void> cancel_running_query(std::shared_ptr<server_connection> conn, std::chrono::milliseconds timeout);

}  // namespace pgmux::net
