// The client session coroutine.
#include "pgmux/session/client_session.hpp"

#include "pgmux/io/idle_read.hpp"
#include "pgmux/io/workers.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include "pgmux/log.hpp"
#include "pgmux/io/exact_allocator.hpp"
#include "pgmux/protocol/cancel_route.hpp"
#include "pgmux/auth/client_auth.hpp"
#include "pgmux/admin/admin_console.hpp"
#include "pgmux/session/client_login_auth.hpp"
#include "pgmux/io/memory.hpp"
#include "pgmux/session/relay.hpp"
#include "pgmux/session/router.hpp"
#include "pgmux/session/session_registry.hpp"
#include "pgmux/session/startup_reader.hpp"
#include "pgmux/io/spawn.hpp"
#include "pgmux/io/timeout.hpp"
#include "pgmux/io/tls.hpp"
#include "pgmux/protocol/decode.hpp"
#include "pgmux/protocol/encode.hpp"
#include "pgmux/protocol/frame.hpp"
#include "pgmux/protocol/reset_restore.hpp"

namespace pgmux::net {
namespace {

using namespace std::chrono_literals;

// Bound on cleaning up a server connection after its client left (cancel, drain, rollback).
constexpr auto cleanup_timeout = 5000ms;
// A request whose server connection turns out dead before answering is sent again at most this
// often on connections opened after its first loss. Within stale_replay_window of that loss, on
// connections open before it, at most once each (and never more than max_stale_replays): those
// are the pool's connections a restart or a pg_terminate_backend ended together. Later, a loss
// is a statement ended while it ran (an operator's pg_terminate_backend), which is not run again
// and again on every connection of the pool.
constexpr int max_replays = 2;
constexpr int max_stale_replays = 1000;
constexpr auto stale_replay_window = 2s;

// A client whose statements kept at least this much has its memory handed back when it leaves.
constexpr std::size_t release_after_statement_bytes = 1024 * 1024;

// Tells clients apart for the unnamed statement a server connection holds; never reused.
// A limit kept in 32 bits (a message's length field has no more): larger settings mean "no limit".
std::uint32_t clamped_u32(std::size_t limit) noexcept {
  return static_cast<std::uint32_t>(std::min<std::size_t>(limit, UINT32_MAX));
}

std::uint64_t next_client_id() noexcept {
  static std::atomic<std::uint64_t> last{0};
  return last.fetch_add(1, std::memory_order_relaxed) + 1;
}

}  // namespace

client_session::client_session(socket_t socket, int family, auth::client_peer from, const session_services& services)
    : client_(std::move(socket)),
      from_(from),
      socket_family_(static_cast<std::uint8_t>(family)),
      services_(services),
      prepared_(next_client_id()) {}

client_session::~client_session() {
  if (cancel_registered()) services_.cancels.remove(*this);
  if (listed_) services_.sessions.remove(*this);
}

std::string client_session::login_details() {
  std::string s = auth::to_string(method_);
  if (auto tls = client_.tls_description(); !tls.empty()) {
    s += ", " + tls;
    tls_extras_ = std::make_unique<tls_extras>();
    tls_extras_->description = std::move(tls);
  }
  return s;
}

std::string client_session::label() const {
  std::string s = "client " + from_.to_string();
  if (!user().empty()) s += " " + user() + "@" + database();
  return s;
}

void client_session::start() {
  services_.sessions.add(*this);
  listed_ = true;
  // Started on the session's worker, which may not be the accepting thread: the coroutine must
  // hold the session from its first step, before anyone else does.
  asio::co_spawn(executor(), [self = shared_from_this()] { return self->login_then_serve(); },
                 log_failure("client session"));
}

asio::awaitable<void> client_session::login_then_serve() {
  auto self = shared_from_this();
  std::optional<close_reason> ended;
  try {
    if (auto refused = co_await login()) {
      ended = *refused;
    } else if (admin_) {
      ended = co_await serve_admin_console(client_, services_.routes, services_.sessions, services_.hooks);
    } else if (replication_) {
      ended = co_await serve_replication();
    }
  } catch (const std::exception& e) {
    log::error(label() + ": " + e.what());
    ended = close_reason::client_protocol_error;
  }
  if (ended) co_return co_await finish(*ended);
  wait_idle();
}

void client_session::wait_idle() {
  // An idle client holds no coroutine frame and no relay buffer: only this pending read, whose
  // handler brings the session back to life when its next request starts.
  buffer_.release();
  arm_idle_deadline();
  read_idle();
  // Queued once the read is pending (it holds the session). Under TLS, OpenSSL may hold bytes the
  // socket no longer shows: such a client stays in Asio's reactor.
  if (auto* park = idle_park::current(); park && !client_.tls()) park->idle(*this);
}

void client_session::read_idle() {
  // The socket lives on the session's loop: its handler runs there, with no executor to bind.
  // A read, not a readiness wait: Asio re-arms epoll (epoll_ctl) for every wait, while a read
  // costs only the recv that finds nothing yet. A plaintext read takes its relay buffer only
  // once bytes are there (io/idle_read.hpp); under TLS, the read also takes what OpenSSL already
  // decrypted, into a small buffer of the session's. The operation is allocated at its own size
  // (exact_allocator).
  auto on_bytes = asio::bind_allocator(exact_allocator<void>(), [self = shared_from_this()](error_code ec, std::size_t n) {
    self->on_first_bytes(ec, n);
  });
  if (!client_.tls()) {
    client_.lowest_layer().async_read_some(idle_read_target(buffer_), std::move(on_bytes));
    return;
  }
  if (!tls_extras_) tls_extras_ = std::make_unique<tls_extras>();  // made at login: not reached
  client_.async_read_some(asio::buffer(tls_extras_->first_bytes), std::move(on_bytes));
}

void client_session::park_due() {
  if (killed_ || idle_timed_out_) return;
  parking_ = true;
  error_code ignored;
  client_.lowest_layer().cancel(ignored);  // the idle read: its handler parks the socket
}

bool client_session::park_socket() {
  auto* park = idle_park::current();
  if (!park) return false;
  auto& socket = client_.lowest_layer();
  error_code ec;
  const int fd = socket.release(ec);  // out of Asio's reactor: its record goes back to the pool
  if (ec) return false;
  if (park->hold(*this, fd, shared_from_this())) return true;
  socket.assign(asio::generic::stream_protocol(socket_family_, 0), fd, ec);
  if (ec) ::close(fd);  // the read that follows fails, and the session ends
  return false;
}

void client_session::unparked(int fd) {
  error_code ec;
  client_.lowest_layer().assign(asio::generic::stream_protocol(socket_family_, 0), fd, ec);
  if (ec) ::close(fd);  // the read below fails, and the session ends
  read_idle();
  // Queued again, should the wake-up bring no request (it ends the session otherwise).
  if (auto* park = idle_park::current(); park && !ec && !killed_) park->idle(*this);
}

void client_session::cancel_client_read() {
  // A parked client's socket comes back first, its read pending, which the cancel then ends.
  if (parked()) idle_park::current()->take_back(*this);
  error_code ignored;
  client_.lowest_layer().cancel(ignored);  // under TLS too: the pending read is on the socket
}

void client_session::arm_idle_deadline() {
  if (!idle_deadline_on()) return;
  auto& idle_timer = own_timers().idle;
  if (!idle_timer) idle_timer.emplace(executor());
  idle_deadline_armed_ = true;
  idle_timer->expires_after(settings_->client_idle_timeout);
  idle_timer->async_wait([self = shared_from_this()](error_code ec) {
    // Disarmed since (a whole request came): a wake-up that was already on its way is ignored.
    if (ec || !self->idle_deadline_armed_) return;
    self->idle_timed_out_ = true;
    self->cancel_client_read();  // the idle read, or the read of the rest of a message
  });
}

void client_session::disarm_idle_deadline() {
  if (!idle_deadline_armed_) return;
  idle_deadline_armed_ = false;
  idle_timed_out_ = false;  // fired with no read to cancel, just as the request became whole: served
  timers_->idle->cancel();
}

void client_session::on_first_bytes(error_code ec, std::size_t n) {
  if (auto* park = idle_park::current()) park->busy(*this);
  // Cancelled by park_due() alone: the socket goes to the park. Bytes that came first, a kill or
  // a timeout are dealt with below.
  if (std::exchange(parking_, false) && ec == asio::error::operation_aborted && !killed_ && !idle_timed_out_) {
    if (!park_socket()) read_idle();
    return;
  }
  auto ended = take_first_bytes(ec, n);
  // client_idle_timeout passed: the read was cancelled, or it had completed just before, its
  // bytes and the timer's wake-up crossing. A whole request that came is served all the same
  // (serve_request disarms the deadline); part of one ends the session, as the deadline says.
  if (idle_timed_out_ && !killed_ && (ended || !request_ready())) ended = close_reason::client_idle_timeout;
  if (ended) {
    asio::co_spawn(executor(), finish(*ended), log_failure("client session"));
    return;
  }
  // client_idle_timeout keeps running until the first message is whole (serve_request): a client
  // that sends part of one and stalls is still idle. Session pooling holds its server connection
  // from the login: there the request has started.
  if (lease_) disarm_idle_deadline();
  served_request_ = true;
  asio::co_spawn(executor(), serve_until_idle(), log_failure("client session"));
}

asio::awaitable<void> client_session::serve_until_idle() {
  auto self = shared_from_this();
  close_reason reason = close_reason::client_eof;
  try {
    for (;;) {
      if (auto ended = co_await serve_request()) {
        reason = *ended;
        break;
      }
      if (!lease_ && buffer_.empty()) {
        wait_idle();
        co_return;
      }
      // Part of the next request came with the last one's end: the rest is due within
      // client_idle_timeout too.
      if (!lease_ && idle_deadline_on() && !request_ready()) arm_idle_deadline();
    }
  } catch (const std::exception& e) {
    log::error(label() + ": " + e.what());
    reason = close_reason::client_protocol_error;
  }
  co_await finish(reason);
}

asio::awaitable<void> client_session::finish(close_reason reason) {
  auto self = shared_from_this();
  // A replication stream may have been cut mid-message: no goodbye can follow it.
  if (reason == close_reason::shutdown && !lease_ && !replication_) {
    killed_ = false;
    co_await send_error("FATAL", "57P01", "terminating connection: pgmux is shutting down");
  }
  if (reason == close_reason::client_idle_timeout)  // idle: no server connection to hand back first
    co_await send_error("FATAL", "57P05", "terminating connection due to client_idle_timeout");
  if (lease_) lease_.release(false);
  if (pool_) pool_->client_left();
  if (pool_ && pinned()) pool_->count_pinned(pinned_for_.load(std::memory_order_relaxed), -1);
  services_.cancels.remove(*this);
  if (auto* park = idle_park::current()) park->busy(*this);  // queued only while its read is pending: not now
  if (timers_ && timers_->idle) timers_->idle->cancel();
  if (timers_ && timers_->drain_grace) timers_->drain_grace->cancel();
  client_.close(reason == close_reason::client_terminate);  // after a Terminate: no shutdown needed
  buffer_.clear();
  // Before the trim below: its nodes lie among the statements' text, and would keep pages of it.
  statement_names_.reset();
  if (prepared_.statements.bytes() >= release_after_statement_bytes) {
    // glibc would keep what the statements' text took; give it back once they are gone.
    prepared_.statements.clear();
    release_freed_memory();
  }
  services_.sessions.remove(*this);
  listed_ = false;
  if (services_.workers) services_.workers->client_left(worker_set::current());  // finish() runs on the session's worker
  if (services_.client_count.fetch_sub(1, std::memory_order_acq_rel) == 1 && services_.hooks &&
      services_.hooks->clients_gone)
    services_.hooks->clients_gone();
  if (services_.counters)
    if (auto e = client_error_of(reason)) services_.counters->count_client_error(*e);
  if (log::enabled(log::connections() ? log::level::info : log::level::debug)) {
    // Milliseconds as seconds with three decimals: printf's floating-point path costs more than
    // the rest of the line, once per connection.
    const auto ms = std::max<std::int64_t>(  // 0 should the wall clock have been set back meanwhile
        0, std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now() - connected_at_).count());
    const auto fraction = std::to_string(1000 + ms % 1000);  // "1xyz": the three digits, zero-padded
    log::connection(label() + " disconnected: " + to_string(reason) + " after " + std::to_string(ms / 1000) + "." +
                    fraction.substr(1) + "s");
  }
}

