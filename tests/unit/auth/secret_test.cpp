// Stored secrets: kinds, validation, and the cleartext password check.
// Cases:
//   secrets made by PostgreSQL are told apart
//   plain passwords and malformed secrets are no kind, with a reason
//   the password method accepts the right password for a SCRAM verifier
//   the password method accepts the right password for an md5 secret
//   the password method refuses wrong passwords, users and malformed secrets
#include <doctest/doctest.h>

#include <string>

#include "pgmux/auth/scram_verifier.hpp"
#include "pgmux/auth/secret.hpp"

using namespace pgmux::auth;

namespace {
// PostgreSQL 15: CREATE ROLE t LOGIN PASSWORD 'pencil' (scram-sha-256), and role m (md5).
constexpr std::string_view pg_scram =
    "SCRAM-SHA-256$4096:BzeQ16dY+zylb8yWjFmCbQ==$eLLOPrvlfUTRCZq+ZAvu3jyZq1B9FA3oAkOMAlLPBRg=:"
    "BqpDQA2RAyTOzx5hIV7un95a1lOIq+ReLYSpOqpNpY0=";
constexpr std::string_view pg_md5 = "md58bbf3f45673bf67d02e4214911f3417f";
}  // namespace

TEST_SUITE("secret") {

TEST_CASE("secrets made by PostgreSQL are told apart") {
  CHECK(secret_kind_of(pg_scram) == secret_kind::scram_sha_256);
  CHECK(secret_kind_of(pg_md5) == secret_kind::md5);
  CHECK(std::string(to_string(secret_kind::scram_sha_256)) == "scram-sha-256");
  CHECK(std::string(to_string(secret_kind::md5)) == "md5");
  CHECK(std::string(to_string(secret_kind::none)) == "none");
}

TEST_CASE("plain passwords and malformed secrets are no kind, with a reason") {
  for (const std::string text : {"", "pencil", "md5", "MD58bbf3f45673bf67d02e4214911f3417f", "md58bbf3f45673bf67d0",
                                 "SCRAM-SHA-256$4096:BzeQ16dY+zylb8yWjFmCbQ==$", "SCRAM-SHA-256$"}) {
    CAPTURE(text);
    std::string error;
    CHECK(secret_kind_of(text, error) == secret_kind::none);
    CHECK_FALSE(error.empty());
    CHECK(secret_kind_of(text) == secret_kind::none);
  }
  std::string error;
  secret_kind_of("md5zz", error);
  CHECK(error.find("md5") != std::string::npos);
  secret_kind_of("SCRAM-SHA-256$x", error);
  CHECK(error.find("SCRAM") != std::string::npos);
}

TEST_CASE("the password method accepts the right password for a SCRAM verifier") {
  CHECK(verify_cleartext_password(pg_scram, "t", "pencil"));
  CHECK(verify_cleartext_password(pg_scram, "any user: SCRAM does not salt with it", "pencil"));
  const auto mine = make_scram_verifier("s3cret!");
  CHECK(verify_cleartext_password(mine, "x", "s3cret!"));
}

TEST_CASE("the password method accepts the right password for an md5 secret") {
  CHECK(verify_cleartext_password(pg_md5, "m", "pencil"));
}

TEST_CASE("the password method refuses wrong passwords, users and malformed secrets") {
  CHECK_FALSE(verify_cleartext_password(pg_scram, "t", "Pencil"));
  CHECK_FALSE(verify_cleartext_password(pg_scram, "t", ""));
  CHECK_FALSE(verify_cleartext_password(pg_md5, "m", "pencil2"));
  CHECK_FALSE(verify_cleartext_password(pg_md5, "t", "pencil"));  // md5 is salted with the user name
  CHECK_FALSE(verify_cleartext_password(pg_md5, "m", std::string(pg_md5)));  // the secret is not the password
  CHECK_FALSE(verify_cleartext_password("pencil", "m", "pencil"));           // plain passwords are not secrets
  CHECK_FALSE(verify_cleartext_password("", "m", ""));
  CHECK_FALSE(verify_cleartext_password("SCRAM-SHA-256$4096:BzeQ16dY+zylb8yWjFmCbQ==$x:y", "t", "pencil"));
}

}  // TEST_SUITE
