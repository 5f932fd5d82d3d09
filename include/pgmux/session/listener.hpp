// Accept loops on TCP and Unix sockets, run by worker 0; accepted clients are dealt to the
// workers in turn, each session living on its worker's event loop.
#pragma once
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "pgmux/session/client_session.hpp"
#include "pgmux/io/workers.hpp"

namespace pgmux::net {

class listener {
 public:
  listener(worker_set& workers, session_services services, std::size_t max_client_conn);
  ~listener();

  // Binds; the error says what failed.
  // `reuse_port`: SO_REUSEPORT, so that other processes may listen on the same address.
  std::string listen_tcp(const std::string& host, std::uint16_t port, bool reuse_port = false);
  std::string listen_unix(const std::string& directory, std::uint16_t port);
  void start();
  std::atomic<std::uint64_t>& accepted_total() noexcept { return accepted_total_; }
  // Stops accepting. Safe from any thread: the acceptors are closed on worker 0.
  void stop();

 private:
  struct acceptor;
  asio::awaitable<void> accept_loop(std::shared_ptr<acceptor> a);
  void close_acceptors();
  // Accepts, without waiting, the clients already queued on the listening sockets.
  void take_backlog();
  // A client just accepted: its address read, then admitted to `worker`.
  void take(const acceptor& a, socket_t socket, unsigned worker);
  void admit(socket_t socket, unsigned worker, auth::client_peer from);

  worker_set& workers_;  // accept loops and stop() run on worker 0
  session_services services_;
  std::size_t max_client_conn_;
  std::atomic<std::uint64_t> accepted_total_{0};
  std::vector<std::shared_ptr<acceptor>> acceptors_;
};

}  // namespace pgmux::net
