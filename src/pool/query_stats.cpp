// Per-query statistics: a bounded LRU table behind one short lock.
#include "pgmux/pool/query_stats.hpp"

#include <algorithm>
#include <cstdio>
#include <mutex>

#include "pgmux/protocol/sql_normalize.hpp"

namespace pgmux::pool {

std::string query_entry::query_id() const {
  char id[24];
  std::snprintf(id, sizeof id, "%016llx", static_cast<unsigned long long>(fingerprint));
  return id;
}

query_table::query_table(std::size_t max_entries) : max_entries_(max_entries) {}

void query_table::set_max_entries(std::size_t max_entries) {
  std::lock_guard lock(mu_);
  max_entries_ = max_entries;
  evict_over(max_entries_);
}

std::size_t query_table::max_entries() const {
  std::lock_guard lock(mu_);
  return max_entries_;
}

bool query_table::contains(std::uint64_t fingerprint) const {
  if (known_slot(fingerprint).load(std::memory_order_relaxed) == fingerprint) return true;
  std::lock_guard lock(mu_);
  if (index_.find(fingerprint) == index_.end()) return false;
  known_slot(fingerprint).store(fingerprint, std::memory_order_relaxed);
  return true;
}

void query_table::ensure(std::uint64_t fingerprint, std::string_view sql, std::chrono::system_clock::time_point now) {
  // Normalised outside the lock: the text is the longest part of the work. Most calls find the
  // entry there already (contains() first spares the relay this), so look before normalising.
  {
    std::lock_guard lock(mu_);
    if (max_entries_ == 0 || index_.count(fingerprint) != 0) return;
  }
  query_entry entry;
  entry.fingerprint = fingerprint;
  entry.text = protocol::normalize_statement(sql);
  entry.first_seen = now;
  entry.last_seen = now;
  std::lock_guard lock(mu_);
  // Another worker may have added it, or the bound may have changed, in between.
  if (max_entries_ == 0 || index_.count(fingerprint) != 0) return;
  entries_.push_front(std::move(entry));
  try {
    index_.emplace(fingerprint, entries_.begin());
  } catch (...) {
    entries_.pop_front();
    throw;
  }
  evict_over(max_entries_);
  if (index_.count(fingerprint) != 0) known_slot(fingerprint).store(fingerprint, std::memory_order_relaxed);
}

bool query_table::record(std::uint64_t fingerprint, const query_outcome& outcome,
                         std::chrono::system_clock::time_point now) {
  std::lock_guard lock(mu_);
  ++totals_.calls;
  if (outcome.error) ++totals_.errors;
  totals_.total_ns += outcome.duration_ns;
  const auto found = index_.find(fingerprint);
  if (found == index_.end()) {
    unknow(fingerprint);  // evicted meanwhile: its next request adds it again
    return false;
  }
  const auto it = found->second;
  auto& e = *it;
  if (e.calls == 0 || outcome.duration_ns < e.min_ns) e.min_ns = outcome.duration_ns;
  if (e.calls == 0 || outcome.duration_ns > e.max_ns) e.max_ns = outcome.duration_ns;
  ++e.calls;
  if (outcome.error) ++e.errors;
  e.rows += outcome.rows;
  e.total_ns += outcome.duration_ns;
  e.last_seen = now;
  entries_.splice(entries_.begin(), entries_, it);  // iterators stay valid
  return true;
}

std::vector<query_entry> query_table::top_by_total_time(std::size_t limit) const {
  // Ranked by reference, and only the top copied, under the lock: the relay of every worker
  // waits on it, and the table may hold thousands of long texts.
  std::vector<const query_entry*> ranked;
  std::lock_guard lock(mu_);
  ranked.reserve(entries_.size());
  for (const auto& e : entries_) ranked.push_back(&e);
  const auto before = [](const query_entry* a, const query_entry* b) {
    if (a->total_ns != b->total_ns) return a->total_ns > b->total_ns;
    if (a->calls != b->calls) return a->calls > b->calls;
    return a->fingerprint < b->fingerprint;  // a stable order for equal figures
  };
  const std::size_t kept = std::min(limit, ranked.size());
  std::partial_sort(ranked.begin(), ranked.begin() + static_cast<std::ptrdiff_t>(kept), ranked.end(), before);
  std::vector<query_entry> top;
  top.reserve(kept);
  for (std::size_t i = 0; i < kept; ++i) top.push_back(*ranked[i]);
  return top;
}

query_totals query_table::totals() const {
  std::lock_guard lock(mu_);
  auto t = totals_;
  t.entries = entries_.size();
  return t;
}

void query_table::clear() {
  std::lock_guard lock(mu_);
  index_.clear();
  entries_.clear();
  for (auto& slot : known_) slot.store(0, std::memory_order_relaxed);
}

void query_table::evict_over(std::size_t bound) {
  while (entries_.size() > bound) {
    index_.erase(entries_.back().fingerprint);
    unknow(entries_.back().fingerprint);
    entries_.pop_back();
    ++totals_.evictions;
  }
}

}  // namespace pgmux::pool
