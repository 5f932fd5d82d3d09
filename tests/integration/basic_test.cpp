// Protocol basics through pgmux, with libpq and psql:
// - select 1 returns 1 with the server's ParameterStatus values            (workers 1 and 2)
// - psql -c runs queries                                                    (workers 1 and 2)
// - a multi-statement simple query returns every result; PQexec keeps the last
// - ErrorResponse passes through with its SQLSTATE; the connection stays usable (workers 1 and 2)
// - NoticeResponse from RAISE NOTICE reaches the client
// - extended protocol: PQexecParams and prepared statements in one transaction (workers 1 and 2)
// - pipeline mode with several syncs returns every result in order while another client waits
//   for the only server connection                                          (workers 1 and 2)
// - the Unix socket listener serves psql -h DIR -p PORT and libpq
// - SSLRequest and GSSENCRequest are answered 'N' and startup proceeds; sslmode=require fails
// - each client gets its own BackendKeyData from pgmux
#include <doctest/doctest.h>

#include <sys/socket.h>
#include <sys/stat.h>

#include <atomic>
#include <thread>

#include "integration/fixtures.hpp"

// Inside namespace it: libpq declares `struct pg_conn` and `struct pg_result` globally.
namespace it {
namespace {

std::string psql(const proxy_instance& p, const std::string& args, const std::string& host = "127.0.0.1") {
  return "psql -X -At -v ON_ERROR_STOP=1 -h " + shell_quote(host) + " -p " + std::to_string(p.port()) +
         " -U pgmux_test -d pgmux_test " + args;
}

// Every result of the query sent last, up to the NULL that ends it.
std::vector<pg_result> all_results(const pg_conn& c) {
  std::vector<pg_result> out;
  while (true) {
    bool timed_out = false;
    auto r = get_result(c, 10s, &timed_out);
    REQUIRE_FALSE_MESSAGE(timed_out, "no result within 10 s");
    if (!r) return out;
    out.push_back(std::move(r));
  }
}

}  // namespace

TEST_SUITE("basic") {

TEST_CASE("select 1 returns 1 with the server's ParameterStatus values") {
  IT_FOR_EACH_WORKER_COUNT(workers);
  proxy_instance proxy(proxy_options().workers(workers));
  auto c = connect(proxy.conninfo());

  CHECK(scalar(c, "select 1") == "1");
  CHECK(scalar(c, "select current_user || '@' || current_database()") == "pgmux_test@pgmux_test");

  const char* version = PQparameterStatus(c.get(), "server_version");
  REQUIRE(version != nullptr);
  CHECK(std::string(version).rfind("15", 0) == 0);
  CHECK(PQserverVersion(c.get()) >= 150000);
  const char* encoding = PQparameterStatus(c.get(), "client_encoding");
  REQUIRE(encoding != nullptr);
  CHECK(std::string(encoding) == "UTF8");
  const char* scs = PQparameterStatus(c.get(), "standard_conforming_strings");
  REQUIRE(scs != nullptr);
  CHECK(std::string(scs) == "on");
  CHECK(PQparameterStatus(c.get(), "DateStyle") != nullptr);
  CHECK(PQparameterStatus(c.get(), "integer_datetimes") != nullptr);
  CHECK(PQprotocolVersion(c.get()) == 3);
  CHECK(PQbackendPID(c.get()) != 0);
  CHECK(PQtransactionStatus(c.get()) == PQTRANS_IDLE);
}

TEST_CASE("psql -c runs queries") {
  IT_FOR_EACH_WORKER_COUNT(workers);
  proxy_instance proxy(proxy_options().workers(workers));
  auto r = run(psql(proxy, "-c 'select 40 + 2' -c 'select current_database()'"), 30);
  CHECK_MESSAGE(r.code == 0, r.output);
  CHECK(r.output == "42\npgmux_test\n");

  // A failing statement makes psql exit non-zero with the server's message.
  r = run(psql(proxy, "-c 'select * from no_such_table_psql'"), 30);
  CHECK(r.code != 0);
  CHECK(r.output.find("no_such_table_psql") != std::string::npos);
}

TEST_CASE("a multi-statement simple query returns every result and PQexec keeps the last") {
  proxy_instance proxy;
  auto c = connect(proxy.conninfo());
  CHECK(scalar(c, "select 1; select 2; select 'three'") == "three");

  REQUIRE(PQsendQuery(c.get(), "select 1; select 'two', 2; select 3 from generate_series(1, 3)") == 1);
  auto results = all_results(c);
  REQUIRE(results.size() == 3);
  CHECK(results[0].value() == "1");
  CHECK(results[1].value(0, 0) == "two");
  CHECK(results[1].value(0, 1) == "2");
  CHECK(results[2].rows() == 3);

  // An error in the middle stops the rest; the implicit transaction is rolled back.
  exec_ok(c, "drop table if exists it_multi; create table it_multi (x int)");
  auto r = c.exec("insert into it_multi values (1); select 1/0; insert into it_multi values (2)");
  CHECK(r.sqlstate() == "22012");
  CHECK(scalar(c, "select count(*) from it_multi") == "0");
  CHECK(PQtransactionStatus(c.get()) == PQTRANS_IDLE);
  exec_ok(c, "begin; insert into it_multi values (3); commit");
  CHECK(scalar(c, "select count(*) from it_multi") == "1");
  exec_ok(c, "drop table it_multi");
}

TEST_CASE("ErrorResponse passes through with its SQLSTATE and the connection stays usable") {
  IT_FOR_EACH_WORKER_COUNT(workers);
  proxy_instance proxy(proxy_options().workers(workers));
  auto c = connect(proxy.conninfo());

  auto r = c.exec("selec 1");
  CHECK(r.status() == PGRES_FATAL_ERROR);
  CHECK(r.sqlstate() == "42601");
  CHECK(r.error().find("syntax error") != std::string::npos);
  CHECK(scalar(c, "select 1") == "1");

  r = c.exec("select * from no_such_table_here");
  CHECK(r.sqlstate() == "42P01");
  CHECK(r.error().find("no_such_table_here") != std::string::npos);
  CHECK(scalar(c, "select 2") == "2");

  // Inside a transaction: the error aborts it, later statements fail until ROLLBACK.
  exec_ok(c, "begin");
  CHECK(PQtransactionStatus(c.get()) == PQTRANS_INTRANS);
  CHECK(c.exec("select * from no_such_table_here").sqlstate() == "42P01");
  CHECK(PQtransactionStatus(c.get()) == PQTRANS_INERROR);
  CHECK(c.exec("select 1").sqlstate() == "25P02");
  exec_ok(c, "rollback");
  CHECK(PQtransactionStatus(c.get()) == PQTRANS_IDLE);
  CHECK(scalar(c, "select 3") == "3");

  // Errors of the extended protocol too.
  r = c.exec_params("select $1::int", {"not a number"});
  CHECK(r.sqlstate() == "22P02");
  CHECK(scalar(c, "select 4") == "4");
}

TEST_CASE("NoticeResponse from RAISE NOTICE reaches the client") {
  proxy_instance proxy;
  auto c = connect(proxy.conninfo());
  c.collect_notices();
  exec_ok(c, "do $$ begin raise notice 'hello from %', 'pgmux'; raise warning 'careful' using errcode = '01007'; end $$");
  REQUIRE(c.notices().size() == 2);
  CHECK(c.notices()[0] == "NOTICE|00000|hello from pgmux");
  CHECK(c.notices()[1] == "WARNING|01007|careful");
  CHECK(scalar(c, "select 1") == "1");
}

TEST_CASE("extended protocol: PQexecParams and prepared statements in one transaction") {
  IT_FOR_EACH_WORKER_COUNT(workers);
  proxy_instance proxy(proxy_options().workers(workers));
  auto c = connect(proxy.conninfo());

  for (int i = 0; i < 20; ++i) {
    const std::string text = std::string(i, 'v');
    auto r = c.exec_params("select $1::int + $2::int, $3::text", {std::to_string(i), "100", text});
    REQUIRE_MESSAGE(r.status() == PGRES_TUPLES_OK, r.error());
    CHECK(r.value(0, 0) == std::to_string(i + 100));
    CHECK(r.value(0, 1) == text);
  }

  exec_ok(c, "begin");
  // Binary result format.
  const char* values[] = {"258"};
  pg_result bin(PQexecParams(c.get(), "select $1::int4", 1, nullptr, values, nullptr, nullptr, 1));
  REQUIRE_MESSAGE(bin.status() == PGRES_TUPLES_OK, bin.error());
  REQUIRE(PQgetlength(bin.get(), 0, 0) == 4);
  const auto* bytes = reinterpret_cast<const unsigned char*>(PQgetvalue(bin.get(), 0, 0));
  CHECK((bytes[0] == 0 && bytes[1] == 0 && bytes[2] == 1 && bytes[3] == 2));

  pg_result prep(PQprepare(c.get(), "it_s1", "select $1::text || '!', $2::int * 2", 2, nullptr));
  REQUIRE_MESSAGE(prep.status() == PGRES_COMMAND_OK, prep.error());
  pg_result desc(PQdescribePrepared(c.get(), "it_s1"));
  REQUIRE(desc.status() == PGRES_COMMAND_OK);
  CHECK(PQnparams(desc.get()) == 2);
  CHECK(PQnfields(desc.get()) == 2);
  for (int i = 0; i < 5; ++i) {
    const std::string n = std::to_string(i);
    const char* args[] = {"hi", n.c_str()};
    pg_result r(PQexecPrepared(c.get(), "it_s1", 2, args, nullptr, nullptr, 0));
    REQUIRE_MESSAGE(r.status() == PGRES_TUPLES_OK, r.error());
    CHECK(r.value(0, 0) == "hi!");
    CHECK(r.value(0, 1) == std::to_string(i * 2));
  }
  exec_ok(c, "deallocate it_s1");
  CHECK(scalar(c, "select count(*) from pg_prepared_statements where name = 'it_s1'") == "0");
  exec_ok(c, "commit");
  CHECK(PQtransactionStatus(c.get()) == PQTRANS_IDLE);
}

TEST_CASE("pipeline mode with several syncs returns every result in order while another client waits") {
  IT_FOR_EACH_WORKER_COUNT(workers);
  // One server connection: a server handed to the other client between two syncs of the pipeline
  // would give that client the pipeline's results (or the pipeline the other client's).
  proxy_instance proxy(proxy_options().workers(workers).pool("max_size", "1"));
  auto a = connect(proxy.conninfo());
  auto b = connect(proxy.conninfo());

  std::atomic<int> b_wrong{0}, b_done{0};
  std::string b_error;
  std::jthread other([&](std::stop_token stop) {
    for (int i = 0; !stop.stop_requested() && i < 10000; ++i) {
      const std::string v = std::to_string(i * 7 + 1);  // (not "b" + to_string(i): GCC 12 -Wrestrict false positive)
      auto r = b.exec("select '" + v + "'");
      if (r.status() != PGRES_TUPLES_OK || r.value() != v) {
        if (b_wrong++ == 0) b_error = r.status() == PGRES_TUPLES_OK ? "got " + r.value() + " for " + v : r.error();
      }
      ++b_done;
    }
  });

  // The other client is under way before the pipeline starts (a loaded machine may start its
  // thread late).
  REQUIRE(wait_until([&] { return b_done.load() > 0; }, 10s));
  REQUIRE(PQenterPipelineMode(a.get()) == 1);
  REQUIRE(PQsetnonblocking(a.get(), 1) == 0);
  for (int round = 0; round < 20; ++round) {
    CAPTURE(round);
    // Three segments, each ended by a sync; the second holds an error that aborts its tail.
    const std::vector<std::vector<std::string>> segments = {
        {"1", "2", "3"}, {"4", "error", "aborted"}, {"7", "8"}};
    for (const auto& seg : segments) {
      for (const auto& q : seg) {
        const std::string sql = q == "error" ? "select 1/$1::int" : "select $1::int * 10";
        const std::string param = q == "error" ? "0" : q == "aborted" ? "6" : q;
        const char* values[] = {param.c_str()};
        REQUIRE(PQsendQueryParams(a.get(), sql.c_str(), 1, nullptr, values, nullptr, nullptr, 0) == 1);
      }
      REQUIRE(PQpipelineSync(a.get()) == 1);
    }
    const auto flush_deadline = clock::now() + 10s;
    while (PQflush(a.get()) == 1 && clock::now() < flush_deadline) std::this_thread::sleep_for(1ms);

    for (const auto& seg : segments) {
      for (const auto& q : seg) {
        CAPTURE(q);
        bool timed_out = false;
        auto r = get_result(a, 10s, &timed_out);
        REQUIRE_FALSE(timed_out);
        REQUIRE(r);
        if (q == "error") {
          CHECK(r.sqlstate() == "22012");
        } else if (q == "aborted") {
          CHECK(r.status() == PGRES_PIPELINE_ABORTED);
        } else {
          REQUIRE_MESSAGE(r.status() == PGRES_TUPLES_OK, r.error());
          CHECK(r.value() == std::to_string(std::stoi(q) * 10));
        }
        auto end = get_result(a, 10s, &timed_out);  // NULL ends each query's results
        REQUIRE_FALSE(timed_out);
        CHECK_FALSE(end);
      }
      bool timed_out = false;
      auto sync = get_result(a, 10s, &timed_out);
      REQUIRE_FALSE(timed_out);
      REQUIRE(sync);
      CHECK(sync.status() == PGRES_PIPELINE_SYNC);
    }
  }
  REQUIRE(PQsetnonblocking(a.get(), 0) == 0);
  REQUIRE(PQexitPipelineMode(a.get()) == 1);
  CHECK(scalar(a, "select 'after pipeline'") == "after pipeline");

  other.request_stop();
  other.join();
  CHECK_MESSAGE(b_wrong == 0, b_error);
  CHECK(b_done > 0);
}

TEST_CASE("the Unix socket listener serves psql -h DIR -p PORT and libpq") {
  proxy_instance proxy(proxy_options().unix_socket());
  struct stat st {};
  const std::string socket = proxy.dir() + "/.s.PGSQL." + std::to_string(proxy.port());
  REQUIRE_MESSAGE(::stat(socket.c_str(), &st) == 0, socket << " does not exist");
  CHECK(S_ISSOCK(st.st_mode));

  auto r = run(psql(proxy, "-c 'select 6 * 7'", proxy.dir()), 30);
  CHECK_MESSAGE(r.code == 0, r.output);
  CHECK(r.output == "42\n");

  auto c = connect("host=" + proxy.dir() + " port=" + std::to_string(proxy.port()) +
                   " dbname=pgmux_test user=pgmux_test connect_timeout=10");
  CHECK(scalar(c, "select 'over unix'") == "over unix");
  // TCP still works alongside.
  auto t = connect(proxy.conninfo());
  CHECK(scalar(t, "select 'over tcp'") == "over tcp");
}

TEST_CASE("SSLRequest and GSSENCRequest are answered N and startup proceeds") {
  proxy_instance proxy;
  for (const std::uint32_t code : {80877103u, 80877104u}) {
    CAPTURE(code);
    raw_socket s(proxy.port());
    REQUIRE(s.send(wire::startup_packet(code, "")));
    std::string answer;
    const auto deadline = clock::now() + 5s;
    char ch = 0;
    while (answer.empty() && clock::now() < deadline) {
      const auto got = ::recv(s.fd(), &ch, 1, MSG_DONTWAIT);
      if (got == 1) answer.push_back(ch);
      else if (got == 0) break;
      else std::this_thread::sleep_for(5ms);
    }
    REQUIRE(answer == "N");
    REQUIRE(s.startup());
    REQUIRE(s.send(wire::msg('Q', wire::cstr("select 'raw'"))));
    std::string types;
    while (true) {
      auto m = s.read_message(5s);
      REQUIRE(m);
      types.push_back(m->first);
      if (m->first == 'D') CHECK(m->second.find("raw") != std::string::npos);
      if (m->first == 'Z') break;
    }
    CHECK(types == "TDCZ");
  }

  pg_conn tls(proxy.conninfo() + " sslmode=require");
  CHECK_FALSE(tls.ok());
  CHECK(tls.error().find("SSL") != std::string::npos);
  auto plain = connect(proxy.conninfo() + " sslmode=prefer");
  CHECK(scalar(plain, "select 1") == "1");
}

TEST_CASE("each client gets its own BackendKeyData from pgmux") {
  proxy_instance proxy(proxy_options().pool("max_size", "1"));
  auto a = connect(proxy.conninfo());
  auto b = connect(proxy.conninfo());
  // Both are served by the one server connection...
  CHECK(scalar(a, "select pg_backend_pid()") == scalar(b, "select pg_backend_pid()"));
  // ...yet each has its own key, so a cancel reaches the right client.
  CHECK(PQbackendPID(a.get()) != 0);
  CHECK(PQbackendPID(b.get()) != 0);
  CHECK(PQbackendPID(a.get()) != PQbackendPID(b.get()));
}

}  // TEST_SUITE
}  // namespace it
