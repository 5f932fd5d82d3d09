// MD5 password response, as libpq sends it.
// Cases:
//   matches an independently computed response
//   salt is binary: NUL and high bytes included
//   user and password are not interchangeable
#include <doctest/doctest.h>

#include <string>

#include "pgmux/auth/md5.hpp"

using pgmux::auth::md5_password_response;

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

}  // TEST_SUITE
