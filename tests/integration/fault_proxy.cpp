// The fault-injecting proxy: one poll() loop over the listener, a wake-up pipe and both sockets of
// every connection. Commands are handed to the loop and acknowledged by it.
#include "integration/fault_proxy.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <deque>
#include <functional>
#include <list>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

namespace it {
namespace {

using steady = std::chrono::steady_clock;

constexpr std::size_t max_pending = 256 * 1024;  // per direction: stop reading the source beyond this
constexpr auto longest_poll = std::chrono::milliseconds(50);

void set_nonblocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

void close_with_reset(int fd) {
  if (fd < 0) return;
  linger l{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  ::close(fd);
}

int listen_on(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("fault_proxy: socket failed");
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 128) != 0) {
    ::close(fd);
    throw std::runtime_error("fault_proxy: cannot listen on port " + std::to_string(port));
  }
  set_nonblocking(fd);
  return fd;
}

int bound_port(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

// Loopback connects complete or fail at once, so a blocking connect is fine here.
int connect_to(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  set_nonblocking(fd);
  return fd;
}

struct chunk {
  steady::time_point ready;
  std::string data;
  std::size_t offset = 0;
};

struct link {
  int client = -1;
  int server = -1;  // -1: accepted while new connections were blackholed; never forwarded
  std::deque<chunk> to_server, to_client;
  std::size_t pending_to_server = 0, pending_to_client = 0;
  bool dead = false;
};

}  // namespace

struct fault_proxy::state {
  int target_port = 0;
  int port = 0;
  int listener = -1;
  int wake[2] = {-1, -1};
  std::thread thread;

  // Shared with the tests' thread.
  std::mutex mu;
  std::condition_variable acked;
  std::deque<std::function<void()>> commands;
  std::uint64_t submitted = 0, done = 0;
  bool stopping = false;
  std::size_t accepted = 0, open = 0;

  // Owned by the loop thread.
  std::list<link> links;
  unsigned blackholed = 0;  // direction bits
  bool silent_new = false;
  std::chrono::milliseconds delay{0};

  void run(std::function<void()> command) {
    std::unique_lock lock(mu);
    commands.push_back(std::move(command));
    const auto mine = ++submitted;
    const char byte = 1;
    if (::write(wake[1], &byte, 1) < 0) { /* the pipe is full: the loop is awake anyway */ }
    if (!acked.wait_for(lock, std::chrono::seconds(10), [&] { return done >= mine; }))
      throw std::runtime_error("fault_proxy: the proxy thread did not carry out a command within 10 s");
  }

  void close_all(bool reset) {
    for (auto& l : links) {
      if (reset) {
        close_with_reset(l.client);
        close_with_reset(l.server);
      } else {
        ::close(l.client);
        if (l.server >= 0) ::close(l.server);
      }
    }
    links.clear();
  }

  void accept_new() {
    for (;;) {
      const int c = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (c < 0) return;
      int one = 1;
      ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      link l;
      l.client = c;
      if (!silent_new) {
        l.server = connect_to(target_port);
        if (l.server < 0) {  // the server refuses: so does the proxy, as far as it can
          close_with_reset(c);
          continue;
        }
      }
      links.push_back(std::move(l));
      std::lock_guard lock(mu);
      ++accepted;
    }
  }

  // Reads what `from` has into `queue`; false on EOF or error.
  bool pull(int from, std::deque<chunk>& queue, std::size_t& pending) {
    char buf[65536];
    const auto n = ::read(from, buf, sizeof buf);
    if (n == 0) return false;
    if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    queue.push_back(chunk{steady::now() + delay, std::string(buf, static_cast<std::size_t>(n))});
    pending += static_cast<std::size_t>(n);
    return true;
  }

  // Writes the due part of `queue` to `to`; false on error.
  bool push(int to, std::deque<chunk>& queue, std::size_t& pending) {
    const auto now = steady::now();
    while (!queue.empty() && queue.front().ready <= now) {
      auto& c = queue.front();
      const auto n = ::send(to, c.data.data() + c.offset, c.data.size() - c.offset, MSG_NOSIGNAL);
      if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
      c.offset += static_cast<std::size_t>(n);
      pending -= static_cast<std::size_t>(n);
      if (c.offset < c.data.size()) return true;
      queue.pop_front();
    }
    return true;
  }

  static bool due(const std::deque<chunk>& q, steady::time_point now) { return !q.empty() && q.front().ready <= now; }

