// TLS contexts: pgmux as the TLS server towards clients (tls.*), and as the TLS client towards
// PostgreSQL (a DSN's sslmode and files). Built from PEM text the config loader has already read
// and checked, so building touches no file. Included by the few .cpp files that start TLS; the
// widely included headers only name these classes.
#pragma once
#include <boost/asio/ssl/context.hpp>

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "pgmux/config/config.hpp"
#include "pgmux/config/load.hpp"
#include "pgmux/io/io.hpp"

namespace pgmux::net {

// Towards clients: pgmux's certificate and key, the CA that signs client certificates (when
// tls.ca is set, a client certificate is asked for and, if sent, must verify), min_version.
class tls_server_context {
 public:
  // nullptr with `error` set when OpenSSL refuses the files.
  static std::shared_ptr<const tls_server_context> make(const config::tls_config& cfg, std::string& error);

  config::tls_mode mode() const noexcept { return mode_; }
  // The tls-server-end-point channel binding data of pgmux's certificate (RFC 5929): empty when
  // the certificate's signature names no usable hash; SCRAM-SHA-256-PLUS is then not offered.
  const std::string& end_point() const noexcept { return end_point_; }
  bool asks_for_client_certificates() const noexcept { return verify_clients_; }
  // OpenSSL makes sessions from a shared SSL_CTX on any thread; the context is not changed after make().
  asio::ssl::context& native() const noexcept { return ctx_; }

 private:
  tls_server_context();
  mutable asio::ssl::context ctx_;
  config::tls_mode mode_ = config::tls_mode::disable;
  std::string end_point_;
  bool verify_clients_ = false;
};

// Towards PostgreSQL: the root certificates that verify the server (when any), the CRL, and
// the client certificate and key presented when the server asks. One per distinct set of files.
class tls_client_context {
 public:
  static std::shared_ptr<const tls_client_context> make(const config::server_target& target, std::string& error);

  // True when the server's chain is verified: sslrootcert (or ~/.postgresql/root.crt) was there.
  bool verifies_chain() const noexcept { return verifies_chain_; }
  // Identifies the files it was built from: equal keys, equal contexts.
  const std::string& key() const noexcept { return key_; }
  asio::ssl::context& native() const noexcept { return ctx_; }

  static std::string key_of(const config::server_target& target);

 private:
  tls_client_context();
  mutable asio::ssl::context ctx_;
  bool verifies_chain_ = false;
  std::string key_;
};

// Every TLS context a config needs, built together so that a reload applies all or nothing.
struct tls_contexts {
  std::shared_ptr<const tls_server_context> clients;  // null when tls.mode is disable
  // By database entry name ("*" too); absent when that entry never uses TLS. Entries with the
  // same files share one context.
  std::map<std::string, std::shared_ptr<const tls_client_context>> servers;
};

// nullopt, with `error` naming the config path, when OpenSSL refuses what the config names.
std::optional<tls_contexts> make_tls_contexts(const config::config& cfg, config::config_error& error);

}  // namespace pgmux::net
