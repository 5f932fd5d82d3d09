// COPY and large results through pgmux:
// - COPY FROM STDIN of several MB and COPY TO STDOUT round-trip byte for byte, text and binary
//                                                                             (workers 1 and 2)
// - a COPY FROM that fails on bad data or is aborted by the client (CopyFail) leaves both
//   connections usable
// - a 200,000-row result streams with the right row count, whole and in single-row mode
// - a large result to a stalled client is held back by the server (ClientWrite), not buffered by pgmux
// - COPY FROM STDIN through the extended protocol (PQexecParams) ends its transaction; the
//   server connection is shared with the next client (max_size 1)
// - COPY FROM STDIN whose trigger floods the client with notices completes (both directions at once)
// - a client that sends COPY data, CopyDone and Sync before CopyInResponse gets every answer
//   (GCZZ, as from PostgreSQL), and the next client of the connection none of them
// - COPY streams whose answers cannot be counted (the server fails the COPY after CopyData and a
//   Sync; COPY messages and another request pipelined before CopyInResponse): the client is
//   told why and disconnected, the server connection closed, and the next client of the pool
//   gets only its own answers; so is a client that sends CopyDone in an extended batch with no
//   COPY running
#include <doctest/doctest.h>

#include <algorithm>

#include <random>
#include <thread>

#include "integration/fixtures.hpp"

// Inside namespace it: libpq declares `struct pg_conn` and `struct pg_result` globally.
namespace it {
namespace {

std::uint64_t fnv1a(std::string_view s) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : s) h = (h ^ ch) * 1099511628211ull;
  return h;
}

// Sends `data` as COPY FROM STDIN data in chunks that do not line up with rows.
pg_result copy_in(const pg_conn& c, const std::string& sql, std::string_view data, std::size_t chunk = 65521) {
  auto start = c.exec(sql);
  REQUIRE_MESSAGE(start.status() == PGRES_COPY_IN, start.error());
  for (std::size_t off = 0; off < data.size(); off += chunk) {
    const auto piece = data.substr(off, chunk);
    REQUIRE(PQputCopyData(c.get(), piece.data(), static_cast<int>(piece.size())) == 1);
  }
  REQUIRE(PQputCopyEnd(c.get(), nullptr) == 1);
  bool timed_out = false;
  auto r = get_result(c, 30s, &timed_out);
  REQUIRE_FALSE(timed_out);
  bool end_timed_out = false;
  CHECK_FALSE(get_result(c, 10s, &end_timed_out));
  return r;
}

std::string copy_out(const pg_conn& c, const std::string& sql) {
  auto start = c.exec(sql);
  REQUIRE_MESSAGE(start.status() == PGRES_COPY_OUT, start.error());
  std::string out;
  while (true) {
    char* buf = nullptr;
    const int n = PQgetCopyData(c.get(), &buf, 0);
    if (n < 0) break;
    out.append(buf, static_cast<std::size_t>(n));
    PQfreemem(buf);
  }
  bool timed_out = false;
  auto r = get_result(c, 30s, &timed_out);
  REQUIRE_FALSE(timed_out);
  CHECK_MESSAGE(r.status() == PGRES_COMMAND_OK, r.error());
  CHECK_FALSE(get_result(c, 10s, &timed_out));
  return out;
}

std::size_t first_difference(const std::string& a, const std::string& b) {
  std::size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
  return i;
}

}  // namespace

