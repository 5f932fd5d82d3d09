// Per-query statistics of one pool: a bounded table of statements, keyed by their fingerprint
// (protocol/sql_normalize.hpp), with their calls, time, errors and rows. The least recently
// used entry makes room for a new one past max_entries. Shared by the pool's workers behind one
// short lock; the relay records a statement once its request is answered.
// Pure: the caller passes the times.
#pragma once
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "pgmux/small_mutex.hpp"

namespace pgmux::pool {

struct query_entry {
  std::uint64_t fingerprint = 0;
  std::string text;  // normalised (protocol::normalize_statement)
  std::uint64_t calls = 0;
  std::uint64_t errors = 0;    // calls answered with an ErrorResponse
  std::uint64_t rows = 0;      // rows the CommandComplete tags reported (SELECT, INSERT, UPDATE, ...)
  std::int64_t total_ns = 0;   // time from the request to its ReadyForQuery, summed
  std::int64_t min_ns = 0;
  std::int64_t max_ns = 0;
  std::chrono::system_clock::time_point first_seen{};
  std::chrono::system_clock::time_point last_seen{};
  // The fingerprint as SHOW QUERIES and the metrics' queryid label spell it: 16 hex digits.
  std::string query_id() const;
};

// One answered request: its statement, how long it took, how it ended.
struct query_outcome {
  std::int64_t duration_ns = 0;
  bool error = false;
  std::uint64_t rows = 0;
};

// Table-wide figures for /metrics: no statement text.
struct query_totals {
  std::size_t entries = 0;
  std::uint64_t calls = 0;       // recorded since the start, evicted entries' included
  std::uint64_t errors = 0;
  std::int64_t total_ns = 0;
  std::uint64_t evictions = 0;   // entries dropped to make room
};

class query_table {
 public:
  explicit query_table(std::size_t max_entries);

  // Reload: a smaller bound evicts the least recently used at once.
  void set_max_entries(std::size_t max_entries);
  std::size_t max_entries() const;

  // Whether `fingerprint` has an entry; for the relay to normalise a text only once. Usually
  // answered from a small lock-free index of the known fingerprints, without the lock.
  bool contains(std::uint64_t fingerprint) const;
  // Makes sure `fingerprint` has an entry, normalising `sql` for its text if it has none
  // (evicting the least recently used one if the table is full). `now` is its first_seen.
  void ensure(std::uint64_t fingerprint, std::string_view sql, std::chrono::system_clock::time_point now);
  // One answered request of `fingerprint`. False (and nothing recorded in the entry, but in the
  // totals) when it has no entry (evicted since ensure()).
  bool record(std::uint64_t fingerprint, const query_outcome& outcome, std::chrono::system_clock::time_point now);

  // Up to `limit` entries, most total time first (ties: most calls first).
  std::vector<query_entry> top_by_total_time(std::size_t limit) const;
  query_totals totals() const;
  // Forgets every entry (the totals stay).
  void clear();

 private:
  mutable small_mutex mu_;
  std::size_t max_entries_;
  std::list<query_entry> entries_;  // most recently used first
  std::unordered_map<std::uint64_t, std::list<query_entry>::iterator> index_;
  query_totals totals_;
  // Fingerprints known to have an entry, by their low bits (a miss only costs the lock).
  static constexpr std::size_t known_slots = 1024;
  mutable std::array<std::atomic<std::uint64_t>, known_slots> known_{};
  std::atomic<std::uint64_t>& known_slot(std::uint64_t fingerprint) const noexcept {
    return known_[fingerprint & (known_slots - 1)];
  }
  void unknow(std::uint64_t fingerprint) const noexcept {
    auto expected = fingerprint;
    known_slot(fingerprint).compare_exchange_strong(expected, 0, std::memory_order_relaxed);
  }
  void evict_over(std::size_t bound);
};

}  // namespace pgmux::pool
