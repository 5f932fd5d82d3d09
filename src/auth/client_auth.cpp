// Choosing a client authentication method.
#include "pgmux/auth/client_auth.hpp"

namespace pgmux::auth {

method_choice choose_client_method(const client_identity& who) {
  if (who.local_peer) return {client_method::trust, {}};
  return {client_method::reject,
          "no authentication method allows user \"" + std::string(who.user) + "\" to connect from a non-local address"
          " (pgmux accepts loopback and Unix-socket clients with trust authentication)"};
}

}  // namespace pgmux::auth
