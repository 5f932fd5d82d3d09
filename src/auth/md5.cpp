// MD5 password authentication: the response libpq computes, and its check against a stored secret.
#include "pgmux/auth/md5.hpp"

#include "pgmux/auth/crypto.hpp"

namespace pgmux::auth {

std::string md5_password_response(std::string_view user, std::string_view password, std::string_view salt) {
  std::string outer = md5_secret(user, password).substr(3);
  outer.append(salt);
  return "md5" + md5_hex(outer);
}

std::string md5_secret(std::string_view user, std::string_view password) {
  std::string inner(password);
  inner.append(user);
  return "md5" + md5_hex(inner);
}

bool is_md5_secret(std::string_view stored) {
  return stored.size() == 35 && stored.substr(0, 3) == "md5" &&
         stored.find_first_not_of("0123456789abcdef", 3) == std::string_view::npos;
}

bool verify_md5_response(std::string_view stored_secret, std::string_view salt, std::string_view client_response) {
  if (!is_md5_secret(stored_secret)) return false;
  std::string outer(stored_secret.substr(3));
  outer.append(salt);
  return constant_time_equal("md5" + md5_hex(outer), client_response);
}

}  // namespace pgmux::auth
