// Server DSNs, parsed with libpq's PQconninfoParse so that URI and key=value forms both work.
#pragma once
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace pgmux::config {

// TLS towards the server, as libpq's sslmode means it: disable never uses TLS; allow tries
// without, then with TLS when the server refuses the login; prefer tries TLS first and goes on
// without it when the server has none (or the handshake fails); require insists on TLS (and
// verifies the chain too when a root certificate file is there, as libpq); verify-ca verifies
// the chain; verify-full also the host name.
enum class ssl_mode { disable, allow, prefer, require, verify_ca, verify_full };
const char* to_string(ssl_mode m) noexcept;  // "verify-ca", as in a DSN
std::optional<ssl_mode> parse_ssl_mode(std::string_view text) noexcept;

// Where and as whom pgmux connects to PostgreSQL. Empty dbname / user: the client's.
struct server_target {
  std::string host = "127.0.0.1";  // host name, address, or a Unix socket directory ("/...")
  std::uint16_t port = 5432;
  std::string dbname;
  std::string user;
  std::string password;            // from the DSN, else looked up in the passfile at connect time
  std::string passfile;            // DSN passfile, else PGPASSFILE, else ~/.pgpass
  std::string passfile_contents;   // read when the config is loaded, so connects never touch files
  std::string application_name;
  std::string options;             // command-line options for the server ("-c key=value ...")
  std::optional<std::chrono::milliseconds> connect_timeout;

  // TLS (libpq's sslmode, sslrootcert, sslcert, sslkey, sslcrl, sslsni). Never over a Unix socket.
  ssl_mode sslmode = ssl_mode::prefer;  // libpq's default
  std::string sslrootcert, sslcert, sslkey, sslcrl;  // as the DSN names them; "": ~/.postgresql/ defaults
  bool sslsni = true;                   // send the host name (not an address) in the TLS handshake
  std::string tls_host;                 // what verify-full checks and SNI names: the DSN's host, not hostaddr
  // Read by read_tls_files when the config is loaded, so that connects never touch files.
  std::string sslrootcert_pem, sslcrl_pem, sslcert_pem, sslkey_pem;

  bool unix_socket() const noexcept { return !host.empty() && host[0] == '/'; }
  // TLS may be tried on connections to this server.
  bool tls_possible() const noexcept { return sslmode != ssl_mode::disable && !unix_socket(); }

  friend bool operator==(const server_target&, const server_target&) = default;
};

// Returns the target, or an error message naming the offending key.
std::variant<server_target, std::string> parse_dsn(std::string_view dsn);

// Reads the certificate, key and CRL files the target's TLS settings name (or libpq's defaults
// in ~/.postgresql/ when present) into its *_pem fields and checks them. Empty on success, else
// the error. Nothing is read when TLS is off or the host is a Unix socket.
std::string read_tls_files(server_target& target);

// An error when a private key file is readable by others than its owner (group-readable is
// allowed when root owns it), as PostgreSQL and libpq refuse such keys.
std::optional<std::string> key_file_permission_error(const std::string& path);

// The passfile a target uses: its own, else PGPASSFILE, else ~/.pgpass.
std::string passfile_path(const server_target& target);

// The password of the first matching line of .pgpass-format text, as libpq reads it.
std::optional<std::string> lookup_passfile(std::string_view contents, std::string_view host, std::uint16_t port,
                                           std::string_view dbname, std::string_view user);

// The password for (target, user, dbname): the DSN's, else the passfile's, else empty.
std::string resolve_password(const server_target& target, std::string_view user, std::string_view dbname);

}  // namespace pgmux::config
