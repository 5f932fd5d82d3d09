// Client secrets from users_file or auth_query, and the auth_query cache.
#include "pgmux/session/auth_query.hpp"

#include <boost/asio/write.hpp>

#include "pgmux/log.hpp"
#include "pgmux/admin/admin_console.hpp"
#include "pgmux/server/pool.hpp"
#include "pgmux/session/router.hpp"
#include "pgmux/io/timeout.hpp"
#include "pgmux/protocol/decode.hpp"
#include "pgmux/protocol/encode.hpp"
#include "pgmux/protocol/frame.hpp"

namespace pgmux::net {

std::string auth_secret_cache::key(std::string_view database, std::string_view user) {
  std::string k(database);
  k.push_back('\0');
  k.append(user);
  return k;
}

std::optional<std::string> auth_secret_cache::find(std::string_view database, std::string_view user,
                                                   clock::time_point now) {
  std::lock_guard lock(mu_);
  const auto it = entries_.find(key(database, user));
  if (it == entries_.end()) return std::nullopt;
  if (now >= it->second.expires) {
    entries_.erase(it);
    return std::nullopt;
  }
  return it->second.secret;
}

void auth_secret_cache::store(std::string_view database, std::string_view user, std::string secret,
                              clock::time_point expires) {
  std::lock_guard lock(mu_);
  if (entries_.size() >= max_entries) {
    const auto now = clock::now();
    std::erase_if(entries_, [&](const auto& e) { return now >= e.second.expires; });
    if (entries_.size() >= max_entries) entries_.clear();
  }
  entries_.insert_or_assign(key(database, user), entry{std::move(secret), expires});
}

std::size_t auth_secret_cache::size() {
  std::lock_guard lock(mu_);
  return entries_.size();
}

void auth_secret_cache::clear() {
  std::lock_guard lock(mu_);
  entries_.clear();
}

asio::awaitable<auth_query_answer> run_auth_query(server_connection& server, std::string_view sql, std::string_view user) {
  auth_query_answer answer;
  const auto fail = [&](std::string error) {
    server.mark_broken();
    answer.error = std::move(error);
    return answer;
  };
  std::string out;
  protocol::encode_parameterized_query(out, sql, {user});
  if (auto [ec, n] = co_await asio::async_write(server.socket(), asio::buffer(out), nothrow); ec)
    co_return fail("write to server failed: " + ec.message());

  auto& buf = server.buffer();
  bool have_row = false;
  std::string server_error;
  for (;;) {
    const auto read = co_await server.read_message();
    if (!read.complete()) co_return fail(read.error);
    const auto& r = read.frame;
    const auto body = r.msg.body;
    switch (r.msg.tag) {
      case 'D':
        if (!have_row) {
          const auto row = protocol::decode_data_row(body);
          if (!row || row->empty()) co_return fail("malformed DataRow from server");
          const auto& column = row->size() == 1 ? (*row)[0] : (*row)[1];
          answer.secret = column ? std::string(*column) : std::string();
          have_row = true;
        }
        break;
      case 'E': {
        const auto fields = protocol::decode_error_response(body);
        server_error = fields ? fields->message + " (SQLSTATE " + fields->code + ")" : "malformed error";
        break;
      }
      case 'Z': {
        const auto status = protocol::decode_ready_for_query(body);
        buf.consume(r.consumed);
        if (!status || *status != 'I' || !buf.empty()) co_return fail("auth_query left the server connection busy");
        if (!server_error.empty()) {
          answer.error = "auth_query failed: " + server_error;
          answer.secret.clear();
        }
        co_return answer;
      }
      case '1':  // ParseComplete
      case '2':  // BindComplete
      case 'C':  // CommandComplete
      case 'n':  // NoData
      case 'N':  // NoticeResponse
      case 'S':  // ParameterStatus
      case 'A':  // NotificationResponse
        break;
      default:
        co_return fail(std::string("unexpected message '") + r.msg.tag + "' from server during auth_query");
    }
    buf.consume(r.consumed);
  }
}

namespace {

// Runs auth_query through the auth_query pool of `database`. nullopt when it could not run.
asio::awaitable<std::optional<std::string>> query_secret(const config::config& cfg, router& routes,
                                                         const std::string& database, const std::string& user,
                                                         clock::time_point deadline) {
  auto route = routes.auth_query_pool(database);
  if (!route.pool) {
    log::warn("auth_query for user \"" + user + "\" of database \"" + database + "\": " + route.error);
    co_return std::nullopt;
  }
  const auto label = "auth_query for user \"" + user + "\" on pool " + route.pool->name();
  auto got = co_await route.pool->acquire(deadline, {});
  if (auto* error = std::get_if<acquire_error>(&got)) {
    log::warn(label + ": " + error->message);
    co_return std::nullopt;
  }
  auto server = std::move(std::get<lease>(got));
  const auto left = deadline - clock::now();
  auto answer = co_await with_timeout(run_auth_query(*server, cfg.auth.auth_query, user),
                                      left > clock::duration::zero() ? left : clock::duration::zero());
  if (!answer) {
    server->mark_broken();
    log::warn(label + ": no answer before the client's auth_timeout");
    co_return std::nullopt;
  }
  server.release();
  if (!answer->error.empty()) {
    log::warn(label + ": " + answer->error);
    co_return std::nullopt;
  }
  co_return std::move(answer->secret);
}

}  // namespace

asio::awaitable<std::string> find_client_secret(const config::config& cfg, router& routes, auth_secret_cache& cache,
                                                std::string database, std::string user, clock::time_point deadline) {
  if (auto it = cfg.auth.users.find(user); it != cfg.auth.users.end()) co_return it->second;
  // The admin console is no server database: its users must be in users_file.
  if (cfg.auth.auth_query.empty() || database == admin_database) co_return std::string{};
  const bool caching = cfg.auth.auth_query_cache.count() > 0;
  if (caching)
    if (auto cached = cache.find(database, user, clock::now())) co_return std::move(*cached);
  auto secret = co_await query_secret(cfg, routes, database, user, deadline);
  if (!secret) co_return std::string{};  // not known: not cached, the next client asks again
  if (caching) cache.store(database, user, *secret, clock::now() + cfg.auth.auth_query_cache);
  co_return std::move(*secret);
}

}  // namespace pgmux::net
