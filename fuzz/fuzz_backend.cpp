// Server -> client relay: scan_backend matching answers to requests, hiding pgmux's own,
// tracking settings and notifications. The requests come first, through the frontend relay,
// so that the response queue holds what a real conversation would.
// Input: an option byte (see relay_sim.hpp session), read-size seeds for both directions, the
// client part's length (2 bytes, big-endian), the client's bytes, then the server's bytes.
#include "relay_sim.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  pgmux::fuzz::input in(data, size);
  pgmux::fuzz::session s(in.byte());
  const auto client_seed = in.byte();
  const auto server_seed = in.byte();
  const auto client_bytes = in.take(in.u16());
  pgmux::fuzz::run_frontend(s, client_bytes, client_seed);
  pgmux::fuzz::run_backend(s, in.rest(), server_seed);
  return 0;
}
