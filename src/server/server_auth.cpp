// Client-side authentication steps towards PostgreSQL.
#include "pgmux/server/server_auth.hpp"

#include <algorithm>

#include "pgmux/auth/md5.hpp"
#include "pgmux/protocol/decode.hpp"
#include "pgmux/protocol/encode.hpp"
#include "pgmux/protocol/tags.hpp"

namespace pgmux::net {

server_auth::step server_auth::handle(const protocol::authentication_request& request) {
  using protocol::auth_code;
  step s;
  const auto need_password = [&] {
    if (password_.empty()) s.error = "the server asks for a password and none is configured (DSN password or passfile)";
    return !password_.empty();
  };
  switch (static_cast<auth_code>(request.code)) {
    case auth_code::ok:
      s.ok = true;
      break;
    case auth_code::cleartext_password:
      if (need_password()) protocol::encode_password_message(s.reply, password_);
      break;
    case auth_code::md5_password:
      if (request.data.size() != 4) {
        s.error = "malformed AuthenticationMD5Password";
      } else if (need_password()) {
        protocol::encode_password_message(s.reply, auth::md5_password_response(user_, password_, request.data));
      }
      break;
    case auth_code::sasl: {
      const auto mechanisms = protocol::decode_sasl_mechanisms(request.data);
      if (std::find(mechanisms.begin(), mechanisms.end(), "SCRAM-SHA-256") == mechanisms.end()) {
        s.error = "the server offers no SASL mechanism pgmux supports (SCRAM-SHA-256)";
      } else if (password_.empty() && !passthrough_.empty()) {
        // SCRAM passthrough: the keys a client of this user proved to pgmux.
        scram_.emplace(auth::scram_client::from_keys(passthrough_.client_key, passthrough_.server_key));
        protocol::encode_sasl_initial_response(s.reply, "SCRAM-SHA-256", scram_->client_first_message());
      } else if (password_.empty()) {
        s.error = "the server asks for a password and none is configured (DSN password or passfile), nor has a "
                  "client of this user logged in with SCRAM for passthrough yet";
      } else {
        scram_.emplace(password_);
        protocol::encode_sasl_initial_response(s.reply, "SCRAM-SHA-256", scram_->client_first_message());
      }
      break;
    }
    case auth_code::sasl_continue: {
      if (!scram_) {
        s.error = "unexpected SASL continuation";
        break;
      }
      auto final_message = scram_->handle_server_first(request.data, s.error);
      if (final_message) protocol::encode_sasl_response(s.reply, *final_message);
      break;
    }
    case auth_code::sasl_final:
      if (!scram_) s.error = "unexpected SASL final message";
      else scram_->verify_server_final(request.data, s.error);
      break;
    default:
      s.error = "the server asks for an authentication method pgmux does not support (code " +
                std::to_string(request.code) + ")";
  }
  return s;
}

}  // namespace pgmux::net
