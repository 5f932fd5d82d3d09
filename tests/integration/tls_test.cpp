// TLS through pgmux, with certificates made by the openssl command for each test process:
// - clients: sslmode=require and verify-full (by name and by address) succeed; tls.mode require
//   refuses a plaintext TCP client with a clear error and lets the Unix socket in; min_version
// - SCRAM-SHA-256-PLUS: channel_binding=require succeeds over TLS and fails without it
// - the cert method admits a certificate whose CN is the user and refuses none or another CN
// - SIGHUP reloads the certificate for new clients; a broken reload changes nothing
// - servers: sslmode require and verify-full (client certificate too) against a cluster with
//   ssl on; allow, prefer and require against one without; a large result, COPY both ways and a
//   cancel with TLS on both legs
#include <doctest/doctest.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <signal.h>
#include <sys/stat.h>

#include <fstream>
#include <thread>

#include "integration/fixtures.hpp"

// Inside namespace it: libpq declares `struct pg_conn` and `struct pg_result` globally.
namespace it {
namespace {

// A test CA and what it signs: two server certificates for localhost and 127.0.0.1 (different
// serials), client certificates for alice and pgmux_test, and a client certificate from a CA
// nobody trusts. Made once per test process in a temp dir, removed at exit.
class test_pki {
 public:
  static const test_pki& get() {
    static test_pki pki;
    return pki;
  }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  const std::string& dir() const { return dir_; }

  ~test_pki() {
    if (!dir_.empty()) run("rm -rf " + shell_quote(dir_), 30);
  }

 private:
  test_pki() {
    char templ[] = "/tmp/pgmux-pki.XXXXXX";
    REQUIRE(::mkdtemp(templ) != nullptr);
    dir_ = templ;
    ::chmod(dir_.c_str(), 0755);
    std::string conf =
        "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = unused\n"
        "[ca]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\nsubjectKeyIdentifier = hash\n"
        "[server]\nbasicConstraints = CA:FALSE\nkeyUsage = critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage = serverAuth\nsubjectAltName = DNS:localhost,IP:127.0.0.1\n"
        "[client]\nbasicConstraints = CA:FALSE\nkeyUsage = critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage = clientAuth\n";
    shell("cat > openssl.cnf <<'EOF'\n" + conf + "EOF");
    make_ca("ca", "pgmux test CA");
    make_ca("other-ca", "untrusted CA");
    sign("server", "localhost", "server", "ca", 1001);
    sign("server2", "localhost", "server", "ca", 1002);
    sign("alice", "alice", "client", "ca", 2001);
    sign("pgmux_test", "pgmux_test", "client", "ca", 2002);
    sign("mallory", "alice", "client", "other-ca", 3001);
    shell("chmod 600 *.key && chmod 644 *.crt");
  }

  void shell(const std::string& cmd) const {
    const auto r = run("cd " + shell_quote(dir_) + " && " + cmd, 60);
    REQUIRE_MESSAGE(r.code == 0, cmd << "\n" << r.output);
  }
  static std::string new_key(const std::string& name) {
    return "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout " + name + ".key";
  }
  void make_ca(const std::string& name, const std::string& cn) const {
    shell("openssl req -x509 -new -config openssl.cnf -extensions ca " + new_key(name) + " -out " + name +
          ".crt -days 3 -set_serial 1 -subj " + shell_quote("/CN=" + cn));
  }
  void sign(const std::string& name, const std::string& cn, const std::string& ext, const std::string& ca,
            int serial) const {
    shell("openssl req -new -config openssl.cnf " + new_key(name) + " -out " + name + ".csr -subj " +
          shell_quote("/CN=" + cn) + " && openssl x509 -req -in " + name + ".csr -CA " + ca + ".crt -CAkey " + ca +
          ".key -set_serial " + std::to_string(serial) + " -days 3 -extfile openssl.cnf -extensions " + ext + " -out " +
          name + ".crt");
  }

