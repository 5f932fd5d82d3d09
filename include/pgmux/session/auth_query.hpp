// Where a client's stored secret comes from: users_file first, then auth_query, run on a server
// connection of the database's auth_query pool with the user name as $1, its answers (misses
// too) cached per process for auth_query_cache.
#pragma once
#include <cstddef>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "pgmux/config/config.hpp"
#include "pgmux/io/io.hpp"
#include "pgmux/server/server_connection.hpp"

namespace pgmux::net {

class router;

// auth_query answers per (database, user), shared by every worker. A miss is cached like a
// secret, so that a client trying user names cannot make pgmux query the server for each try.
class auth_secret_cache {
 public:
  // The cached secret ("" for a cached miss); nullopt when nothing fresh is cached.
  std::optional<std::string> find(std::string_view database, std::string_view user, clock::time_point now);
  void store(std::string_view database, std::string_view user, std::string secret, clock::time_point expires);
  std::size_t size();
  void clear();  // a reload may change auth_query or auth_user: their old answers go

 private:
  // Past this many entries, expired ones are dropped; if that is not enough, all of them.
  static constexpr std::size_t max_entries = 100000;
  struct entry {
    std::string secret;
    clock::time_point expires;
  };
  static std::string key(std::string_view database, std::string_view user);

  std::mutex mu_;
  std::unordered_map<std::string, entry> entries_;
};

struct auth_query_answer {
  std::string error;   // non-empty: the query did not run to its end; nothing is known
  std::string secret;  // "" when the query returned no row, or NULL
};

// Runs `sql` with `user` as $1 on `server` and reads up to its ReadyForQuery. The secret is the
// only column of the first row, or the second of two or more (PgBouncer's "usename, passwd").
// The connection is marked broken unless it ends clean.
asio::awaitable<auth_query_answer> run_auth_query(server_connection& server, std::string_view sql, std::string_view user);

// The stored secret of `user` for a client of `database`: from users_file, else (when
// auth_query is set and the database is a real one) from the cache or the server, waiting no
// later than `deadline`. "" when there is none; lookup failures are logged and give "" too.
asio::awaitable<std::string> find_client_secret(const config::config& cfg, router& routes, auth_secret_cache& cache,
                                                std::string database, std::string user, clock::time_point deadline);

}  // namespace pgmux::net