std::optional<close_reason> client_session::take_first_bytes(error_code ec, std::size_t n) {
  if (killed_) return kill_reason_;
  if (ec) return close_reason::client_eof;
  if (client_.tls()) {  // a plaintext read put its bytes in buffer_ already
    buffer_.ensure();
    std::memcpy(buffer_.free_begin(), tls_extras_->first_bytes.data(), n);
    buffer_.commit(n);
  }
  return std::nullopt;
}

void client_session::kill(close_reason reason) {
  asio::post(executor(), [self = shared_from_this(), reason] {
    // The timeout may have raced with new traffic: only a session still idle in its
    // transaction is ended for idle_transaction_timeout.
    if (reason == close_reason::idle_transaction_timeout) {
      std::lock_guard lock(self->current_mu_);
      if (!self->current_) return;
      const auto& tx = self->current_->tx();
      const bool client_owes = self->cursor_.remaining > 0 ||
                               (!tx.idle() && (tx.outstanding == 0 || tx.copy_in || tx.open_batch));
      if (!client_owes) return;
    }
    self->killed_ = true;
    self->kill_reason_ = reason;
    self->cancel_client_read();
  });
}

std::optional<client_info> client_session::info() const {
  const auto now = current_phase();
  if (now < phase::idle) return std::nullopt;
  static constexpr const char* names[] = {"idle", "waiting", "active"};
  return client_info{user(), database(), from_.to_string(), names[static_cast<int>(now) - static_cast<int>(phase::idle)],
                     connected_at_, tls_extras_ ? tls_extras_->description : std::string(),
                     protocol::session_state::describe(pinned_for_.load(std::memory_order_relaxed))};
}

