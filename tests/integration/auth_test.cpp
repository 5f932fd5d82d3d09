// Client authentication through pgmux, with libpq, psql and raw sockets:
// - scram-sha-256 admits the right password and refuses a wrong one after failure_delay,
//   without offering channel binding (no TLS)
// - md5 checks md5 secrets and runs SCRAM for users with SCRAM verifiers and for unknown users
// - password (cleartext) checks both kinds of secret
// - an unknown user fails exactly like a wrong password: same SQLSTATE, message and steps
// - rules apply in order, matched by address, user and database (cert: see tls_test.cpp)
// - SCRAM passthrough: no password in pgmux's DSN, the client's proven keys log in to the server
// - auth_query looks secrets up on the server with $1 and caches answers and misses
// - auth_timeout ends a client that stops after SASLInitialResponse
// - max_authenticating refuses clients past the limit until logins finish
// - max_client_conn refuses clients past the limit with 53300 until one leaves
// - admin console users authenticate by the same rules
// - pgmux passwd prints a verifier that pgmux and PostgreSQL both accept
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <thread>

#include "integration/fixtures.hpp"

// Inside namespace it: libpq declares `struct pg_conn` and `struct pg_result` globally.
namespace it {
namespace {

// A file that lives as long as the test needs it.
class temp_file {
 public:
  explicit temp_file(const std::string& text) {
    char path[] = "/tmp/pgmux-auth-test.XXXXXX";
    const int fd = ::mkstemp(path);
    REQUIRE(fd >= 0);
    const bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    ::close(fd);
    REQUIRE(written);
    ::chmod(path, 0644);
    path_ = path;
  }
  ~temp_file() { ::unlink(path_.c_str()); }
  temp_file(const temp_file&) = delete;
  temp_file& operator=(const temp_file&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// The "auth" member of the config: rules (JSON objects, comma-separated) and other keys.
std::string auth_member(const std::string& rules, const std::string& more = {}) {
  return "\"auth\": {\"rules\": [" + rules + "]" + (more.empty() ? "" : ", " + more) + "}";
}

std::string users_file_json(const std::vector<std::pair<std::string, std::string>>& users) {
  std::string out = "{";
  for (const auto& [user, secret] : users) out += (out.size() > 1 ? ", " : "") + json_string(user) + ": " + json_string(secret);
  return out + "}";
}

std::string pgmux_binary() {
  const char* env = std::getenv("PGMUX_IT_BINARY");
  return env && *env ? env : PGMUX_BINARY;
}

// The line `pgmux passwd USER` prints for `password`.
run_result pgmux_passwd(const std::string& user, const std::string& password) {
  return run("printf '%s\\n' " + shell_quote(password) + " | " + shell_quote(pgmux_binary()) + " passwd " +
                 shell_quote(user),
             30);
}

// The SCRAM-SHA-256 verifier of `password`, made by `pgmux passwd`.
std::string scram_verifier(const std::string& password) {
  const auto r = pgmux_passwd("x", password);
  REQUIRE_MESSAGE(r.code == 0, r.output);
  const auto start = r.output.find("SCRAM-SHA-256$");
  const auto end = r.output.find('"', start);
  REQUIRE(start != std::string::npos);
  REQUIRE(end != std::string::npos);
  return r.output.substr(start, end - start);
}

// PostgreSQL's md5 secret of (user, password).
std::string md5_secret(const std::string& user, const std::string& password) {
  auto admin = connect(pg().admin_conninfo());
  auto r = admin.exec_params("select 'md5' || md5($1 || $2)", {password, user});
  REQUIRE(r.ok());
  return r.value();
}

// Creates `role` (LOGIN) unless it exists, and sets its password, as PostgreSQL stores it
// (scram-sha-256: the cluster's password_encryption).
void set_role_password(const pg_conn& admin, const std::string& role, const std::string& password) {
  exec_ok(admin, "do $$ begin if not exists (select from pg_roles where rolname = '" + role +
                     "') then create role " + role + " login; end if; end $$");
  exec_ok(admin, "alter role " + role + " password '" + password + "'");
}

std::string stored_secret(const pg_conn& admin, const std::string& role) {
  auto r = admin.exec_params("select rolpassword from pg_authid where rolname = $1", {role});
  REQUIRE(r.rows() == 1);
  return r.value();
}

// `conninfo` with a password, quoted as libpq reads conninfo values.
std::string with_password(const std::string& conninfo, const std::string& password) {
  std::string quoted_password = "'";
  for (char c : password) {
    if (c == '\'' || c == '\\') quoted_password.push_back('\\');
    quoted_password.push_back(c);
  }
  return conninfo + " password=" + quoted_password + "'";
}

// True when the failed connection's message says `password authentication failed for user "user"`.
bool password_failed(const pg_conn& c, const std::string& user) {
  return !c.ok() && c.error().find("password authentication failed for user \"" + user + "\"") != std::string::npos;
}

// An Authentication request's code, or -1 when `m` is no Authentication message.
int auth_code(const std::optional<std::pair<char, std::string>>& m) {
  if (!m || m->first != 'R' || m->second.size() < 4) return -1;
  const auto* b = reinterpret_cast<const unsigned char*>(m->second.data());
  return (b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3];
}

// The value of attribute `name` ("r", "s", "i") of a SCRAM message.
std::string scram_attribute(const std::string& message, char name) {
  const std::string key = std::string(1, name) + "=";
  std::size_t at = message.rfind(key, 0) == 0 ? 0 : message.find("," + key);
  if (at == std::string::npos) return {};
  if (at != 0) ++at;
  const auto end = message.find(',', at);
  return message.substr(at + 2, end == std::string::npos ? std::string::npos : end - at - 2);
}

// Starts SCRAM as `user` on a raw socket: startup, AuthenticationSASL (checked), then
// SASLInitialResponse. Returns the server-first-message ("" when something else came).
std::string scram_start(raw_socket& s, const std::string& user, const std::string& db = "pgmux_test") {
  REQUIRE(s.send(wire::startup_message(user, db)));
  const auto offer = s.read_message(5s);
  REQUIRE(auth_code(offer) == 10);
  CHECK(offer->second.substr(4) == wire::cstr("SCRAM-SHA-256") + '\0');  // no -PLUS without TLS
  const std::string client_first = "n,,n=,r=rawclientnonce";
  REQUIRE(s.send(wire::msg('p', wire::cstr("SCRAM-SHA-256") + wire::be32(static_cast<std::uint32_t>(client_first.size())) +
                                    client_first)));
  const auto server_first = s.read_message(5s);
  if (auth_code(server_first) != 11) return {};
  return server_first->second.substr(4);
}

// Finishes a SCRAM exchange with a proof of zeros (wrong whatever the password); returns the
// fields of the ErrorResponse that follows.
std::map<char, std::string> scram_wrong_proof(raw_socket& s, const std::string& server_first) {
  const std::string final_message = "c=biws,r=" + scram_attribute(server_first, 'r') + ",p=" + std::string(43, 'A') + "=";
  REQUIRE(s.send(wire::msg('p', final_message)));
  const auto m = s.read_message(5s);
  REQUIRE(m);
  REQUIRE(m->first == 'E');
  return wire::error_fields(m->second);
}

// Sends a cleartext password after checking the request; returns the ErrorResponse fields
// (empty when the login went on).
std::map<char, std::string> cleartext_attempt(raw_socket& s, const std::string& user, const std::string& db,
                                              const std::string& password) {
  REQUIRE(s.send(wire::startup_message(user, db)));
  REQUIRE(auth_code(s.read_message(5s)) == 3);
  REQUIRE(s.send(wire::msg('p', wire::cstr(password))));
  const auto m = s.read_message(5s);
  REQUIRE(m);
  if (m->first != 'E') return {};
  return wire::error_fields(m->second);
}

}  // namespace

TEST_SUITE("auth") {

TEST_CASE("scram-sha-256 admits the right password and refuses a wrong one after failure_delay") {
  temp_file users(users_file_json({{"alice", scram_verifier("alice-pw")}}));
  proxy_instance proxy(proxy_options().top_level(auth_member(
      R"({"method": "scram-sha-256"})",
      "\"users_file\": " + json_string(users.path()) + ", \"failure_delay\": \"300ms\"")));

  auto t0 = clock::now();
  pg_conn ok(with_password(proxy.conninfo("pgmux_test", "alice"), "alice-pw"));
  REQUIRE_MESSAGE(ok.ok(), ok.error());
  CHECK(seconds_since(t0) < 0.25);
  CHECK(scalar(ok, "select current_user") == "pgmux_test");  // the DSN's server user

  t0 = clock::now();
  pg_conn wrong(with_password(proxy.conninfo("pgmux_test", "alice"), "alice-PW"));
  const double took = seconds_since(t0);
  CHECK_MESSAGE(password_failed(wrong, "alice"), wrong.error());
  CHECK(took >= 0.28);
  CHECK(took < 2.0);

  // No TLS, so no SCRAM-SHA-256-PLUS: a client that insists on channel binding gives up.
  pg_conn bound(with_password(proxy.conninfo("pgmux_test", "alice"), "alice-pw") + " channel_binding=require");
  CHECK_FALSE(bound.ok());
  CHECK(bound.error().find("channel binding") != std::string::npos);

  // Trust is gone: without a password libpq has nothing to answer with.
  pg_conn none(proxy.conninfo("pgmux_test", "alice"));
  CHECK_FALSE(none.ok());
  CHECK(proxy.logged("client authentication failed"));
}

TEST_CASE("md5 checks md5 secrets and runs SCRAM for users with SCRAM verifiers and for unknown users") {
  temp_file users(users_file_json({{"bob", md5_secret("bob", "bob-pw")}, {"alice", scram_verifier("alice-pw")}}));
  proxy_instance proxy(proxy_options().top_level(auth_member(R"({"method": "md5"})", "\"users_file\": " + json_string(users.path()))));

  pg_conn bob(with_password(proxy.conninfo("pgmux_test", "bob"), "bob-pw"));
  REQUIRE_MESSAGE(bob.ok(), bob.error());
  CHECK(scalar(bob, "select 1") == "1");
  pg_conn bob_wrong(with_password(proxy.conninfo("pgmux_test", "bob"), "nope"));
  CHECK_MESSAGE(password_failed(bob_wrong, "bob"), bob_wrong.error());

  pg_conn alice(with_password(proxy.conninfo("pgmux_test", "alice"), "alice-pw"));
  REQUIRE_MESSAGE(alice.ok(), alice.error());
  pg_conn alice_wrong(with_password(proxy.conninfo("pgmux_test", "alice"), "nope"));
  CHECK_MESSAGE(password_failed(alice_wrong, "alice"), alice_wrong.error());

  // What each is asked for: MD5 with a 4-byte salt for bob, SASL for alice and for a stranger.
  {
    raw_socket s(proxy.port());
    REQUIRE(s.send(wire::startup_message("bob", "pgmux_test")));
    const auto m = s.read_message(5s);
    CHECK(auth_code(m) == 5);
    CHECK(m->second.size() == 8);
  }
  for (const char* user : {"alice", "stranger"}) {
    CAPTURE(user);
    raw_socket s(proxy.port());
    REQUIRE(s.send(wire::startup_message(user, "pgmux_test")));
    CHECK(auth_code(s.read_message(5s)) == 10);
  }
}

TEST_CASE("password (cleartext) checks both kinds of secret") {
  temp_file users(users_file_json({{"bob", md5_secret("bob", "bob-pw")}, {"alice", scram_verifier("alice-pw")}}));
  proxy_instance proxy(proxy_options().top_level(auth_member(
      R"({"method": "password"})",
      "\"users_file\": " + json_string(users.path()) + ", \"allow_cleartext_without_tls\": true")));
  for (const auto& [user, password] : {std::pair<std::string, std::string>{"bob", "bob-pw"}, {"alice", "alice-pw"}}) {
    CAPTURE(user);
    pg_conn ok(with_password(proxy.conninfo("pgmux_test", user), password));
    CHECK_MESSAGE(ok.ok(), ok.error());
    pg_conn wrong(with_password(proxy.conninfo("pgmux_test", user), password + "x"));
    CHECK_MESSAGE(password_failed(wrong, user), wrong.error());
  }
  raw_socket s(proxy.port());
  const auto fields = cleartext_attempt(s, "alice", "pgmux_test", "alice-pw");
  CHECK(fields.empty());
}

TEST_CASE("an unknown user fails exactly like a wrong password") {
  temp_file users(users_file_json({{"alice", scram_verifier("alice-pw")}}));
  proxy_instance proxy(proxy_options().top_level(auth_member(
      R"({"database": "cleartext", "method": "password"}, {"method": "scram-sha-256"})",
      "\"users_file\": " + json_string(users.path()) + ", \"allow_cleartext_without_tls\": true")));

  // libpq sees the same message, the user name aside.
  pg_conn wrong(with_password(proxy.conninfo("pgmux_test", "alice"), "nope"));
  pg_conn unknown(with_password(proxy.conninfo("pgmux_test", "ghost"), "nope"));
  CHECK_MESSAGE(password_failed(wrong, "alice"), wrong.error());
  CHECK_MESSAGE(password_failed(unknown, "ghost"), unknown.error());

  // SCRAM on the wire: the same steps, a stable salt and 4096 iterations for the stranger too,
  // and the same ErrorResponse at the end.
  std::map<char, std::string> known_fields, unknown_fields;
  std::string ghost_salt;
  for (int attempt = 0; attempt < 2; ++attempt) {
    raw_socket s(proxy.port());
    const auto first = scram_start(s, "ghost");
    REQUIRE_FALSE(first.empty());
    CHECK(scram_attribute(first, 'i') == "4096");
    CHECK(scram_attribute(first, 's').size() == 24);  // 16 bytes in base64
    if (attempt == 0) ghost_salt = scram_attribute(first, 's');
    else CHECK(scram_attribute(first, 's') == ghost_salt);
    unknown_fields = scram_wrong_proof(s, first);
  }
  {
    raw_socket s(proxy.port());
    const auto first = scram_start(s, "alice");
    REQUIRE_FALSE(first.empty());
    CHECK(scram_attribute(first, 'i') == "4096");
    CHECK(scram_attribute(first, 's') != ghost_salt);
    known_fields = scram_wrong_proof(s, first);
  }
  CHECK(known_fields['C'] == "28P01");
  CHECK(known_fields['S'] == "FATAL");
  CHECK(known_fields['M'] == "password authentication failed for user \"alice\"");
  CHECK(unknown_fields['C'] == known_fields['C']);
  CHECK(unknown_fields['S'] == known_fields['S']);
  CHECK(unknown_fields['M'] == "password authentication failed for user \"ghost\"");

  // The cleartext method: also asked for a password, also the same answer.
  raw_socket s1(proxy.port()), s2(proxy.port());
  auto cleartext_known = cleartext_attempt(s1, "alice", "cleartext", "nope");
  auto cleartext_unknown = cleartext_attempt(s2, "ghost", "cleartext", "nope");
  CHECK(cleartext_known['C'] == "28P01");
  CHECK(cleartext_unknown['C'] == "28P01");
  CHECK(cleartext_known['M'] == known_fields['M']);
  CHECK(cleartext_unknown['M'] == unknown_fields['M']);
}

TEST_CASE("rules apply in order, matched by address, user and database") {
  SUBCASE("a reject rule for 127.0.0.1/32 before a trust rule") {
    proxy_instance proxy(proxy_options().unix_socket().top_level(
        auth_member(R"({"address": "127.0.0.1/32", "method": "reject"}, {"address": "*", "method": "trust"})")));
    pg_conn tcp(proxy.conninfo());
    CHECK_FALSE(tcp.ok());
    CHECK_MESSAGE(tcp.error().find("no pgmux auth rule allows connection for host \"127.0.0.1\", user \"pgmux_test\", "
                                   "database \"pgmux_test\"") != std::string::npos,
                  tcp.error());
    auto local = connect("host=" + proxy.dir() + " port=" + std::to_string(proxy.port()) +
                         " dbname=pgmux_test user=pgmux_test connect_timeout=10");
    CHECK(scalar(local, "select 1") == "1");
  }
  SUBCASE("by user and database before a broader reject; a rule for another address does not match") {
    proxy_instance proxy(proxy_options().top_level(auth_member(
        R"({"address": "::1/128", "method": "reject"},)"
        R"({"database": "pgmux_test", "user": "pgmux_test", "address": "127.0.0.0/8", "method": "trust"},)"
        R"({"address": "127.0.0.1", "method": "reject"})")));
    auto allowed = connect(proxy.conninfo());
    CHECK(scalar(allowed, "select 1") == "1");
    pg_conn other_user(proxy.conninfo("pgmux_test", "someone"));
    CHECK_FALSE(other_user.ok());
    CHECK(other_user.error().find("no pgmux auth rule allows connection for host \"127.0.0.1\", user \"someone\"") !=
          std::string::npos);
    pg_conn other_db(proxy.conninfo("postgres", "pgmux_test"));
    CHECK_FALSE(other_db.ok());
    CHECK(other_db.error().find("database \"postgres\"") != std::string::npos);
  }
  SUBCASE("no rule matches") {
    proxy_instance proxy(proxy_options().top_level(auth_member(R"({"address": "10.0.0.0/8", "method": "trust"})")));
    pg_conn c(proxy.conninfo());
    CHECK_FALSE(c.ok());
    CHECK(c.error().find("no pgmux auth rule allows connection for host \"127.0.0.1\"") != std::string::npos);
  }
}

TEST_CASE("SCRAM passthrough: with no password in the DSN, the client's proven keys log in to the server") {
  auto admin = connect(pg().admin_conninfo());
  set_role_password(admin, "pt_user", "pt-secret");
  const auto verifier = stored_secret(admin, "pt_user");
  REQUIRE(verifier.rfind("SCRAM-SHA-256$", 0) == 0);
  temp_file users(users_file_json({{"pt_user", verifier}}));
  temp_file no_passwords("");
  // TCP, where the cluster demands SCRAM, and no password anywhere pgmux could look.
  const std::string dsn = "host=127.0.0.1 port=" + std::to_string(pg().port()) + " dbname=pgmux_test passfile=" +
                          no_passwords.path();
  // "pt_fixed" names the user, so its pool opens min_size at start, and fails until a client
  // brings the keys.
  proxy_instance proxy(proxy_options()
                           .database("\"pt\": {\"dsn\": " + json_string(dsn) + "}")
                           .database("\"pt_fixed\": {\"dsn\": " + json_string(dsn + " user=pt_user") +
                                     ", \"pool\": {\"min_size\": 1}}")
                           .top_level(auth_member(R"({"method": "scram-sha-256"})",
                                                  "\"users_file\": " + json_string(users.path()))));

  pg_conn first(with_password(proxy.conninfo("pt", "pt_user"), "pt-secret"));
  REQUIRE_MESSAGE(first.ok(), first.error());
  CHECK(scalar(first, "select current_user || '@' || current_database()") == "pt_user@pgmux_test");
  // Another client of the same pool, on a connection of its own.
  pg_conn second(with_password(proxy.conninfo("pt", "pt_user"), "pt-secret"));
  REQUIRE_MESSAGE(second.ok(), second.error());
  exec_ok(first, "begin");
  CHECK(scalar(first, "select 'one'") == "one");
  CHECK(scalar(second, "select 'two'") == "two");
  exec_ok(first, "commit");
  CHECK(server_connections(admin, "pgmux_test", "pt_user") >= 1);

  pg_conn wrong(with_password(proxy.conninfo("pt", "pt_user"), "pt-wrong"));
  CHECK_MESSAGE(password_failed(wrong, "pt_user"), wrong.error());

  CHECK(wait_until([&] { return proxy.log().find("for passthrough yet") != std::string::npos; }, 3s));
  // Failed attempts at about 0, 0.2, 0.5, 1, 1.9 s (backoff from 100 ms, doubling, checked every
  // 100 ms): the next one is due at about 3.6 s.
  std::this_thread::sleep_for(2200ms);
  const auto t0 = clock::now();
  pg_conn fixed(with_password(proxy.conninfo("pt_fixed", "pt_user"), "pt-secret"));
  REQUIRE_MESSAGE(fixed.ok(), fixed.error());
  CHECK(seconds_since(t0) < 0.5);  // tried again at once, not at the end of the backoff
  CHECK(scalar(fixed, "select current_user") == "pt_user");
}

TEST_CASE("auth_query looks secrets up on the server with $1 and caches answers and misses") {
  auto admin = connect(pg().admin_conninfo());
  set_role_password(admin, "aq_user", "aq-pw-1");
  exec_ok(admin, "drop role if exists aq_late");
  // Over the Unix socket, where the cluster trusts everyone: the server logins need no password.
  const std::string dsn = "host=" + pg().socket_dir() + " port=" + std::to_string(pg().port()) + " dbname=pgmux_test";
  proxy_instance proxy(proxy_options()
                           .database("\"aq\": {\"dsn\": " + json_string(dsn) + "}")
                           .top_level(auth_member(R"({"method": "scram-sha-256"})",
                                                  R"("auth_query": "SELECT usename, passwd FROM pg_shadow WHERE usename = $1",)"
                                                  R"( "auth_user": "postgres", "auth_query_cache": "2s")")));
  const auto t0 = clock::now();
  pg_conn c1(with_password(proxy.conninfo("aq", "aq_user"), "aq-pw-1"));
  REQUIRE_MESSAGE(c1.ok(), c1.error());
  CHECK(scalar(c1, "select current_user") == "aq_user");
  pg_conn late(with_password(proxy.conninfo("aq", "aq_late"), "late-pw"));
  CHECK_MESSAGE(password_failed(late, "aq_late"), late.error());

  // Within auth_query_cache the answers stand, a miss included.
  set_role_password(admin, "aq_user", "aq-pw-2");
  set_role_password(admin, "aq_late", "late-pw");
  pg_conn c2(with_password(proxy.conninfo("aq", "aq_user"), "aq-pw-1"));
  CHECK_MESSAGE(c2.ok(), c2.error());
  pg_conn late2(with_password(proxy.conninfo("aq", "aq_late"), "late-pw"));
  CHECK_MESSAGE(password_failed(late2, "aq_late"), late2.error());
  CHECK(seconds_since(t0) < 1.8);

  // Past it, the server's current secrets count.
  std::this_thread::sleep_until(t0 + 2500ms);
  pg_conn c3(with_password(proxy.conninfo("aq", "aq_user"), "aq-pw-2"));
  CHECK_MESSAGE(c3.ok(), c3.error());
  pg_conn old(with_password(proxy.conninfo("aq", "aq_user"), "aq-pw-1"));
  CHECK_MESSAGE(password_failed(old, "aq_user"), old.error());
  pg_conn late3(with_password(proxy.conninfo("aq", "aq_late"), "late-pw"));
  CHECK_MESSAGE(late3.ok(), late3.error());
  // The lookups ran as auth_user, and none failed.
  CHECK(server_connections(admin, "pgmux_test", "postgres") >= 1);
  CHECK(proxy.settled_log(with_password(proxy.conninfo("aq", "aq_late"), "late-pw")).find("auth_query") == std::string::npos);
}

TEST_CASE("auth_timeout ends a client that stops after SASLInitialResponse") {
  temp_file users(users_file_json({{"alice", scram_verifier("alice-pw")}}));
  proxy_instance proxy(proxy_options().top_level("\"auth_timeout\": \"1s\", " +
                                                 auth_member(R"({"method": "scram-sha-256"})",
                                                             "\"users_file\": " + json_string(users.path()))));
  raw_socket s(proxy.port());
  const auto t0 = clock::now();
  REQUIRE_FALSE(scram_start(s, "alice").empty());
  // ... and says nothing more.
  const auto m = s.read_message(5s);
  const double took = seconds_since(t0);
  REQUIRE(m);
  CHECK(m->first == 'E');
  const auto fields = wire::error_fields(m->second);
  CHECK(fields.at('C') == "08P01");
  CHECK(fields.at('M') == "authentication not completed within auth_timeout");
  CHECK(s.read_until_closed(2s).closed);
  CHECK(took >= 0.9);
  CHECK(took < 2.5);
  auto fine = connect(with_password(proxy.conninfo("pgmux_test", "alice"), "alice-pw"));
  CHECK(scalar(fine, "select 1") == "1");
}

TEST_CASE("max_authenticating refuses clients past the limit until logins finish") {
  temp_file users(users_file_json({{"alice", scram_verifier("alice-pw")}}));
  proxy_instance proxy(proxy_options().top_level(auth_member(
      R"({"method": "scram-sha-256"})", "\"users_file\": " + json_string(users.path()) + ", \"max_authenticating\": 2")));
  // Two clients stall in the middle of their logins.
  auto stalled1 = std::make_unique<raw_socket>(proxy.port());
  auto stalled2 = std::make_unique<raw_socket>(proxy.port());
  REQUIRE_FALSE(scram_start(*stalled1, "alice").empty());
  REQUIRE_FALSE(scram_start(*stalled2, "alice").empty());

  raw_socket third(proxy.port());
  REQUIRE(third.send(wire::startup_message("alice", "pgmux_test")));
  const auto m = third.read_message(5s);
  REQUIRE(m);
  REQUIRE(m->first == 'E');
  const auto fields = wire::error_fields(m->second);
  CHECK(fields.at('C') == "53300");
  CHECK(fields.at('M') == "too many connections still authenticating");
  CHECK(third.read_until_closed(3s).closed);
  pg_conn refused(with_password(proxy.conninfo("pgmux_test", "alice"), "alice-pw"));
  CHECK_FALSE(refused.ok());
  CHECK(refused.error().find("too many connections still authenticating") != std::string::npos);

  // One stalled client leaves: there is room again.
  stalled1.reset();
  CHECK(wait_until([&] { return pg_conn(with_password(proxy.conninfo("pgmux_test", "alice"), "alice-pw")).ok(); }, 3s,
                   50ms));
  // Logged-in clients do not count.
  auto in1 = connect(with_password(proxy.conninfo("pgmux_test", "alice"), "alice-pw"));
  auto in2 = connect(with_password(proxy.conninfo("pgmux_test", "alice"), "alice-pw"));
  CHECK(scalar(in1, "select 1") == "1");
  CHECK(scalar(in2, "select 2") == "2");
}

TEST_CASE("admin console users authenticate by the same rules") {
  temp_file users(users_file_json({{"boss", scram_verifier("boss-pw")}}));
  proxy_instance proxy(proxy_options().top_level(
      "\"admin\": {\"users\": [\"boss\", \"pgmux_test\"]}, " +
      auth_member(R"({"database": "pgmux", "method": "scram-sha-256"}, {"method": "trust"})",
                  "\"users_file\": " + json_string(users.path()))));
  auto boss = connect(with_password(proxy.conninfo("pgmux", "boss"), "boss-pw"));
  auto r = boss.exec("SHOW VERSION");
  CHECK(r.ok());
  pg_conn wrong(with_password(proxy.conninfo("pgmux", "boss"), "nope"));
  CHECK_MESSAGE(password_failed(wrong, "boss"), wrong.error());
  // An admin without a secret cannot get in: the rule for "pgmux" asks every user for one.
  pg_conn no_secret(with_password(proxy.conninfo("pgmux", "pgmux_test"), "anything"));
  CHECK_MESSAGE(password_failed(no_secret, "pgmux_test"), no_secret.error());
  // Other databases still trust.
  auto plain = connect(proxy.conninfo());
  CHECK(scalar(plain, "select 1") == "1");
}

TEST_CASE("pgmux passwd prints a verifier that pgmux and PostgreSQL both accept") {
  const std::string password = "c0rrect horse! 'battery'";
  const auto r = pgmux_passwd("carol", password);
  REQUIRE_MESSAGE(r.code == 0, r.output);
  // One users_file line: "carol": "SCRAM-SHA-256$4096:<salt>$<StoredKey>:<ServerKey>"
  CHECK(r.output.rfind("\"carol\": \"SCRAM-SHA-256$4096:", 0) == 0);
  CHECK(r.output.back() == '\n');
  CHECK(r.output.find('\n') == r.output.size() - 1);
  const auto verifier = scram_verifier(password);
  CHECK(verifier != r.output.substr(10, verifier.size()));  // a fresh salt every time

  temp_file users("{" + r.output + "}");
  proxy_instance proxy(proxy_options().top_level(
      auth_member(R"({"method": "scram-sha-256"})", "\"users_file\": " + json_string(users.path()))));
  const auto psql = [&](int port, const std::string& pw) {
    return run("PGPASSWORD=" + shell_quote(pw) + " psql -X -At -h 127.0.0.1 -p " + std::to_string(port) +
                   " -U carol -d pgmux_test -c 'select 42'",
               30);
  };
  auto through = psql(proxy.port(), password);
  CHECK_MESSAGE(through.code == 0, through.output);
  CHECK(through.output == "42\n");
  auto through_wrong = psql(proxy.port(), "wrong");
  CHECK(through_wrong.code != 0);
  CHECK(through_wrong.output.find("password authentication failed for user \"carol\"") != std::string::npos);

  // PostgreSQL takes the verifier as it is, and libpq logs in to it with the password.
  const std::string printed = r.output.substr(r.output.find("SCRAM-SHA-256$"));
  const std::string line_verifier = printed.substr(0, printed.find('"'));
  auto admin = connect(pg().admin_conninfo());
  set_role_password(admin, "carol", "placeholder");
  exec_ok(admin, "alter role carol password '" + line_verifier + "'");
  CHECK(stored_secret(admin, "carol") == line_verifier);
  auto direct = psql(pg().port(), password);
  CHECK_MESSAGE(direct.code == 0, direct.output);
  CHECK(direct.output == "42\n");
  CHECK(psql(pg().port(), "wrong").code != 0);

  // Input errors.
  CHECK(run("printf '' | " + shell_quote(pgmux_binary()) + " passwd carol", 30).code == 1);
  CHECK(run("printf '\\n' | " + shell_quote(pgmux_binary()) + " passwd carol", 30).code == 1);
  CHECK(run(shell_quote(pgmux_binary()) + " passwd", 30).code == 2);
}

TEST_CASE("max_client_conn refuses clients past the limit with 53300 until one leaves") {
  proxy_instance proxy(proxy_options().top_level(R"("max_client_conn": 2)"));
  auto first = connect(proxy.conninfo());
  auto second = connect(proxy.conninfo());
  pg_conn third(proxy.conninfo());
  CHECK_FALSE(third.ok());
  CHECK_MESSAGE(third.error().find("too many clients already") != std::string::npos, third.error());
  {
    raw_socket raw(proxy.port());
    raw.send(wire::startup_message("pgmux_test", "pgmux_test"));
    auto m = raw.read_message(3s);
    REQUIRE(m);
    CHECK(m->first == 'E');
    CHECK(wire::error_fields(m->second)['C'] == "53300");
  }
  CHECK(scalar(first, "select 'still served'") == "still served");
  second.reset();
  CHECK(wait_until([&] { return pg_conn(proxy.conninfo()).ok(); }, 3s));
}

}  // TEST_SUITE
}  // namespace it
