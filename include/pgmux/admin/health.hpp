// Liveness and readiness of the process, for load balancers and orchestrators (/healthz and
// /readyz on the metrics listener). Pure: the endpoint gathers the inputs from state it already
// keeps, so that a probe never touches a server or waits for a lock held across I/O.
#pragma once
#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace pgmux::app::health {

// A worker whose lag probe (every 250 ms) has not fired for this long is stuck: not live.
inline constexpr std::chrono::milliseconds stalled_after{5000};

struct pool_reach {
  std::string name;               // "database/user", for the answer's text
  bool ever_connected = false;    // a server connection of this pool was opened once
  std::size_t open = 0;           // idle and lent connections now
  std::uint64_t consecutive_connect_failures = 0;
};

struct inputs {
  std::chrono::steady_clock::time_point now;
  std::span<const std::chrono::steady_clock::time_point> last_probe;  // per worker
  bool draining = false;  // SIGTERM or SHUTDOWN received
  bool paused = false;    // PAUSE of every pool
  std::vector<pool_reach> pools;
};

struct verdict {
  int status = 200;  // 200 or 503
  std::string text;  // one line per reason, "ok\n" when there is none
};

// 200 while every worker's event loop turns.
verdict liveness(const inputs& in);
// 200 while pgmux takes clients and can serve them: live, not draining, not paused, and each pool
// that ever connected has an open connection or no failed connect since its last success.
verdict readiness(const inputs& in);

}  // namespace pgmux::app::health
