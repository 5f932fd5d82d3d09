// Adaptive concurrency limit of a pool (AIMD): how many server connections may be lent at once,
// between `min` and `max`, moved by feedback from windows of completed transactions.
//
// Per window of `window` transactions the limiter takes the median time a connection was held
// and compares it with the baseline, the latency without queueing inside the database: the
// first window's median, pulled halfway down by each lower one (one lucky window does not set it
// alone):
// - more than `max_error_rate` of the window's events were overload errors (failed connects,
//   command_timeout cancels), or the median is above baseline x `tolerance`: the limit is cut to
//   max(min, floor(limit x backoff)). An error burst cuts at once, without waiting for the
//   window's end;
// - else, when the limit was binding in the window (as many clients held or waited for a
//   connection as the limit allows) and the median is below baseline x (1 + tolerance) / 2,
//   the limit grows: by half (at least 1) until the first cut, by 1 after it (slow start, then
//   additive increase);
// - else it stays. Between the two bands nothing changes, so a steady load settles instead of
//   sawing up and down.
// Growth back up to the level of the last cut waits for 2 good windows in a row, and each further
// cut from that same level doubles the wait (up to 64 windows): where one step more is already
// too much, the limit probes it ever more rarely instead of flapping. Growing past that level
// forgets it.
// A window in which no more than `min` connections were ever lent at once measures latency
// without concurrency: its median replaces the baseline, also upwards (the work got heavier).
// After a change, the next window starts once the transactions lent under the old limit had
// time to end (as many samples as were lent are skipped); after a cut, errors in that time, and
// until a transaction has ended under the new limit, are left out too: one burst cuts once.
// A limit that is binding while no transaction ends (long leases hold every connection it
// allows) cannot be judged by windows: on_stall grows it by 1 per stall_after() meanwhile.
// Pure: the caller passes the hold times; nothing here reads a clock or allocates after
// construction and configure().
#pragma once
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace pgmux::pool {

struct limit_settings {
  std::size_t min = 2;
  std::size_t max = 20;
  std::size_t window = 100;      // transactions (and errors) per window
  double tolerance = 2.0;        // median above baseline x tolerance: cut
  double backoff = 0.75;         // the cut's factor
  double max_error_rate = 0.05;  // errors above this share of a window: cut
  friend bool operator==(const limit_settings&, const limit_settings&) = default;
};

enum class limit_change { none, up, down };

// What the limiter last judged, for SHOW POOLS, metrics and logs.
struct limit_figures {
  std::size_t limit = 0;
  std::uint64_t increases = 0;  // decisions that raised the limit
  std::uint64_t decreases = 0;  // decisions that cut it
  std::chrono::nanoseconds baseline{0};     // 0: not measured yet
  std::chrono::nanoseconds last_median{0};  // of the last full window
};

class concurrency_limit {
 public:
  using duration = std::chrono::nanoseconds;

  explicit concurrency_limit(limit_settings s = {});

  // New settings (reload): the limit is kept within the new bounds, the baseline kept.
  void configure(const limit_settings& s);
  const limit_settings& settings() const noexcept { return settings_; }

  std::size_t limit() const noexcept { return limit_; }
  limit_figures figures() const noexcept;

  // A transaction ended after holding its connection for `held`. `lent`: connections lent at
  // that moment, this one included; `demand`: clients holding or waiting for one, this one
  // included.
  limit_change on_transaction(duration held, std::size_t lent, std::size_t demand);
  // An overload error: a login refused for want of resources, a command_timeout cancel, a
  // request the server answered with an overload error (protocol::overload_sqlstate).
  limit_change on_error(std::size_t lent);
  // Called periodically. The limit is binding (`lent` at it, more clients in `demand`) and no
  // transaction ended for `since_last_transaction`, at least stall_after(): the connections lent
  // are held by long leases (pinned clients, idle transactions), not by a database that queues,
  // and no window can close to judge it: the limit grows by 1 (up to max), so that the clients
  // waiting are served rather than time out.
  limit_change on_stall(duration since_last_transaction, std::size_t lent, std::size_t demand);
  // One second, or four times the baseline when that is longer.
  duration stall_after() const noexcept;

 private:
  limit_change close_window(std::size_t lent);
  limit_change cut(std::size_t lent);
  void start_window(std::size_t skip);

  limit_settings settings_;
  std::size_t limit_ = 0;
  std::vector<std::int64_t> samples_;  // this window's hold times in ns; capacity `window`
  std::size_t errors_ = 0;
  std::size_t skip_ = 0;          // samples still to ignore after a change
  bool binding_ = false;          // demand reached the limit in this window
  std::size_t peak_lent_ = 0;     // most connections lent at once in this window
  bool cut_once_ = false;         // slow start ends at the first cut
  bool just_cut_ = false;         // cut, and no transaction ended since: errors do not count yet
  static constexpr std::size_t max_probe_wait = 64;
  std::size_t cut_from_ = 0;      // the limit the last cut came from (0: none to remember)
  std::size_t probe_wait_ = 1;    // good windows in a row before growing back to cut_from_
  std::size_t good_streak_ = 0;   // good binding windows in a row below cut_from_
  duration baseline_{0};
  duration last_median_{0};
  std::uint64_t increases_ = 0;
  std::uint64_t decreases_ = 0;
};

}  // namespace pgmux::pool
