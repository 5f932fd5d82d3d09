// relay_floor: the CPU floor of a proxy's I/O, for judging pgmux's cost per transaction. A 1:1
// TCP relay with no protocol work at all (each client gets its own server connection), in two
// forms: an edge-triggered epoll loop with recv/send per message, as a classic single-threaded
// pooler does; and io_uring, one recv outstanding per socket, each completed recv turned into a
// send to the peer, one io_uring_enter per batch of completions. Single-threaded, loopback only,
// no error handling beyond closing both sides: a measuring tool, not a proxy.
//
//   apt-get install liburing-dev
//   g++ -std=c++20 -O2 -o build/relay_floor bench/relay_floor.cpp -luring
//   build/relay_floor epoll|uring LISTEN_PORT SERVER_PORT
//
// Then pgbench through it (with trust authentication on the server), reading the relay's CPU
// time from /proc/PID/stat before and after, as for any target (README, "Benchmark").
#include <arpa/inet.h>
#include <fcntl.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

namespace {

int listen_on(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 1024) != 0) {
    std::perror("listen");
    std::exit(1);
  }
  return fd;
}

int connect_to(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    std::perror("connect");
    ::close(fd);
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

struct side {
  int fd = -1;
  side* peer = nullptr;
  char buf[65536];
  int pending = 0;  // io_uring: bytes of buf still to send to the peer
  int sent = 0;
  bool closed = false;
};

// A client just accepted and its own server connection, each the other's peer; nullptr (the
// client closed) when the server cannot be reached.
std::pair<side*, side*> pair_with_server(int client, int server_port) {
  int one = 1;
  ::setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  const int server = connect_to(server_port);
  if (server < 0) {
    ::close(client);
    return {nullptr, nullptr};
  }
  auto* a = new side;
  auto* b = new side;
  a->fd = client;
  b->fd = server;
  a->peer = b;
  b->peer = a;
  return {a, b};
}

// Either side failed or ended: both sockets close. (The sides are not freed: a measuring tool.)
void close_pair(side* s) {
  ::close(s->fd);
  ::close(s->peer->fd);
  s->closed = s->peer->closed = true;
}

// ---- epoll, edge-triggered, like a classic single-threaded pooler ----
void run_epoll(int lfd, int server_port) {
  int ep = ::epoll_create1(0);
  epoll_event ev{EPOLLIN, {.ptr = nullptr}};
  ::epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  epoll_event events[256];
  for (;;) {
    const int n = ::epoll_wait(ep, events, 256, -1);
    for (int i = 0; i < n; ++i) {
      auto* s = static_cast<side*>(events[i].data.ptr);
      if (!s) {
        const int c = ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK);
        if (c < 0) continue;
        const auto [a, b] = pair_with_server(c, server_port);
        if (!a) continue;
        ::fcntl(b->fd, F_SETFL, O_NONBLOCK);
        for (side* x : {a, b}) {
          epoll_event e{EPOLLIN | EPOLLET | EPOLLRDHUP, {.ptr = x}};
          ::epoll_ctl(ep, EPOLL_CTL_ADD, x->fd, &e);
        }
        continue;
      }
      if (s->closed) continue;
      for (;;) {
        const ssize_t r = ::recv(s->fd, s->buf, sizeof s->buf, 0);
        if (r > 0) {
          ssize_t off = 0;
          while (off < r) {  // the spike's peers never fill a socket buffer
            const ssize_t w = ::send(s->peer->fd, s->buf + off, r - off, MSG_NOSIGNAL);
            if (w <= 0) break;
            off += w;
          }
          if (static_cast<std::size_t>(r) < sizeof s->buf) break;  // drained: wait for the edge
          continue;
        }
        if (r < 0 && errno == EAGAIN) break;
        close_pair(s);
        break;
      }
    }
  }
}

// ---- io_uring: one recv outstanding per side; a completed recv becomes a send to the peer,
// whose completion re-arms the recv; one io_uring_submit_and_wait per batch ----
enum kind : std::uint64_t { k_accept = 1, k_recv = 2, k_send = 3 };
std::uint64_t tag(kind k, side* s) { return reinterpret_cast<std::uint64_t>(s) | k; }

void run_uring(int lfd, int server_port) {
  io_uring ring;
  io_uring_params p{};
  p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
  if (io_uring_queue_init_params(4096, &ring, &p) != 0) {
    p.flags = 0;
    if (io_uring_queue_init_params(4096, &ring, &p) != 0) { std::perror("io_uring"); std::exit(1); }
    std::fprintf(stderr, "uring: without DEFER_TASKRUN\n");
  }
  auto sqe_for = [&] {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring);
    if (!sqe) { io_uring_submit(&ring); sqe = io_uring_get_sqe(&ring); }
    return sqe;
  };
  auto arm_accept = [&] {
    auto* sqe = sqe_for();
    io_uring_prep_accept(sqe, lfd, nullptr, nullptr, 0);
    io_uring_sqe_set_data64(sqe, k_accept);
  };
  auto arm_recv = [&](side* s) {
    auto* sqe = sqe_for();
    io_uring_prep_recv(sqe, s->fd, s->buf, sizeof s->buf, 0);
    io_uring_sqe_set_data64(sqe, tag(k_recv, s));
  };
  auto send_rest = [&](side* s) {
    auto* sqe = sqe_for();
    io_uring_prep_send(sqe, s->peer->fd, s->buf + s->sent, s->pending - s->sent, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, tag(k_send, s));
  };
  arm_accept();
  for (;;) {
    io_uring_submit_and_wait(&ring, 1);
    io_uring_cqe* cqe;
    unsigned head, seen = 0;
    io_uring_for_each_cqe(&ring, head, cqe) {
      ++seen;
      const auto data = io_uring_cqe_get_data64(cqe);
      const auto k = static_cast<kind>(data & 7);
      auto* s = reinterpret_cast<side*>(data & ~std::uint64_t(7));
      const int res = cqe->res;
      if (k == k_accept) {
        arm_accept();
        if (res < 0) continue;
        const auto [a, b] = pair_with_server(res, server_port);
        if (!a) continue;
        arm_recv(a);
        arm_recv(b);
        continue;
      }
      // A receive or a send: nothing more for a closed pair; an end or an error closes it.
      if (s->closed) continue;
      if (res <= 0) {
        close_pair(s);
        continue;
      }
      if (k == k_recv) {
        s->pending = res;
        s->sent = 0;
        send_rest(s);
      } else if (k == k_send) {
        s->sent += res;
        if (s->sent < s->pending) send_rest(s);
        else arm_recv(s);  // the buffer is free again
      }
    }
    io_uring_cq_advance(&ring, seen);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: relay_floor epoll|uring LISTEN_PORT SERVER_PORT\n");
    return 2;
  }
  const int lfd = listen_on(std::atoi(argv[2]));
  if (std::strcmp(argv[1], "epoll") == 0) run_epoll(lfd, std::atoi(argv[3]));
  else run_uring(lfd, std::atoi(argv[3]));
}
