// Process-wide event counts for the metrics endpoint, fed with relaxed atomics.
#pragma once
#include <atomic>
#include <cstdint>

namespace pgmux::net {

struct process_counters {
  std::atomic<std::uint64_t> cancel_requests{0};        // CancelRequests received from clients
  std::atomic<std::uint64_t> reloads_applied{0};
  std::atomic<std::uint64_t> reloads_failed{0};
  std::atomic<std::int64_t> last_reload_success_ms{0};  // Unix time of the last applied config
};

}  // namespace pgmux::net
