// A time_point advanced by hand: pool_core takes `now`, so unit tests never sleep.
#pragma once
#include <chrono>

#include "pgmux/pool/pool_core.hpp"

namespace test {

class fake_clock {
 public:
  using time_point = pgmux::pool::time_point;
  using duration = pgmux::pool::duration;

  // Far from the epoch, so that "now - something" never goes below it.
  fake_clock() : now_(time_point{} + std::chrono::hours(1000)) {}

  time_point now() const noexcept { return now_; }
  time_point start() const noexcept { return time_point{} + std::chrono::hours(1000); }
  void advance(duration d) noexcept { now_ += d; }
  // Moves to `start() + d`.
  void set(duration since_start) noexcept { now_ = start() + since_start; }

 private:
  time_point now_;
};

}  // namespace test
