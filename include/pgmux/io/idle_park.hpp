// Where a worker keeps the sockets of connections that have been idle for a while: in an epoll
// set of its own rather than in Asio's reactor.
//
// For every socket it watches, Asio keeps a reactor record (about 165 bytes, from a pool it never
// gives back) and, for a pending read, an operation (about 140 bytes). A client that stays idle
// needs neither. Idle for one to two sweep intervals (park_idle_clients_after), its session hands
// the socket's descriptor to the park (hold), whose epoll set watches it: the kernel's memory, not
// pgmux's. The park gives it back (member::unparked) when bytes, a hang-up or an error come, or
// at once when the session asks (take_back: kill, drain, client_idle_timeout). The round trip
// costs five system calls (Asio's epoll_ctl to leave its reactor, an epoll_ctl into the park and
// one out of it, Asio's epoll_ctl and ioctl to return), which a client busy more often than the
// interval never pays.
// A client that comes back soon after each parking (a rhythm of a few requests a second) waits
// twice as long before its next one, up to 64 intervals, so it soon stops paying them either.
//
// Everything but parked_count() runs on the worker's own thread.
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>

#include "pgmux/io/io.hpp"

namespace pgmux::net {

class idle_park {
 public:
  // A member is parked after one to two sweeps of idleness, or after more when it has a rhythm
  // of its own (see give_back): at most 2^max_backoff sweeps.
  static constexpr std::chrono::milliseconds default_sweep_interval{50};
  static constexpr unsigned max_backoff = 6;

  // What can be parked: a connection that waits for its peer's next message.
  class member {
   public:
    // Idle long enough (and out of the queue): hand the descriptor over with hold() once the
    // pending read is cancelled, or stay as it is.
    virtual void park_due() = 0;
    // The descriptor back from the park, which no longer watches it: the peer sent something,
    // hung up or failed, or take_back() asked. (Its address family is the member's to know.)
    virtual void unparked(int fd) = 0;
    bool parked() const noexcept { return parked_ != 0; }
    // It waits 2^backoff() sweeps before parking (see give_back).
    unsigned backoff() const noexcept { return backoff_; }

   protected:
    member() = default;
    ~member();  // neither queued nor parked (idle_park::clear() runs before shutdown)
    member(const member&) = delete;
    member& operator=(const member&) = delete;

   private:
    friend class idle_park;
    member* prev_ = nullptr;  // in the idle queue or the parked list
    member* next_ = nullptr;
    std::shared_ptr<void> held_;  // parked: keeps the member alive
    int fd_ = -1;
    // Queued: sweeps still to sit out before parking. Parked: the sweep interval it was parked
    // in, counted from the park's start modulo 2^16 (see give_back).
    std::uint16_t count_ = 0;
    std::uint16_t queued_ : 1 = 0;
    std::uint16_t parked_ : 1 = 0;
    std::uint16_t backoff_ : 3 = 0;  // it waits 2^backoff_ sweeps before parking
  };

  explicit idle_park(asio::io_context& io, clock::duration sweep_interval = default_sweep_interval);
  // Closes the descriptors still parked and lets go of their members.
  ~idle_park();
  idle_park(const idle_park&) = delete;
  idle_park& operator=(const idle_park&) = delete;

  // The park of the worker whose thread calls; null on other threads.
  static idle_park* current() noexcept { return current_; }
  static void make_current(idle_park* park) noexcept { current_ = park; }

  // `m` waits for its next message from now on: park_due() comes after one to two sweep
  // intervals, unless busy() first.
  void idle(member& m);
  // `m` is no longer idle (its message came, or it ends). Nothing when it is not queued.
  void busy(member& m) noexcept;
  // Watches `fd` (released from Asio) for `m`, kept alive by `keep_alive` until unparked. False
  // when epoll refuses it: the descriptor stays the caller's.
  bool hold(member& m, int fd, std::shared_ptr<void> keep_alive);
  // Hands a parked member its descriptor back now, through unparked(), before returning.
  void take_back(member& m);
  // Closes every parked descriptor and lets go of its member (shutdown: nothing will serve them).
  void clear() noexcept;

  long parked_count() const noexcept { return parked_count_.load(std::memory_order_relaxed); }

 private:
  struct list {
    member* head = nullptr;
    member* tail = nullptr;
    void push_back(member& m) noexcept;
    void remove(member& m) noexcept;
  };
  void arm_sweep();
  void sweep();
  void watch();
  void wake();
  void give_back(member& m, bool came_back);

  const clock::duration sweep_interval_;
  asio::steady_timer sweep_timer_;
  bool sweep_armed_ = false;
  list queue_;  // idle, oldest first
  // The queue's last member at the previous sweep: it and those before it have been idle for a
  // whole interval at least. Null when none of them is left.
  member* swept_mark_ = nullptr;
  // Sweep intervals since the park began, modulo 2^16: from the clock, so that it counts while no
  // sweep runs (nobody queued).
  std::uint16_t interval_now() const noexcept;
  const clock::time_point started_ = clock::now();
  list parked_;
  struct epoll_set;  // the park's epoll set, itself watched by Asio (defined in the .cpp)
  std::unique_ptr<epoll_set> epoll_;
  bool watching_ = false;
  std::atomic<long> parked_count_{0};
  static inline thread_local idle_park* current_ = nullptr;
};

}  // namespace pgmux::net
