// One client connection, served by one coroutine that reads like the protocol: startup,
// routing, authentication, then the request loop that borrows a server connection per
// transaction (or per session) and relays.
#pragma once
#include <array>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <variant>

#include <boost/asio/io_context.hpp>

#include "pgmux/auth/login_limits.hpp"
#include "pgmux/auth/rules.hpp"
#include "pgmux/close_reason.hpp"
#include "pgmux/server/cancel.hpp"
#include "pgmux/small_mutex.hpp"
#include "pgmux/io/idle_park.hpp"
#include "pgmux/io/io.hpp"
#include "pgmux/io/io_buffer.hpp"
#include "pgmux/server/pool.hpp"
#include "pgmux/session/process_counters.hpp"
#include "pgmux/session/session_registry.hpp"
#include "pgmux/io/stream.hpp"
#include "pgmux/protocol/messages.hpp"
#include "pgmux/protocol/prepared.hpp"
#include "pgmux/protocol/sql_inspect.hpp"

namespace pgmux::net {

class router;
class worker_set;
class auth_secret_cache;
class tls_server_context;
struct admin_hooks;
struct relay_result;

// Process-wide services every session uses. Sessions refer to the listener's one: it outlives them.
struct session_services {
  router& routes;
  cancel_registry& cancels;
  session_registry& sessions;
  std::atomic<std::size_t>& client_count;  // decremented when the session ends
  // Sessions between accept and the end of their login (auth.max_authenticating bounds it).
  std::atomic<std::size_t>& authenticating;
  auth_secret_cache& auth_secrets;         // auth_query answers
  const admin_hooks* hooks = nullptr;      // for the admin console
  process_counters* counters = nullptr;
  // Logins under way per client address (auth.max_authenticating_per_address); null: no cap.
  auth::login_limits* login_limits = nullptr;
  // The workers, which count their clients (the listener places new ones by those counts).
  worker_set* workers = nullptr;
};

// What SHOW CLIENTS tells about a session.
struct client_info {
  std::string user;
  std::string database;
  std::string peer;
  const char* state;  // "idle", "waiting" (for a server connection), "active" (holding one)
  std::chrono::system_clock::time_point connected_at;
  std::string tls;    // "TLSv1.3 TLS_AES_256_GCM_SHA384"; "" without TLS
  std::string pinned;  // transaction pooling: what keeps its server connection ("listen,role"); "" when nothing
};

class client_session final : public session_control,
                             public cancel_target,
                             public queue_watcher,
                             public idle_park::member,
                             public std::enable_shared_from_this<client_session> {
 public:
  // `socket` is on the event loop of the worker the session lives on. `from` is the client's
  // address and port (or the Unix socket), which the auth rules match and logs name.
  // `family`: the socket's address family (AF_INET, AF_INET6, AF_UNIX), as its listener knows
  // it, for handing the descriptor back to Asio after the idle park without asking the kernel.
  client_session(socket_t socket, int family, auth::client_peer from, const session_services& services);
  // Out of the registries, should it not have finished (its coroutine destroyed at shutdown,
  // while they and services_ still exist); a finished session touches neither.
  ~client_session() override;

  // Registers the session and serves it: login, then each request as it comes. Idle between
  // requests, the session waits on a plain callback, with no coroutine frame alive.
  void start();

  // nullopt until the client has logged in.
  std::optional<client_info> info() const;

  void kill(close_reason reason) override;
  // Graceful shutdown: an idle client is closed now, a busy one after its transaction.
  void drain();
  void check_client() override;
  void cancel_current_query() override;
  std::shared_ptr<cancel_target> keep_alive() noexcept override { return weak_from_this().lock(); }
  session_registry::hook& registry_hook() noexcept { return registry_hook_; }
  void waiting() override { waited_ = true; }
  void queued(std::function<void()> leave) override;

 private:
  using startup_outcome = std::variant<protocol::startup_message, close_reason>;

  // Startup, routing and authentication; a close reason when the client is turned away.
  asio::awaitable<std::optional<close_reason>> login();
  // The part of login() that auth_timeout bounds: startup packet and authentication. Fills in
  // names_; `keys` gets what a SCRAM client proved. `tls`: TLS towards this client
  // as configured when its login began; null when tls.mode is disable.
  asio::awaitable<std::optional<close_reason>> authenticate(const config::config& cfg,
                                                            const std::shared_ptr<const tls_server_context>& tls,
                                                            scram_keys& keys);
  // Refuses a client because too many are still logging in (auth.max_authenticating), or too
  // many from its address (auth.max_authenticating_per_address).
  asio::awaitable<close_reason> refuse_busy(bool per_address, const std::shared_ptr<const tls_server_context>& tls);
  asio::awaitable<startup_outcome> read_startup(const std::shared_ptr<const tls_server_context>& tls);
  // A CancelRequest: the query of the session holding the key is cancelled, or the request goes
  // on to the peer instance whose key it is (protocol/cancel_route).
  asio::awaitable<void> route_cancel_request(protocol::cancel_key key);
  static constexpr std::chrono::seconds cancel_forward_timeout{1};
  asio::awaitable<void> login_then_serve();
  // Logical replication: a server connection of the client's own, its login answered with that
  // server's own parameters and pid, then bytes passed both ways unread until either side goes.
  asio::awaitable<close_reason> serve_replication();
  // Idle: reads the first bytes of the next request (within client_idle_timeout), then serves
  // requests until the client is idle again.
  void wait_idle();
  void read_idle();  // the pending read itself
  // A plaintext client idle for a while leaves Asio's reactor for its worker's idle_park (see
  // there): park_due() cancels the idle read, whose handler hands the socket over
  // (park_socket); unparked() takes it back and reads again.
  void park_due() override;
  void unparked(int fd) override;
  bool park_socket();
  // Ends the pending client read (kill, drain, timeouts), a parked client's too.
  void cancel_client_read();
  // client_idle_timeout, from now until a whole request has come (disarm): when it passes, the
  // pending read is cancelled and the client gets 57P05. Nothing when the setting is off.
  void arm_idle_deadline();
  void disarm_idle_deadline();
  bool idle_deadline_on() const noexcept { return settings_->client_idle_timeout.count() > 0; }
  void on_first_bytes(error_code ec, std::size_t n);
  asio::awaitable<void> serve_until_idle();
  // The session's end: the server connection back, the client closed, the books updated (after
  // a goodbye for shutdown and client_idle_timeout).
  asio::awaitable<void> finish(close_reason reason);
  // The first bytes of an idle client's next request arrived (under TLS in tls_extras_:
  // moved into the relay buffer). A close reason when the read failed or the session was killed.
  std::optional<close_reason> take_first_bytes(error_code ec, std::size_t n);
  // Serves the request at the front of the buffer: a whole transaction in transaction mode,
  // the rest of the session in session mode. A close reason when the session ends.
  asio::awaitable<std::optional<close_reason>> serve_request();
  // serve_request's rarer ends, apart so that its coroutine frame stays small enough for Asio
  // to recycle: a relay that ended other than with its transaction (nullopt: the request goes
  // to another connection), and a lease that cannot serve (the pool's error, or settings the
  // server refuses).
  asio::awaitable<std::optional<close_reason>> end_relay(relay_result r);
  asio::awaitable<close_reason> refuse_request(acquire_error error);
  asio::awaitable<std::optional<close_reason>> refuse_settings(protocol::error_fields failed);
  // apply_settings on the lease, and refuse_settings if the server refuses; `retry` when the
  // request is to go to another connection.
  asio::awaitable<std::optional<close_reason>> apply_client_settings(bool& retry);
  // A server connection from the pool. A client that has to queue is watched meanwhile: one that
  // hangs up leaves the queue at once (an acquire_error with an empty code), and nothing it sent runs.
  struct queue_watch;
  asio::awaitable<std::variant<lease, acquire_error>> acquire_server();
  void watch_queued_client(std::shared_ptr<queue_watch> watch);
  // The client closed its end (or the socket failed), seen without reading what it sent.
  bool client_hung_up();
  // Puts a request that went to a dead server connection back in front of the client's buffer;
  // false when it cannot be replayed (mid-message, or too big).
  bool put_back(const std::string& sent);
  // Whether the current request may go to another connection should `conn` die unanswered,
  // and counting one such replay. Connections already open when the request first lost one
  // were idle in the pool with it and may all be ending at once (a restart, or
  // pg_terminate_backend of the pool's backends): soon after that loss, trying each of them is
  // bounded by the pool's size (stale_replay), so only connections opened since count against
  // max_replays.
  bool stale_replay(const server_connection& conn) const noexcept;
  bool may_replay(const server_connection& conn) const noexcept;
  void count_replay(const server_connection& conn);
  // Waits until the buffer holds a whole first message (or is full); nullopt when it does.
  asio::awaitable<std::optional<close_reason>> wait_for_request();
  // The same check without waiting: true when the buffer already holds a whole, valid first
  // message other than Terminate (or is full). Most requests arrive whole with their first bytes.
  bool request_ready() const noexcept;
  // After the client is gone: bring the server connection back clean or close it.
  // `let_finish`: the client said Terminate, so what it asked for last runs to its end.
  asio::awaitable<void> return_server(bool let_finish = false);
  // Transaction pooling, at the end of a transaction: back to the pool unless the client's SQL
  // may have left something another client could see (closed then).
  void release_after_transaction();
  // Transaction pooling, at the end of a transaction that SET untracked parameters: reads their
  // values back, so that they follow the client to its next server connections as its startup
  // settings do. False when the connection failed (it is then closed).
  asio::awaitable<bool> carry_settings();
  // Transaction pooling, session_state "reset": DISCARD ALL on the lent connection before it goes
  // back, so that what the client's SQL left (`left`) ends with its transaction. False when the
  // reset failed (the connection is then closed).
  asio::awaitable<bool> reset_session_state(protocol::session_state::set left);
  // The backstop for what the SQL did not show: parameters the server reported changed that
  // pgmux did not set (a function's SET default_transaction_read_only) go back to their defaults
  // before anyone else gets the connection. False when that failed (the connection is closed).
  asio::awaitable<bool> reset_unseen_settings(server_connection& server);
  asio::awaitable<void> wait_for_cancels(server_connection& server);
  // Transaction pooling, the transaction over and its connection given back (or closed): the
  // client idles, unless pgmux is shutting down.
  std::optional<close_reason> idle_after_transaction() noexcept;
  asio::awaitable<void> send_error(std::string_view severity, std::string_view code, std::string_view message);
  void set_current_server(std::shared_ptr<server_connection> server);
  std::string label() const;
  // "scram-sha-256, TLSv1.3 TLS_AES_256_GCM_SHA384" for the log; notes the TLS part for SHOW CLIENTS.
  std::string login_details();

  // The socket, or TLS over it after an SSLRequest. Its executor is the worker's event loop:
  // every handler of the session runs there.
  stream client_;
  auto executor() noexcept { return client_.get_executor(); }
  auth::client_peer from_;
  // Flags of the session's own thread, here where they fill the padding after from_ (an idle
  // client's record is most of pgmux's memory per client).
  bool idle_deadline_armed_ = false;  // see arm_idle_deadline
  bool idle_timed_out_ = false;       // client_idle_timeout passed: the pending read was cancelled
  bool killed_ = false;               // kill() or drain(): the session ends with kill_reason_
  bool served_request_ = false;       // a request arrived after login
  bool parking_ = false;              // park_due() cancelled the idle read: park when it ends
  std::uint8_t socket_family_;        // the client socket's address family (constructor)
  const session_services& services_;  // the listener's, shared by every session
  session_registry::hook registry_hook_;  // its place in services_.sessions

  io_buffer buffer_;
  // What only a TLS client has, made at its login: one pointer in every session's record.
  struct tls_extras {
    // "TLSv1.3 TLS_AES_256_GCM_SHA384", for SHOW CLIENTS: set before the session is seen logged
    // in (phase_), never changed after.
    std::string description;
    // Where an idle client's next request starts arriving; a plaintext client's goes straight
    // into buffer_.
    std::array<char, 128> first_bytes;
  };
  std::unique_ptr<tls_extras> tls_extras_;
  // Timers only some sessions need, made at the first of them: one pointer in every record.
  struct timers {
    std::optional<asio::steady_timer> idle;         // client_idle_timeout, when set
    std::optional<asio::steady_timer> drain_grace;  // see expect_first_request
  };
  std::unique_ptr<timers> timers_;
  timers& own_timers() {
    if (!timers_) timers_ = std::make_unique<timers>();
    return *timers_;
  }
  protocol::stream_cursor cursor_;
  protocol::client_prepared prepared_;  // statement names, for transaction pooling
  protocol::sql_watch seen_sql_;        // its LISTEN channels and risky SQL, for transaction pooling
  // Transaction pooling: what makes the client keep its server connection until it leaves
  // (protocol::session_state bits): LISTEN (notifications come whenever they come), or session
  // state under the session_state policy "pin". The connection is reset (DISCARD ALL) afterwards.
  std::atomic<protocol::session_state::set> pinned_for_{protocol::session_state::none};
  // max_message_size as at login (a message's length field has 32 bits: so has this, beside pinned_for_).
  std::uint32_t max_message_size_ = 0;
  bool pinned() const noexcept { return pinned_for_.load(std::memory_order_relaxed) != protocol::session_state::none; }
  void pin(protocol::session_state::set reasons);
  std::shared_ptr<const protocol::session_settings> wanted_settings_;  // applied to each server connection lent
  // Its startup values that differ from the server connections' login, which its RESETs must
  // bring back (reset_restore.hpp); null when there are none.
  std::shared_ptr<const std::vector<protocol::parameter_change>> restorable_;
  // Per-query statistics: what the client's Parses and Binds named; made at the first of them.
  std::unique_ptr<protocol::statement_names> statement_names_;
  std::shared_ptr<server_pool> pool_;
  std::shared_ptr<const config::pool_settings> settings_;  // its pool's, as they were at login
  lease lease_;
  // The user and database of its startup message; once it is routed, the record its pool's
  // clients with the same ones share. Null before the startup message.
  std::shared_ptr<const protocol::login_names> names_;
  const std::string& user() const noexcept { return names_ ? names_->user : no_name; }
  const std::string& database() const noexcept { return names_ ? names_->database : no_name; }
  static inline const std::string no_name;

  // Where the session is in its life. Other threads read it (SHOW CLIENTS): every store
  // releases, so that a session seen logged in shows its final names_.
  enum class phase : std::uint8_t {
    authenticating,   // startup packet and authentication, bounded by auth_timeout
    login_timed_out,  // auth_timeout passed: the login's reads were cancelled
    logging_in,       // authenticated: routing, then the server side of the login
    idle,             // logged in, no request under way
    waiting,          // queued for a server connection
    active,           // holding a server connection
  };
  std::atomic<phase> phase_{phase::authenticating};
  void enter(phase p) noexcept { phase_.store(p, std::memory_order_release); }
  phase current_phase() const noexcept { return phase_.load(std::memory_order_acquire); }
  // From phase_ to listed_, one-byte members share 8 bytes.
  bool admin_ = false;
  bool replication_ = false;  // replication=database: served by serve_replication
  bool draining_ = false;     // drain(): closed once idle
  auth::auth_method method_ = auth::auth_method::trust;  // how the client authenticated
  close_reason kill_reason_ = close_reason::shutdown;    // see killed_
  bool waited_ = false;                                  // the current acquire had to queue
  bool listed_ = false;  // in services_.sessions: from start() to finish()
  const std::chrono::system_clock::time_point connected_at_ = std::chrono::system_clock::now();
  // drain() before the client's first request: it is served if it comes within this.
  static constexpr std::chrono::seconds first_request_grace{1};
  void expect_first_request();
  // Times the current request was sent again after its server connection died unanswered:
  // on connections opened since its first loss, and on older ones (see may_replay).
  std::uint16_t replays_ = 0;
  std::uint16_t stale_replays_ = 0;
  small_mutex current_mu_;  // guards current_ (below) against cancel requests from other threads
  clock::time_point first_loss_{};

  std::shared_ptr<queue_watch> queue_watch_;  // while queued (for a while) for a server connection
  std::shared_ptr<server_connection> current_;
};

}  // namespace pgmux::net
