// Accepting clients.
#include "pgmux/session/listener.hpp"

#include <linux/filter.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <iterator>
#include <tuple>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include "pgmux/log.hpp"
#include "pgmux/io/spawn.hpp"
#include "pgmux/io/timeout.hpp"
#include "pgmux/protocol/encode.hpp"
#include "pgmux/slab_allocator.hpp"
#include "pgmux/io/stream.hpp"
#include "pgmux/session/startup_reader.hpp"

namespace pgmux::net {
namespace {

// Reads startup packets up to the StartupMessage (or anything else), answering SSLRequest and
// GSSENCRequest with 'N'.
asio::awaitable<bool> answer_until_startup_message(stream& client) {
  for (;;) {
    const auto read = co_await read_startup_packet(client);
    if (!read.packet) co_return false;
    const auto kind = read.packet->kind;
    if (kind != protocol::startup_kind::ssl_request && kind != protocol::startup_kind::gssenc_request) co_return true;
    const char no = 'N';
    auto [ec, n] = co_await asio::async_write(client, asio::buffer(&no, 1), nothrow);
    if (ec) co_return false;
  }
}

using namespace std::chrono_literals;

auth::client_peer peer_of(const asio::ip::address& a) {
  if (a.is_v4()) return auth::client_peer::tcp(auth::ip_address::v4(a.to_v4().to_bytes()));
  return auth::client_peer::tcp(auth::ip_address::v6(a.to_v6().to_bytes()));  // ::ffff:a.b.c.d becomes IPv4
}

}  // namespace

struct listener::acceptor {
  acceptor(asio::io_context& io, unsigned worker) : socket(io), worker(worker) {}
  asio::basic_socket_acceptor<asio::generic::stream_protocol> socket;
  const unsigned worker;  // the loop it accepts on
  asio::generic::stream_protocol protocol{AF_INET, 0};  // of the sockets it accepts
  // Its clients stay on its worker (one TCP listener per worker); else they are dealt to the
  // workers in turn.
  bool keeps_clients = false;
  bool steers = false;  // the group's steering program was attached through this socket
  bool unix_domain = false;
  std::string path;  // Unix socket file, removed on stop if it is still ours
  std::pair<dev_t, ino_t> file{};  // the socket file as bound
};

listener::listener(worker_set& workers, session_services services, std::size_t max_client_conn)
    : workers_(workers), services_(services), max_client_conn_(max_client_conn) {}

listener::~listener() {
  for (auto& a : acceptors_) close_acceptor(*a);
  acceptors_.clear();
}

namespace {

// Whether a socket of another process is bound to `ep`: a probe binds it as a listener without
// SO_REUSEPORT would. Empty when the address is free.
error_code address_taken(asio::io_context& io, const asio::generic::stream_protocol::endpoint& ep) {
  asio::basic_socket_acceptor<asio::generic::stream_protocol> probe(io);
  error_code ec;
  probe.open(ep.protocol(), ec);
  if (!ec) probe.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) probe.bind(ep, ec);
  error_code ignored;
  probe.close(ignored);
  return ec;
}

// Makes the kernel queue each new client on one of the first `sockets` of the SO_REUSEPORT
// group `fd` belongs to, at random: a socket another process binds to the same address later
// (with SO_REUSEPORT of its own) joins the group past them and gets no client.
bool keep_group_to_own_sockets(int fd, unsigned sockets) {
  sock_filter code[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, static_cast<std::uint32_t>(SKF_AD_OFF + SKF_AD_RANDOM)),
      BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, sockets),
      BPF_STMT(BPF_RET | BPF_A, 0),
  };
  sock_fprog program{static_cast<unsigned short>(std::size(code)), code};
  return ::setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &program, sizeof program) == 0;
}

}  // namespace

