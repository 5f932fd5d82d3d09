// The worker's park for the sockets of idle connections.
#include "pgmux/io/idle_park.hpp"

#include <sys/epoll.h>
#include <unistd.h>

#include <array>
#include <cassert>
#include <cerrno>
#include <system_error>

#include <boost/asio/posix/stream_descriptor.hpp>

namespace pgmux::net {

namespace {
int new_epoll_set() {
  const int fd = ::epoll_create1(EPOLL_CLOEXEC);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "epoll_create1 for the idle park");
  return fd;
}
}  // namespace

idle_park::member::~member() {
  // A member still linked would leave a dangling pointer behind: whoever ends it takes it out first.
  assert(!queued_ && !parked_);
}

void idle_park::list::push_back(member& m) noexcept {
  m.prev_ = tail;
  m.next_ = nullptr;
  (tail ? tail->next_ : head) = &m;
  tail = &m;
}

void idle_park::list::remove(member& m) noexcept {
  (m.prev_ ? m.prev_->next_ : head) = m.next_;
  (m.next_ ? m.next_->prev_ : tail) = m.prev_;
  m.prev_ = m.next_ = nullptr;
}

struct idle_park::epoll_set {
  explicit epoll_set(asio::io_context& io) : watch(io, new_epoll_set()) {}
  int fd() noexcept { return watch.native_handle(); }
  asio::posix::stream_descriptor watch;
};

idle_park::idle_park(asio::io_context& io, clock::duration sweep_interval)
    : sweep_interval_(sweep_interval), sweep_timer_(io), epoll_(std::make_unique<epoll_set>(io)) {}

idle_park::~idle_park() { clear(); }

void idle_park::idle(member& m) {
  if (m.queued_ || m.parked_) return;
  m.queued_ = true;
  m.count_ = static_cast<std::uint16_t>((1u << m.backoff_) - 1);
  queue_.push_back(m);
  if (!sweep_armed_) arm_sweep();
}

void idle_park::busy(member& m) noexcept {
  if (!m.queued_) return;
  if (swept_mark_ == &m) swept_mark_ = m.prev_;  // those before it are still the older ones
  queue_.remove(m);
  m.queued_ = false;
}

void idle_park::arm_sweep() {
  sweep_armed_ = true;
  sweep_timer_.expires_after(sweep_interval_);
  sweep_timer_.async_wait([this](const error_code& ec) {
    sweep_armed_ = false;
    if (!ec) sweep();
  });
}

void idle_park::sweep() {
  // Parks those queued before the previous sweep (those queued since wait for the next one),
  // unless they have sweeps to sit out still: those go to the back of the queue.
  while (member* mark = swept_mark_) {
    member& oldest = *queue_.head;
    const bool last = &oldest == mark;
    busy(oldest);  // moves the mark back when it is the mark, to null at the last one
    if (oldest.count_ > 0) {
      --oldest.count_;
      oldest.queued_ = true;
      queue_.push_back(oldest);
    } else {
      oldest.park_due();  // cancels a read: comes back to idle() or hold() later, never from here
    }
    if (last) break;
  }
  swept_mark_ = queue_.tail;
  if (queue_.head) arm_sweep();
}

bool idle_park::hold(member& m, int fd, std::shared_ptr<void> keep_alive) {
  busy(m);
  if (m.parked_) return false;
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP;  // hang-ups and errors are reported whatever is asked
  ev.data.ptr = &m;
  if (::epoll_ctl(epoll_->fd(), EPOLL_CTL_ADD, fd, &ev) != 0) return false;
  m.parked_ = true;
  m.fd_ = fd;
  m.count_ = interval_now();
  m.held_ = std::move(keep_alive);
  parked_.push_back(m);
  parked_count_.fetch_add(1, std::memory_order_relaxed);
  if (!watching_) watch();
  return true;
}

std::uint16_t idle_park::interval_now() const noexcept {
  return static_cast<std::uint16_t>((clock::now() - started_) / sweep_interval_);
}

void idle_park::take_back(member& m) {
  if (m.parked_) give_back(m, false);
}

void idle_park::give_back(member& m, bool came_back) {
  if (came_back) {
    // Back soon after it was parked (within 8 times its wait before parking): a client with a
    // rhythm of its own, whose round trips through the park would cost more system calls than
    // its idle times are worth. It waits twice as long before its next parking, up to
    // 2^max_backoff sweeps. One that stayed away longer parks sooner again. (Counted modulo
    // 2^16 intervals, about 55 minutes at 50 ms: a client parked for nearly a multiple of that
    // counts as back soon, and only waits longer next time.)
    const auto parked_for = static_cast<std::uint16_t>(interval_now() - m.count_);
    if (parked_for < (8u << m.backoff_)) {
      if (m.backoff_ < max_backoff) ++m.backoff_;
    } else if (m.backoff_ > 0) {
      --m.backoff_;
    }
  }
  epoll_event ignored{};
  ::epoll_ctl(epoll_->fd(), EPOLL_CTL_DEL, m.fd_, &ignored);
  parked_.remove(m);
  parked_count_.fetch_sub(1, std::memory_order_relaxed);
  m.parked_ = false;
  const int fd = std::exchange(m.fd_, -1);
  auto alive = std::move(m.held_);  // until unparked() returns
  m.unparked(fd);
}

void idle_park::watch() {
  watching_ = true;
  epoll_->watch.async_wait(asio::posix::descriptor_base::wait_read, [this](const error_code& ec) {
    watching_ = false;
    if (!ec) wake();
  });
}

void idle_park::wake() {
  // unparked() only gives the member's socket back to Asio and starts its read: it neither takes
  // back nor ends another member, so every pointer of a batch is still parked when its turn comes.
  // One batch per wake-up: the reads it started run before the next (the wait re-arms at once
  // while more are ready), so that thousands of clients leaving together do not all hold a
  // reactor record and a read at the same time.
  std::array<epoll_event, 64> events;
  const int n = ::epoll_wait(epoll_->fd(), events.data(), static_cast<int>(events.size()), 0);
  for (int i = 0; i < n; ++i) give_back(*static_cast<member*>(events[i].data.ptr), true);
  if (parked_.head && !watching_) watch();
}

void idle_park::clear() noexcept {
  while (queue_.head) busy(*queue_.head);
  while (member* m = parked_.head) {
    epoll_event ignored{};
    ::epoll_ctl(epoll_->fd(), EPOLL_CTL_DEL, m->fd_, &ignored);
    ::close(m->fd_);
    parked_.remove(*m);
    parked_count_.fetch_sub(1, std::memory_order_relaxed);
    m->parked_ = false;
    m->fd_ = -1;
    auto alive = std::move(m->held_);  // the member may go here
  }
}

}  // namespace pgmux::net
