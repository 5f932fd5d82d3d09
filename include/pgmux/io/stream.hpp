// A connection's byte stream: the socket, or TLS over it once started. Reads and writes pick
// the active one at run time, so the session, the relay and the admin console are written once
// for both. The plaintext path hands the completion handler straight to the socket: no
// allocation and no coroutine frame beyond what a bare socket costs. The TLS path goes through a
// type-erased handler (recycled memory) into src/io/stream.cpp, which alone sees asio/ssl.hpp.
// Works with asio::async_write like any AsyncWriteStream.
#pragma once
#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/buffer.hpp>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "pgmux/io/answer_read.hpp"
#include "pgmux/io/io.hpp"

namespace pgmux::net {

class tls_server_context;
class tls_client_context;

class stream {
 public:
  using executor_type = socket_t::executor_type;
  using handler_type = asio::any_completion_handler<void(error_code, std::size_t)>;

  explicit stream(socket_t socket);
  explicit stream(const executor_type& ex);
  ~stream();
  // Not movable: the TLS layer refers to the socket member.
  stream(const stream&) = delete;
  stream& operator=(const stream&) = delete;

  executor_type get_executor() noexcept { return socket_.get_executor(); }
  // The socket itself, under TLS too: cancel, poll, peek, shutdown and connect act on it.
  socket_t& lowest_layer() noexcept { return socket_; }
  bool tls() const noexcept { return tls_ != nullptr; }

  template <typename MutableBufferSequence, typename Token>
  auto async_read_some(const MutableBufferSequence& buffers, Token&& token) {
    return asio::async_initiate<Token, void(error_code, std::size_t)>(
        [this](auto handler, const MutableBufferSequence& b) {
          if (!tls_) socket_.async_read_some(b, std::move(handler));
          else tls_read_some(first_buffer<asio::mutable_buffer>(b), handler_type(std::move(handler)));
        },
        token, buffers);
  }

  // The read of a peer's answer to a request this stream has just sent, the caller having not
  // suspended since: on a plaintext socket it waits for epoll before its first recv, which could
  // only find nothing (answer_read.hpp).
  template <typename Token>
  auto async_read_answer(asio::mutable_buffer buffer, Token&& token) {
    return asio::async_initiate<Token, void(error_code, std::size_t)>(
        [this](auto handler, asio::mutable_buffer b) {
          if (tls_) {
            tls_read_some(b, handler_type(std::move(handler)));
            return;
          }
          skip_first_recv skip;
          socket_.async_read_some(answer_read_buffer(b), std::move(handler));
        },
        token, buffer);
  }

  template <typename ConstBufferSequence, typename Token>
  auto async_write_some(const ConstBufferSequence& buffers, Token&& token) {
    return asio::async_initiate<Token, void(error_code, std::size_t)>(
        [this](auto handler, const ConstBufferSequence& b) {
          if (!tls_) socket_.async_write_some(b, std::move(handler));
          else tls_write_some(first_buffer<asio::const_buffer>(b), handler_type(std::move(handler)));
        },
        token, buffers);
  }

  // TLS as the server, after answering a client's SSLRequest with 'S'.
  asio::awaitable<error_code> accept_tls(std::shared_ptr<const tls_server_context> context);
  // TLS as the client, after PostgreSQL answered pgmux's SSLRequest with 'S'. `host` is sent
  // as SNI when `sni` and it is a name (not an address), and checked against the server's
  // certificate when `verify_host` (sslmode verify-full).
  asio::awaitable<error_code> connect_tls(std::shared_ptr<const tls_client_context> context, const std::string& host,
                                          bool sni, bool verify_host);
  // Why the handshake that returned `ec` failed, with the certificate check's verdict if any.
  std::string tls_failure(const error_code& ec) const;

  // "TLSv1.3 TLS_AES_256_GCM_SHA384", or "" without TLS. For log lines.
  std::string tls_description() const;
  // The common name of the peer's certificate, when it sent one and it verified; nullopt
  // otherwise (no TLS, no certificate, no CN, or a CN with a NUL byte).
  std::optional<std::string> peer_common_name() const;

  // Writes what fits without waiting (for a last message before closing); bytes written.
  std::size_t write_now(std::string_view bytes) noexcept;
  // Plaintext: sends what the socket takes now, one send() (0 when it takes nothing or fails:
  // the wait that follows reports why). Under TLS: 0, nothing sent.
  std::size_t try_write(asio::const_buffer bytes) noexcept;
  // Reads what the socket holds now into `into`, without waiting and without the event loop: the
  // bytes read, 0 when there are none (or at end of file, or under TLS; an asynchronous read then
  // tells which). For a read whose bytes are surely there already (the rest of a packet whose
  // start just came).
  std::size_t try_read(asio::mutable_buffer into) noexcept;
  // Ends TLS with a close_notify (without waiting for the peer's), then shuts down and closes
  // the socket. Nothing may be pending on the stream. `peer_done`: the peer said goodbye
  // (Terminate) and sends nothing more, so that close alone ends the connection as cleanly
  // (a FIN, no reset for unread bytes) and the shutdown is a system call for nothing.
  void close(bool peer_done = false) noexcept;
  // Closes and forgets TLS, so that the socket can connect afresh.
  void reset() noexcept;
  // Hands the socket (and TLS over it) to another event loop. Nothing may be pending on it.
  void move_to(const executor_type& ex);

 private:
  struct tls_layer;

  template <typename Buffer, typename Sequence>
  static Buffer first_buffer(const Sequence& buffers) {
    for (auto it = asio::buffer_sequence_begin(buffers); it != asio::buffer_sequence_end(buffers); ++it) {
      Buffer b(*it);
      if (b.size() != 0) return b;
    }
    return Buffer();
  }

  void tls_read_some(asio::mutable_buffer buffer, handler_type handler);
  void tls_write_some(asio::const_buffer buffer, handler_type handler);

  socket_t socket_;
  std::unique_ptr<tls_layer> tls_;
};

// Writes all of `bytes`, as asio::async_write does. A plaintext socket that takes them at once,
// the usual case for a relay's messages, costs one send() and no trip through the event loop.
// Only one write may be under way on a stream at a time (as with async_write).
asio::awaitable<std::tuple<error_code, std::size_t>> write_all(stream& s, asio::const_buffer bytes);

// Hands `socket` (of `protocol`, nothing pending on it) to the event loop of `ex`: it leaves its
// loop's reactor and joins the other's. On failure the socket is left closed, and the connection
// fails at its next operation.
void move_socket(socket_t& socket, const socket_t::executor_type& ex, const asio::generic::stream_protocol& protocol);

}  // namespace pgmux::net
