// Accept loops on TCP and Unix sockets; each accepted client gets a session on its own strand.
#pragma once
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "pgmux/net/client_session.hpp"

namespace pgmux::net {

class listener {
 public:
  // With one worker thread, sessions run on the io_context directly: strands would only add
  // cost where nothing runs concurrently.
  listener(asio::io_context& io, session_services services, std::size_t max_client_conn, bool single_threaded);
  ~listener();

  // Binds; the error says what failed.
  std::string listen_tcp(const std::string& host, std::uint16_t port);
  std::string listen_unix(const std::string& directory, std::uint16_t port);
  void start();
  std::atomic<std::uint64_t>& accepted_total() noexcept { return accepted_total_; }
  // Stops accepting. Safe from any thread: the acceptors are closed on their own strand.
  void stop();

 private:
  struct acceptor;
  asio::awaitable<void> accept_loop(std::shared_ptr<acceptor> a);
  void close_acceptors();
  void admit(socket_t socket, auth::client_peer from, std::string peer);

  asio::io_context& io_;
  asio::any_io_executor strand_;  // accept loops and stop() run here
  session_services services_;
  std::size_t max_client_conn_;
  bool single_threaded_;
  std::atomic<std::uint64_t> accepted_total_{0};
  std::vector<std::shared_ptr<acceptor>> acceptors_;
};

}  // namespace pgmux::net
