// Server DSNs (through libpq's parser) and .pgpass look-ups.
// Cases:
//   key=value form fills every supported field
//   URI form fills every supported field
//   URI with a Unix socket directory
//   empty DSN keeps the defaults
//   connect_timeout 0 means none
//   fallback_application_name only when application_name is absent
//   every sslmode is read as libpq names it, prefer by default
//   TLS file keys, sslsni, and host as the name TLS checks when hostaddr is given
//   TLS is never tried over a Unix socket or with sslmode disable
//   TLS files: named ones must be readable, ~/.postgresql/ defaults are used when present
//   verify-ca and verify-full need a root certificate
//   a client certificate needs its key, private to its owner and matching
//   unsupported keys are refused by name
//   bad ports, several hosts and bad timeouts are refused
//   unparsable DSNs are refused with libpq's message
//   passfile: wildcards, escapes, first match wins
//   passfile: an escaped star is a literal star, not a wildcard
//   passfile: comments, short lines and CRLF
//   passfile: Unix socket hosts match "localhost"
//   passfile path: DSN, then PGPASSFILE, then HOME
//   password: DSN first, then passfile, else empty
#include <doctest/doctest.h>

#include <cstdlib>
#include <optional>
#include <string>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "pgmux/config/dsn.hpp"
#include "support/test_certs.hpp"

using namespace pgmux::config;

