// MD5 password response, as libpq computes it.
#include "pgmux/auth/md5.hpp"

#include "pgmux/auth/crypto.hpp"

namespace pgmux::auth {

std::string md5_password_response(std::string_view user, std::string_view password, std::string_view salt) {
  std::string inner(password);
  inner.append(user);
  std::string outer = md5_hex(inner);
  outer.append(salt);
  return "md5" + md5_hex(outer);
}

}  // namespace pgmux::auth
