// Event counts of one pool, fed from the hot path with relaxed atomics and read at scrape
// time. Apart from pool.hpp so that server connections can add their figures here.
#pragma once
#include <array>
#include <atomic>
#include <cstdint>

#include "pgmux/close_reason.hpp"
#include "pgmux/pool/histogram.hpp"
#include "pgmux/protocol/sql_inspect.hpp"

namespace pgmux::net {

// Why server connections closed, as the metrics label them.
enum class disconnect_kind : std::size_t { idle, lifetime, error, dirty, pause, reload, shutdown };
inline constexpr const char* disconnect_kind_names[] = {"idle",  "lifetime", "error",   "dirty",
                                                        "pause", "reload",   "shutdown"};
disconnect_kind disconnect_kind_of(close_reason r) noexcept;

// One set per worker and pool: a worker adds only to its own (no cache line shared between
// workers on the hot path); readers sum them (add_to).
struct pool_counters {
  std::array<std::atomic<std::uint64_t>, std::size(disconnect_kind_names)> disconnects{};  // by disconnect_kind
  void count_disconnect(disconnect_kind k) noexcept {
    disconnects[static_cast<std::size_t>(k)].fetch_add(1, std::memory_order_relaxed);
  }
  std::atomic<std::uint64_t> transactions{0};  // leases given back (transactions, or sessions)
  std::atomic<std::uint64_t> server_connects{0};
  std::atomic<std::uint64_t> server_connect_errors{0};
  std::atomic<std::uint64_t> query_wait_timeouts{0};
  std::atomic<std::uint64_t> command_timeouts{0};
  std::atomic<std::uint64_t> cancel_escalations{0};  // server connections closed after cancel_grace
  std::atomic<std::uint64_t> bytes_to_server{0};
  std::atomic<std::uint64_t> bytes_to_client{0};
  std::atomic<std::uint64_t> statements_prepared{0};  // named statements prepared on servers
  std::atomic<std::uint64_t> statements_stale{0};     // forgotten after the server called them gone or stale
  // Requests the server answered with an overload error (protocol::overload_sqlstate), seen by
  // the relay (with per-query statistics on): feedback for the adaptive limit.
  std::atomic<std::uint64_t> overload_errors{0};
  pgmux::pool::atomic_histogram wait_seconds;         // request to server connection
  pgmux::pool::atomic_histogram transaction_seconds;  // server connection held
  pgmux::pool::atomic_histogram statement_seconds;    // request to its ReadyForQuery (queries)
  // Transaction pooling: clients keeping their server connection now, by what pinned them
  // (protocol::session_state bit; a client pinned for two reasons counts under both).
  std::array<std::atomic<std::int64_t>, protocol::session_state::kinds> pinned_clients{};

  // Adds these counts to `total` (a reader's sum over the workers).
  void add_to(pool_counters& total) const noexcept;
};

}  // namespace pgmux::net
