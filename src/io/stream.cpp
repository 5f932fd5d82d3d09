// The TLS side of net::stream: Asio SSL streams over the connection's socket.
#include "pgmux/io/stream.hpp"

#include <unistd.h>

#include <sys/socket.h>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/write.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "pgmux/io/tls.hpp"

namespace pgmux::net {

struct stream::tls_layer {
  tls_layer(socket_t& socket, asio::ssl::context& context, std::shared_ptr<const void> owner)
      : keep_alive(std::move(owner)), ssl(socket, context) {}
  std::shared_ptr<const void> keep_alive;  // the context outlives the sessions made from it
  asio::ssl::stream<socket_t&> ssl;
};

stream::stream(socket_t socket) : socket_(std::move(socket)) {}
stream::stream(const executor_type& ex) : socket_(ex) {}
stream::~stream() = default;

void stream::move_to(const executor_type& ex) {
  error_code ec;
  const auto family = socket_.local_endpoint(ec).protocol().family();
  if (ec) return;  // a dead socket: the next operation on it fails, as it would have anyway
  // The TLS layer refers to this member, not to the object it held: it follows the move.
  move_socket(socket_, ex, asio::generic::stream_protocol(family, 0));
}

void move_socket(socket_t& socket, const socket_t::executor_type& ex, const asio::generic::stream_protocol& protocol) {
  error_code ec;
  const auto fd = socket.release(ec);
  if (ec) return;
  socket = socket_t(ex);
  socket.assign(protocol, fd, ec);
  if (ec) ::close(fd);
}

void stream::tls_read_some(asio::mutable_buffer buffer, handler_type handler) {
  tls_->ssl.async_read_some(buffer, std::move(handler));
}

void stream::tls_write_some(asio::const_buffer buffer, handler_type handler) {
  tls_->ssl.async_write_some(buffer, std::move(handler));
}

asio::awaitable<error_code> stream::accept_tls(std::shared_ptr<const tls_server_context> context) {
  auto& native = context->native();
  tls_ = std::make_unique<tls_layer>(socket_, native, std::move(context));
  auto [ec] = co_await tls_->ssl.async_handshake(asio::ssl::stream_base::server, nothrow);
  co_return ec;
}

asio::awaitable<error_code> stream::connect_tls(std::shared_ptr<const tls_client_context> context,
                                                const std::string& host, bool sni, bool verify_host) {
  auto& native = context->native();
  tls_ = std::make_unique<tls_layer>(socket_, native, std::move(context));
  SSL* ssl = tls_->ssl.native_handle();
  error_code not_ip;
  asio::ip::make_address(host, not_ip);
  const bool is_name = !host.empty() && static_cast<bool>(not_ip);
  if (sni && is_name) SSL_set_tlsext_host_name(ssl, host.c_str());
  if (verify_host) {
    // The names in the certificate's subjectAltName (its CN when it has none), leading "*."
    // wildcards only, as libpq; an address is matched against the IP address entries.
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    const int set = is_name ? SSL_set1_host(ssl, host.c_str()) : X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str());
    if (set != 1) {
      ERR_clear_error();
      co_return asio::error::invalid_argument;
    }
  }
  auto [ec] = co_await tls_->ssl.async_handshake(asio::ssl::stream_base::client, nothrow);
  co_return ec;
}

std::string stream::tls_failure(const error_code& ec) const {
  std::string text = ec.message();
  if (tls_) {
    const long verdict = SSL_get_verify_result(tls_->ssl.native_handle());
    if (verdict != X509_V_OK) text += ": " + std::string(X509_verify_cert_error_string(verdict));
  }
  ERR_clear_error();
  return text;
}

std::string stream::tls_description() const {
  if (!tls_) return {};
  const SSL* ssl = tls_->ssl.native_handle();
  const char* version = SSL_get_version(ssl);
  const char* cipher = SSL_get_cipher_name(ssl);
  return std::string(version ? version : "TLS") + " " + (cipher ? cipher : "");
}

std::optional<std::string> stream::peer_common_name() const {
  if (!tls_) return std::nullopt;
  const SSL* ssl = tls_->ssl.native_handle();
  X509* cert = SSL_get0_peer_certificate(ssl);
  if (!cert || SSL_get_verify_result(ssl) != X509_V_OK) return std::nullopt;
  X509_NAME* subject = X509_get_subject_name(cert);
  const int at = subject ? X509_NAME_get_index_by_NID(subject, NID_commonName, -1) : -1;
  if (at < 0) return std::nullopt;
  unsigned char* utf8 = nullptr;
  const int len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, at)));
  if (len < 0) {
    ERR_clear_error();
    return std::nullopt;
  }
  std::string name(reinterpret_cast<const char*>(utf8), static_cast<std::size_t>(len));
  OPENSSL_free(utf8);
  if (name.find('\0') != std::string::npos) return std::nullopt;  // "user\0.evil.example" tricks
  return name;
}

std::size_t stream::write_now(std::string_view bytes) noexcept {
  if (!socket_.is_open()) return 0;
  if (!tls_) return try_write(asio::buffer(bytes.data(), bytes.size()));
  error_code ec;
  socket_.non_blocking(true, ec);  // the synchronous TLS write below must not wait
  if (ec) return 0;
  const auto n = asio::write(tls_->ssl, asio::buffer(bytes.data(), bytes.size()), ec);
  ERR_clear_error();
  return n;
}

std::size_t stream::try_write(asio::const_buffer bytes) noexcept {
  if (tls_ || bytes.size() == 0) return 0;
  const auto n = ::send(socket_.native_handle(), bytes.data(), bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  return n > 0 ? static_cast<std::size_t>(n) : 0;
}

std::size_t stream::try_read(asio::mutable_buffer into) noexcept {
  if (tls_ || into.size() == 0) return 0;
  const auto n = ::recv(socket_.native_handle(), into.data(), into.size(), MSG_DONTWAIT);
  return n > 0 ? static_cast<std::size_t>(n) : 0;
}

asio::awaitable<std::tuple<error_code, std::size_t>> write_all(stream& s, asio::const_buffer bytes) {
  const auto sent = s.try_write(bytes);
  if (sent == bytes.size()) co_return std::tuple{error_code{}, sent};
  auto [ec, n] = co_await asio::async_write(s, asio::buffer(bytes + sent), nothrow);
  co_return std::tuple{ec, sent + n};
}

void stream::close(bool peer_done) noexcept {
  error_code ignored;
  if (tls_ && socket_.is_open()) {
    // close_notify goes out if the socket takes it now; the peer's answer is not awaited
    // (the non-blocking read for it fails at once).
    socket_.non_blocking(true, ignored);
    tls_->ssl.shutdown(ignored);
    ERR_clear_error();
  }
  // The FIN first: a close with unread bytes would send a reset, which may cost the peer what
  // was written just before (an error message). Not needed when the peer is done.
  if (!peer_done) socket_.shutdown(asio::socket_base::shutdown_both, ignored);
  socket_.close(ignored);
}

void stream::reset() noexcept {
  error_code ignored;
  socket_.close(ignored);
  tls_.reset();
}

}  // namespace pgmux::net
