// Authentication towards PostgreSQL as a client: SCRAM-SHA-256, MD5 or cleartext, whichever
// the server asks for.
#pragma once
#include <optional>
#include <string>
#include <string_view>

#include "pgmux/auth/scram_client.hpp"

#include "pgmux/server/server_connection.hpp"
#include "pgmux/protocol/messages.hpp"

namespace pgmux::net {

// One step of the client side of authentication: given an AuthenticationRequest, what to
// send back (possibly nothing), or an error. Pure; the connection feeds it and writes out.
class server_auth {
 public:
  // `passthrough` answers a SCRAM request when there is no password.
  server_auth(std::string user, std::string password, scram_keys passthrough = {})
      : user_(std::move(user)), password_(std::move(password)), passthrough_(std::move(passthrough)) {}

  struct step {
    std::string reply;  // encoded message(s) to send; empty: nothing to send
    bool ok = false;    // AuthenticationOk seen
    std::string error;  // non-empty: give up
  };
  step handle(const protocol::authentication_request& request);

 private:
  std::string user_;
  std::string password_;
  scram_keys passthrough_;
  std::optional<auth::scram_client> scram_;
};

}  // namespace pgmux::net
