// Server connections: connect, TLS, startup, authenticate as a client, close; CancelRequests
// (sent without TLS, as libpq 15 sends them).
#include "pgmux/server/server_connection.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <cstring>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include "pgmux/server/server_auth.hpp"
#include "pgmux/io/timeout.hpp"
#include "pgmux/protocol/decode.hpp"
#include "pgmux/protocol/encode.hpp"
#include "pgmux/protocol/frame.hpp"

namespace pgmux::net {

asio::awaitable<server_connection::message_read> server_connection::read_message() {
  for (;;) {
    message_read read;
    read.frame = protocol::parse_frame(buffer_.view(), io_buffer::block_size);
    if (read.frame.status == protocol::parse_status::complete) co_return read;
    if (read.frame.status == protocol::parse_status::invalid) {
      // parse_frame calls a message longer than the buffer invalid too: its header tells which.
      const bool too_long = protocol::parse_header(buffer_.view(), io_buffer::block_size).hdr.length >= 4;
      read.error = too_long ? "a message from the server longer than pgmux reads whole (" + std::to_string(io_buffer::block_size) + " bytes)"
                            : std::string("invalid message from the server: ") + read.frame.error;
      co_return read;
    }
    auto [ec, n] = co_await socket_.async_read_some(asio::buffer(buffer_.free_begin(), buffer_.free_size()), nothrow);
    if (ec) {
      read.frame.status = protocol::parse_status::invalid;
      read.error = ec == asio::error::eof ? "the server closed the connection" : ec.message();
      read.lost = true;
      co_return read;
    }
    buffer_.commit(n);
  }
}

asio::awaitable<error_code> connect_socket(socket_t& socket, const server_address& address) {
  error_code ec;
  if (!address.host.empty() && address.host[0] == '/') {
    const std::string path = address.host + "/.s.PGSQL." + std::to_string(address.port);
    std::tie(ec) = co_await socket.async_connect(asio::local::stream_protocol::endpoint(path), nothrow);
    co_return ec;
  }
  asio::ip::tcp::resolver resolver(socket.get_executor());
  auto [rec, endpoints] = co_await resolver.async_resolve(address.host, std::to_string(address.port), nothrow);
  if (rec) co_return rec;
  ec = asio::error::host_not_found;
  for (const auto& entry : endpoints) {
    if (socket.is_open()) socket.close(ec);
    std::tie(ec) = co_await socket.async_connect(asio::generic::stream_protocol::endpoint(entry.endpoint()), nothrow);
    if (!ec) {
      error_code ignored;
      socket.set_option(asio::ip::tcp::no_delay(true), ignored);
      co_return ec;
    }
  }
  co_return ec;
}

server_connection::server_connection(asio::io_context::executor_type ex, std::uint64_t id) : id_(id), socket_(ex) {
  buffer_.ensure();
}

void server_connection::forget_session(bool settings_reset, bool statements_dropped) noexcept {
  if (settings_reset) settings = startup_settings;
  if (statements_dropped) {
    prepared.statements.clear();
    prepared.unnamed_client = 0;
  }
}

std::string server_connection::describe() const {
  return "server " + std::to_string(id_) + " (" + address_.host + ":" + std::to_string(address_.port) + " pid " +
         std::to_string(backend_key_.pid) + ")";
}

namespace {

// "127.0.0.1:41234" for TCP, "unix" for a Unix-domain socket.
std::string describe_local_end(socket_t& socket) {
  error_code ec;
  const auto local = socket.local_endpoint(ec);
  if (ec) return {};
  const auto* sa = local.data();
  if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6) return "unix";
  asio::ip::tcp::endpoint tcp;
  std::memcpy(tcp.data(), sa, local.size());
  return tcp.address().to_string() + ":" + std::to_string(tcp.port());
}

}  // namespace

asio::awaitable<std::string> server_connection::open(const server_login& login) {
  address_ = login.address;
  auto result = co_await with_timeout(this->login(login), login.timeout);
  if (!result) {
    broken_ = true;
    close();
    co_return "connect to " + address_.host + ":" + std::to_string(address_.port) + " timed out after " +
        std::to_string(login.timeout.count()) + "ms";
  }
  if (!result->empty()) {
    broken_ = true;
    close();
  }
  co_return std::move(*result);
}

asio::awaitable<std::string> server_connection::login(const server_login& login) {
  const auto mode = login.tls.mode;
  // allow: without TLS first, with TLS when the server refuses that login; prefer and
  // stronger: TLS first (prefer goes on without it when the server has none, or tries again
  // without it when the handshake fails), as libpq.
  bool use_tls = mode != config::ssl_mode::disable && mode != config::ssl_mode::allow;
  auto first = co_await try_login(login, use_tls);
  if (first.error.empty() || !first.retry) co_return std::move(first.error);
  const std::string first_refusal = std::move(refusal_code_);
  socket_.reset();
  buffer_.clear();
  buffer_.ensure();
  parameters_.clear();
  backend_key_ = {};
  refusal_code_.clear();
  auto second = co_await try_login(login, !use_tls);
  if (!second.error.empty() && mode == config::ssl_mode::allow && refusal_code_.empty()) {
    // The server has no TLS to offer: its refusal of the plaintext login stands.
    refusal_code_ = first_refusal;
    co_return std::move(first.error);
  }
  co_return std::move(second.error);
}