TEST_SUITE("copy") {

TEST_CASE("COPY FROM STDIN of several MB and COPY TO STDOUT round-trip byte for byte") {
  IT_FOR_EACH_WORKER_COUNT(workers);
  {
    auto setup = setup_connection();
    exec_ok(setup, "drop table if exists it_copy, it_copy_bin;"
                   " create table it_copy (id int, payload text); create table it_copy_bin (id int, payload text)");
  }
  proxy_instance proxy(proxy_options().workers(workers));
  auto c = connect(proxy.conninfo());

  constexpr int rows = 60000;
  std::mt19937_64 gen{42};
  std::string data;
  data.reserve(rows * 72);
  static const char hex[] = "0123456789abcdef";
  for (int i = 1; i <= rows; ++i) {
    data += std::to_string(i);
    data += '\t';
    for (int k = 0; k < 64; ++k) data += hex[gen() % 16];
    data += '\n';
  }
  REQUIRE(data.size() > 4 * 1000 * 1000);

  auto r = copy_in(c, "copy it_copy from stdin", data);
  REQUIRE_MESSAGE(r.status() == PGRES_COMMAND_OK, r.error());
  CHECK(std::string(PQcmdTuples(r.get())) == std::to_string(rows));

  const std::string back = copy_out(c, "copy (select id, payload from it_copy order by id) to stdout");
  CHECK(back.size() == data.size());
  CHECK(fnv1a(back) == fnv1a(data));
  CHECK_MESSAGE(back == data, "first difference at byte " << first_difference(back, data));

  // Binary format both ways.
  const std::string binary = copy_out(c, "copy (select id, payload from it_copy order by id) to stdout (format binary)");
  CHECK(binary.size() > data.size());
  r = copy_in(c, "copy it_copy_bin from stdin (format binary)", binary, 8191);
  REQUIRE_MESSAGE(r.status() == PGRES_COMMAND_OK, r.error());

  auto setup = setup_connection();
  CHECK(scalar(setup, "select count(*) from it_copy_bin") == std::to_string(rows));
  CHECK(scalar(setup, "select count(*) from it_copy a join it_copy_bin b using (id) where a.payload = b.payload") ==
        std::to_string(rows));
  CHECK(scalar(c, "select 'usable'") == "usable");
}

TEST_CASE("a COPY FROM that fails on bad data or is aborted by the client leaves both connections usable") {
  {
    auto setup = setup_connection();
    exec_ok(setup, "drop table if exists it_copy_fail; create table it_copy_fail (id int, t text)");
  }
  proxy_instance proxy(proxy_options().pool("max_size", "1"));
  auto c = connect(proxy.conninfo());
  auto other = connect(proxy.conninfo());

  auto r = copy_in(c, "copy it_copy_fail from stdin", "1\tok\nnot-a-number\tx\n3\tok\n");
  CHECK(r.sqlstate() == "22P02");
  CHECK(scalar(c, "select count(*) from it_copy_fail") == "0");
  CHECK(scalar(other, "select 'other after bad data'") == "other after bad data");

  auto start = c.exec("copy it_copy_fail from stdin");
  REQUIRE(start.status() == PGRES_COPY_IN);
  REQUIRE(PQputCopyData(c.get(), "1\tok\n", 5) == 1);
  REQUIRE(PQputCopyEnd(c.get(), "client gave up") == 1);
  bool timed_out = false;
  r = get_result(c, 10s, &timed_out);
  REQUIRE_FALSE(timed_out);
  CHECK(r.sqlstate() == "57014");
  CHECK(r.error().find("client gave up") != std::string::npos);
  CHECK_FALSE(get_result(c, 10s, &timed_out));
  CHECK(scalar(c, "select count(*) from it_copy_fail") == "0");
  CHECK(PQtransactionStatus(c.get()) == PQTRANS_IDLE);

  other.collect_notices();
  exec_ok(other, "begin");
  CHECK(scalar(other, "select 'other after CopyFail'") == "other after CopyFail");
  exec_ok(other, "commit");
  CHECK(other.notices().empty());
}

TEST_CASE("a 200,000-row result streams with the right row count, whole and in single-row mode") {
  proxy_instance proxy;
  auto c = connect(proxy.conninfo());
  const std::string sql = "select g, repeat('x', 50) from generate_series(1, 200000) g";

  auto r = c.exec(sql);
  REQUIRE_MESSAGE(r.status() == PGRES_TUPLES_OK, r.error());
  CHECK(r.rows() == 200000);
  CHECK(r.value(0, 0) == "1");
  CHECK(r.value(199999, 0) == "200000");
  CHECK(r.value(199999, 1) == std::string(50, 'x'));

  REQUIRE(PQsendQuery(c.get(), sql.c_str()) == 1);
  REQUIRE(PQsetSingleRowMode(c.get()) == 1);
  long rows = 0, sum = 0;
  bool in_order = true;
  while (true) {
    bool timed_out = false;
    auto row = get_result(c, 10s, &timed_out);
    if (timed_out) FAIL("no row within 10 s after " << rows);
    if (!row) break;
    if (row.status() == PGRES_SINGLE_TUPLE) {
      ++rows;
      const long g = std::stol(row.value());
      in_order = in_order && g == rows;
      sum += g;
    } else {
      CHECK_MESSAGE(row.status() == PGRES_TUPLES_OK, row.error());
      CHECK(row.rows() == 0);
    }
  }
  CHECK(rows == 200000);
  CHECK(sum == 200000L * 200001L / 2);
  CHECK(in_order);
  CHECK(scalar(c, "select 'after'") == "after");
}

TEST_CASE("a large result to a stalled client is held back by the server, not buffered by pgmux") {
  proxy_instance proxy(proxy_options().workers(2));
  auto c = connect(proxy.conninfo());
  auto admin = connect(pg().admin_conninfo());
  CHECK(scalar(c, "select count(*) from generate_series(1, 1000)") == "1000");
  const long baseline_kb = proxy.peak_rss_kb();
  REQUIRE(baseline_kb > 0);

  // About 100 MB of rows; the client reads nothing for a while.
  const std::string sql = "select g, repeat('z', 240) from generate_series(1, 400000) g";
  REQUIRE(PQsendQuery(c.get(), sql.c_str()) == 1);
  REQUIRE(PQsetSingleRowMode(c.get()) == 1);
  const bool server_blocked = wait_until(
      [&] {
        return scalar(admin, "select count(*) from pg_stat_activity where wait_event = 'ClientWrite'"
                             " and query like 'select g, repeat(''z''%'") == "1";
      },
      3s, 50ms);
  CHECK_MESSAGE(server_blocked, "the server never waited on the stalled client: pgmux is buffering the result");
  std::this_thread::sleep_for(500ms);

  long rows = 0;
  while (true) {
    bool timed_out = false;
    auto row = get_result(c, 20s, &timed_out);
    if (timed_out) FAIL("no row within 20 s after " << rows);
    if (!row) break;
    if (row.status() == PGRES_SINGLE_TUPLE) ++rows;
    else CHECK_MESSAGE(row.status() == PGRES_TUPLES_OK, row.error());
  }
  CHECK(rows == 400000);
  const long grown_kb = proxy.peak_rss_kb() - baseline_kb;
  MESSAGE("pgmux peak RSS grew by " << grown_kb << " kB while relaying ~100 MB");
  CHECK(grown_kb < 48 * 1024);
}

TEST_CASE("COPY FROM STDIN through the extended protocol ends its transaction") {
  {
    auto setup = setup_connection();
    exec_ok(setup, "drop table if exists it_copy_ext; create table it_copy_ext (id int)");
  }
  proxy_instance proxy(proxy_options().pool("max_size", "1").pool("min_size", "0"));
  auto c = connect(proxy.conninfo());
  auto other = connect(proxy.conninfo());
  for (int round = 0; round < 3; ++round) {
    // PQexecParams sends Parse/Bind/Describe/Execute/Sync: PostgreSQL ignores that Sync during the COPY.
    pg_result start(PQexecParams(c.get(), "copy it_copy_ext from stdin", 0, nullptr, nullptr, nullptr, nullptr, 0));
    REQUIRE_MESSAGE(start.status() == PGRES_COPY_IN, start.error());
    const std::string rows = "1\n2\n3\n";
    REQUIRE(PQputCopyData(c.get(), rows.data(), static_cast<int>(rows.size())) == 1);
    REQUIRE(PQputCopyEnd(c.get(), nullptr) == 1);
    bool timed_out = false;
    auto r = get_result(c, 10s, &timed_out);
    REQUIRE_FALSE(timed_out);
    CHECK_MESSAGE(r.status() == PGRES_COMMAND_OK, r.error());
    CHECK_FALSE(get_result(c, 10s, &timed_out));
    // With one server connection, this only answers if the COPY's transaction was seen to end.
    const auto t0 = clock::now();
    CHECK(scalar(other, "select count(*) from it_copy_ext") == std::to_string(3 * (round + 1)));
    CHECK(seconds_since(t0) < 5.0);
    CHECK(scalar(c, "select 'still usable'") == "still usable");
  }
}

TEST_CASE("COPY FROM STDIN whose trigger floods the client with notices completes") {
  {
    auto setup = setup_connection();
    exec_ok(setup, "drop table if exists it_copy_noisy;"
                   " create table it_copy_noisy (id int, payload text);"
                   " create or replace function it_noisy() returns trigger language plpgsql as $$"
                   " begin raise notice '%', repeat('n', 2000); return new; end $$;"
                   " create trigger it_noisy before insert on it_copy_noisy for each row execute function it_noisy()");
  }
  proxy_instance proxy;
  auto c = connect(proxy.conninfo());
  c.collect_notices();
  std::string data;
  const std::string payload(1000, 'p');
  for (int i = 0; i < 20000; ++i) data += std::to_string(i) + "\t" + payload + "\n";  // ~20 MB in, ~40 MB of notices out
  const auto t0 = clock::now();
  auto r = copy_in(c, "copy it_copy_noisy from stdin", data);
  CHECK_MESSAGE(r.status() == PGRES_COMMAND_OK, r.error());
  CHECK(c.notices().size() == 20000);
  CHECK(seconds_since(t0) < 60.0);
  CHECK(scalar(c, "select count(*) from it_copy_noisy") == "20000");
}

TEST_CASE("a client that sends COPY data, CopyDone and Sync before CopyInResponse gets every answer, and the next client none of them") {
  // PostgreSQL reads the data and CopyDone in the COPY and answers the Sync after it. pgmux used
  // to count that Sync as ignored: its ReadyForQuery then came after the connection was given
  // back, and could answer the next client's query in that client's place.
  auto setup = setup_connection();
  exec_ok(setup, "drop table if exists it_copy_early; create table it_copy_early (a int)");
  proxy_instance proxy(proxy_options().pool("max_size", "1").pool("min_size", "0"));
  for (int round = 0; round < 3; ++round) {
    CAPTURE(round);
    raw_socket raw(proxy.port());
    REQUIRE(raw.startup());
    REQUIRE(raw.send(wire::msg('Q', wire::cstr("COPY it_copy_early FROM STDIN")) + wire::msg('d', "1\n") +
                     wire::msg('c', "") + wire::msg('S', "")));
    std::string tags;
    while (std::count(tags.begin(), tags.end(), 'Z') < 2) {
      auto m = raw.read_message(5s);
      if (!m) break;
      tags += m->first;
    }
    CHECK(tags == "GCZZ");  // as from PostgreSQL
    auto next = connect(proxy.conninfo());
    for (int i = 0; i < 5; ++i) CHECK(scalar(next, "select " + std::to_string(i)) == std::to_string(i));
  }
  CHECK(scalar(setup, "select count(*) from it_copy_early") == "3");
  const auto log = proxy.settled_log(proxy.conninfo());
  CHECK(log.find("answers no request") == std::string::npos);
  CHECK(log.find("not clean") == std::string::npos);
  exec_ok(setup, "drop table it_copy_early");
}

TEST_CASE("COPY streams whose answers pgmux cannot count close the server connection and spare the next client") {
  // PostgreSQL 15 answers Q(copy) d(bad row) S with G E Z Z: it fails the COPY before it reads
  // the Sync, and answers it. pgmux cannot know when the server read the Sync, so the
  // connection must not be lent on: its next client would get a stale ReadyForQuery and then
  // every answer one request late.
  auto setup = setup_connection();
  exec_ok(setup, "drop table if exists it_copy_uncounted; create table it_copy_uncounted (a int)");
  proxy_instance proxy(proxy_options().pool("max_size", "1").pool("min_size", "0"));
  const std::string copy = wire::msg('Q', wire::cstr("COPY it_copy_uncounted FROM STDIN"));
  struct stream_case {
    const char* name;
    std::string bytes;
    const char* code;  // what the client is told before it is disconnected
  };
  std::string parse_select = wire::msg('P', std::string("\0select 1\0", 10) + std::string(2, '\0'));
  const stream_case cases[] = {
      {"bad row then Sync", copy + wire::msg('d', "not a number\n") + wire::msg('S', ""), "C08006"},
      {"bad row then two Syncs", copy + wire::msg('d', "x\n") + wire::msg('S', "") + wire::msg('S', ""), "C08006"},
      {"COPY done and a query pipelined before CopyInResponse",
       copy + wire::msg('d', "1\n") + wire::msg('c', "") + wire::msg('Q', wire::cstr("select 1")) + wire::msg('S', "") +
           wire::msg('S', "") + wire::msg('S', ""),
       "C08006"},
      // After a statement_timeout, PostgreSQL answers such a CopyDone with a ReadyForQuery of
      // its own; pgmux refuses it before it reaches the server.
      {"CopyDone in an extended batch with no COPY", parse_select + wire::msg('c', "") + wire::msg('S', ""), "C08P01"},
  };
  for (const auto& c : cases) {
    CAPTURE(std::string(c.name));
    raw_socket raw(proxy.port());
    REQUIRE(raw.startup());
    REQUIRE(raw.send(c.bytes));
    auto outcome = raw.read_until_closed(10s);
    CHECK(outcome.closed);
    CHECK(outcome.data.find(c.code) != std::string::npos);  // told why, then disconnected
    // The pool's only server connection served that client: the next one must get its own answers.
    auto next = connect(proxy.conninfo());
    for (int i = 0; i < 20; ++i) CHECK(scalar(next, "select " + std::to_string(i)) == std::to_string(i));
  }
  CHECK(proxy.logged("cannot be counted"));
  CHECK(proxy.logged("may or may not have ignored"));
  exec_ok(setup, "drop table it_copy_uncounted");
}

}  // TEST_SUITE
}  // namespace it