void client_session::pin(protocol::session_state::set reasons) {
  const auto before = pinned_for_.load(std::memory_order_relaxed);
  const auto added = static_cast<protocol::session_state::set>(reasons & ~before);
  if (added == protocol::session_state::none) return;
  pinned_for_.store(static_cast<protocol::session_state::set>(before | added), std::memory_order_relaxed);
  if (pool_) pool_->count_pinned(added, +1);
  log::info(label() + ": keeps " + lease_->describe() + " until it disconnects (" +
            protocol::session_state::describe(added) + ")");
}

void client_session::drain() {
  asio::post(executor(), [self = shared_from_this()] {
    self->draining_ = true;
    // A client with a request under way (buffered, waiting for a server, or relayed) is
    // closed once its transaction ends; only an idle one is closed now. A replication stream
    // has no end to wait for.
    if (!self->replication_) {
      if (self->lease_ && self->settings_->mode != config::pool_mode::session) return;
      if (self->lease_ && !self->lease_->tx().idle()) return;  // session mode: see the transaction through
      if (!self->lease_ && !self->buffer_.empty()) return;
      // Connected just before the listeners closed (a rolling restart, a balancer that had not
      // noticed the drain yet): its first request is still served, if it comes soon.
      if (!self->served_request_ && !self->admin_) return self->expect_first_request();
    }
    self->killed_ = true;
    self->kill_reason_ = close_reason::shutdown;
    self->cancel_client_read();
  });
}

void client_session::expect_first_request() {
  auto& grace = own_timers().drain_grace;
  grace.emplace(executor(), first_request_grace);
  grace->async_wait([self = shared_from_this()](error_code ec) {
    if (ec || self->served_request_ || self->lease_ || !self->buffer_.empty()) return;
    self->killed_ = true;
    self->kill_reason_ = close_reason::shutdown;
    self->cancel_client_read();
  });
}

void client_session::check_client() {
  asio::post(executor(), [self = shared_from_this()] {
    std::shared_ptr<server_connection> server;
    {
      std::lock_guard lock(self->current_mu_);
      server = self->current_;
    }
    auto& socket = self->client_.lowest_layer();
    if (!server || !socket.is_open()) return;
    // POLLRDHUP sees the hang-up even behind bytes the client sent before it left (TLS records too).
    pollfd p{socket.native_handle(), POLLRDHUP, 0};
    if (::poll(&p, 1, 0) <= 0 || (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) == 0) return;
    // Hung up: stop waiting for the server; the cleanup cancels the query and rolls back.
    self->killed_ = true;
    self->kill_reason_ = close_reason::client_eof;
    error_code ignored;
    server->socket().lowest_layer().cancel(ignored);
    socket.cancel(ignored);
  });
}

void client_session::cancel_current_query() {
  std::shared_ptr<server_connection> server;
  {
    // Counted under the lock: the session takes it before waiting for cancels to land, so
    // this cancel cannot reach the server after it went to another client.
    std::lock_guard lock(current_mu_);
    server = current_;
    if (server) server->cancels_in_flight.fetch_add(1);
  }
  if (!server) return;
  asio::co_spawn(executor(), cancel_running_query(server, settings_->connect_timeout), log_failure("cancel request"));
}

void client_session::set_current_server(std::shared_ptr<server_connection> server) {
  std::lock_guard lock(current_mu_);
  current_ = std::move(server);
}

asio::awaitable<void> client_session::send_error(std::string_view severity, std::string_view code,
                                                 std::string_view message) {
  std::string out;
  protocol::encode_error_response(out, severity, code, message);
  co_await with_timeout(asio::async_write(client_, asio::buffer(out), nothrow), 1000ms);
}

asio::awaitable<client_session::startup_outcome> client_session::read_startup(const std::shared_ptr<const tls_server_context>& tls) {
  for (;;) {
    auto [packet, error] = co_await read_startup_packet(client_);
    if (!packet) {
      if (error.empty()) co_return close_reason::client_eof;
      co_await send_error("FATAL", "08P01", error);
      co_return close_reason::client_protocol_error;
    }
    switch (packet->kind) {
      case protocol::startup_kind::ssl_request: {
        if (client_.tls()) {
          co_await send_error("FATAL", "08P01", "invalid startup packet: SSLRequest on a connection already using TLS");
          co_return close_reason::client_protocol_error;
        }
        // TLS when configured, never on the Unix socket (as PostgreSQL). 'N': the client goes
        // on in plaintext or gives up.
        const bool offer = tls && !from_.unix_socket;
        const char answer = offer ? 'S' : 'N';
        auto [ec, n] = co_await write_all(client_, asio::buffer(&answer, 1));
        if (ec) co_return close_reason::client_eof;
        if (!offer) continue;
        // Only the SSLRequest was read, so no plaintext byte can sneak in behind the handshake.
        if (auto failed = co_await client_.accept_tls(tls)) {
          if (failed != asio::error::operation_aborted)
            log::info(label() + ": TLS handshake failed: " + client_.tls_failure(failed));
          co_return close_reason::client_tls_failed;
        }
        continue;
      }
      case protocol::startup_kind::gssenc_request: {
        char no = 'N';  // no GSSAPI encryption: the client goes on without it, as with PostgreSQL
        auto [ec, n] = co_await write_all(client_, asio::buffer(&no, 1));
        if (ec) co_return close_reason::client_eof;
        continue;
      }
      case protocol::startup_kind::cancel_request:
        if (services_.counters) services_.counters->cancel_requests.fetch_add(1, std::memory_order_relaxed);
        co_await route_cancel_request(packet->cancel);
        co_return close_reason::client_eof;
      case protocol::startup_kind::startup:
        co_return std::move(packet->startup);
    }
  }
}

asio::awaitable<void> client_session::route_cancel_request(protocol::cancel_key key) {
  auto target = services_.cancels.find(protocol::without_forward_mark(key));
  const auto cfg = services_.routes.config();
  const auto d = protocol::route_cancel(key, services_.cancels.instance_id(), target != nullptr, cfg->peers);
  if (d.route == protocol::cancel_route::local && target) target->cancel_current_query();
  if (d.route != protocol::cancel_route::forward) co_return;
  // One hop to the instance whose key it is, bounded as a login's first packet is.
  const auto& peer = cfg->peers.at(d.peer);
  const bool sent = co_await forward_cancel(peer, d.key, cancel_forward_timeout);
  if (services_.counters) (sent ? services_.counters->cancels_forwarded : services_.counters->cancel_forward_failures)++;
  if (!sent) log::warn("cancel request for instance " + std::to_string(d.peer) + " could not be sent to its peer " + peer);
}

namespace {

// Counts a session in session_services::authenticating until the end of its login.
class authenticating_slot {
 public:
  explicit authenticating_slot(std::atomic<std::size_t>& count)
      : count_(&count), held_(count.fetch_add(1, std::memory_order_relaxed) + 1) {}
  authenticating_slot(const authenticating_slot&) = delete;
  authenticating_slot& operator=(const authenticating_slot&) = delete;
  ~authenticating_slot() { release(); }
  std::size_t held() const noexcept { return held_; }  // sessions authenticating, this one included
  void release() noexcept {
    if (count_) count_->fetch_sub(1, std::memory_order_relaxed);
    count_ = nullptr;
  }

