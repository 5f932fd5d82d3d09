// Accept loops on TCP and Unix sockets. With several workers each has a TCP listening socket of
// its own (one SO_REUSEPORT group) and serves the clients it accepts; the Unix socket is accepted
// on worker 0 and its clients dealt to the workers in turn. A session lives on its worker's
// event loop from accept to close.
#pragma once
#include <atomic>
#include <functional>
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
  // `reuse_port`: SO_REUSEPORT, so that other processes may listen on the same address. Without
  // it the address stays this process's alone, whatever the number of workers.
  std::string listen_tcp(const std::string& host, std::uint16_t port, bool reuse_port = false);
  std::string listen_unix(const std::string& directory, std::uint16_t port);
  void start();
  std::atomic<std::uint64_t>& accepted_total() noexcept { return accepted_total_; }
  // Stops accepting. Safe from any thread: each acceptor is closed on its own worker, after it
  // took the clients already queued on it; then `closed`, if given, runs on worker 0.
  void stop(std::function<void()> closed = nullptr);

 private:
  struct acceptor;
  asio::awaitable<void> accept_loop(std::shared_ptr<acceptor> a);
  void close_acceptor(acceptor& a);
  // Accepts, without waiting, up to `most` clients already queued on the listening socket (when
  // it stops); the error that ended it (would_block when the queue is empty).
  error_code take_queued(acceptor& a, int most);
  static constexpr int max_backlog_taken = 1024;
  // The worker a client accepted by `a` is to live on.
  unsigned worker_for(const acceptor& a);
  // A client just accepted: its address read, then admitted to `worker`.
  void take(const acceptor& a, socket_t socket, unsigned worker);
  void admit(socket_t socket, int family, unsigned worker, auth::client_peer from);

  worker_set& workers_;
  session_services services_;
  std::size_t max_client_conn_;
  std::atomic<std::uint64_t> accepted_total_{0};
  std::vector<std::shared_ptr<acceptor>> acceptors_;
};

}  // namespace pgmux::net