asio::awaitable<server_connection::attempt> server_connection::start_tls(const server_tls& tls) {
  const bool required = tls.mode >= config::ssl_mode::require;
  std::string out;
  protocol::encode_ssl_request(out);
  auto [ec, n] = co_await asio::async_write(socket_, asio::buffer(out), nothrow);
  if (ec) co_return attempt{"write to server failed: " + ec.message()};
  // Exactly one byte: anything the server sent after it must come through the handshake.
  char answer = 0;
  std::tie(ec, n) = co_await asio::async_read(socket_, asio::buffer(&answer, 1), nothrow);
  if (ec) co_return attempt{"server closed the connection during TLS negotiation: " + ec.message()};
  if (answer == 'N') {
    if (!required) co_return attempt{};  // prefer (or allow's second try): on without TLS
    refusal_code_ = "08001";
    co_return attempt{std::string("the server does not support TLS, and sslmode is ") + config::to_string(tls.mode)};
  }
  if (answer != 'S') {
    // An ErrorResponse here comes from a server too old to know SSLRequest.
    if (!required) co_return attempt{"server refused TLS negotiation", true};
    refusal_code_ = "08001";
    co_return attempt{std::string("server answered the SSLRequest with '") + answer + "'"};
  }
  if (auto failed = co_await socket_.connect_tls(tls.context, tls.host, tls.sni, tls.mode == config::ssl_mode::verify_full)) {
    const std::string why = "TLS handshake with the server failed: " + socket_.tls_failure(failed);
    if (tls.mode == config::ssl_mode::prefer) co_return attempt{why, true};
    refusal_code_ = "08001";  // a certificate that does not verify will not verify on the next try
    co_return attempt{why};
  }
  co_return attempt{};
}

asio::awaitable<server_connection::attempt> server_connection::try_login(const server_login& login, bool use_tls) {
  if (auto ec = co_await connect_socket(socket_.lowest_layer(), login.address))
    co_return attempt{"cannot connect to " + login.address.host + ":" + std::to_string(login.address.port) + ": " + ec.message()};
  if (use_tls) {
    auto negotiated = co_await start_tls(login.tls);
    if (!negotiated.error.empty()) co_return negotiated;
    if (!socket_.tls() && login.tls.mode == config::ssl_mode::allow)
      co_return attempt{"the server refused the login without TLS and does not support TLS"};
  }

  protocol::parameter_list startup{{"user", login.user}, {"database", login.database}};
  const bool own_application_name = std::any_of(login.extra_parameters.begin(), login.extra_parameters.end(),
                                                [](const auto& p) { return p.first == "application_name"; });
  if (!login.application_name.empty() && !own_application_name)
    startup.emplace_back("application_name", login.application_name);
  if (!login.options.empty()) startup.emplace_back("options", login.options);
  startup.insert(startup.end(), login.extra_parameters.begin(), login.extra_parameters.end());
  std::string out;
  protocol::encode_startup_message(out, startup);
  server_auth auth(login.user, login.password, login.passthrough);
  for (;;) {
    if (!out.empty()) {
      auto [ec, n] = co_await asio::async_write(socket_, asio::buffer(out), nothrow);
      if (ec) co_return attempt{"write to server failed: " + ec.message()};
      out.clear();
    }
    const auto read = co_await read_message();
    if (!read.complete()) co_return attempt{"server login failed: " + read.error};
    const auto& r = read.frame;
    const auto body = r.msg.body;
    switch (r.msg.tag) {
      case 'R': {
        auto request = protocol::decode_authentication(body);
        if (!request) co_return attempt{"malformed authentication request from server"};
        auto step = auth.handle(*request);
        if (!step.error.empty()) {
          refusal_code_ = "28000";
          co_return attempt{"server authentication failed: " + step.error};
        }
        out = std::move(step.reply);
        break;
      }
      case 'E': {
        auto fields = protocol::decode_error_response(body);
        refusal_code_ = fields && !fields->code.empty() ? fields->code : "08004";
        // sslmode allow: a server that refuses a login without TLS may take one with it.
        const bool retry = login.tls.mode == config::ssl_mode::allow && !socket_.tls();
        co_return attempt{"server refused login: " + (fields ? fields->message + " (SQLSTATE " + fields->code + ")"
                                                             : std::string("malformed error")),
                          retry};
      }
      case 'S':
        if (auto p = protocol::decode_parameter_status(body)) parameters_.push_back(std::move(*p));
        break;
      case 'K':
        if (auto key = protocol::decode_backend_key_data(body)) backend_key_ = *key;
        break;
      case 'Z':
        buffer_.consume(r.consumed);
        if (!buffer_.empty()) {
          // A server that shuts down just after a login ends it at once (FATAL 57P01 and the
          // like): keep its SQLSTATE, which tells a restart from an unreachable server.
          const auto next = protocol::parse_frame(buffer_.view(), 64 * 1024);
          if (next.status == protocol::parse_status::complete && next.msg.tag == 'E') {
            auto fields = protocol::decode_error_response(next.msg.body);
            refusal_code_ = fields && !fields->code.empty() ? fields->code : "08004";
            co_return attempt{"server ended the connection right after login: " +
                              (fields ? fields->message + " (SQLSTATE " + fields->code + ")" : std::string("malformed error"))};
          }
          co_return attempt{"unexpected data after ReadyForQuery at login"};
        }
        tx_ = protocol::tx_tracker{};
        connected_at = std::chrono::system_clock::now();
        opened = clock::now();
        startup_settings = settings = protocol::settings_from_status(parameters_);
        local_address = describe_local_end(socket_.lowest_layer());
        tls = socket_.tls_description();
        co_return attempt{};
      case 'N':
      case 'v':
        break;
      default:
        co_return attempt{std::string("unexpected message '") + r.msg.tag + "' during server login"};
    }
    buffer_.consume(r.consumed);
  }
}