 private:
  std::atomic<std::size_t>* count_;
  std::size_t held_;
};

}  // namespace

asio::awaitable<close_reason> client_session::refuse_busy(bool per_address, const std::shared_ptr<const tls_server_context>& tls) {
  log::connection(label() + (per_address ? " refused: too many clients from this address still authenticating "
                                           "(auth.max_authenticating_per_address)"
                                         : " refused: too many clients still authenticating (auth.max_authenticating)"));
  // Answered as PostgreSQL answers "too many clients": after the startup packet (and any
  // SSLRequest before it), which is when clients read. Answering at once would make libpq take
  // the error for a failed SSL negotiation, and closing with the packet unread could reset the
  // connection before the client reads the error. The packet gets a short deadline.
  const auto startup = co_await with_timeout(read_startup(tls), std::chrono::milliseconds(1000));
  if (startup && std::holds_alternative<protocol::startup_message>(*startup))
    co_await send_error("FATAL", "53300", per_address ? "too many connections from this address still authenticating"
                                                      : "too many connections still authenticating");
  co_return close_reason::too_many_clients;
}

asio::awaitable<std::optional<close_reason>> client_session::authenticate(const config::config& cfg, const std::shared_ptr<const tls_server_context>& tls,
                                                                          scram_keys& keys) {
  // auth_timeout bounds the startup packet and the whole authentication exchange. A stalled
  // client is ended by cancelling its reads (and refusing later ones): cheaper than racing two
  // coroutines, which matters when thousands of clients connect at once.
  // auth.startup_timeout (at most auth_timeout, the loader sees to it) bounds the startup
  // packet alone, so that a client that connects and stalls gives its slot back soon.
  const auto now = clock::now();
  const auto deadline = now + cfg.auth_timeout;
  asio::steady_timer timer(executor(), std::min(deadline, now + cfg.auth.startup_timeout));
  auto on_deadline = [self = shared_from_this(), &timer](error_code ec) {
    // Runs on the session's executor, so it cannot interleave with the login's own steps. The
    // timer is looked at only while the login runs, when it still exists: a startup deadline
    // that fired just as the packet arrived has been moved on since, and is not a timeout.
    if (ec || self->current_phase() != phase::authenticating || clock::now() < timer.expiry()) return;
    self->enter(phase::login_timed_out);
    error_code ignored;
    self->client_.lowest_layer().cancel(ignored);  // a TLS handshake too
    self->client_.lowest_layer().shutdown(asio::socket_base::shutdown_receive, ignored);
  };
  timer.async_wait(on_deadline);
  std::optional<close_reason> refused;
  auto startup = co_await read_startup(tls);
  if (current_phase() == phase::authenticating) {
    timer.expires_at(deadline);  // the pending wait ends with operation_aborted
    timer.async_wait(on_deadline);
  }
  if (const auto* msg = std::get_if<protocol::startup_message>(&startup))
    names_ = std::make_shared<const protocol::login_names>(protocol::login_names{msg->user(), msg->database()});
  if (auto* reason = std::get_if<close_reason>(&startup)) {
    refused = *reason;
  } else if (tls && tls->mode() == config::tls_mode::require && !from_.unix_socket && !client_.tls()) {
    log::info(label() + ": refused: no TLS, and tls.mode is require");
    co_await send_error("FATAL", "28000", "pgmux requires TLS (tls.mode = require)");
    refused = close_reason::client_auth_failed;
  } else {
    const auto& msg = std::get<protocol::startup_message>(startup);
    // The settings the client asks for; clients that ask for none share one value.
    static const auto none = std::make_shared<const protocol::session_settings>();
    std::string settings_error;
    auto wanted = protocol::settings_from_startup(msg.parameters, settings_error);
    const auto replication = wanted ? protocol::replication_from_startup(msg.parameters, settings_error) : std::nullopt;
    if (!wanted || !replication) {
      co_await send_error("FATAL", wanted ? "22023" : "08P01", settings_error);
      refused = close_reason::client_protocol_error;
    } else if (*replication == protocol::replication_mode::physical) {
      co_await send_error("FATAL", "0A000",
                          "physical replication connections are not supported through pgmux: connect to the server "
                          "directly (logical replication, replication=database, is)");
      refused = close_reason::client_protocol_error;
    } else {
      replication_ = *replication == protocol::replication_mode::logical;
      wanted_settings_ = *wanted == *none ? none : std::make_shared<const protocol::session_settings>(std::move(*wanted));
      // Trust needs no exchange, so no coroutine: Asio recycles freed coroutine frames for
      // later ones, and an idle client's pending read would then hold a block as large as the
      // exchange's frame for as long as it stays connected.
      const auto choice = auth::choose_client_method({cfg.auth.rules, cfg.auth.allow_cleartext_without_tls},
                                                     {database(), user(), from_, client_.tls()});
      if (choice.method == auth::auth_method::trust) {
        method_ = auth::auth_method::trust;
      } else {
        const auto who = label();
        // Kept out of the co_await expression: GCC 12 mishandles a conditional operator there.
        std::string_view binding;
        if (client_.tls()) binding = tls->end_point();
        auto outcome = co_await authenticate_client(
            {client_, cfg, services_.routes, services_.auth_secrets, database(), user(), from_, who, deadline, binding});
        refused = outcome.refused;
        keys = std::move(outcome.keys);
        method_ = outcome.method;
      }
    }
  }
  timer.cancel();
  const bool timed_out = current_phase() == phase::login_timed_out;
  enter(phase::logging_in);
  // A handshake cut short leaves nothing to write an error into.
  if (timed_out && refused == close_reason::client_tls_failed) co_return close_reason::client_login_timeout;
  // Cut short by the timer (the reads failed), or finished too late to read from the client again.
  if (timed_out && (!refused || *refused == close_reason::client_eof)) {
    co_await send_error("FATAL", "08P01", std::holds_alternative<close_reason>(startup)
                                              ? "startup not completed within auth.startup_timeout"
                                              : "authentication not completed within auth_timeout");
    co_return close_reason::client_login_timeout;
  }
  co_return refused;
}

