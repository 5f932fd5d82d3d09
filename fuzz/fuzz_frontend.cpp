// Client -> server relay: scan_frontend with the prepared-statement translation and SQL
// inspection of transaction pooling, fed in reads of varying size.
// Input: an option byte (see relay_sim.hpp session), a read-size seed, then the client's bytes
// after startup.
#include "relay_sim.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  pgmux::fuzz::input in(data, size);
  pgmux::fuzz::session s(in.byte());
  const auto seed = in.byte();
  pgmux::fuzz::run_frontend(s, in.rest(), seed);
  return 0;
}
