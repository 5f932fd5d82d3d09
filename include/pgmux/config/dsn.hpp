// Server DSNs, parsed with libpq's PQconninfoParse so that URI and key=value forms both work.
#pragma once
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace pgmux::config {

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

  friend bool operator==(const server_target&, const server_target&) = default;
};

// Returns the target, or an error message naming the offending key.
std::variant<server_target, std::string> parse_dsn(std::string_view dsn);

// The passfile a target uses: its own, else PGPASSFILE, else ~/.pgpass.
std::string passfile_path(const server_target& target);

// The password of the first matching line of .pgpass-format text, as libpq reads it.
std::optional<std::string> lookup_passfile(std::string_view contents, std::string_view host, std::uint16_t port,
                                           std::string_view dbname, std::string_view user);

// The password for (target, user, dbname): the DSN's, else the passfile's, else empty.
std::string resolve_password(const server_target& target, std::string_view user, std::string_view dbname);

}  // namespace pgmux::config