asio::awaitable<std::optional<close_reason>> client_session::login() {
  auto cfg = services_.routes.config();
  // TLS towards this client as configured now: a reload during the login does not change it.
  const auto tls = services_.routes.client_tls();
  max_message_size_ = clamped_u32(cfg->max_message_size);
  scram_keys keys;
  {
    // Per address first: clients refused there do not take a slot of max_authenticating.
    auth::login_slot address_slot;
    if (services_.login_limits) {
      if (!services_.login_limits->try_acquire(from_, cfg->auth.max_authenticating_per_address))
        co_return co_await refuse_busy(true, tls);
      address_slot = auth::login_slot(*services_.login_limits, from_);
    }
    authenticating_slot slot(services_.authenticating);
    if (slot.held() > cfg->auth.max_authenticating) {
      slot.release();
      address_slot.release();
      co_return co_await refuse_busy(false, tls);
    }
    if (auto refused = co_await authenticate(*cfg, tls, keys)) co_return refused;
  }

  if (database() == admin_database) {
    if (replication_) {
      co_await send_error("FATAL", "0A000", "the pgmux admin console does not take replication connections");
      co_return close_reason::client_protocol_error;
    }
    const auto& admins = cfg->admin_users;
    if (std::find(admins.begin(), admins.end(), user()) == admins.end()) {
      co_await send_error("FATAL", "28000", "not allowed to use the pgmux admin console: user \"" + user() +
                                                "\" is not in admin.users");
      co_return close_reason::client_auth_failed;
    }
    admin_ = true;
    std::string out;
    protocol::encode_authentication_ok(out);
    protocol::encode_parameter_status(out, "server_version", "15.0 (pgmux)");
    protocol::encode_parameter_status(out, "server_encoding", "UTF8");
    protocol::encode_parameter_status(out, "client_encoding", "UTF8");
    protocol::encode_parameter_status(out, "DateStyle", "ISO, MDY");
    protocol::encode_parameter_status(out, "integer_datetimes", "on");
    protocol::encode_parameter_status(out, "standard_conforming_strings", "on");
    protocol::encode_backend_key_data(out, protocol::cancel_key{1, 1});
    protocol::encode_ready_for_query(out, 'I');
    auto [ec, n] = co_await write_all(client_, asio::buffer(out));
    if (ec) co_return close_reason::client_eof;
    log::connection(label() + " logged in to the admin console (" + login_details() + ")");
    enter(phase::idle);
    co_return std::nullopt;
  }

  auto route = services_.routes.route(database(), user(), keys);
  if (!route.pool) {
    co_await send_error("FATAL", "3D000", route.error);
    co_return close_reason::unknown_database;
  }
  pool_ = std::move(route.pool);
  pool_->client_joined();
  names_ = pool_->shared_names(*names_);
  settings_ = pool_->shared_settings();
  if (replication_) co_return std::nullopt;  // serve_replication logs in to the server
  // Refusing means replacing the SQL, which the statement rewriting of transaction pooling does.
  seen_sql_.refuse_state = settings_->mode != config::pool_mode::session && settings_->max_prepared_statements > 0 &&
                           settings_->session_state == config::session_state_policy::refuse;
  prepared_.max_statements = clamped_u32(settings_->max_client_statements);
  prepared_.max_bytes = clamped_u32(settings_->max_client_statement_bytes);

  // The client's own values of tracked parameters as the server spells them (DateStyle=iso is
  // "ISO, MDY"), learned once per pool and spelling; a value the server refuses ends the login,
  // as PostgreSQL would end it.
  // Session mode: the client's server connection for its whole life is taken now, so that its
  // BackendKeyData carries that backend's own pid (pg_backend_pid(), pg_terminate_backend and
  // the sender of notifications then agree with what the client was told).
  const bool session_mode = settings_->mode == config::pool_mode::session;
  auto reported = pool_->first_report();
  auto wanted = *wanted_settings_;
  std::vector<std::size_t> unknown;
  for (std::size_t i = 0; i < wanted.tracked.size(); ++i) {
    if (!wanted.tracked[i]) continue;
    if (protocol::spelt_as_server_would(i, *wanted.tracked[i], reported ? &reported->parameters : nullptr)) continue;
    if (auto canonical = pool_->canonical_value(i, *wanted.tracked[i])) wanted.tracked[i] = std::move(*canonical);
    else unknown.push_back(i);
  }
  if (!reported || !unknown.empty() || session_mode) {
    // No server connection opened yet (to learn what the server reports), or spellings not
    // seen before: ask one.
    auto got = co_await pool_->acquire(clock::now() + settings_->query_wait_timeout, weak_from_this());
    if (auto* error = std::get_if<acquire_error>(&got)) {
      co_await send_error("FATAL", error->code, "pgmux: " + error->message);
      // A "*" entry passes unknown names on: the server is the one to say they don't exist.
      co_return error->code == "3D000" ? close_reason::unknown_database : close_reason::server_connect_failed;
    }
    auto first = std::move(std::get<lease>(got));
    reported = std::make_shared<const protocol::server_report>(protocol::make_server_report(first->parameters()));
    if (!unknown.empty()) {
      std::vector<protocol::parameter_change> asked;
      for (const auto i : unknown) asked.push_back({std::string(protocol::tracked_parameters[i]), wanted.tracked[i]});
      auto answer = co_await canonical_values(*first, asked, std::chrono::duration_cast<std::chrono::milliseconds>(cleanup_timeout));
      if (auto* refused = std::get_if<protocol::error_fields>(&answer)) {
        const bool broken = refused->severity == "FATAL";
        first.release(!broken);
        if (broken) {
          log::warn(label() + ": reading the server's spelling of startup settings failed: " + refused->message);
          co_await send_error("FATAL", "08006", "pgmux: " + refused->message);
          co_return close_reason::server_error;
        }
        co_await send_error("FATAL", refused->code, refused->message);
        co_return close_reason::client_protocol_error;
      }
      const auto& values = std::get<std::vector<std::string>>(answer);
      for (std::size_t k = 0; k < unknown.size(); ++k) {
        pool_->remember_canonical_value(unknown[k], *wanted.tracked[unknown[k]], values[k]);
        wanted.tracked[unknown[k]] = values[k];
      }
    }
    if (session_mode) lease_ = std::move(first);
    else first.release();
  }
  wanted_settings_ = pool_->shared_session_settings(std::move(wanted));
  if (auto restorable = protocol::restorable_values(*wanted_settings_, reported->settings);
      !restorable.empty())
    restorable_ = pool_->shared_restorable(std::move(restorable));
  if (lease_) {
    if (auto failed = co_await apply_settings(*lease_, *wanted_settings_,
                                              std::chrono::duration_cast<std::chrono::milliseconds>(cleanup_timeout))) {
      // The server refuses the client's startup settings, as PostgreSQL would at login.
      const bool broken = failed->severity == "FATAL";
      lease_.release(!broken);
      const std::string_view code = broken ? std::string_view("08006") : std::string_view(failed->code);
      co_await send_error("FATAL", code, failed->message);
      co_return broken ? close_reason::server_error : close_reason::client_protocol_error;
    }
    lease_->idle_in_tx_since_ns.store(0, std::memory_order_relaxed);
    lease_->tx().single_statement = false;
    lease_->replay.sent.clear();
    lease_->replay.armed = false;  // session mode replays nothing
    lease_->statements.forget_in_flight();
    set_current_server(lease_.connection());
  }

  const auto cancel_key = services_.cancels.add(*this, lease_ ? lease_->backend_key().pid : 0);
  std::string out;
  out.reserve(512);  // AuthenticationOk, about 14 ParameterStatus, BackendKeyData, ReadyForQuery
  protocol::encode_authentication_ok(out);
  // What a server would report to this client: its own values where it set them.
  protocol::encode_reported_parameters(out, *reported, *wanted_settings_);
  protocol::encode_backend_key_data(out, cancel_key);
  protocol::encode_ready_for_query(out, 'I');
  // Straight into the socket, which takes it whole as a rule: no trip through the event loop.
  auto [ec, n] = co_await write_all(client_, asio::buffer(out));
  if (ec) co_return close_reason::client_eof;
  log::connection(label() + " logged in (" + login_details() + ")");
  enter(lease_ ? phase::active : phase::idle);  // session pooling holds its connection from here
  co_return std::nullopt;
}

