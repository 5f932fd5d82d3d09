// Checks of the test fixtures themselves, against PostgreSQL directly (no pgmux):
// - the test cluster requires SCRAM-SHA-256 on TCP and accepts the test role's password
// - the admin connection over the Unix socket sees client backends of the test role
#include <doctest/doctest.h>

#include "integration/fixtures.hpp"

// Inside namespace it: libpq declares `struct pg_conn` and `struct pg_result` globally.
namespace it {
TEST_SUITE("fixtures") {

TEST_CASE("test cluster requires SCRAM-SHA-256 on TCP and accepts the test role's password") {
  // Without a password the server asks for one: TCP is not trusted.
  pg_conn no_password("host=127.0.0.1 port=" + std::to_string(pg().port()) +
                      " user=pgmux_test dbname=pgmux_test connect_timeout=10");
  CHECK_FALSE(no_password.ok());
  CHECK(no_password.error().find("password") != std::string::npos);

  pg_conn wrong("host=127.0.0.1 port=" + std::to_string(pg().port()) +
                " user=pgmux_test password=wrong dbname=pgmux_test connect_timeout=10");
  CHECK_FALSE(wrong.ok());
  CHECK(wrong.error().find("password authentication failed") != std::string::npos);

  auto direct = connect(pg().direct_conninfo());
  CHECK(scalar(direct, "select current_user") == "pgmux_test");

  auto admin = connect(pg().admin_conninfo());
  CHECK(scalar(admin, "select rolpassword like 'SCRAM-SHA-256$%' from pg_authid where rolname = 'pgmux_test'") == "t");
  CHECK(scalar(admin, "select count(*) from pg_hba_file_rules where type = 'host' and auth_method <> 'scram-sha-256'") == "0");
  CHECK(scalar(admin, "show max_connections") == "200");
}

TEST_CASE("a sanitizer report in a pgmux log is found from the line it starts on") {
  CHECK(sanitizer_report("pgmux: listening\npgmux: stopped\n").empty());
  const std::string asan = "log line\n==42==ERROR: AddressSanitizer: heap-use-after-free on address 0x1\n    #0 f\n";
  CHECK(sanitizer_report(asan).rfind("==42==ERROR: AddressSanitizer: heap-use-after-free", 0) == 0);
  CHECK(sanitizer_report("a\n==7==ERROR: LeakSanitizer: detected memory leaks\n").find("LeakSanitizer") !=
        std::string::npos);
  CHECK(sanitizer_report("x\nsrc/a.cpp:3:5: runtime error: signed integer overflow\n")
            .rfind("src/a.cpp:3:5: runtime error", 0) == 0);
}

TEST_CASE("admin connection counts the test role's client backends") {
  auto admin = connect(pg().admin_conninfo());
  const int before = server_connections(admin);
  {
    auto a = connect(pg().direct_conninfo());
    auto b = connect(pg().direct_conninfo());
    CHECK(server_connections(admin) == before + 2);
  }
  CHECK(wait_until([&] { return server_connections(admin) == before; }, 5s));
}

}  // TEST_SUITE
}  // namespace it
