// Client authentication exchanges: SCRAM-SHA-256(-PLUS), MD5, cleartext password, client
// certificates, trust and reject.
#include "pgmux/session/client_login_auth.hpp"

#include <algorithm>
#include <variant>

#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include "pgmux/log.hpp"
#include "pgmux/auth/client_auth.hpp"
#include "pgmux/auth/crypto.hpp"
#include "pgmux/auth/md5.hpp"
#include "pgmux/auth/scram_server.hpp"
#include "pgmux/auth/secret.hpp"
#include "pgmux/session/auth_query.hpp"
#include "pgmux/io/timeout.hpp"
#include "pgmux/protocol/decode.hpp"
#include "pgmux/protocol/encode.hpp"
#include "pgmux/protocol/frame.hpp"

namespace pgmux::net {
namespace {

using namespace std::chrono_literals;

// The longest authentication token PostgreSQL accepts (PG_MAX_AUTH_TOKEN_LENGTH).
constexpr std::size_t max_auth_token = 65535;

// Made once per process: the seed of the salts unknown users are shown, so that the salt of a
// user name stays the same from one attempt to the next, as a real one would.
const std::string& mock_secret() {
  static const std::string secret = auth::random_bytes(32);
  return secret;
}

using result = client_login_result;

result ended_by(close_reason reason) {
  result r;
  r.refused = reason;
  return r;
}

// The client is refused: told why after auth.failure_delay (cut short by the deadline), whatever
// the cause, so that a guesser gets one answer per failure_delay and learns nothing from timing.
asio::awaitable<result> refuse(const client_login_request& req, close_reason reason, std::string_view code,
                               std::string_view message, std::string_view log_detail) {
  log::info(std::string(req.label) + ": authentication failed: " + std::string(log_detail));
  if (req.cfg.auth.failure_delay.count() > 0) {
    asio::steady_timer delay(co_await asio::this_coro::executor);
    delay.expires_at(std::min(clock::now() + req.cfg.auth.failure_delay, req.deadline));
    co_await delay.async_wait(nothrow);
  }
  std::string out;
  protocol::encode_error_response(out, "FATAL", code, message);
  co_await with_timeout(asio::async_write(req.client, asio::buffer(out), nothrow), 1000ms);
  co_return ended_by(reason);
}

asio::awaitable<result> password_failed(const client_login_request& req, std::string_view log_detail) {
  co_return co_await refuse(req, close_reason::client_auth_failed, "28P01", auth::password_failed_message(req.user),
                            log_detail);
}

asio::awaitable<bool> send(stream& client, const std::string& out) {
  auto [ec, n] = co_await write_all(client, asio::buffer(out));
  co_return !ec;
}

struct client_message {
  enum class kind { message, gone, terminate, invalid } end = kind::gone;
  std::string body;   // message: the body of the 'p' message
  std::string error;  // invalid: what was wrong
};

// The client's answer to an authentication request: a 'p' message, read exactly (nothing past it).
asio::awaitable<client_message> read_response(stream& client, std::string_view expected) {
  client_message m;
  char header[protocol::header_size];
  auto [ec, n] = co_await asio::async_read(client, asio::buffer(header), nothrow);
  if (ec) co_return m;
  const auto h = protocol::parse_header(std::string_view(header, sizeof header), std::size_t(-1));
  if (h.status != protocol::parse_status::complete) {
    m.end = client_message::kind::invalid;
    m.error = std::string("invalid message: ") + (h.error ? h.error : "bad header");
    co_return m;
  }
  if (h.hdr.tag == 'X') {
    m.end = client_message::kind::terminate;
    co_return m;
  }
  if (h.hdr.tag != 'p') {
    m.end = client_message::kind::invalid;
    m.error = "expected " + std::string(expected) + " response, got message type " +
              std::to_string(static_cast<unsigned char>(h.hdr.tag));
    co_return m;
  }
  if (h.hdr.body_size() > max_auth_token) {
    m.end = client_message::kind::invalid;
    m.error = "invalid " + std::string(expected) + " response: message too long";
    co_return m;
  }
  m.body.resize(h.hdr.body_size());
  std::tie(ec, n) = co_await asio::async_read(client, asio::buffer(m.body), nothrow);
  if (ec) co_return m;
  m.end = client_message::kind::message;
  co_return m;
}

// A read that brought no message: the client left, said Terminate, or sent garbage.
asio::awaitable<result> not_a_response(const client_login_request& req, const client_message& m) {
  switch (m.end) {
    case client_message::kind::terminate: co_return ended_by(close_reason::client_terminate);
    case client_message::kind::invalid:
      co_return co_await refuse(req, close_reason::client_protocol_error, "08P01", m.error, m.error);
    case client_message::kind::gone:
    case client_message::kind::message: break;
  }
  co_return ended_by(close_reason::client_eof);
}

// Why a proof failed, for the log only.
std::string why_not(auth::secret_kind kind, const std::string& looked_up_as) {
  switch (kind) {
    case auth::secret_kind::none: return "user \"" + looked_up_as + "\" has no secret (unknown user)";
    case auth::secret_kind::md5: return "user \"" + looked_up_as + "\" has an md5 secret, which cannot check SCRAM";
    case auth::secret_kind::scram_sha_256: break;
  }
  return "wrong password";
}

asio::awaitable<result> scram_failed(const client_login_request& req, const auth::scram_reply& reply,
                                     auth::secret_kind kind) {
  if (reply.failure == auth::scram_failure::invalid_proof)
    co_return co_await password_failed(req, why_not(kind, std::string(req.user)));
  co_return co_await refuse(req, close_reason::client_protocol_error, "08P01", reply.error, reply.error);
}

asio::awaitable<result> run_scram(const client_login_request& req, const std::string& secret, auth::secret_kind kind) {
  std::optional<auth::scram_server> scram;
  std::string server_key;
  // Over TLS, SCRAM-SHA-256-PLUS is offered first: the client binds its proof to this TLS
  // connection, so a man in the middle with another certificate cannot relay it.
  const std::string binding(req.channel_binding);
  if (kind == auth::secret_kind::scram_sha_256) {
    std::string error;
    if (auto verifier = auth::parse_scram_verifier(secret, error)) {
      server_key = verifier->server_key;
      scram.emplace(std::move(*verifier), binding);
    }
  }
  // Unknown users, and users without a SCRAM verifier, go through the same steps and fail at the end.
  if (!scram) scram.emplace(auth::scram_server::for_unknown_user(req.user, mock_secret(), binding));

  std::string out;
  protocol::encode_authentication_sasl(out, scram->mechanisms());
  if (!co_await send(req.client, out)) co_return ended_by(close_reason::client_eof);
  auto first = co_await read_response(req.client, "SASL");
  if (first.end != client_message::kind::message) co_return co_await not_a_response(req, first);
  const auto initial = protocol::decode_sasl_initial_response(first.body);
  if (!initial) {
    const std::string error = "malformed SASLInitialResponse message";
    co_return co_await refuse(req, close_reason::client_protocol_error, "08P01", error, error);
  }
  auto reply = scram->handle_client_first(initial->mechanism, initial->data.value_or(std::string_view{}));
  if (!reply) co_return co_await scram_failed(req, reply, kind);

  out.clear();
  protocol::encode_authentication_sasl_continue(out, reply.message);
  if (!co_await send(req.client, out)) co_return ended_by(close_reason::client_eof);
  auto final_message = co_await read_response(req.client, "SASL");
  if (final_message.end != client_message::kind::message) co_return co_await not_a_response(req, final_message);
  reply = scram->handle_client_final(protocol::decode_sasl_response(final_message.body));
  if (!reply) co_return co_await scram_failed(req, reply, kind);

  out.clear();
  protocol::encode_authentication_sasl_final(out, reply.message);
  if (!co_await send(req.client, out)) co_return ended_by(close_reason::client_eof);
  result r;
  r.method = auth::auth_method::scram_sha_256;
  r.keys = scram_keys{scram->client_key(), std::move(server_key)};
  co_return r;
}

// Reads a PasswordMessage after `request` went out; its password, or the result that ends the login.
asio::awaitable<std::variant<std::string, result>> ask_password(const client_login_request& req, const std::string& request) {
  if (!co_await send(req.client, request)) co_return ended_by(close_reason::client_eof);
  auto m = co_await read_response(req.client, "password");
  if (m.end != client_message::kind::message) co_return co_await not_a_response(req, m);
  const auto password = protocol::decode_password_message(m.body);
  if (!password) {
    const std::string error = "invalid password packet size";
    co_return co_await refuse(req, close_reason::client_protocol_error, "08P01", error, error);
  }
  co_return std::string(*password);
}

asio::awaitable<result> run_md5(const client_login_request& req, const std::string& secret) {
  const std::string salt = auth::random_bytes(4);
  std::string out;
  protocol::encode_authentication_md5_password(out, salt);
  auto answer = co_await ask_password(req, out);
  if (auto* r = std::get_if<result>(&answer)) co_return std::move(*r);
  if (!auth::verify_md5_response(secret, salt, std::get<std::string>(answer)))
    co_return co_await password_failed(req, "wrong password");
  result r;
  r.method = auth::auth_method::md5;
  co_return r;
}

asio::awaitable<result> run_password(const client_login_request& req, const std::string& secret, auth::secret_kind kind) {
  std::string out;
  protocol::encode_authentication_cleartext_password(out);
  auto answer = co_await ask_password(req, out);
  if (auto* r = std::get_if<result>(&answer)) co_return std::move(*r);
  const auto& password = std::get<std::string>(answer);
  if (kind == auth::secret_kind::none) {
    // As much work as checking a real verifier, so that the time taken does not tell.
    (void)auth::compute_scram_verifier(password, auth::sha256(mock_secret()).substr(0, auth::scram_default_salt_size),
                                       auth::scram_default_iterations);
    co_return co_await password_failed(req, why_not(kind, std::string(req.user)));
  }
  if (!auth::verify_cleartext_password(secret, req.user, password)) co_return co_await password_failed(req, "wrong password");
  result r;
  r.method = auth::auth_method::password;
  co_return r;
}

// The cert method, as PostgreSQL's: a client certificate that verified against tls.ca during
// the handshake, whose common name is the user name.
asio::awaitable<result> run_cert(const client_login_request& req) {
  const auto name = req.client.peer_common_name();
  if (!name)
    co_return co_await refuse(req, close_reason::client_auth_failed, "28000", "connection requires a valid client certificate",
                              "no valid client certificate (or one without a common name)");
  if (*name != req.user)
    co_return co_await refuse(req, close_reason::client_auth_failed, "28000",
                              "certificate authentication failed for user \"" + std::string(req.user) + "\"",
                              "the certificate's common name \"" + *name + "\" is not the user name");
  result r;
  r.method = auth::auth_method::cert;
  co_return r;
}

}  // namespace

asio::awaitable<client_login_result> authenticate_client(const client_login_request& req) {
  const auto choice = auth::choose_client_method({req.cfg.auth.rules, req.cfg.auth.allow_cleartext_without_tls},
                                                 {req.database, req.user, req.peer, req.client.tls()});
  if (choice.method == auth::auth_method::reject)
    co_return co_await refuse(req, close_reason::client_auth_failed, "28000", choice.reason, choice.detail);
  if (choice.method == auth::auth_method::cert) co_return co_await run_cert(req);
  if (!auth::needs_secret(choice.method)) co_return result{};  // trust

  const auto secret = co_await find_client_secret(req.cfg, req.routes, req.cache, std::string(req.database),
                                                  std::string(req.user), req.deadline);
  const auto kind = auth::secret_kind_of(secret);
  switch (auth::effective_method(choice.method, kind)) {
    case auth::auth_method::scram_sha_256: co_return co_await run_scram(req, secret, kind);
    case auth::auth_method::md5: co_return co_await run_md5(req, secret);
    case auth::auth_method::password: co_return co_await run_password(req, secret, kind);
    case auth::auth_method::trust:
    case auth::auth_method::cert:
    case auth::auth_method::reject: break;
  }
  co_return co_await refuse(req, close_reason::client_auth_failed, "28000", "no usable authentication method",
                            "no usable authentication method");
}

}  // namespace pgmux::net