bool client_session::request_ready() const noexcept {
  if (buffer_.empty()) return false;
  const auto h = protocol::parse_header(buffer_.view(), max_message_size_);
  return h.status == protocol::parse_status::complete && protocol::is_frontend_message(h.hdr.tag) && h.hdr.tag != 'X' &&
         (buffer_.size() >= h.hdr.total() || buffer_.full());
}

asio::awaitable<std::optional<close_reason>> client_session::wait_for_request() {
  for (;;) {
    if (!buffer_.empty()) {
      const auto h = protocol::parse_header(buffer_.view(), max_message_size_);
      if (h.status == protocol::parse_status::invalid) {
        co_await send_error("FATAL", "08P01", std::string("invalid message: ") + h.error);
        co_return close_reason::client_protocol_error;
      }
      if (h.status == protocol::parse_status::complete) {
        if (!protocol::is_frontend_message(h.hdr.tag)) {
          co_await send_error("FATAL", "08P01", std::string("invalid frontend message type ") +
                                                    std::to_string(static_cast<unsigned char>(h.hdr.tag)));
          co_return close_reason::client_protocol_error;
        }
        if (h.hdr.tag == 'X') co_return close_reason::client_terminate;
        if (buffer_.size() >= h.hdr.total() || buffer_.full()) co_return std::nullopt;
      }
    }
    buffer_.ensure();
    auto [ec, n] = co_await client_.async_read_some(asio::buffer(buffer_.free_begin(), buffer_.free_size()), nothrow);
    if (killed_) co_return kill_reason_;
    if (idle_timed_out_) co_return close_reason::client_idle_timeout;  // before the message was whole
    if (ec) co_return close_reason::client_eof;
    buffer_.commit(n);
  }
}

// What watches a queued client: shared with the readiness wait's handler, which may outlive the
// wait for a server connection.
struct client_session::queue_watch {
  std::function<void()> leave;
  bool active = true;     // acquire() has not returned yet
  bool watching = false;  // a readiness wait on the client socket is pending
  // The event loop has polled for events since the watch began: a hang-up from before then has
  // woken it, short of one in that very poll whose wake-up is still queued.
  bool settled = false;
};

asio::awaitable<std::variant<lease, acquire_error>> client_session::acquire_server() {
  waited_ = false;
  auto got = co_await pool_->acquire(clock::now() + settings_->query_wait_timeout, weak_from_this(), this);
  if (!waited_) co_return got;  // an idle connection at once: the client was there a moment ago
  bool watched_throughout = false;
  if (auto watch = std::move(queue_watch_)) {
    watch->active = false;
    if (watch->watching) {
      watched_throughout = watch->settled;
      error_code ignored;
      client_.lowest_layer().cancel(ignored);  // the pending readiness wait, nothing else
    }
  }
  // A client that hung up while queued gets nothing run. A watch still pending, and settled,
  // saw no hang-up (one it saw would have taken the client out of the queue), short of one in
  // the loop's last poll for events, like a hang-up just after the request went on: no system
  // call more. Otherwise (short waits are not watched; a watch begun in this turn of the loop
  // has seen nothing yet; it ends early for TLS records and full buffers) the socket is asked.
  // The connection goes back untouched.
  if (auto* got_lease = std::get_if<lease>(&got); got_lease && !watched_throughout && client_hung_up()) {
    got_lease->release();
    co_return acquire_error{"", "the client left while waiting"};
  }
  co_return got;
}

void client_session::queued(std::function<void()> leave) {
  // Only a client that has queued for a while is watched: an idle connection, or one freed
  // soon after, is taken without a syscall more.
  queue_watch_ = std::make_shared<queue_watch>();
  queue_watch_->leave = std::move(leave);
  watch_queued_client(queue_watch_);
  // Queued behind the loop's next poll for events (a handler posted now runs after it, the
  // loop's own marker being ahead in the queue).
  asio::post(executor(), [watch = queue_watch_] { watch->settled = true; });
}

