// How a client must prove who it is. The one place where client authentication methods are
// chosen: password methods, rules by database, user and address come in here.
#pragma once
#include <string>
#include <string_view>

namespace pgmux::auth {

enum class client_method { trust, reject };

struct client_identity {
  std::string_view user;
  std::string_view database;
  bool local_peer = false;  // loopback address or Unix socket
};

struct method_choice {
  client_method method = client_method::reject;
  std::string reason;  // why, when rejected (the client's error message)
};

// In this version: trust for local peers, everyone else rejected.
method_choice choose_client_method(const client_identity& who);

}  // namespace pgmux::auth