std::string listener::listen_tcp(const std::string& host, std::uint16_t port, bool reuse_port) {
  error_code ec;
  asio::ip::tcp::resolver resolver(workers_.io(0));
  auto endpoints = resolver.resolve(host, std::to_string(port), asio::ip::tcp::resolver::passive, ec);
  if (ec) return "cannot resolve listen.host \"" + host + "\": " + ec.message();
  const auto failed = [&](const error_code& e) { return "cannot listen on " + host + ":" + std::to_string(port) + ": " + e.message(); };
  // With several workers, each has a listening socket of its own, all in one SO_REUSEPORT group:
  // the kernel queues a new client on one of them, and the worker that accepts it serves it,
  // with no hand-over between threads.
  const unsigned per_endpoint = workers_.size();
  const bool grouped = per_endpoint > 1;
  for (const auto& entry : endpoints) {
    const asio::generic::stream_protocol::endpoint ep(entry.endpoint());
    // Without reuse_port the address stays this process's alone, as with a single socket:
    // taken by another, it is refused.
    if (grouped && !reuse_port)
      if (auto taken = address_taken(workers_.io(0), ep)) return failed(taken);
    std::vector<std::shared_ptr<acceptor>> group;
    for (unsigned worker = 0; worker < per_endpoint; ++worker) {
      auto a = std::make_shared<acceptor>(workers_.io(worker), worker);
      a->keeps_clients = grouped;
      a->protocol = ep.protocol();
      a->socket.open(ep.protocol(), ec);
      if (!ec) a->socket.set_option(asio::socket_base::reuse_address(true), ec);
      if (!ec && (reuse_port || grouped))
        a->socket.set_option(asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>(true), ec);
      if (!ec) a->socket.bind(ep, ec);
      if (!ec) a->socket.listen(asio::socket_base::max_listen_connections, ec);
      if (ec) return failed(ec);
      group.push_back(std::move(a));
    }
    if (grouped && !reuse_port) {
      if (keep_group_to_own_sockets(group.front()->socket.native_handle(), per_endpoint))
        group.front()->steers = true;
      else
        log::warn("listen: clients cannot be kept from another process listening on " + host + ":" + std::to_string(port) +
                  " with SO_REUSEPORT (attaching the steering program failed: " + std::strerror(errno) + ")");
    }
    acceptors_.insert(acceptors_.end(), group.begin(), group.end());
  }
  return {};
}

std::string listener::listen_unix(const std::string& directory, std::uint16_t port) {
  auto a = std::make_shared<acceptor>(workers_.io(0), 0);
  a->unix_domain = true;
  a->path = directory + "/.s.PGSQL." + std::to_string(port);
  ::unlink(a->path.c_str());  // a stale file from a crashed run would block the bind
  error_code ec;
  const asio::local::stream_protocol::endpoint ep(a->path);
  a->protocol = asio::generic::stream_protocol(AF_UNIX, 0);
  a->socket.open(a->protocol, ec);
  if (!ec) a->socket.bind(asio::generic::stream_protocol::endpoint(ep.data(), ep.size()), ec);
  if (!ec) a->socket.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return "cannot listen on " + a->path + ": " + ec.message();
  ::chmod(a->path.c_str(), 0777);
  struct stat st {};
  if (::stat(a->path.c_str(), &st) == 0) a->file = {st.st_dev, st.st_ino};
  acceptors_.push_back(std::move(a));
  return {};
}

void listener::start() {
  for (auto& a : acceptors_)
    asio::co_spawn(workers_.io(a->worker), accept_loop(a), log_failure("accept loop"));
}

void listener::stop(std::function<void()> closed) {
  // Each acceptor is used by its own worker's thread only. The last to close posts `closed` to
  // worker 0.
  auto left = std::make_shared<std::atomic<std::size_t>>(acceptors_.size());
  auto done = [this, left, closed = std::move(closed)] {
    if (left->fetch_sub(1) == 1 && closed) asio::post(workers_.io(0), closed);
  };
  if (acceptors_.empty()) {
    left->store(1);
    done();
  }
  for (auto& a : acceptors_)
    asio::post(workers_.io(a->worker), [this, a, done] {
      take_queued(*a, max_backlog_taken);
      close_acceptor(*a);
      // After the completion of an accept that had already succeeded, which this worker may
      // still have queued: the accept loop admits that client before `closed` can run.
      asio::post(workers_.io(a->worker), done);
    });
}

unsigned listener::worker_for(const acceptor& a) {
  return a.keeps_clients ? workers_.worker_for_accepted(a.worker) : workers_.next_for_client();
}

error_code listener::take_queued(acceptor& a, int most) {
  // Also what stop() does before closing: closing a listening socket resets the connections
  // the kernel queued on it, which clients see as a failed connect. (With listen.reuse_port,
  // what arrives in the instant before the close may still be reset, unless the kernel moves
  // it to another listener: net.ipv4.tcp_migrate_req.) Bounded: clients that keep arriving must
  // not hold a worker here.
  error_code ec;
  a.socket.non_blocking(true, ec);
  // A client that gave up while queued is reported rather than waited past: Asio's accept would
  // otherwise wait, blocking the worker, for the next client to arrive.
  if (!ec) a.socket.set_option(asio::socket_base::enable_connection_aborted(true), ec);
  for (int taken = 0; !ec && a.socket.is_open() && taken < most; ++taken) {
    // Placed with the counts of now, and accepted straight into its worker's event loop.
    const unsigned worker = worker_for(a);
    socket_t socket(workers_.executor(worker));
    a.socket.accept(socket, ec);
    if (!ec) take(a, std::move(socket), worker);
    else if (ec == asio::error::connection_aborted || ec.value() == EPROTO) ec = {};
  }
  return ec;
}

