// Process-wide event counts for the metrics endpoint, fed with relaxed atomics.
#pragma once
#include <array>
#include <atomic>
#include <cstdint>
#include <optional>

#include "pgmux/close_reason.hpp"

namespace pgmux::net {

// Why a client was turned away or dropped by pgmux, as pgmux_client_errors_total labels it.
enum class client_error : std::size_t { protocol, auth, limit, timeout, unknown_database, server_unavailable };
inline constexpr const char* client_error_names[] = {"protocol", "auth", "limit", "timeout", "unknown_database",
                                                     "server_unavailable"};
// nullopt for ordinary ends (the client left, shutdown, reload).
std::optional<client_error> client_error_of(close_reason r) noexcept;

// Event-loop lag and the liveness probe are kept for this many worker threads: as many as the
// configuration allows (config::max_workers, checked where both are known), so that /healthz
// watches every worker.
inline constexpr std::size_t max_lag_workers = 256;

struct process_counters {
  std::atomic<std::uint64_t> cancel_requests{0};        // CancelRequests received from clients
  std::atomic<std::uint64_t> cancels_forwarded{0};      // ...sent on to the peer instance owning the key
  std::atomic<std::uint64_t> cancel_forward_failures{0};  // ...that could not be sent on
  std::atomic<std::uint64_t> reloads_applied{0};
  std::atomic<std::uint64_t> reloads_failed{0};
  std::atomic<std::int64_t> last_reload_success_ms{0};  // Unix time of the last applied config
  std::array<std::atomic<std::uint64_t>, std::size(client_error_names)> client_errors{};
  void count_client_error(client_error e) noexcept {
    client_errors[static_cast<std::size_t>(e)].fetch_add(1, std::memory_order_relaxed);
  }
  // How late the last periodic probe timer fired, per worker thread (index by worker).
  std::array<std::atomic<std::int64_t>, max_lag_workers> loop_lag_ns{};
  // When that probe last fired (steady clock, ns since its epoch): /healthz reads it.
  std::array<std::atomic<std::int64_t>, max_lag_workers> loop_probe_ns{};
  std::atomic<unsigned> workers{1};
  // SIGTERM or SHUTDOWN received: /readyz answers 503 from then on.
  std::atomic<bool> draining{false};
};

}  // namespace pgmux::net