  std::string dir_;
};

const test_pki& pki() { return test_pki::get(); }

// The "tls" member of pgmux's config.
std::string tls_member(const std::string& mode, const std::string& more = {}) {
  return "\"tls\": {\"mode\": " + json_string(mode) + ", \"cert\": " + json_string(pki().path("server.crt")) +
         ", \"key\": " + json_string(pki().path("server.key")) + (more.empty() ? "" : ", " + more) + "}";
}

// pgmux's conninfo with TLS settings for libpq.
std::string over_tls(const proxy_instance& proxy, const std::string& settings, const std::string& db = "pgmux_test",
                     const std::string& user = "pgmux_test") {
  return proxy.conninfo(db, user) + " " + settings;
}

std::string verify_full(const proxy_instance& proxy, const std::string& host = "localhost") {
  return "host=" + host + " port=" + std::to_string(proxy.port()) +
         " dbname=pgmux_test user=pgmux_test connect_timeout=10 sslmode=verify-full sslrootcert=" + pki().path("ca.crt");
}

// The serial number of the certificate the server showed this connection (0 without TLS).
long peer_serial(const pg_conn& c) {
  auto* ssl = static_cast<SSL*>(PQsslStruct(c.get(), "OpenSSL"));
  if (!ssl) return 0;
  X509* cert = SSL_get0_peer_certificate(ssl);
  return cert ? ASN1_INTEGER_get(X509_get0_serialNumber(cert)) : 0;
}

std::string ssl_attribute(const pg_conn& c, const char* name) {
  const char* v = PQsslAttribute(c.get(), name);
  return v ? v : "";
}

// Waits for the log line of a reload, applied or refused, after `before` lines of log.
bool wait_for_reload(const proxy_instance& proxy, std::size_t before, bool applied) {
  const std::string marker = applied ? "reload: applied" : "the config was not applied";
  return wait_until([&] { return proxy.log().find(marker, before) != std::string::npos; }, 10s);
}

// Replaces `to` with a copy of `from`, atomically.
void replace_file(const std::string& from, const std::string& to) {
  const auto r = run("cp -p " + shell_quote(from) + " " + shell_quote(to + ".new") + " && mv " + shell_quote(to + ".new") +
                     " " + shell_quote(to));
  REQUIRE_MESSAGE(r.code == 0, r.output);
}

std::string users_file_json(const std::string& user, const std::string& verifier) {
  return "{" + json_string(user) + ": " + json_string(verifier) + "}";
}

// The SCRAM-SHA-256 verifier of `password`, made by `pgmux passwd`.
std::string scram_verifier(const std::string& password) {
  const char* env = std::getenv("PGMUX_IT_BINARY");
  const std::string bin = env && *env ? env : PGMUX_BINARY;
  const auto r = run("printf '%s\\n' " + shell_quote(password) + " | " + shell_quote(bin) + " passwd x", 30);
  REQUIRE_MESSAGE(r.code == 0, r.output);
  const auto start = r.output.find("SCRAM-SHA-256$");
  REQUIRE(start != std::string::npos);
  return r.output.substr(start, r.output.find('"', start) - start);
}

}  // namespace

TEST_SUITE("tls") {

TEST_CASE("clients: sslmode=require and verify-full succeed, and tls.mode require refuses plaintext TCP clients") {
  proxy_instance proxy(proxy_options().unix_socket().top_level(tls_member("require")).top_level(
      R"("admin": {"users": ["pgmux_test"]})"));

  auto required = connect(over_tls(proxy, "sslmode=require"));
  CHECK(PQsslInUse(required.get()) == 1);
  CHECK(scalar(required, "select 1") == "1");
  CHECK(peer_serial(required) == 1001);

  for (const char* host : {"localhost", "127.0.0.1"}) {
    CAPTURE(host);
    auto verified = connect(verify_full(proxy, host));
    CHECK(scalar(verified, "select current_user") == "pgmux_test");
  }

  // psql too, with the certificate checked by name.
  const auto psql = run("psql " + shell_quote(verify_full(proxy)) + " -Atc 'select 40 + 2'", 30);
  CHECK_MESSAGE(psql.code == 0, psql.output);
  CHECK(psql.output.find("42") != std::string::npos);

  // A CA that did not sign pgmux's certificate: the client refuses it.
  pg_conn wrong_ca(proxy.conninfo() + " sslmode=verify-ca sslrootcert=" + pki().path("other-ca.crt"));
  CHECK_FALSE(wrong_ca.ok());
  CHECK_MESSAGE(wrong_ca.error().find("certificate verify failed") != std::string::npos, wrong_ca.error());

  // No TLS over TCP: refused, saying why.
  pg_conn plain(over_tls(proxy, "sslmode=disable"));
  CHECK_FALSE(plain.ok());
  CHECK_MESSAGE(plain.error().find("pgmux requires TLS (tls.mode = require)") != std::string::npos, plain.error());
  {
    raw_socket s(proxy.port());
    REQUIRE(s.send(wire::startup_message("pgmux_test", "pgmux_test")));
    const auto m = s.read_message(5s);
    REQUIRE(m);
    REQUIRE(m->first == 'E');
    CHECK(wire::error_fields(m->second)['C'] == "28000");
  }
  // GSSENCRequest is still answered 'N'.
  {
    raw_socket s(proxy.port());
    REQUIRE(s.send(wire::startup_packet(80877104, "")));
    const auto answer = s.read_until_closed(300ms);
    CHECK(answer.data == "N");
  }
  // The Unix socket needs no TLS (and gets none, as from PostgreSQL).
  auto local = connect("host=" + proxy.dir() + " port=" + std::to_string(proxy.port()) +
                       " dbname=pgmux_test user=pgmux_test connect_timeout=10");
  CHECK(PQsslInUse(local.get()) == 0);
  CHECK(scalar(local, "select 1") == "1");

  // The admin console over TLS; SHOW CLIENTS tells which clients use TLS.
  auto admin = connect(over_tls(proxy, "sslmode=require", "pgmux"));
  CHECK(admin.exec("SHOW POOLS").ok());
  auto clients = admin.exec("SHOW CLIENTS");
  REQUIRE(clients.ok());
  const int tls_column = PQfnumber(clients.get(), "tls");
  REQUIRE(tls_column >= 0);
  int with_tls = 0, without = 0;
  for (int row = 0; row < clients.rows(); ++row) {
    const auto value = clients.value(row, tls_column);
    if (value.rfind("TLSv1.3 ", 0) == 0) ++with_tls;
    else if (value.empty()) ++without;
  }
  CHECK(with_tls >= 2);  // `required` and the console itself
  CHECK(without == 1);   // the Unix-socket client

  // A cancel request needs no TLS (libpq sends it in plaintext), even with tls.mode require.
  REQUIRE(PQsendQuery(required.get(), "select pg_sleep(20)") == 1);
  std::this_thread::sleep_for(300ms);
  const auto t0 = clock::now();
  PGcancel* cancel = PQgetCancel(required.get());
  char errbuf[256];
  CHECK(PQcancel(cancel, errbuf, sizeof errbuf) == 1);
  PQfreeCancel(cancel);
  auto r = get_result(required, 10s);
  CHECK(r.sqlstate() == "57014");
  CHECK(seconds_since(t0) < 5);
  while (get_result(required, 5s)) {
  }
  CHECK(scalar(required, "select 2") == "2");
  CHECK(proxy.logged("logged in (trust, TLSv1.3"));
}

TEST_CASE("clients: tls.mode allow serves both, and min_version 1.3 refuses TLS 1.2 clients") {
  SUBCASE("allow") {
    proxy_instance proxy(proxy_options().top_level(tls_member("allow")));
    auto tls = connect(over_tls(proxy, "sslmode=require"));
    CHECK(PQsslInUse(tls.get()) == 1);
    auto plain = connect(over_tls(proxy, "sslmode=disable"));
    CHECK(PQsslInUse(plain.get()) == 0);
    CHECK(scalar(plain, "select 1") == "1");
    auto tls12 = connect(over_tls(proxy, "sslmode=require ssl_max_protocol_version=TLSv1.2"));
    CHECK(ssl_attribute(tls12, "protocol") == "TLSv1.2");
  }
  SUBCASE("min_version 1.3") {
    proxy_instance proxy(proxy_options().top_level(tls_member("allow", R"("min_version": "1.3")")));
    pg_conn old(over_tls(proxy, "sslmode=require ssl_max_protocol_version=TLSv1.2"));
    CHECK_FALSE(old.ok());
    auto current = connect(over_tls(proxy, "sslmode=require"));
    CHECK(ssl_attribute(current, "protocol") == "TLSv1.3");
  }
}

TEST_CASE("auth_timeout ends a client that stops in the middle of the TLS handshake") {
  proxy_instance proxy(proxy_options().top_level(tls_member("allow")).top_level(
      R"("auth_timeout": "1s", "auth": {"failure_delay": "10ms"})"));
  raw_socket s(proxy.port());
  const auto t0 = clock::now();
  REQUIRE(s.send(wire::startup_packet(80877103, "")));  // SSLRequest
  std::string answer;
  REQUIRE(wait_until([&] {
    auto got = s.read_until_closed(50ms);
    answer += got.data;
    return !answer.empty();
  }, 5s));
  CHECK(answer == "S");
  REQUIRE(s.send(std::string("\x16\x03\x01", 3)));  // the start of a ClientHello, and no more
  const auto end = s.read_until_closed(5s);
  CHECK(end.closed);
  CHECK(seconds_since(t0) >= 0.9);
  CHECK(seconds_since(t0) < 3.0);
  CHECK(wait_until([&] { return proxy.log().find("client login timeout") != std::string::npos; }, 2s));
}

TEST_CASE("TLS clients that pipeline more and hang up while queued get nothing run") {
  // A queued TLS client's further records cannot be read aside as plaintext can, so watching
  // its socket ends when they arrive; the hang-up is then seen when a connection comes free.
  {
    auto setup = setup_connection();
    exec_ok(setup, "drop table if exists it_tls_departed; create table it_tls_departed (x int)");
  }
  proxy_instance proxy(proxy_options().top_level(tls_member("allow")).top_level(R"("admin": {"users": ["pgmux_test"]})")
                           .pool("max_size", "1").pool("query_wait_timeout", "30s"));
  auto admin = connect(proxy.conninfo("pgmux", "pgmux_test"));
  const auto waiting = [&] {
    auto r = admin.exec("SHOW POOLS");
    const int col = PQfnumber(r.get(), "cl_waiting");
    for (int row = 0; row < r.rows(); ++row)
      if (r.value(row, 0) == "pgmux_test") return r.value(row, col);
    return std::string();
  };
  auto holder = connect(proxy.conninfo());
  exec_ok(holder, "begin");
  CHECK(scalar(holder, "select 'holding'") == "holding");

  constexpr int departed = 5;
  std::vector<pg_conn> clients;
  const auto send_insert = [](pg_conn& c, int value) {
    const std::string v = std::to_string(value);
    const char* params[] = {v.c_str()};
    REQUIRE(PQsendQueryParams(c.get(), "insert into it_tls_departed values ($1::int)", 1, nullptr, params, nullptr,
                              nullptr, 0) == 1);
    REQUIRE(PQpipelineSync(c.get()) == 1);
    REQUIRE(PQflush(c.get()) == 0);
  };
  for (int i = 0; i < departed; ++i) {
    clients.push_back(connect(over_tls(proxy, "sslmode=require")));
    REQUIRE(PQsslInUse(clients.back().get()) == 1);
    REQUIRE(PQenterPipelineMode(clients.back().get()) == 1);
    send_insert(clients.back(), i);
  }
  REQUIRE(wait_until([&] { return waiting() == std::to_string(departed); }, 10s));
  for (int i = 0; i < departed; ++i) send_insert(clients[i], 100 + i);  // more records while queued
  CHECK(waiting() == std::to_string(departed));  // a round trip: pgmux has seen those records
  for (auto& c : clients) c.abort_socket();
  exec_ok(holder, "commit");
  auto newcomer = connect(proxy.conninfo());
  CHECK(scalar(newcomer, "select count(*) from it_tls_departed") == "0");
  CHECK(wait_until([&] { return waiting() == "0"; }, 5s));
}

TEST_CASE("SCRAM-SHA-256-PLUS: channel_binding=require succeeds over TLS and fails without it") {
  const auto users = pki().path("users-" + std::to_string(::getpid()) + ".json");
  {
    std::ofstream out(users);
    out << users_file_json("alice", scram_verifier("alice-pw"));
  }
  proxy_instance proxy(proxy_options().top_level(tls_member("allow")).top_level(
      "\"auth\": {\"rules\": [{\"method\": \"scram-sha-256\"}], \"users_file\": " + json_string(users) + "}"));
  auto bound = connect(over_tls(proxy, "sslmode=require channel_binding=require password=alice-pw", "pgmux_test", "alice"));
  CHECK(scalar(bound, "select 1") == "1");
  auto verified = connect(verify_full(proxy) + " user=alice password=alice-pw channel_binding=require");
  CHECK(scalar(verified, "select 1") == "1");
  pg_conn wrong(over_tls(proxy, "sslmode=require channel_binding=require password=nope", "pgmux_test", "alice"));
  CHECK_FALSE(wrong.ok());
  CHECK_MESSAGE(wrong.error().find("password authentication failed") != std::string::npos, wrong.error());
  // Without TLS there is nothing to bind to: no -PLUS, and libpq gives up.
  pg_conn plain(over_tls(proxy, "sslmode=disable channel_binding=require password=alice-pw", "pgmux_test", "alice"));
  CHECK_FALSE(plain.ok());
  CHECK(plain.error().find("channel binding") != std::string::npos);
  ::unlink(users.c_str());
}

TEST_CASE("the cert method admits a certificate whose CN is the user and refuses none or another CN") {
  proxy_instance proxy(proxy_options().top_level(tls_member("allow", "\"ca\": " + json_string(pki().path("ca.crt"))))
                           .top_level(R"("auth": {"rules": [{"method": "cert"}], "failure_delay": "50ms"})"));
  const auto with_cert = [&](const std::string& name, const std::string& user) {
    return over_tls(proxy, "sslmode=require sslcert=" + pki().path(name + ".crt") + " sslkey=" + pki().path(name + ".key"),
                    "pgmux_test", user);
  };
  auto alice = connect(with_cert("alice", "alice"));
  CHECK(scalar(alice, "select current_user") == "pgmux_test");  // the DSN's server user
  CHECK(proxy.logged("logged in (cert, TLS"));

  pg_conn none(over_tls(proxy, "sslmode=require", "pgmux_test", "alice"));
  CHECK_FALSE(none.ok());
  CHECK_MESSAGE(none.error().find("connection requires a valid client certificate") != std::string::npos, none.error());

  // Without TLS there is no certificate to check.
  pg_conn plain(over_tls(proxy, "sslmode=disable", "pgmux_test", "alice"));
  CHECK_FALSE(plain.ok());
  CHECK_MESSAGE(plain.error().find("connection requires a valid client certificate") != std::string::npos, plain.error());

  pg_conn other_user(with_cert("alice", "bob"));
  CHECK_FALSE(other_user.ok());
  CHECK_MESSAGE(other_user.error().find("certificate authentication failed for user \"bob\"") != std::string::npos,
                other_user.error());

  // Signed by a CA pgmux does not trust: the handshake fails.
  pg_conn untrusted(with_cert("mallory", "alice"));
  CHECK_FALSE(untrusted.ok());
  CHECK_MESSAGE(untrusted.error().find("SSL") != std::string::npos, untrusted.error());
}

TEST_CASE("SIGHUP reloads the certificate for new clients, and a broken reload changes nothing") {
  // pgmux's own copies of the files, so that the test can replace them.
  const auto cert = pki().path("live-" + std::to_string(::getpid()) + ".crt");
  const auto key = pki().path("live-" + std::to_string(::getpid()) + ".key");
  replace_file(pki().path("server.crt"), cert);
  replace_file(pki().path("server.key"), key);
  proxy_instance proxy(proxy_options().top_level("\"tls\": {\"mode\": \"allow\", \"cert\": " + json_string(cert) +
                                                 ", \"key\": " + json_string(key) + "}"));
  auto before = connect(verify_full(proxy));
  CHECK(peer_serial(before) == 1001);

  replace_file(pki().path("server2.crt"), cert);
  replace_file(pki().path("server2.key"), key);
  auto log_size = proxy.log().size();
  proxy.send_signal(SIGHUP);
  REQUIRE_MESSAGE(wait_for_reload(proxy, log_size, true), proxy.log_tail());
  auto after = connect(verify_full(proxy));
  CHECK(peer_serial(after) == 1002);
  CHECK(scalar(before, "select 1") == "1");  // the client that came before keeps its session

  // A key that does not match the certificate: refused, and the running certificate stays.
  replace_file(pki().path("server.key"), key);
  log_size = proxy.log().size();
  proxy.send_signal(SIGHUP);
  REQUIRE_MESSAGE(wait_for_reload(proxy, log_size, false), proxy.log_tail());
  CHECK(proxy.log().find("/tls/key", log_size) != std::string::npos);
  auto still = connect(verify_full(proxy));
  CHECK(peer_serial(still) == 1002);

  // An unreadable certificate: refused too.
  ::unlink(cert.c_str());
  log_size = proxy.log().size();
  proxy.send_signal(SIGHUP);
  REQUIRE_MESSAGE(wait_for_reload(proxy, log_size, false), proxy.log_tail());
  CHECK(peer_serial(connect(verify_full(proxy))) == 1002);
  CHECK(proxy.alive());
  ::unlink(key.c_str());
}

TEST_CASE("servers: sslmode against clusters with and without TLS, and results, COPY and cancel with TLS on both legs") {
  const std::string base = pg().server_dsn("pgmux_test");
  const std::string localhost = "host=localhost port=" + std::to_string(pg().port()) +
                                " user=pgmux_test dbname=pgmux_test password=" + pg().password();
  const std::string ssl_query = "select ssl::text from pg_stat_ssl where pid = pg_backend_pid()";

  // The cluster without TLS: require is refused at once, prefer and allow go on without it.
  {
    proxy_instance proxy(proxy_options()
                             .database(R"("req": {"dsn": )" + json_string(base + " sslmode=require") + "}")
                             .database(R"("pref": {"dsn": )" + json_string(base + " sslmode=prefer") + "}")
                             .database(R"("allow": {"dsn": )" + json_string(base + " sslmode=allow") + "}"));
    const auto t0 = clock::now();
    pg_conn req(proxy.conninfo("req"));
    CHECK_FALSE(req.ok());
    CHECK_MESSAGE(req.error().find("does not support TLS") != std::string::npos, req.error());
    CHECK(seconds_since(t0) < 5);
    for (const char* db : {"pref", "allow"}) {
      CAPTURE(db);
      auto c = connect(proxy.conninfo(db));
      CHECK(scalar(c, ssl_query) == "false");
    }
  }

  ssl_guard ssl(pki().path("server.crt"), pki().path("server.key"), pki().path("ca.crt"));
  const std::string ca = " sslrootcert=" + pki().path("ca.crt");
  const std::string client_cert = " sslcert=" + pki().path("pgmux_test.crt") + " sslkey=" + pki().path("pgmux_test.key");
  proxy_instance proxy(
      proxy_options()
          .workers(2)
          .top_level(tls_member("allow"))
          .top_level(R"("admin": {"users": ["pgmux_test"]})")
          .database(R"("req": {"dsn": )" + json_string(base + " sslmode=require") + "}")
          .database(R"("full": {"dsn": )" + json_string(localhost + " sslmode=verify-full" + ca + client_cert) + "}")
          .database(R"("full_ip": {"dsn": )" + json_string(base + " sslmode=verify-full" + ca) + "}")
          .database(R"("wrong_ca": {"dsn": )" + json_string(base + " sslmode=verify-ca sslrootcert=" +
                                                      pki().path("other-ca.crt")) + "}")
          .database(R"("allow": {"dsn": )" + json_string(base + " sslmode=allow") + "}")
          .database(R"("off": {"dsn": )" + json_string(base + " sslmode=disable") + "}"));

  for (const char* db : {"req", "full", "full_ip"}) {
    CAPTURE(db);
    auto c = connect(over_tls(proxy, "sslmode=require", db));
    CHECK(scalar(c, ssl_query) == "true");
  }
  // With a client certificate the server sees who pgmux is.
  auto full = connect(over_tls(proxy, "sslmode=require", "full"));
  CHECK(scalar(full, "select client_dn from pg_stat_ssl where pid = pg_backend_pid()") == "/CN=pgmux_test");
  for (const char* db : {"allow", "off"}) {
    CAPTURE(db);
    CHECK(scalar(connect(proxy.conninfo(db)), ssl_query) == "false");
  }
  // The default, prefer, uses TLS when the server has it.
  CHECK(scalar(connect(proxy.conninfo()), ssl_query) == "true");
  // SHOW SERVERS tells which server connections use TLS.
  {
    auto admin = connect(proxy.conninfo("pgmux"));
    auto servers = admin.exec("SHOW SERVERS");
    REQUIRE(servers.ok());
    const int db_column = PQfnumber(servers.get(), "database"), tls_column = PQfnumber(servers.get(), "tls");
    REQUIRE(tls_column >= 0);
    int checked = 0;
    for (int row = 0; row < servers.rows(); ++row) {
      const auto db = servers.value(row, db_column);
      const auto tls = servers.value(row, tls_column);
      if (db == "full") CHECK(tls.rfind("TLSv1.3 ", 0) == 0);
      if (db == "off") CHECK(tls.empty());
      checked += db == "full" || db == "off";
    }
    CHECK(checked >= 2);
  }

  const auto t0 = clock::now();
  pg_conn wrong(proxy.conninfo("wrong_ca"));
  CHECK_FALSE(wrong.ok());
  CHECK_MESSAGE(wrong.error().find("certificate verify failed") != std::string::npos, wrong.error());
  CHECK(seconds_since(t0) < 5);

  // TLS on both legs: a large result, COPY in and out, and a cancel.
  auto c = connect(over_tls(proxy, "sslmode=require", "req"));
  REQUIRE(PQsslInUse(c.get()) == 1);
  auto big = c.exec("select i, repeat(md5(i::text), 8) from generate_series(1, 60000) i");
  REQUIRE_MESSAGE(big.ok(), big.error());
  CHECK(big.rows() == 60000);
  CHECK(big.value(59999, 0) == "60000");
  CHECK(big.value(59999, 1).size() == 256);

  exec_ok(c, "create temp table tls_copy (id int, payload text)");
  std::string data;
  for (int i = 0; i < 50000; ++i) data += std::to_string(i) + "\t" + std::string(100, static_cast<char>('a' + i % 26)) + "\n";
  exec_ok(c, "begin");
  auto start = c.exec("copy tls_copy from stdin");
  REQUIRE_MESSAGE(start.status() == PGRES_COPY_IN, start.error());
  for (std::size_t off = 0; off < data.size(); off += 8191)
    REQUIRE(PQputCopyData(c.get(), data.data() + off, static_cast<int>(std::min<std::size_t>(8191, data.size() - off))) == 1);
  REQUIRE(PQputCopyEnd(c.get(), nullptr) == 1);
  auto copied = get_result(c, 30s);
  CHECK_MESSAGE(copied.status() == PGRES_COMMAND_OK, copied.error());
  while (get_result(c, 5s)) {
  }
  start = c.exec("copy tls_copy to stdout");
  REQUIRE_MESSAGE(start.status() == PGRES_COPY_OUT, start.error());
  std::string out;
  for (;;) {
    char* buf = nullptr;
    const int n = PQgetCopyData(c.get(), &buf, 0);
    if (n < 0) break;
    out.append(buf, static_cast<std::size_t>(n));
    PQfreemem(buf);
  }
  while (get_result(c, 5s)) {
  }
  CHECK(out.size() == data.size());
  CHECK(out == data);
  exec_ok(c, "commit");

  REQUIRE(PQsendQuery(c.get(), "select pg_sleep(20)") == 1);
  std::this_thread::sleep_for(300ms);
  const auto t1 = clock::now();
  PGcancel* cancel = PQgetCancel(c.get());
  char errbuf[256];
  CHECK(PQcancel(cancel, errbuf, sizeof errbuf) == 1);
  PQfreeCancel(cancel);
  CHECK(get_result(c, 10s).sqlstate() == "57014");
  CHECK(seconds_since(t1) < 5);
  while (get_result(c, 5s)) {
  }
  CHECK(scalar(c, "select 3") == "3");
}

}  // TEST_SUITE

}  // namespace it