namespace {

server_target parsed(std::string_view dsn) {
  auto r = parse_dsn(dsn);
  const auto* error = std::get_if<std::string>(&r);
  INFO("DSN: ", std::string(dsn));
  REQUIRE_MESSAGE(error == nullptr, (error ? *error : std::string()));
  return std::get<server_target>(r);
}

std::string refused(std::string_view dsn) {
  auto r = parse_dsn(dsn);
  INFO("DSN: ", std::string(dsn));
  REQUIRE(std::holds_alternative<std::string>(r));
  const auto message = std::get<std::string>(r);
  CHECK_FALSE(message.empty());
  return message;
}

// Sets (or unsets, with nullopt) an environment variable for one scope.
class env_guard {
 public:
  env_guard(const char* name, std::optional<std::string> value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) setenv(name, value->c_str(), 1);
    else unsetenv(name);
  }
  ~env_guard() {
    if (old_) setenv(name_, old_->c_str(), 1);
    else unsetenv(name_);
  }
  env_guard(const env_guard&) = delete;
  env_guard& operator=(const env_guard&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

}  // namespace

TEST_SUITE("dsn") {

TEST_CASE("key=value form fills every supported field") {
  const auto t = parsed(
      "host=db.example port=5433 dbname=app user=alice password='s3 cret' passfile=/etc/pgmux/pgpass "
      "application_name=pgmux options='-c search_path=app' connect_timeout=7");
  CHECK(t.host == "db.example");
  CHECK(t.port == 5433);
  CHECK(t.dbname == "app");
  CHECK(t.user == "alice");
  CHECK(t.password == "s3 cret");
  CHECK(t.passfile == "/etc/pgmux/pgpass");
  CHECK(t.application_name == "pgmux");
  CHECK(t.options == "-c search_path=app");
  REQUIRE(t.connect_timeout);
  CHECK(*t.connect_timeout == std::chrono::milliseconds(7000));
}

TEST_CASE("URI form fills every supported field") {
  for (const char* scheme : {"postgresql", "postgres"}) {
    CAPTURE(std::string(scheme));
    const auto t = parsed(std::string(scheme) +
                          "://alice:s%40cret@db.example:5433/app?application_name=pgmux&connect_timeout=3");
    CHECK(t.host == "db.example");
    CHECK(t.port == 5433);
    CHECK(t.dbname == "app");
    CHECK(t.user == "alice");
    CHECK(t.password == "s@cret");
    CHECK(t.application_name == "pgmux");
    REQUIRE(t.connect_timeout);
    CHECK(*t.connect_timeout == std::chrono::milliseconds(3000));
  }
}

TEST_CASE("URI with a Unix socket directory") {
  SUBCASE("host as a query parameter") {
    const auto t = parsed("postgresql:///app?host=/var/run/postgresql&port=5444");
    CHECK(t.host == "/var/run/postgresql");
    CHECK(t.port == 5444);
    CHECK(t.dbname == "app");
  }
  SUBCASE("percent-encoded host") {
    const auto t = parsed("postgresql://%2Ftmp%2Fpg/app");
    CHECK(t.host == "/tmp/pg");
  }
}

TEST_CASE("empty DSN keeps the defaults") {
  const auto t = parsed("");
  CHECK(t.host == "127.0.0.1");
  CHECK(t.port == 5432);
  CHECK(t.dbname.empty());
  CHECK(t.user.empty());
  CHECK(t.password.empty());
  CHECK_FALSE(t.connect_timeout);
}

TEST_CASE("connect_timeout 0 means none") { CHECK_FALSE(parsed("host=h connect_timeout=0").connect_timeout); }

TEST_CASE("fallback_application_name only when application_name is absent") {
  CHECK(parsed("fallback_application_name=fb").application_name == "fb");
  CHECK(parsed("application_name=app fallback_application_name=fb").application_name == "app");
  CHECK(parsed("fallback_application_name=fb application_name=app").application_name == "app");
}

TEST_CASE("every sslmode is read as libpq names it, prefer by default") {
  CHECK(parsed("host=h").sslmode == ssl_mode::prefer);
  const std::pair<const char*, ssl_mode> modes[] = {{"disable", ssl_mode::disable},   {"allow", ssl_mode::allow},
                                                    {"prefer", ssl_mode::prefer},     {"require", ssl_mode::require},
                                                    {"verify-ca", ssl_mode::verify_ca}, {"verify-full", ssl_mode::verify_full}};
  for (const auto& [text, mode] : modes) {
    CAPTURE(std::string(text));
    CHECK(parsed(std::string("host=h sslmode=") + text).sslmode == mode);
    CHECK(std::string(to_string(mode)) == text);
    CHECK(parse_ssl_mode(text) == mode);
  }
  CHECK(parsed("postgresql://h/app?sslmode=verify-full").sslmode == ssl_mode::verify_full);
  for (const char* bad : {"required", "verify_full", "VERIFY-FULL", ""}) {
    CAPTURE(std::string(bad));
    CHECK(refused(std::string("host=h sslmode='") + bad + "'").find("sslmode") != std::string::npos);
  }
}

TEST_CASE("TLS file keys, sslsni, and host as the name TLS checks when hostaddr is given") {
  const auto t = parsed("host=db.example sslmode=verify-full sslrootcert=/etc/ca.crt sslcert=/etc/c.crt "
                        "sslkey=/etc/c.key sslcrl=/etc/ca.crl sslsni=0");
  CHECK(t.sslrootcert == "/etc/ca.crt");
  CHECK(t.sslcert == "/etc/c.crt");
  CHECK(t.sslkey == "/etc/c.key");
  CHECK(t.sslcrl == "/etc/ca.crl");
  CHECK_FALSE(t.sslsni);
  CHECK(parsed("host=h").sslsni);
  CHECK(refused("host=h sslsni=yes").find("sslsni") != std::string::npos);
  CHECK(t.tls_host == "db.example");
  const auto both = parsed("host=db.example hostaddr=10.1.2.3 sslmode=verify-full");
  CHECK(both.host == "10.1.2.3");
  CHECK(both.tls_host == "db.example");
  CHECK(parsed("hostaddr=10.1.2.3 sslmode=verify-ca").tls_host == "10.1.2.3");
  CHECK(refused("hostaddr=10.1.2.3 sslmode=verify-full").find("host") != std::string::npos);
}

TEST_CASE("TLS is never tried over a Unix socket or with sslmode disable") {
  CHECK(parsed("host=h").tls_possible());
  CHECK_FALSE(parsed("host=h sslmode=disable").tls_possible());
  CHECK_FALSE(parsed("host=/var/run/postgresql sslmode=require").tls_possible());
}

TEST_CASE("unsupported keys are refused by name") {
  for (const char* key : {"sslpassword=x", "service=foo", "target_session_attrs=read-write", "gssencmode=require",
                          "sslcompression=1", "sslcrldir=/x", "requirepeer=postgres"}) {
    const std::string dsn = std::string("host=h ") + key;
    const std::string name(key, std::string_view(key).find('='));
    CAPTURE(dsn);
    CHECK(refused(dsn).find(name) != std::string::npos);
  }
}

TEST_CASE("bad ports, several hosts and bad timeouts are refused") {
  CHECK(refused("host=h port=0").find("port") != std::string::npos);
  CHECK(refused("host=h port=65536").find("port") != std::string::npos);
  CHECK(refused("host=h port=abc").find("port") != std::string::npos);
  CHECK(refused("host=a,b").find("host") != std::string::npos);
  CHECK(refused("postgresql://a:5432,b:5433/app").find("host") != std::string::npos);
  CHECK(refused("host=h connect_timeout=-1").find("connect_timeout") != std::string::npos);
  CHECK(refused("host=h connect_timeout=soon").find("connect_timeout") != std::string::npos);
}

TEST_CASE("unparsable DSNs are refused with libpq's message") {
  CHECK(refused("host='unterminated").size() > 0);
  CHECK(refused("nonsense").size() > 0);
  CHECK(refused("bogus_key=1").find("bogus_key") != std::string::npos);
  CHECK(refused("postgresql://[::1/app").size() > 0);
  CHECK(refused("postgresql://h/app?nokey=1").find("nokey") != std::string::npos);
  // No trailing newline from libpq's message.
  const auto m = refused("host='unterminated");
  CHECK(m.back() != '\n');
}

TEST_CASE("passfile: wildcards, escapes, first match wins") {
  const std::string contents =
      "db1:5432:app:alice:first\n"
      "db1:5432:app:alice:second\n"
      "*:5432:app:bob:bobs\n"
      "db2:*:*:carol:carols\n"
      "db3:5432:*:*:anyone\n"
      "db\\:4:5432:app:dave:pa\\:ss\\\\word\n"
      "*:*:*:*:fallback\n";
  CHECK(lookup_passfile(contents, "db1", 5432, "app", "alice") == "first");
  CHECK(lookup_passfile(contents, "anything", 5432, "app", "bob") == "bobs");
  CHECK(lookup_passfile(contents, "db2", 6000, "other", "carol") == "carols");
  CHECK(lookup_passfile(contents, "db3", 5432, "x", "y") == "anyone");
  CHECK(lookup_passfile(contents, "db:4", 5432, "app", "dave") == "pa:ss\\word");
  CHECK(lookup_passfile(contents, "db1", 5433, "app", "alice") == "fallback");
  CHECK(lookup_passfile("db1:5432:app:alice:pw\n", "db1", 5433, "app", "alice") == std::nullopt);
  CHECK(lookup_passfile("db1:5432:app:alice:pw\n", "db1", 5432, "app", "alicia") == std::nullopt);
  CHECK(lookup_passfile("", "db1", 5432, "app", "alice") == std::nullopt);
}

TEST_CASE("passfile: an escaped star is a literal star, not a wildcard") {
  // libpq's pwdfMatchesString treats only an unescaped "*" field as "any".
  const std::string contents = "\\*:5432:app:alice:literal\n";
  CHECK(lookup_passfile(contents, "db1", 5432, "app", "alice") == std::nullopt);
  CHECK(lookup_passfile(contents, "*", 5432, "app", "alice") == "literal");
  CHECK(lookup_passfile("db1:5432:app:*x:pw\n", "db1", 5432, "app", "alice") == std::nullopt);  // no globbing
}

TEST_CASE("passfile: comments, short lines and CRLF") {
  const std::string contents =
      "# db1:5432:app:alice:commented\n"
      "\n"
      "db1:5432:app:alice\n"  // four fields: ignored
      "db1:5432:app:alice:crlf\r\n";
  CHECK(lookup_passfile(contents, "db1", 5432, "app", "alice") == "crlf");
  CHECK(lookup_passfile("db1:5432:app:alice", "db1", 5432, "app", "alice") == std::nullopt);
  CHECK(lookup_passfile("h:1:d:u:pw", "h", 1, "d", "u") == "pw");  // no final newline
}

TEST_CASE("passfile: Unix socket hosts match \"localhost\"") {
  const std::string contents = "localhost:5432:app:alice:local\n";
  CHECK(lookup_passfile(contents, "/var/run/postgresql", 5432, "app", "alice") == "local");
  CHECK(lookup_passfile(contents, "localhost", 5432, "app", "alice") == "local");
  CHECK(lookup_passfile(contents, "127.0.0.1", 5432, "app", "alice") == std::nullopt);
}

TEST_CASE("passfile path: DSN, then PGPASSFILE, then HOME") {
  server_target t;
  SUBCASE("the DSN's own") {
    env_guard env("PGPASSFILE", "/from/env");
    t.passfile = "/from/dsn";
    CHECK(passfile_path(t) == "/from/dsn");
  }
  SUBCASE("PGPASSFILE") {
    env_guard env("PGPASSFILE", "/from/env");
    CHECK(passfile_path(t) == "/from/env");
  }
  SUBCASE("HOME") {
    env_guard env("PGPASSFILE", std::nullopt);
    env_guard home("HOME", "/home/someone");
    CHECK(passfile_path(t) == "/home/someone/.pgpass");
  }
}

TEST_CASE("password: DSN first, then passfile, else empty") {
  server_target t;
  t.host = "db1";
  t.port = 5432;
  t.passfile_contents = "db1:5432:app:alice:from-file\n";
  CHECK(resolve_password(t, "alice", "app") == "from-file");
  CHECK(resolve_password(t, "bob", "app").empty());
  t.password = "from-dsn";
  CHECK(resolve_password(t, "alice", "app") == "from-dsn");
}

namespace {

// A HOME of its own, with ~/.postgresql/ made on request; removed at scope exit.
class temp_home {
 public:
  temp_home() {
    char dir[] = "/tmp/pgmux-home-XXXXXX";
    REQUIRE(mkdtemp(dir) != nullptr);
    dir_ = dir;
    std::filesystem::create_directories(dir_ + "/.postgresql");
    home_.emplace("HOME", dir_);
  }
  ~temp_home() {
    home_.reset();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  temp_home(const temp_home&) = delete;
  temp_home& operator=(const temp_home&) = delete;
  // Writes ~/.postgresql/<name> with `mode`; returns its path.
  std::string put(const std::string& name, const std::string& text, mode_t mode = 0600) const {
    const auto path = dir_ + "/.postgresql/" + name;
    std::ofstream(path) << text;
    REQUIRE(::chmod(path.c_str(), mode) == 0);
    return path;
  }

 private:
  std::string dir_;
  std::optional<env_guard> home_;
};

server_target with_files(std::string_view dsn, std::string* error = nullptr) {
  auto t = parsed(dsn);
  const auto e = read_tls_files(t);
  if (error) *error = e;
  else CHECK_MESSAGE(e.empty(), e);
  return t;
}

}  // namespace

TEST_CASE("TLS files: named ones must be readable, ~/.postgresql/ defaults are used when present") {
  const temp_home home;
  const auto ca = test_certs::self_signed("test CA");
  const auto client = test_certs::self_signed("alice");
  std::string error;
  SUBCASE("nothing there: TLS without verification or client certificate") {
    const auto t = with_files("host=h sslmode=require");
    CHECK(t.sslrootcert_pem.empty());
    CHECK(t.sslcert_pem.empty());
  }
  SUBCASE("defaults are used when present, for require and prefer too (as libpq)") {
    home.put("root.crt", ca.cert, 0644);
    home.put("postgresql.crt", client.cert, 0644);
    home.put("postgresql.key", client.key);
    for (const char* mode : {"prefer", "require", "verify-full"}) {
      CAPTURE(std::string(mode));
      const auto t = with_files(std::string("host=h sslmode=") + mode);
      CHECK(t.sslrootcert_pem == ca.cert);
      CHECK(t.sslcert_pem == client.cert);
      CHECK(t.sslkey_pem == client.key);
    }
  }
  SUBCASE("named files take the place of the defaults") {
    home.put("root.crt", "junk that is never read");
    const auto named_ca = home.put("other-ca.crt", ca.cert);
    CHECK(with_files("host=h sslmode=verify-ca sslrootcert=" + named_ca).sslrootcert_pem == ca.cert);
  }
  SUBCASE("a named file that is missing is an error") {
    with_files("host=h sslrootcert=/nonexistent/ca.crt", &error);
    CHECK(error.find("sslrootcert") != std::string::npos);
    CHECK(error.find("/nonexistent/ca.crt") != std::string::npos);
    with_files("host=h sslmode=require sslcrl=/nonexistent/ca.crl", &error);
    CHECK(error.find("sslcrl") != std::string::npos);
  }
  SUBCASE("a default file that is not a certificate is an error") {
    home.put("root.crt", "junk");
    with_files("host=h", &error);
    CHECK(error.find("root.crt") != std::string::npos);
  }
  SUBCASE("disable reads nothing") {
    home.put("root.crt", "junk");
    CHECK(with_files("host=h sslmode=disable sslrootcert=/nonexistent").sslrootcert_pem.empty());
  }
}

TEST_CASE("verify-ca and verify-full need a root certificate") {
  const temp_home home;
  for (const char* mode : {"verify-ca", "verify-full"}) {
    CAPTURE(std::string(mode));
    std::string error;
    with_files(std::string("host=h sslmode=") + mode, &error);
    CHECK(error.find("sslrootcert") != std::string::npos);
    CHECK(error.find(mode) != std::string::npos);
  }
}

TEST_CASE("a client certificate needs its key, private to its owner and matching") {
  const temp_home home;
  const auto client = test_certs::self_signed("alice");
  const auto other = test_certs::self_signed("bob");
  const auto cert = home.put("c.crt", client.cert, 0644);
  std::string error;
  SUBCASE("no key") {
    home.put("postgresql.crt", client.cert, 0644);
    with_files("host=h", &error);
    CHECK(error.find("private key") != std::string::npos);
  }
  SUBCASE("a key for another certificate") {
    const auto key = home.put("c.key", other.key);
    with_files("host=h sslcert=" + cert + " sslkey=" + key, &error);
    CHECK(error.find("does not match") != std::string::npos);
  }
  SUBCASE("a key others may read") {
    const auto key = home.put("c.key", client.key, 0644);
    with_files("host=h sslcert=" + cert + " sslkey=" + key, &error);
    CHECK(error.find("group or world access") != std::string::npos);
  }
  SUBCASE("a key without a certificate") {
    const auto key = home.put("c.key", client.key);
    with_files("host=h sslkey=" + key, &error);
    CHECK(error.find("sslcert") != std::string::npos);
  }
  SUBCASE("a good pair") {
    const auto key = home.put("c.key", client.key);
    CHECK(with_files("host=h sslcert=" + cert + " sslkey=" + key).sslkey_pem == client.key);
  }
}

}  // TEST_SUITE
