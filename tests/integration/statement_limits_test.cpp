// Prepared statements one client may keep (max_client_statements, max_client_statement_bytes).
// Cases:
//   PQprepare past max_client_statements fails with 54000; the connection and its statements go on
//   in a pipeline, the rest of the batch after the refused Parse is skipped up to Sync
//   a client's statements are freed when it leaves: pgmux's resident memory falls back
#include <doctest/doctest.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "integration/fixtures.hpp"

// Inside namespace it: libpq declares `struct pg_conn` and `struct pg_result` globally.
namespace it {
namespace {

pg_result prepare(const pg_conn& c, const std::string& name, const std::string& sql) {
  return pg_result(PQprepare(c.get(), name.c_str(), sql.c_str(), 0, nullptr));
}

pg_result run_prepared(const pg_conn& c, const std::string& name) {
  return pg_result(PQexecPrepared(c.get(), name.c_str(), 0, nullptr, nullptr, nullptr, 0));
}

// Resident memory of a process now (VmRSS), in kB; -1 when unknown.
long rss_kb(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

int count_lines(const std::string& log, const std::string& what) {
  int n = 0;
  for (auto pos = log.find(what); pos != std::string::npos; pos = log.find(what, pos + 1)) ++n;
  return n;
}

}  // namespace

TEST_SUITE("statement limits") {

TEST_CASE("PQprepare past max_client_statements fails with 54000 and the connection goes on") {
  proxy_instance proxy(proxy_options().pool("max_client_statements", "50").pool("max_size", "2"));
  auto c = connect(proxy.conninfo());
  for (int i = 0; i < 50; ++i) {
    const auto r = prepare(c, "s" + std::to_string(i), "select " + std::to_string(i));
    REQUIRE_MESSAGE(r.ok(), i << ": " << r.error());
  }
  const auto refused = prepare(c, "s50", "select 50");
  CHECK(refused.status() == PGRES_FATAL_ERROR);
  CHECK(refused.sqlstate() == "54000");
  CHECK(refused.error().find("too many prepared statements for this client (limit 50 statements)") != std::string::npos);
  CHECK(refused.error().find("max_client_statements") != std::string::npos);
  // The refused name does not exist; the others still run; plain SQL too.
  CHECK(run_prepared(c, "s50").sqlstate() == "26000");
  const auto r7 = run_prepared(c, "s7");
  REQUIRE_MESSAGE(r7.ok(), r7.error());
  CHECK(r7.value() == "7");
  CHECK(scalar(c, "select 'still here'") == "still here");
  // Inside a transaction the refusal aborts it, as any error does.
  exec_ok(c, "begin");
  CHECK(prepare(c, "s51", "select 51").sqlstate() == "54000");
  CHECK(c.exec("select 1").sqlstate() == "25P02");
  exec_ok(c, "rollback");
  // DEALLOCATE makes room again.
  exec_ok(c, "deallocate s0");
  const auto again = prepare(c, "s50", "select 50");
  CHECK_MESSAGE(again.ok(), again.error());
  CHECK(run_prepared(c, "s50").value() == "50");
  // Another client has its own bound.
  auto other = connect(proxy.conninfo());
  CHECK(prepare(other, "s0", "select 0").ok());
}

TEST_CASE("in a pipeline, the rest of the batch after the refused Parse is skipped up to Sync") {
  proxy_instance proxy(proxy_options().pool("max_client_statements", "1"));
  auto c = connect(proxy.conninfo());
  REQUIRE(prepare(c, "a", "select 'a'").ok());
  REQUIRE(PQenterPipelineMode(c.get()) == 1);
  REQUIRE(PQsendQueryPrepared(c.get(), "a", 0, nullptr, nullptr, nullptr, 0) == 1);
  REQUIRE(PQsendPrepare(c.get(), "b", "select 'b'", 0, nullptr) == 1);
  REQUIRE(PQsendQueryPrepared(c.get(), "b", 0, nullptr, nullptr, nullptr, 0) == 1);
  REQUIRE(PQpipelineSync(c.get()) == 1);
  REQUIRE(PQsendQueryPrepared(c.get(), "a", 0, nullptr, nullptr, nullptr, 0) == 1);
  REQUIRE(PQpipelineSync(c.get()) == 1);
  REQUIRE(PQflush(c.get()) == 0);
  // One result per request, each followed by a null, then the sync.
  auto next = [&] {
    auto r = get_result(c, 5s);
    if (r.status() != PGRES_PIPELINE_SYNC) CHECK_FALSE(static_cast<bool>(get_result(c, 5s)));
    return r;
  };
  const auto first = next();
  CHECK(first.status() == PGRES_TUPLES_OK);
  CHECK(first.value() == "a");
  const auto parse = next();
  CHECK(parse.status() == PGRES_FATAL_ERROR);
  CHECK(parse.sqlstate() == "54000");
  CHECK(next().status() == PGRES_PIPELINE_ABORTED);
  CHECK(next().status() == PGRES_PIPELINE_SYNC);
  const auto after = next();
  CHECK(after.status() == PGRES_TUPLES_OK);
  CHECK(after.value() == "a");
  CHECK(next().status() == PGRES_PIPELINE_SYNC);
  REQUIRE(PQexitPipelineMode(c.get()) == 1);
  CHECK(scalar(c, "select 'done'") == "done");
}

TEST_CASE("a client's statements are freed when it leaves: pgmux's resident memory falls back") {
  constexpr int statements = 8000;
  const std::string filler(4000, 'x');
  proxy_instance proxy(proxy_options().pool("max_client_statement_bytes", "64MB").pool("max_size", "2"));
  auto warm = connect(proxy.conninfo());
  CHECK(scalar(warm, "select 1") == "1");
  warm.reset();
  const long before = rss_kb(proxy.pid());
  // Two clients in turn: what the first leaves behind is reused by the second, never added to.
  long peak = 0, after_first = 0, after = 0;
  for (int round = 1; round <= 2; ++round) {
    {
      auto c = connect(proxy.conninfo());
      for (int i = 0; i < statements; ++i) {
        const auto r = prepare(c, "s" + std::to_string(i), "select " + std::to_string(i) + " as n, '" + filler + "' as f");
        REQUIRE_MESSAGE(r.ok(), i << ": " << r.error());
      }
      CHECK(run_prepared(c, "s123").value() == "123");
      peak = std::max(peak, rss_kb(proxy.pid()));
    }
    // The client is gone once pgmux says so (the warm-up client's line is the first).
    CHECK(wait_until([&] { return count_lines(proxy.log(), " disconnected: ") >= 1 + round; }, 5s));
    // Freed memory is handed back right after the disconnect line: wait for the figure the
    // checks below expect rather than sample it mid-way (a leak of the 32 MB never gets there).
    const long bound = round == 1 ? before + 12 * 1024 : std::min(before + 12 * 1024, after_first + 4 * 1024);
    wait_until([&] { return (after = rss_kb(proxy.pid())) < bound; }, 3s);
    if (round == 1) after_first = after;
  }
  MESSAGE("pgmux VmRSS: " << before / 1024 << " MB before, " << peak / 1024 << " MB with " << statements
                          << " statements of 4 kB, " << after_first / 1024 << " MB after the first client left, "
                          << after / 1024 << " MB after the second");
  CHECK(peak > before + 20 * 1024);  // the statements were held while the client stayed
  // AddressSanitizer's allocator keeps freed memory in quarantine: the figures mean nothing there.
  if (!proxy.sanitized()) {
    CHECK(after < before + 12 * 1024);
    CHECK(after < after_first + 4 * 1024);
  }
}

}  // TEST_SUITE
}  // namespace it
