// MD5 password authentication as a client: "md5" + md5(md5(password + user) + salt).
#pragma once
#include <string>
#include <string_view>

namespace pgmux::auth {

// `salt` is the 4 bytes of AuthenticationMD5Password.
std::string md5_password_response(std::string_view user, std::string_view password, std::string_view salt);

}  // namespace pgmux::auth
