// Pool-size advice from the load a pool carried over a sliding window: how many server
// connections were lent on average (L, the time integral of the lent count over the window),
// how often one was taken (lambda), and so, by Little's law, how long each was held
// (W = L / lambda). The size advised is the smallest that keeps the chance a transaction has
// to wait for a connection at most `max_wait_probability` were arrivals random (Erlang C, the
// M/M/c queue), capped at the most clients that held or waited for a connection at once in the
// window: more connections than that could not have been used.
// Pure: the caller passes the time; nothing here reads a clock.
#pragma once
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

namespace pgmux::pool {

// The chance an arrival waits in an M/M/c queue with `servers` servers and `offered_load`
// Erlangs (Erlang C); 1 when the servers cannot keep up (servers <= offered_load).
double wait_probability(std::size_t servers, double offered_load) noexcept;

// The fewest servers whose wait_probability is at most `max_wait_probability`, but no more than
// `limit`; 0 for no load. Linear in the answer.
std::size_t servers_for(double offered_load, double max_wait_probability, std::size_t limit = SIZE_MAX) noexcept;

struct load_figures {
  std::uint64_t leases = 0;        // connections taken in the window
  double seconds = 0;              // the window's span so far (shorter after a start)
  double arrival_rate = 0;         // leases per second
  double offered_load = 0;         // connections lent on average
  double mean_hold_seconds = 0;    // offered_load / arrival_rate (Little's law)
  std::size_t peak_demand = 0;     // most clients holding or waiting for one at once
  std::size_t advised_size = 0;    // 0: no load in the window
};

// How a pool's max_size compares with the advice: too small when the load needs more, too large
// when it needs less than half; a window with fewer than `min_leases` leases says nothing.
enum class size_verdict { fits, too_small, too_large };
size_verdict judge_size(const load_figures& f, std::size_t max_size, std::uint64_t min_leases = 100) noexcept;
const char* to_string(size_verdict v) noexcept;

// Says when one verdict other than fits has held for a while without a break: once per stretch.
class sustained_verdict {
 public:
  // True the first time `v` has held for `after` (never for fits, nor with `after` 0).
  bool update(std::chrono::steady_clock::time_point now, size_verdict v, std::chrono::steady_clock::duration after) noexcept;

 private:
  size_verdict current_ = size_verdict::fits;
  std::chrono::steady_clock::time_point since_{};
  bool reported_ = false;
};

class load_window {
 public:
  using clock = std::chrono::steady_clock;
  static constexpr double max_wait_probability = 0.05;

  explicit load_window(std::chrono::seconds span = std::chrono::seconds(60));

  // After every change: `lent` connections are lent from now on, and `demand` clients hold or
  // wait for one. `taken`: the change lent a connection (a lease began).
  void update(clock::time_point now, std::size_t lent, std::size_t demand, bool taken) noexcept;

  load_figures figures(clock::time_point now) const noexcept;

 private:
  struct bucket {
    std::int64_t second = -1;  // which second since the clock's epoch this bucket holds
    std::uint64_t leases = 0;
    double busy_seconds = 0;   // connection-seconds lent within this second
    std::size_t peak = 0;
  };
  bucket& at(std::int64_t second) noexcept;
  // Adds `lent` connections' time from `from` to `to` to the buckets of the seconds it spans.
  void add_busy(clock::time_point from, clock::time_point to, std::size_t lent) noexcept;
  std::vector<bucket> buckets_;  // a ring of one bucket per second of the span
  std::optional<clock::time_point> first_;  // the first update: a younger window counts from it
  clock::time_point last_{};                // the last update, and what was lent since
  std::size_t lent_ = 0;
};

}  // namespace pgmux::pool
