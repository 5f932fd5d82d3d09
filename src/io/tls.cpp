// Building TLS contexts from the PEM text the config loader read.
#include "pgmux/io/tls.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "pgmux/auth/certificates.hpp"
#include "pgmux/auth/crypto.hpp"

namespace pgmux::net {
namespace {

std::string describe(const error_code& ec) {
  std::string text = ec.message();
  ERR_clear_error();
  return text;
}

// Calls `add` with each certificate of a PEM text; false when one cannot be read or added.
template <typename Add>
bool for_each_certificate(const std::string& pem, Add add) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (!bio) return false;
  bool ok = true;
  while (X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
    ok = add(cert) && ok;
    X509_free(cert);
  }
  ERR_clear_error();  // the end of the text reads as an error
  BIO_free(bio);
  return ok;
}

// Adds every CRL of a PEM text to the context's store and turns CRL checks on, as libpq does
// with sslcrl.
bool add_crls(SSL_CTX* ctx, const std::string& pem) {
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (!store || !bio) return false;
  bool ok = true;
  while (X509_CRL* crl = PEM_read_bio_X509_CRL(bio, nullptr, nullptr, nullptr)) {
    ok = X509_STORE_add_crl(store, crl) == 1 && ok;
    X509_CRL_free(crl);
  }
  ERR_clear_error();
  BIO_free(bio);
  X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
  return ok;
}

}  // namespace

tls_server_context::tls_server_context() : ctx_(asio::ssl::context::tls_server) {}

std::shared_ptr<const tls_server_context> tls_server_context::make(const config::tls_config& cfg, std::string& error) {
  std::shared_ptr<tls_server_context> c(new tls_server_context());
  c->mode_ = cfg.mode;
  SSL_CTX* native = c->ctx_.native_handle();
  error_code ec;
  c->ctx_.use_certificate_chain(asio::buffer(cfg.cert_pem), ec);
  if (ec) {
    error = "tls.cert: " + describe(ec);
    return nullptr;
  }
  c->ctx_.use_private_key(asio::buffer(cfg.key_pem), asio::ssl::context::pem, ec);
  if (ec || SSL_CTX_check_private_key(native) != 1) {
    error = "tls.key: " + (ec ? describe(ec) : std::string("the private key does not match the certificate"));
    ERR_clear_error();
    return nullptr;
  }
  SSL_CTX_set_min_proto_version(native, cfg.min_version == config::tls_version::v1_3 ? TLS1_3_VERSION : TLS1_2_VERSION);
  // As PostgreSQL: no session resumption (each connection is one long session), no
  // renegotiation, the server's cipher order.
  SSL_CTX_set_options(native, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_session_cache_mode(native, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(native, 0);  // TLS 1.3 would send session tickets nobody can use
  if (!cfg.ca_pem.empty()) {
    c->ctx_.add_certificate_authority(asio::buffer(cfg.ca_pem), ec);
    const bool listed = for_each_certificate(cfg.ca_pem, [&](X509* ca) { return SSL_CTX_add_client_CA(native, ca) == 1; });
    if (ec || !listed) {
      error = "tls.ca: " + (ec ? describe(ec) : std::string("cannot use the CA certificates"));
      return nullptr;
    }
    // A client certificate is asked for, not required (the cert method checks it is there);
    // one that is sent must verify, else the handshake fails, as with PostgreSQL.
    SSL_CTX_set_verify(native, SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE, nullptr);
    c->verify_clients_ = true;
  }
  std::string no_binding;
  c->end_point_ = auth::tls_server_end_point_pem(cfg.cert_pem, no_binding);
  return c;
}

tls_client_context::tls_client_context() : ctx_(asio::ssl::context::tls_client) {}

std::string tls_client_context::key_of(const config::server_target& t) {
  std::string all;
  for (const auto* part : {&t.sslrootcert_pem, &t.sslcrl_pem, &t.sslcert_pem, &t.sslkey_pem}) {
    all += std::to_string(part->size()) + ':';
    all += *part;
  }
  return auth::sha256(all);
}

std::shared_ptr<const tls_client_context> tls_client_context::make(const config::server_target& t, std::string& error) {
  std::shared_ptr<tls_client_context> c(new tls_client_context());
  c->key_ = key_of(t);
  SSL_CTX* native = c->ctx_.native_handle();
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);  // libpq's ssl_min_protocol_version
  SSL_CTX_set_options(native, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
  error_code ec;
  if (!t.sslrootcert_pem.empty()) {
    c->ctx_.add_certificate_authority(asio::buffer(t.sslrootcert_pem), ec);
    if (ec) {
      error = "sslrootcert: " + describe(ec);
      return nullptr;
    }
    if (!t.sslcrl_pem.empty() && !add_crls(native, t.sslcrl_pem)) {
      error = "sslcrl: cannot use the revocation lists";
      return nullptr;
    }
    SSL_CTX_set_verify(native, SSL_VERIFY_PEER, nullptr);
    c->verifies_chain_ = true;
  } else {
    SSL_CTX_set_verify(native, SSL_VERIFY_NONE, nullptr);
  }
  if (!t.sslcert_pem.empty()) {
    c->ctx_.use_certificate_chain(asio::buffer(t.sslcert_pem), ec);
    if (!ec) c->ctx_.use_private_key(asio::buffer(t.sslkey_pem), asio::ssl::context::pem, ec);
    if (ec || SSL_CTX_check_private_key(native) != 1) {
      error = "sslcert/sslkey: " + (ec ? describe(ec) : std::string("the private key does not match the certificate"));
      ERR_clear_error();
      return nullptr;
    }
  }
  return c;
}

std::optional<tls_contexts> make_tls_contexts(const config::config& cfg, config::config_error& error) {
  tls_contexts out;
  if (cfg.tls.mode != config::tls_mode::disable) {
    std::string why;
    out.clients = tls_server_context::make(cfg.tls, why);
    if (!out.clients) {
      error = {"/tls", why};
      return std::nullopt;
    }
  }
  std::map<std::string, std::shared_ptr<const tls_client_context>> by_key;
  for (const auto& [name, db] : cfg.databases) {
    if (!db.target.tls_possible()) continue;
    auto& shared = by_key[tls_client_context::key_of(db.target)];
    if (!shared) {
      std::string why;
      shared = tls_client_context::make(db.target, why);
      if (!shared) {
        error = {"/databases/" + name + "/dsn", why};
        return std::nullopt;
      }
    }
    out.servers[name] = shared;
  }
  return out;
}

}  // namespace pgmux::net