void listener::close_acceptor(acceptor& a) {
  error_code ignored;
  // The steering program belongs to the kernel's group, which outlives this process when
  // another joined it: the group's other sockets are not to inherit it.
  if (a.steers && a.socket.is_open()) {
    ::setsockopt(a.socket.native_handle(), SOL_SOCKET, SO_DETACH_REUSEPORT_BPF, nullptr, 0);
    a.steers = false;
  }
  a.socket.close(ignored);
  // Only the file this process bound: in a rolling restart the next instance has bound its
  // own socket at the same path, which must stay.
  struct stat st {};
  if (a.unix_domain && ::stat(a.path.c_str(), &st) == 0 && a.file == std::pair{st.st_dev, st.st_ino})
    ::unlink(a.path.c_str());
}

asio::awaitable<void> listener::accept_loop(std::shared_ptr<acceptor> a) {
  for (;;) {
    error_code ec;
    // A client is accepted straight into the event loop of the worker that will serve it. One
    // accepted by a worker's own listener (the kernel spreads clients over the group) goes to
    // that worker's loop, where under load almost every one stays: it is placed with the counts
    // of the moment it arrived (a choice made before the wait would be stale), and moved to
    // another loop when this one holds clearly more. (A wait for readiness and then accepts
    // would cost an epoll_ctl and an ioctl per wake-up; an accept is tried at once.)
    const unsigned chosen = a->keeps_clients ? a->worker : worker_for(*a);
    socket_t socket(workers_.executor(chosen));
    std::tie(ec) = co_await a->socket.async_accept(socket, nothrow);
    if (!ec) {
      // Admitted even when stop() closed the listening socket meanwhile: the client is connected.
      const unsigned worker = a->keeps_clients ? worker_for(*a) : chosen;
      if (worker != chosen) move_socket(socket, workers_.executor(worker), a->protocol);
      take(*a, std::move(socket), worker);
      if (!a->socket.is_open()) co_return;
      continue;
    }
    if (ec == asio::error::operation_aborted || !a->socket.is_open()) co_return;
    // Out of file descriptors or similar: back off instead of spinning.
    log::warn("accept failed: " + ec.message());
    asio::steady_timer pause(workers_.io(a->worker), 100ms);
    co_await pause.async_wait(nothrow);
  }
}

void listener::take(const acceptor& a, socket_t socket, unsigned worker) {
  auto from = auth::client_peer::local();
  if (!a.unix_domain) {
    error_code ignored;
    socket.set_option(asio::ip::tcp::no_delay(true), ignored);
    auto remote = socket.remote_endpoint(ignored);
    if (!ignored) {
      const auto* sa = remote.data();
      if (sa->sa_family == AF_INET || sa->sa_family == AF_INET6) {
        asio::ip::tcp::endpoint tcp_ep;
        std::memcpy(tcp_ep.data(), sa, remote.size());
        from = peer_of(tcp_ep.address());
        from.port = tcp_ep.port();
      }
    }
  }
  if (!a.unix_domain && from.unix_socket) {
    // No address to match the auth rules against: such a client could pass for a local one.
    log::warn("accepted a TCP client whose address cannot be read; closing it");
    error_code ignored;
    socket.close(ignored);
    return;
  }
  admit(std::move(socket), a.protocol.family(), worker, from);
}

void listener::admit(socket_t socket, int family, unsigned worker, auth::client_peer from) {
  accepted_total_.fetch_add(1, std::memory_order_relaxed);
  const auto count = services_.client_count.fetch_add(1, std::memory_order_relaxed) + 1;
  if (count > max_client_conn_) {
    services_.client_count.fetch_sub(1, std::memory_order_relaxed);
    if (services_.counters) services_.counters->count_client_error(client_error::limit);
    log::connection("client " + from.to_string() + " refused: max_client_conn (" + std::to_string(max_client_conn_) + ") reached");
    auto refused = std::make_shared<stream>(std::move(socket));
    asio::co_spawn(workers_.executor(worker), [refused]() -> asio::awaitable<void> {
      // Answered after the startup packet, as PostgreSQL answers "too many clients": libpq
      // sends an SSLRequest first (refused here with 'N') and reads an error sent before its
      // startup packet as a failed SSL negotiation, hiding the message.
      co_await with_timeout(answer_until_startup_message(*refused), 1s);
      std::string out;
      protocol::encode_error_response(out, "FATAL", "53300", "sorry, too many clients already (max_client_conn)");
      co_await with_timeout(asio::async_write(*refused, asio::buffer(out), nothrow), 1s);
      refused->close();
    }, asio::detached);
    return;
  }
  workers_.client_joined(worker);
  // Idle clients' records side by side (slab_allocator.hpp), not among the holes logins leave.
  auto session = std::allocate_shared<client_session>(slab_allocator<client_session>{}, std::move(socket), family, from,
                                              services_);
  session->start();
}

}  // namespace pgmux::net