void server_connection::flush_figures() noexcept {
  if (!counters) return;
  if (figures.bytes_to_server) counters->bytes_to_server.fetch_add(figures.bytes_to_server, std::memory_order_relaxed);
  if (figures.bytes_to_client) counters->bytes_to_client.fetch_add(figures.bytes_to_client, std::memory_order_relaxed);
  figures.bytes_to_server = figures.bytes_to_client = 0;
  figures.statements.flush_into(counters->statement_seconds);
  if (prepared.prepares) counters->statements_prepared.fetch_add(prepared.prepares, std::memory_order_relaxed);
  if (prepared.stale_statements) counters->statements_stale.fetch_add(prepared.stale_statements, std::memory_order_relaxed);
  prepared.prepares = prepared.stale_statements = 0;
}

bool server_connection::looks_alive() {
  auto& socket = socket_.lowest_layer();
  if (!socket.is_open() || broken()) return false;
  // Under TLS too: an idle server sends nothing, not even a TLS record.
  char byte;
  const auto n = ::recv(socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

void server_connection::close() {
  if (!socket_.lowest_layer().is_open()) return;
  if (!broken() && tx_.idle()) {
    std::string terminate;
    protocol::encode_terminate(terminate);
    socket_.write_now(terminate);
  }
  socket_.close();
}

asio::awaitable<bool> send_cancel_request(server_address address, protocol::cancel_key key,
                                          std::chrono::milliseconds timeout) {
  socket_t socket(loop_executor(co_await asio::this_coro::executor));
  auto send = [&]() -> asio::awaitable<error_code> {
    if (auto ec = co_await connect_socket(socket, address)) co_return ec;
    std::string out;
    protocol::encode_cancel_request(out, key);
    auto [ec, n] = co_await asio::async_write(socket, asio::buffer(out), nothrow);
    if (ec) co_return ec;
    // PostgreSQL closes the connection once it has handled the request.
    char byte;
    std::tie(ec, n) = co_await socket.async_read_some(asio::buffer(&byte, 1), nothrow);
    co_return error_code{};
  };
  const auto sent = co_await with_timeout(send(), timeout);
  error_code ignored;
  socket.close(ignored);
  co_return sent && !*sent;
}

bool server_connection::abort_request() {
  if (aborted_.exchange(true, std::memory_order_acq_rel)) return false;
  // A raw shutdown, not an Asio call: the session owns the socket and may be waiting on it in
  // another thread; this only makes its pending read end (EOF). The close that follows, with
  // unread data, resets the connection, which ends a backend blocked writing to it.
  ::shutdown(socket_.lowest_layer().native_handle(), SHUT_RDWR);
  return true;
}

asio::awaitable<void> cancel_running_query(std::shared_ptr<server_connection> conn, std::chrono::milliseconds timeout) {
  conn->cancelled_request_ns.store(conn->busy_since_ns.load(std::memory_order_relaxed), std::memory_order_relaxed);
  conn->cancel_at_ns.store(now_ns(), std::memory_order_relaxed);
  if (conn->broken()) {  // given up on already: nothing left to cancel
    conn->cancel_landed();
    co_return;
  }
  if (const auto cap = conn->cancel_timeout_cap_ns.load(std::memory_order_relaxed); cap > 0)
    timeout = std::min(timeout, std::chrono::ceil<std::chrono::milliseconds>(std::chrono::nanoseconds(cap)));
  if (!co_await send_cancel_request(conn->address(), conn->backend_key(), timeout)) conn->mark_unusable();
  conn->cancel_landed();
}

void server_connection::cancel_landed() {
  if (cancels_in_flight.fetch_sub(1) != 1) return;
  std::function<void()> wake;
  {
    std::lock_guard lock(landed_mu_);
    wake = cancels_landed_;
  }
  if (wake) wake();
}

void server_connection::on_cancels_landed(std::function<void()> callback) {
  std::lock_guard lock(landed_mu_);
  cancels_landed_ = std::move(callback);
}

}  // namespace pgmux::net
