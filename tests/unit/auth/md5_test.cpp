// MD5 password authentication: the response libpq sends, the secret PostgreSQL stores, and the
// server's check of one against the other.
// Cases:
//   matches an independently computed response
//   salt is binary: NUL and high bytes included
//   user and password are not interchangeable
//   md5_secret matches a secret made by PostgreSQL 15
//   md5_secret matches libpq's PQencryptPassword
//   is_md5_secret takes only "md5" and 32 lowercase hex digits
//   verify_md5_response accepts the response of the right password
//   verify_md5_response refuses wrong passwords, salts and shapes
//   verify_md5_response refuses a SCRAM verifier
#include <doctest/doctest.h>

#include <libpq-fe.h>

#include <string>

#include "pgmux/auth/crypto.hpp"
#include "pgmux/auth/md5.hpp"

using namespace pgmux::auth;

TEST_SUITE("md5") {

TEST_CASE("matches an independently computed response") {
  // h=$(printf '%s' 'secretpostgres' | md5sum | cut -c1-32)   # 53f48b7c4b76a86ce72276c5755f217d
  // printf '%s\x01\x02\x03\x04' "$h" | md5sum                 # bb41a296aab6baccb36ff243a562abff
  const std::string salt("\x01\x02\x03\x04", 4);
  CHECK(md5_password_response("postgres", "secret", salt) == "md5bb41a296aab6baccb36ff243a562abff");
}

TEST_CASE("salt is binary: NUL and high bytes included") {
  // printf '%s\xff\x00\x80\x7f' "$h" | md5sum                 # af5825a82e8a131090770b6d3ea127f9
  const std::string salt("\xff\x00\x80\x7f", 4);
  CHECK(md5_password_response("postgres", "secret", salt) == "md5af5825a82e8a131090770b6d3ea127f9");
}

TEST_CASE("user and password are not interchangeable") {
  const std::string salt("\x01\x02\x03\x04", 4);
  const auto r = md5_password_response("secret", "postgres", salt);
  CHECK(r.size() == 35);
  CHECK(r.substr(0, 3) == "md5");
  CHECK(r != "md5bb41a296aab6baccb36ff243a562abff");
}

TEST_CASE("md5_secret matches a secret made by PostgreSQL 15") {
  // SET password_encryption = 'md5'; CREATE ROLE m LOGIN PASSWORD 'pencil';
  // SELECT rolpassword FROM pg_authid WHERE rolname = 'm';
  constexpr const char* pg_secret = "md58bbf3f45673bf67d02e4214911f3417f";
  CHECK(md5_secret("m", "pencil") == pg_secret);
  CHECK(std::string("md5") + md5_hex("pencilm") == pg_secret);
}

TEST_CASE("md5_secret matches libpq's PQencryptPassword") {
  for (const auto& [user, password] : {std::pair{"postgres", "secret"}, std::pair{"m", "pencil"},
                                       std::pair{"app user", "p\xc3\xa4ssw\xc3\xb6rd"}, std::pair{"u", ""}}) {
    CAPTURE(user);
    char* libpq = PQencryptPassword(password, user);
    REQUIRE(libpq != nullptr);
    const std::string expected = libpq;
    PQfreemem(libpq);
    CHECK(md5_secret(user, password) == expected);
  }
}

TEST_CASE("is_md5_secret takes only \"md5\" and 32 lowercase hex digits") {
  CHECK(is_md5_secret("md58bbf3f45673bf67d02e4214911f3417f"));
  CHECK_FALSE(is_md5_secret("md58BBF3F45673BF67D02E4214911F3417F"));
  CHECK_FALSE(is_md5_secret("MD58bbf3f45673bf67d02e4214911f3417f"));
  CHECK_FALSE(is_md5_secret("md58bbf3f45673bf67d02e4214911f3417"));
  CHECK_FALSE(is_md5_secret("md58bbf3f45673bf67d02e4214911f3417f0"));
  CHECK_FALSE(is_md5_secret("md58bbf3f45673bf67d02e4214911f3417g"));
  CHECK_FALSE(is_md5_secret("md5"));
  CHECK_FALSE(is_md5_secret(""));
  CHECK_FALSE(is_md5_secret("pencil"));
}

TEST_CASE("verify_md5_response accepts the response of the right password") {
  const auto secret = md5_secret("postgres", "secret");
  for (const std::string& salt : {std::string("\x01\x02\x03\x04", 4), std::string("\xff\x00\x80\x7f", 4)}) {
    CHECK(verify_md5_response(secret, salt, md5_password_response("postgres", "secret", salt)));
  }
  CHECK(verify_md5_response(secret, std::string("\x01\x02\x03\x04", 4), "md5bb41a296aab6baccb36ff243a562abff"));
}

TEST_CASE("verify_md5_response refuses wrong passwords, salts and shapes") {
  const auto secret = md5_secret("postgres", "secret");
  const std::string salt("\x01\x02\x03\x04", 4);
  const std::string right = md5_password_response("postgres", "secret", salt);
  CHECK_FALSE(verify_md5_response(secret, salt, md5_password_response("postgres", "Secret", salt)));
  CHECK_FALSE(verify_md5_response(secret, salt, md5_password_response("other", "secret", salt)));
  CHECK_FALSE(verify_md5_response(secret, std::string("\x01\x02\x03\x05", 4), right));
  CHECK_FALSE(verify_md5_response(secret, salt, right.substr(0, 34)));
  CHECK_FALSE(verify_md5_response(secret, salt, right + "0"));
  CHECK_FALSE(verify_md5_response(secret, salt, right.substr(3)));
  CHECK_FALSE(verify_md5_response(secret, salt, ""));
  CHECK_FALSE(verify_md5_response(secret, salt, secret));  // the stored secret itself is not a response
  CHECK_FALSE(verify_md5_response("secret", salt, right));  // not an md5 secret: plain passwords are not stored
  CHECK_FALSE(verify_md5_response("", salt, right));
}

TEST_CASE("verify_md5_response refuses a SCRAM verifier") {
  const std::string salt("\x01\x02\x03\x04", 4);
  constexpr const char* scram =
      "SCRAM-SHA-256$4096:BzeQ16dY+zylb8yWjFmCbQ==$eLLOPrvlfUTRCZq+ZAvu3jyZq1B9FA3oAkOMAlLPBRg=:"
      "BqpDQA2RAyTOzx5hIV7un95a1lOIq+ReLYSpOqpNpY0=";
  CHECK_FALSE(verify_md5_response(scram, salt, md5_password_response("t", "pencil", salt)));
}

}  // TEST_SUITE
