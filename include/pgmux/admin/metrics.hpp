// The Prometheus endpoint: pool state is read when scraped, never pushed from the hot path.
// HTTP is served from pgmux's own io_context (limits and timeouts in README, Metrics).
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

namespace boost::asio {
class io_context;
}

namespace pgmux::net {
class router;
class session_registry;
class worker_set;
struct process_counters;
}

namespace pgmux::app {

// Process-wide client figures the endpoint reports.
struct client_figures {
  std::atomic<std::size_t>& connected;           // clients connected now
  std::atomic<std::uint64_t>& connections_total;  // clients accepted since start
  net::session_registry& sessions;               // for clients by state
  net::process_counters& counters;
  const net::worker_set* workers = nullptr;      // clients per worker
};

class metrics_endpoint {
 public:
  // Serves GET /metrics on `listen` ("host:port") once `io` runs. Throws std::runtime_error
  // when it cannot bind.
  metrics_endpoint(boost::asio::io_context& io, const std::string& listen, net::router& routes, client_figures clients);
  ~metrics_endpoint();  // stops accepting; connections end with the io_context

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace pgmux::app
