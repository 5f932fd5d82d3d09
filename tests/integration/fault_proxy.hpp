// A fault-injecting TCP proxy for the integration tests: sits between pgmux and PostgreSQL on a
// free loopback port and, on the test's command, delays, blackholes, resets or cuts the
// connections it carries, or refuses new ones. One thread, poll-based; every command returns
// once the proxy thread has carried it out, so a test can act on its effect at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace it {

class fault_proxy {
 public:
  // Forwards 127.0.0.1:port() to 127.0.0.1:target_port.
  explicit fault_proxy(int target_port);
  ~fault_proxy();
  fault_proxy(const fault_proxy&) = delete;
  fault_proxy& operator=(const fault_proxy&) = delete;

  int port() const;

  enum direction : unsigned { to_server = 1, to_client = 2, both = 3 };

  // Forward everything again, accept new connections (reopening the listener if refused).
  void pass();
  // Hold each chunk this long before forwarding it (both directions).
  void delay(std::chrono::milliseconds per_chunk);
  // Forward nothing in `dir` on current and new connections; the connections stay open.
  void blackhole(direction dir = both);
  // New connections are accepted and never answered (nor forwarded); current ones pass.
  void blackhole_new();
  // Close every current connection with a RST (SO_LINGER 0), on both sides.
  void reset_all();
  // Close every current connection cleanly (FIN), on both sides.
  void cut_all();
  // Close the listener: new connections are refused (ECONNREFUSED).
  void refuse();

  // Connections accepted so far, and currently open.
  std::size_t accepted() const;
  std::size_t open_connections() const;

 private:
  struct state;
  std::unique_ptr<state> s_;
};

}  // namespace it