  void loop() {
    for (;;) {
      {
        std::unique_lock lock(mu);
        while (!commands.empty()) {
          auto c = std::move(commands.front());
          commands.pop_front();
          lock.unlock();
          c();
          lock.lock();
          ++done;
        }
        open = links.size();
        acked.notify_all();
        if (stopping) break;
      }
      const auto now = steady::now();
      auto timeout = longest_poll;
      std::vector<pollfd> fds;
      fds.push_back({wake[0], POLLIN, 0});
      if (listener >= 0) fds.push_back({listener, POLLIN, 0});
      struct slot {
        link* l;
        std::size_t client_index, server_index;
      };
      std::vector<slot> slots;
      for (auto& l : links) {
        if (l.server < 0) continue;  // silent: nothing is read or written, it just stays open
        short cev = 0, sev = 0;
        if (!(blackholed & to_server) && l.pending_to_server < max_pending) cev |= POLLIN;
        if (!(blackholed & to_client) && l.pending_to_client < max_pending) sev |= POLLIN;
        if (!(blackholed & to_client) && due(l.to_client, now)) cev |= POLLOUT;
        if (!(blackholed & to_server) && due(l.to_server, now)) sev |= POLLOUT;
        for (const auto* q : {&l.to_client, &l.to_server})
          if (!q->empty() && q->front().ready > now)
            timeout = std::min(timeout, std::chrono::ceil<std::chrono::milliseconds>(q->front().ready - now));
        slots.push_back({&l, fds.size(), fds.size() + 1});
        fds.push_back({l.client, cev, 0});
        fds.push_back({l.server, sev, 0});
      }
      if (::poll(fds.data(), fds.size(), static_cast<int>(timeout.count())) < 0 && errno != EINTR)
        throw std::runtime_error("fault_proxy: poll failed");
      if (fds[0].revents & POLLIN) {
        char sink[64];
        while (::read(wake[0], sink, sizeof sink) > 0) {}
      }
      if (listener >= 0 && (fds[1].revents & POLLIN)) accept_new();
      for (auto& s : slots) {
        auto& l = *s.l;
        const auto cre = fds[s.client_index].revents, sre = fds[s.server_index].revents;
        bool ok = true;
        if (cre & (POLLIN | POLLHUP | POLLERR)) ok = ok && pull(l.client, l.to_server, l.pending_to_server);
        if (sre & (POLLIN | POLLHUP | POLLERR)) ok = ok && pull(l.server, l.to_client, l.pending_to_client);
        if (cre & POLLOUT) ok = ok && push(l.client, l.to_client, l.pending_to_client);
        if (sre & POLLOUT) ok = ok && push(l.server, l.to_server, l.pending_to_server);
        if (!ok) {
          // One side went away: flush what may be flushed at once, then close both.
          if (!(blackholed & to_client)) push(l.client, l.to_client, l.pending_to_client);
          if (!(blackholed & to_server)) push(l.server, l.to_server, l.pending_to_server);
          ::close(l.client);
          ::close(l.server);
          l.dead = true;
        }
      }
      links.remove_if([](const link& l) { return l.dead; });
    }
    close_all(false);
    if (listener >= 0) ::close(listener);
  }
};

fault_proxy::fault_proxy(int target_port) : s_(std::make_unique<state>()) {
  s_->target_port = target_port;
  s_->listener = listen_on(0);
  s_->port = bound_port(s_->listener);
  if (::pipe2(s_->wake, O_NONBLOCK | O_CLOEXEC) != 0) throw std::runtime_error("fault_proxy: pipe failed");
  s_->thread = std::thread([s = s_.get()] { s->loop(); });
}

fault_proxy::~fault_proxy() {
  {
    std::lock_guard lock(s_->mu);
    s_->stopping = true;
  }
  const char byte = 1;
  if (::write(s_->wake[1], &byte, 1) < 0) { /* awake anyway */ }
  s_->thread.join();
  ::close(s_->wake[0]);
  ::close(s_->wake[1]);
}

int fault_proxy::port() const { return s_->port; }

void fault_proxy::pass() {
  s_->run([s = s_.get()] {
    s->blackholed = 0;
    s->silent_new = false;
    s->delay = std::chrono::milliseconds(0);
    if (s->listener < 0) s->listener = listen_on(s->port);
  });
}

void fault_proxy::delay(std::chrono::milliseconds per_chunk) {
  s_->run([s = s_.get(), per_chunk] { s->delay = per_chunk; });
}

void fault_proxy::blackhole(direction dir) {
  s_->run([s = s_.get(), dir] { s->blackholed = dir; });
}

void fault_proxy::blackhole_new() {
  s_->run([s = s_.get()] { s->silent_new = true; });
}

void fault_proxy::reset_all() {
  s_->run([s = s_.get()] { s->close_all(true); });
}

void fault_proxy::cut_all() {
  s_->run([s = s_.get()] { s->close_all(false); });
}

void fault_proxy::refuse() {
  s_->run([s = s_.get()] {
    if (s->listener >= 0) ::close(s->listener);
    s->listener = -1;
  });
}

std::size_t fault_proxy::accepted() const {
  std::lock_guard lock(s_->mu);
  return s_->accepted;
}

std::size_t fault_proxy::open_connections() const {
  std::lock_guard lock(s_->mu);
  return s_->open;
}

}  // namespace it
