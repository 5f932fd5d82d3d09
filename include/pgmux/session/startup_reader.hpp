// Reading a client's startup packets: SSLRequest, GSSENCRequest, CancelRequest or
// StartupMessage, one at a time. Logins and the refusal of clients past max_client_conn read
// them alike.
#pragma once
#include <optional>
#include <string>

#include "pgmux/io/io.hpp"
#include "pgmux/protocol/messages.hpp"

namespace pgmux::net {

class stream;

struct startup_read {
  std::optional<protocol::startup_packet> packet;  // empty when the client left or sent garbage
  std::string error;                               // why the bytes are no startup packet ("" when it left)
};

// Reads one startup packet, never a byte past it: after an SSLRequest the next bytes are a TLS
// handshake. The first read asks for 8 bytes, the shortest valid packet, so that an
// SSLRequest (what libpq sends first) takes one recv.
asio::awaitable<startup_read> read_startup_packet(stream& client);

}  // namespace pgmux::net
