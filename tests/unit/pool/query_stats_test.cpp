// The per-pool query table (pool/query_stats):
// - ensure adds an entry once, with the normalised text, and select 1 and SELECT 2 share it
// - record sums calls, errors, rows and time, and keeps min, max and last_seen
// - the least recently used entry makes room past max_entries, and the evictions are counted
// - record of an evicted statement returns false but still counts in the totals
// - top_by_total_time: most total time first, ties by calls, at most `limit`
// - set_max_entries shrinking evicts at once; max_entries 0 keeps no entries
// - clear forgets the entries and keeps the totals
#include <doctest/doctest.h>

#include <thread>

#include "pgmux/pool/query_stats.hpp"
#include "pgmux/protocol/sql_normalize.hpp"

using namespace pgmux::pool;
using pgmux::protocol::statement_fingerprint;

namespace {

using clock_type = std::chrono::system_clock;
const clock_type::time_point t0 = clock_type::time_point(std::chrono::seconds(1'700'000'000));

std::uint64_t add(query_table& table, std::string_view sql, clock_type::time_point now = t0) {
  const auto f = statement_fingerprint(sql);
  table.ensure(f, sql, now);
  return f;
}

query_outcome took(std::int64_t ns, bool error = false, std::uint64_t rows = 0) { return {ns, error, rows}; }

std::vector<std::string> texts(const std::vector<query_entry>& entries) {
  std::vector<std::string> out;
  for (const auto& e : entries) out.push_back(e.text);
  return out;
}

}  // namespace

TEST_CASE("ensure adds one entry with the normalised text for select 1 and SELECT 2") {
  query_table table(10);
  const auto a = add(table, "select 1");
  const auto b = add(table, "SELECT  2", t0 + std::chrono::seconds(5));
  CHECK(a == b);
  CHECK(table.contains(a));
  CHECK_FALSE(table.contains(statement_fingerprint("select x")));
  CHECK(table.totals().entries == 1);
  const auto top = table.top_by_total_time(10);
  REQUIRE(top.size() == 1);
  CHECK(top[0].text == "select ?");
  CHECK(top[0].fingerprint == a);
  CHECK(top[0].first_seen == t0);  // the second ensure found it
  CHECK(top[0].calls == 0);
}

TEST_CASE("record sums calls errors rows and time and keeps min max and last_seen") {
  query_table table(10);
  const auto f = add(table, "select * from t where id = $1");
  CHECK(table.record(f, took(300, false, 1), t0 + std::chrono::seconds(1)));
  CHECK(table.record(f, took(100, true, 0), t0 + std::chrono::seconds(2)));
  CHECK(table.record(f, took(500, false, 4), t0 + std::chrono::seconds(3)));
  const auto top = table.top_by_total_time(1);
  REQUIRE(top.size() == 1);
  const auto& e = top[0];
  CHECK(e.calls == 3);
  CHECK(e.errors == 1);
  CHECK(e.rows == 5);
  CHECK(e.total_ns == 900);
  CHECK(e.min_ns == 100);
  CHECK(e.max_ns == 500);
  CHECK(e.first_seen == t0);
  CHECK(e.last_seen == t0 + std::chrono::seconds(3));
  const auto t = table.totals();
  CHECK(t.calls == 3);
  CHECK(t.errors == 1);
  CHECK(t.total_ns == 900);
  CHECK(t.evictions == 0);
}

TEST_CASE("min starts from the first call even when it is larger than zero") {
  query_table table(10);
  const auto f = add(table, "select 1");
  table.record(f, took(700), t0);
  table.record(f, took(900), t0);
  const auto e = table.top_by_total_time(1).at(0);
  CHECK(e.min_ns == 700);
  CHECK(e.max_ns == 900);
}

TEST_CASE("the least recently used entry makes room") {
  query_table table(3);
  const auto a = add(table, "select a");
  const auto b = add(table, "select b");
  const auto c = add(table, "select c");
  // a used again: b is now the least recently used.
  CHECK(table.record(a, took(1), t0));
  const auto d = add(table, "select d");
  CHECK(table.contains(a));
  CHECK_FALSE(table.contains(b));
  CHECK(table.contains(c));
  CHECK(table.contains(d));
  CHECK(table.totals().evictions == 1);
  CHECK(table.totals().entries == 3);
  // Then c (d was added after it), then a.
  add(table, "select e");
  CHECK_FALSE(table.contains(c));
  CHECK(table.contains(a));
  add(table, "select f");
  CHECK_FALSE(table.contains(a));
  CHECK(table.contains(d));
  CHECK(table.totals().evictions == 3);
  // ensure of a present entry does not evict anything.
  add(table, "select d");
  CHECK(table.totals().evictions == 3);
}

TEST_CASE("record after eviction returns false but counts in the totals") {
  query_table table(1);
  const auto a = add(table, "select a");
  add(table, "select b");
  CHECK_FALSE(table.contains(a));
  CHECK_FALSE(table.record(a, took(250, true, 3), t0));
  const auto t = table.totals();
  CHECK(t.calls == 1);
  CHECK(t.errors == 1);
  CHECK(t.total_ns == 250);
  CHECK(t.evictions == 1);
  const auto top = table.top_by_total_time(10);
  REQUIRE(top.size() == 1);
  CHECK(top[0].text == "select b");
  CHECK(top[0].calls == 0);
  // A fingerprint never seen is the same.
  CHECK_FALSE(table.record(12345, took(1), t0));
  CHECK(table.totals().calls == 2);
}

TEST_CASE("top_by_total_time orders by total time then calls and keeps at most limit") {
  query_table table(10);
  const auto a = add(table, "select a");
  const auto b = add(table, "select b");
  const auto c = add(table, "select c");
  const auto d = add(table, "select d");
  table.record(a, took(100), t0);
  table.record(b, took(500), t0);
  table.record(c, took(50), t0);
  table.record(c, took(50), t0);  // c: 100 in two calls, ahead of a's 100 in one
  table.record(d, took(10), t0);
  CHECK(texts(table.top_by_total_time(10)) == std::vector<std::string>{"select b", "select c", "select a", "select d"});
  CHECK(texts(table.top_by_total_time(2)) == std::vector<std::string>{"select b", "select c"});
  CHECK(table.top_by_total_time(0).empty());
  // The table itself is unchanged by the sorted copies.
  CHECK(table.totals().entries == 4);
}

TEST_CASE("set_max_entries shrinking evicts the least recently used at once") {
  query_table table(5);
  CHECK(table.max_entries() == 5);
  const auto a = add(table, "select a");
  const auto b = add(table, "select b");
  const auto c = add(table, "select c");
  const auto d = add(table, "select d");
  table.record(a, took(1), t0);  // order now: a d c b
  table.set_max_entries(2);
  CHECK(table.max_entries() == 2);
  CHECK(table.contains(a));
  CHECK(table.contains(d));
  CHECK_FALSE(table.contains(b));
  CHECK_FALSE(table.contains(c));
  CHECK(table.totals().evictions == 2);
  CHECK(table.totals().entries == 2);
  // Growing evicts nothing and makes room again.
  table.set_max_entries(3);
  add(table, "select e");
  CHECK(table.totals().entries == 3);
  CHECK(table.totals().evictions == 2);
}

TEST_CASE("max_entries 0 keeps no entries but counts the totals") {
  query_table table(0);
  const auto a = add(table, "select a");
  CHECK_FALSE(table.contains(a));
  CHECK(table.totals().entries == 0);
  CHECK_FALSE(table.record(a, took(40, true), t0));
  CHECK(table.totals().calls == 1);
  CHECK(table.totals().errors == 1);
  CHECK(table.totals().evictions == 0);
  CHECK(table.top_by_total_time(10).empty());
  // Set to 0 later: everything goes.
  query_table other(4);
  add(other, "select a");
  add(other, "select b");
  other.set_max_entries(0);
  CHECK(other.totals().entries == 0);
  CHECK(other.totals().evictions == 2);
  add(other, "select c");
  CHECK(other.totals().entries == 0);
}

TEST_CASE("clear forgets the entries and keeps the totals") {
  query_table table(4);
  const auto a = add(table, "select a");
  table.record(a, took(70, false, 2), t0);
  table.clear();
  CHECK_FALSE(table.contains(a));
  CHECK(table.top_by_total_time(10).empty());
  const auto t = table.totals();
  CHECK(t.entries == 0);
  CHECK(t.calls == 1);
  CHECK(t.total_ns == 70);
  CHECK(t.evictions == 0);  // cleared entries are not evictions
  // Usable after clearing.
  add(table, "select a");
  CHECK(table.record(a, took(5), t0));
  CHECK(table.top_by_total_time(1).at(0).calls == 1);
}

TEST_CASE("workers recording at once lose no call") {
  query_table table(2);
  const auto a = add(table, "select a");
  std::vector<std::thread> workers;
  for (int w = 0; w < 4; ++w)
    workers.emplace_back([&, w] {
      for (int k = 0; k < 2000; ++k) {
        table.record(a, took(1), t0);
        if (k % 100 == 0) add(table, "select w" + std::to_string(w * 100000 + k));  // churn the table
        add(table, "select a");
      }
    });
  for (auto& t : workers) t.join();
  CHECK(table.totals().calls == 8000);
  CHECK(table.totals().total_ns == 8000);
  CHECK(table.totals().entries <= 2);
}

TEST_CASE("contains forgets an evicted statement so that its next request adds it again") {
  pgmux::pool::query_table table(1);
  const auto now = std::chrono::system_clock::now();
  table.ensure(11, "select 1", now);
  CHECK(table.contains(11));
  table.ensure(22, "select 2", now);  // evicts 11
  CHECK_FALSE(table.contains(11));
  CHECK(table.contains(22));
  table.set_max_entries(0);
  CHECK_FALSE(table.contains(22));
  table.set_max_entries(5);
  table.ensure(22, "select 2", now);
  CHECK(table.contains(22));
  table.clear();
  CHECK_FALSE(table.contains(22));
}