bool client_session::client_hung_up() {
  // POLLRDHUP sees the hang-up even behind the request the client sent before it left.
  pollfd p{client_.lowest_layer().native_handle(), POLLRDHUP, 0};
  return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

void client_session::watch_queued_client(std::shared_ptr<queue_watch> watch) {
  watch->watching = true;
  client_.lowest_layer().async_wait(
      socket_t::wait_read, [self = shared_from_this(), watch](error_code ec) {
        watch->watching = false;
        if (!watch->active) return;
        if (self->killed_) return watch->leave();
        if (ec) return;  // the relay will see what became of the socket
        auto& socket = self->client_.lowest_layer();
        if (self->client_hung_up()) return watch->leave();
        // More of the client's pipeline. Plaintext is taken into the buffer at once and the
        // watch goes on; TLS records, or a full buffer, end the watch (the deadline still holds).
        if (self->client_.tls() || self->buffer_.full()) return;
        const auto n = ::recv(socket.native_handle(), self->buffer_.free_begin(), self->buffer_.free_size(), MSG_DONTWAIT);
        if (n == 0) return watch->leave();
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return watch->leave();
        if (n > 0) self->buffer_.commit(static_cast<std::size_t>(n));
        self->watch_queued_client(watch);
      });
}

asio::awaitable<void> client_session::wait_for_cancels(server_connection& server) {
  // A broken connection is closed, never lent again: a late cancel cannot reach anyone.
  if (server.cancels_in_flight.load() == 0 || server.broken()) co_return;
  // Woken by the last cancel to land (on whichever thread sends it), else at the deadline.
  auto landed = std::make_shared<asio::steady_timer>(executor(), clock::now() + settings_->connect_timeout);
  server.on_cancels_landed([landed] { asio::post(landed->get_executor(), [landed] { landed->cancel(); }); });
  if (server.cancels_in_flight.load() > 0) co_await landed->async_wait(nothrow);
  server.on_cancels_landed(nullptr);
  if (server.cancels_in_flight.load() > 0) server.mark_broken();
}

asio::awaitable<void> client_session::return_server(bool let_finish) {
  if (!lease_) co_return;
  auto server = lease_.connection();
  // Part of a message already went to the server: its input stream cannot be completed
  // sensibly, so the connection cannot be made clean. Close it at once.
  if (cursor_.remaining > 0) {
    cursor_.remaining = 0;
    lease_.release(false);
    co_return;
  }
  // A statement left to finish may take as long as command_timeout allows.
  const auto timeout = let_finish && settings_->command_timeout > cleanup_timeout
                           ? std::chrono::duration_cast<std::chrono::milliseconds>(settings_->command_timeout)
                           : std::chrono::duration_cast<std::chrono::milliseconds>(cleanup_timeout);
  bool clean = co_await make_clean(server, timeout, let_finish);
  // Session mode, a pinned client, or a transaction that left session state (a rollback does not
  // take back a session-level advisory lock): everything of the client's goes.
  const bool discard = settings_->mode == config::pool_mode::session || pinned() ||
                       (seen_sql_.state & ~protocol::session_state::listen) != protocol::session_state::none;
  if (clean && discard) clean = co_await run_reset_query(*server, "DISCARD ALL", cleanup_timeout);
  if (clean && discard) server->forget_session(true, true);
  if (clean && !discard && !server->settings.changed_untracked.empty()) clean = co_await reset_unseen_settings(*server);
  if (seen_sql_.statements_untrusted || server->dropped_notifications > 0) clean = false;
  if (server->session_user_changed()) clean = false;
  co_await wait_for_cancels(*server);
  lease_.release(clean && server->clean());
}

void client_session::release_after_transaction() {
  bool reusable = true;
  if (lease_->dropped_notifications > 0) {
    // Someone's LISTEN stayed on this connection (SQL pgmux could not read, such as a function).
    log::info(label() + ": " + lease_->describe() + " closed: it delivered " +
              std::to_string(lease_->dropped_notifications) + " notification(s) for channels its client never LISTENed on");
    reusable = false;
  }
  if (seen_sql_.statements_untrusted) {
    log::info(label() + ": " + lease_->describe() +
              " closed: the client's SQL may have changed its prepared statements (PREPARE or DEALLOCATE inside a "
              "string or function body, or a Query longer than pgmux inspects)");
    reusable = false;
  }
  if (lease_->session_user_changed()) {
    // The session user changed in a way the SQL did not show (a function, say): never lend it on.
    log::info(label() + ": " + lease_->describe() + " closed: its session user changed to \"" +
              lease_->settings.session_authorization.value_or("") + "\"");
    reusable = false;
  }
  seen_sql_.statements_untrusted = false;
  lease_->dropped_notifications = 0;
  if (reusable) lease_.release();
  else lease_.release(false);
}

asio::awaitable<bool> client_session::carry_settings() {
  auto names = std::exchange(seen_sql_.to_read, {});
  if (std::exchange(seen_sql_.reset_all, false)) {
    // RESET ALL took every carried parameter back to its default (or the client's startup value).
    for (const auto& [name, value] : wanted_settings_->extra)
      if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  }
  if (names.empty()) co_return true;
  auto answer = co_await read_settings(*lease_, names, std::chrono::duration_cast<std::chrono::milliseconds>(cleanup_timeout));
  if (auto* failed = std::get_if<protocol::error_fields>(&answer)) {
    log::warn(label() + ": " + lease_->describe() + ": reading back the client's settings failed: " + failed->message);
    co_return false;
  }
  const auto& values = std::get<std::vector<std::optional<std::string>>>(answer);
  auto wanted = std::make_shared<protocol::session_settings>(*wanted_settings_);
  for (std::size_t k = 0; k < names.size(); ++k) protocol::note_carried_setting(*wanted, lease_->settings, names[k], values[k]);
  wanted_settings_ = std::move(wanted);
  co_return true;
}

asio::awaitable<bool> client_session::reset_session_state(protocol::session_state::set left) {
  auto& server = *lease_;
  const auto reset = protocol::session_state_reset(left);
  if (reset.sql.empty()) co_return true;
  if (!co_await run_reset_query(server, reset.sql, cleanup_timeout)) co_return false;
  // Back to the connection's login values (what the server reported was noted on the way).
  server.forget_session(reset.resets_parameters, reset.discards_all);
  log::info(label() + ": " + server.describe() + " reset (" + reset.sql + "): the transaction left session state (" +
            protocol::session_state::describe(left) + ")");
  co_return true;
}

asio::awaitable<bool> client_session::reset_unseen_settings(server_connection& server) {
  bool overflow = false;
  const auto changes = protocol::changed_behind_our_back(server.settings, overflow);
  if (overflow) {
    log::info(label() + ": " + server.describe() + " closed: the server reported more parameters changed than pgmux resets");
    co_return false;
  }
  if (!changes.empty()) {
    std::string names;
    for (const auto& c : changes) names += (names.empty() ? "" : ", ") + c.name;
    if (!co_await run_reset_query(server, protocol::build_set_sql(changes), cleanup_timeout)) co_return false;
    log::info(label() + ": " + server.describe() + " reset (" + names +
              "): the server reported them changed by SQL pgmux could not read, such as a function's SET");
  }
  server.settings.changed_untracked.clear();
  co_return true;
}

std::optional<close_reason> client_session::idle_after_transaction() noexcept {
  enter(phase::idle);
  if (draining_) return close_reason::shutdown;  // finish() says goodbye
  return std::nullopt;
}

bool client_session::put_back(const std::string& sent) {
  if (cursor_.remaining > 0 || sent.empty() || sent.size() + buffer_.size() > io_buffer::block_size) return false;
  const auto rest = buffer_.size();
  std::memmove(buffer_.data() + sent.size(), buffer_.data(), rest);
  std::memcpy(buffer_.data(), sent.data(), sent.size());
  buffer_.clear();
  buffer_.commit(sent.size() + rest);
  return true;
}

bool client_session::stale_replay(const server_connection& conn) const noexcept {
  // Read only once the request has lost a connection: no clock on the usual path.
  return replays_ > 0 && conn.opened < first_loss_ && clock::now() - first_loss_ < stale_replay_window;
}

bool client_session::may_replay(const server_connection& conn) const noexcept {
  if (stale_replay(conn)) return stale_replays_ < max_stale_replays;
  return replays_ < max_replays;
}

void client_session::count_replay(const server_connection& conn) {
  if (stale_replay(conn)) {
    ++stale_replays_;
    return;
  }
  if (replays_++ == 0) first_loss_ = clock::now();
}

asio::awaitable<std::optional<close_reason>> client_session::serve_request() {
  // Statement pooling is transaction pooling that also ends at every statement.
  const bool transaction_mode = settings_->mode != config::pool_mode::session;
  const bool statement_mode = settings_->mode == config::pool_mode::statement;
  for (;;) {
    if (!lease_) {
      if (!request_ready())
        if (auto reason = co_await wait_for_request()) co_return *reason;
      disarm_idle_deadline();
      enter(phase::waiting);
      // An idle connection at once, the usual case, takes no coroutine; else the client queues.
      auto got = pool_->try_acquire(weak_from_this());
      if (!got) got = co_await acquire_server();
      enter(std::holds_alternative<lease>(*got) ? phase::active : phase::idle);
      if (auto* error = std::get_if<acquire_error>(&*got)) co_return co_await refuse_request(std::move(*error));
      lease_ = std::move(std::get<lease>(*got));
      lease_->idle_in_tx_since_ns.store(0, std::memory_order_relaxed);
      lease_->tx().single_statement = statement_mode;
      lease_->replay.sent.clear();
      lease_->replay.armed = transaction_mode && may_replay(*lease_.connection());
      lease_->statements.forget_in_flight();
      set_current_server(lease_.connection());
      if (settings_differ(*lease_, *wanted_settings_)) {
        bool retry = false;
        if (auto reason = co_await apply_client_settings(retry)) co_return *reason;
        if (retry) continue;  // another connection
      }
    }
    const bool rewrite_statements = transaction_mode && settings_->max_prepared_statements > 0;
    const bool query_stats = settings_->query_stats.max_entries > 0;
    const auto r = co_await relay(client_side{client_, buffer_, cursor_, killed_, max_message_size_, draining_,
                                              rewrite_statements ? &prepared_ : nullptr,
                                              transaction_mode ? &wanted_settings_ : nullptr,
                                              transaction_mode ? &seen_sql_ : nullptr, restorable_.get(),
                                              query_stats ? &pool_->queries() : nullptr,
                                              query_stats ? pool_->query_statements() : nullptr,
                                              query_stats ? &statement_names_ : nullptr},
                                  *lease_, transaction_mode && !pinned());
    if (r.end != relay_end::transaction_done) {
      if (auto reason = co_await end_relay(r)) co_return *reason;
      continue;  // the request goes to another connection
    }
    replays_ = stale_replays_ = 0;
    if (statement_mode && !lease_->tx().idle()) {
      // The statement opened a transaction block, which statement pooling cannot keep.
      set_current_server(nullptr);
      co_await send_error("FATAL", "25000", "transaction blocks are not allowed in statement pooling mode");
      co_await return_server();
      co_return close_reason::transaction_in_statement_mode;
    }
    if (lease_->tx().idle() && (!transaction_mode || pinned()) && draining_) {
      // Session mode, shutting down: the open transaction has ended, so may the session.
      set_current_server(nullptr);
      co_await return_server();
      co_return close_reason::shutdown;
    }
    if (lease_->tx().idle() && transaction_mode) {
      // The relay ends only with both directions at a message boundary.
      if (cursor_.remaining > 0) throw std::logic_error("transaction ended in the middle of a client message");
      if ((!seen_sql_.to_read.empty() || seen_sql_.reset_all) && !co_await carry_settings()) {
        set_current_server(nullptr);
        lease_.release(false);
        co_return idle_after_transaction();
      }
      namespace state = protocol::session_state;
      // What the transaction left on the connection besides LISTEN.
      const auto left = static_cast<state::set>(std::exchange(seen_sql_.state, state::none) & ~state::listen);
      // LISTEN: notifications arrive whenever they do, so the client keeps this server
      // connection from now on, as in session mode (under "reset" too: a reset would end it).
      // Session state under "pin" does the same.
      auto keep = seen_sql_.listening.empty() ? state::none : state::listen;
      if (settings_->session_state == config::session_state_policy::pin) keep |= left;
      if (keep != state::none) {
        pin(keep);
        continue;
      }
      set_current_server(nullptr);
      if (lease_->cancels_in_flight.load() > 0) co_await wait_for_cancels(*lease_);
      // "reset" (and "refuse" where pgmux cannot rewrite the SQL, max_prepared_statements 0).
      // Each check is made here, not in the coroutine: almost every transaction needs none.
      if ((left != state::none && !co_await reset_session_state(left)) ||
          (!lease_->settings.changed_untracked.empty() && !co_await reset_unseen_settings(*lease_))) {
        lease_.release(false);
        co_return idle_after_transaction();
      }
      release_after_transaction();
      co_return idle_after_transaction();
    }
    continue;  // session mode, or a transaction still open: the next request
  }
}

asio::awaitable<close_reason> client_session::refuse_request(acquire_error error) {
  // An empty code: hung up (or killed) while queued, and nothing it sent is run.
  if (error.code.empty()) co_return killed_ ? kill_reason_ : close_reason::client_eof;
  log::warn(label() + ": " + error.message);
  co_await send_error("FATAL", error.code, "pgmux: " + error.message);
  co_return error.code == "53300" ? close_reason::query_wait_timeout : close_reason::server_connect_failed;
}

asio::awaitable<std::optional<close_reason>> client_session::apply_client_settings(bool& retry) {
  auto failed = co_await apply_settings(*lease_, *wanted_settings_,
                                        std::chrono::duration_cast<std::chrono::milliseconds>(cleanup_timeout));
  if (!failed) co_return std::nullopt;
  auto reason = co_await refuse_settings(std::move(*failed));
  retry = !reason;
  co_return reason;
}

asio::awaitable<std::optional<close_reason>> client_session::refuse_settings(protocol::error_fields failed) {
  set_current_server(nullptr);
  if (failed.severity == "FATAL") {
    log::warn(label() + ": " + lease_->describe() + ": applying session settings failed: " + failed.message);
    // Nothing of the client's went out yet: another connection, as for a request (may_replay).
    const bool again = may_replay(*lease_.connection());
    if (again) count_replay(*lease_.connection());
    lease_.release(false);
    if (again) co_return std::nullopt;
    co_await send_error("FATAL", "08006", "pgmux: server connection lost while applying session settings");
    co_return close_reason::server_error;
  }
  // The server refuses the client's startup settings, as PostgreSQL would have at login.
  lease_.release();
  co_await send_error("FATAL", failed.code, failed.message);
  co_return close_reason::client_protocol_error;
}

asio::awaitable<std::optional<close_reason>> client_session::end_relay(relay_result r) {
  switch (r.end) {
    case relay_end::transaction_done:
      throw std::logic_error("end_relay of a finished transaction");
    case relay_end::client_terminate:
      set_current_server(nullptr);
      co_await return_server(/*let_finish=*/true);
      co_return close_reason::client_terminate;
    case relay_end::client_eof:
      set_current_server(nullptr);
      co_await return_server();
      co_return close_reason::client_eof;
    case relay_end::client_protocol_error:
      set_current_server(nullptr);
      co_await send_error("FATAL", "08P01", std::string("invalid message: ") + (r.error ? r.error : "protocol violation"));
      co_await return_server();
      co_return close_reason::client_protocol_error;
    case relay_end::killed: {
      set_current_server(nullptr);
      const auto reason = kill_reason_;
      if (reason == close_reason::idle_transaction_timeout)
        co_await send_error("FATAL", "25P03", "terminating connection due to idle-in-transaction timeout");
      else if (reason == close_reason::server_error)  // the pool gave up after cancel_grace
        co_await send_error("FATAL", "57014", "canceling statement: it did not stop within cancel_grace of its "
                                              "cancel request, so its server connection was closed");
      else if (reason != close_reason::client_eof)
        co_await send_error("FATAL", "57P01", std::string("terminating connection: ") + to_string(reason));
      killed_ = false;  // let the cleanup use the sockets
      co_await return_server();
      co_return reason;
    }
    case relay_end::server_lost:
      if (put_back(lease_->replay.sent)) {
        // Dead before it answered anything: the request goes to another connection.
        log::info(label() + ": " + lease_->describe() + ": " + r.error + "; sending the request again");
        set_current_server(nullptr);
        count_replay(*lease_.connection());
        lease_.release(false);
        co_return std::nullopt;
      }
      [[fallthrough]];
    case relay_end::server_error: {
      set_current_server(nullptr);
      log::warn(label() + ": " + lease_->describe() + ": " + (r.error ? r.error : "server error"));
      // The server's own FATAL (57P01 administrator command, say) reached the client: as from
      // PostgreSQL, that is the last word before the socket closes.
      const bool told = lease_->tx().server_fatal;
      lease_.release(false);
      // Named, not a temporary of a conditional expression inside co_await: GCC 12 destroys
      // those twice.
      std::string lost = "server connection lost";
      if (r.error) lost += std::string(": ") + r.error;
      if (!told) co_await send_error("FATAL", "08006", lost);
      co_return close_reason::server_error;
    }
  }
  throw std::logic_error("a relay end end_relay does not know");
}

}  // namespace pgmux::net
