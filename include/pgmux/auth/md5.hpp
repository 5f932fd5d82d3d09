// MD5 password authentication, both sides. The client answers the server's 4-byte salt with
// "md5" + md5(md5(password + user) + salt); the server keeps only md5(password + user).
#pragma once
#include <string>
#include <string_view>

namespace pgmux::auth {

// `salt` is the 4 bytes of AuthenticationMD5Password.
std::string md5_password_response(std::string_view user, std::string_view password, std::string_view salt);

// The md5 secret PostgreSQL stores in pg_authid.rolpassword: "md5" + md5(password + user).
std::string md5_secret(std::string_view user, std::string_view password);

// True when `stored` has the form of an md5 secret: "md5" and 32 lowercase hex digits.
bool is_md5_secret(std::string_view stored);

// The server side of md5 authentication: true when `client_response` (the PasswordMessage) is
// "md5" + md5(<hex digits of stored_secret> + salt). Compared in constant time.
// Only an md5 secret can check an md5 response. A SCRAM verifier does not hold
// md5(password + user), so given one this returns false: for users with SCRAM verifiers the
// caller must run SCRAM instead, which effective_method (rules.hpp) decides as PostgreSQL does.
bool verify_md5_response(std::string_view stored_secret, std::string_view salt, std::string_view client_response);

}  // namespace pgmux::auth
