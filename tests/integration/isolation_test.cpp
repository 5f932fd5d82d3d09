// Isolation between clients that share a pool (transaction mode), and clients that fail or leave
// at awkward moments:
// - a COPY FROM STDIN that the server fails while the client is in the middle of a CopyData
//   message: the connection goes back only once that message is finished, and the next client
//   lent it is served normally
// - LISTEN: a client that LISTENs keeps its server connection and gets its notifications while
//   idle; after it leaves the connection is reset; a registration pgmux could not see (LISTEN
//   run by a DO block) never delivers a notification to another client, and that connection
//   is closed after the transaction that revealed it
// - a client cannot replace another client's shared prepared statement: SQL PREPARE, EXECUTE and
//   DEALLOCATE of pgmux's names are refused (42501), also through the extended protocol, and a
//   DO block that could do it makes pgmux close that server connection
// - clients that hang up while queued for a server connection leave the queue within about
//   100 ms (the watch starts after 100 ms queued), and nothing they sent runs
// - session state (session_state "pin", the default): a client whose session-level set_config of
//   search_path stays on its server connection keeps that connection, SHOW CLIENTS says why, and the next client of the
//   connection finds it reset (DISCARD ALL), not closed
// - messages whose answer pgmux could not foresee (a Query during COPY FROM STDIN, a Query before
//   the Sync of an extended batch) end that client with 08P01; the server connection stays usable
#include <doctest/doctest.h>

#include <poll.h>

#include <future>
#include <thread>

#include "integration/fixtures.hpp"

namespace it {
namespace {

// Sends a simple query on a raw connection and returns the message types up to ReadyForQuery.
std::string raw_query(raw_socket& s, const std::string& sql) {
  if (!s.send(wire::msg('Q', wire::cstr(sql)))) return "send failed";
  std::string types;
  while (auto m = s.read_message(5s)) {
    types.push_back(m->first);
    if (m->first == 'Z') break;
  }
  return types;
}

// Reads messages until ReadyForQuery; their types, and the SQLSTATE of the first error.
std::string read_to_ready(raw_socket& s, std::string* sqlstate = nullptr, std::chrono::milliseconds timeout = 5s) {
  std::string types;
  while (auto m = s.read_message(timeout)) {
    types.push_back(m->first);
    if (m->first == 'E' && sqlstate && sqlstate->empty()) *sqlstate = wire::error_fields(m->second)['C'];
    if (m->first == 'Z') break;
  }
  return types;
}

// A cell of SHOW POOLS (admin console) for `database`.
std::string pools_cell(const pg_conn& admin, const std::string& database, const std::string& column) {
  auto r = admin.exec("SHOW POOLS");
  const int col = PQfnumber(r.get(), column.c_str());
  for (int row = 0; row < r.rows(); ++row)
    if (r.value(row, 0) == database) return r.value(row, col);
  return "";
}

// Waits up to `timeout` for a notification on `c`; "channel|payload", or "" when none came.
std::string wait_notification(const pg_conn& c, std::chrono::milliseconds timeout) {
  const auto deadline = clock::now() + timeout;
  for (;;) {
    PQconsumeInput(c.get());
    if (PGnotify* n = PQnotifies(c.get())) {
      std::string out = std::string(n->relname) + "|" + n->extra;
      PQfreemem(n);
      return out;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
    if (left.count() <= 0) return "";
    pollfd p{PQsocket(c.get()), POLLIN, 0};
    ::poll(&p, 1, static_cast<int>(std::min<long>(left.count(), 100)));
  }
}

proxy_options with_admin() { return proxy_options().top_level(R"("admin": {"users": ["pgmux_test"]})"); }

}  // namespace

TEST_SUITE("isolation") {

TEST_CASE("a client that LISTENs keeps its connection and gets its notifications, nobody else ever does") {
  proxy_instance proxy(proxy_options().pool("max_size", "1").pool("query_wait_timeout", "10s"));
  auto admin = connect(pg().admin_conninfo());
  auto notifier = setup_connection();  // NOTIFY reaches listeners of its own database only
  auto notify = [&](const std::string& channel, const std::string& payload) {
    exec_ok(notifier, "select pg_notify('" + channel + "', '" + payload + "')");
  };
  {
    auto listener = connect(proxy.conninfo());
    exec_ok(listener, "LISTEN it_jobs");
    notify("it_jobs", "first");
    CHECK(wait_notification(listener, 5s) == "it_jobs|first");  // delivered while the client is idle
    exec_ok(listener, "select 1");
    notify("it_jobs", "second");
    CHECK(wait_notification(listener, 5s) == "it_jobs|second");
    CHECK(scalar(admin, "select count(*) from pg_stat_activity where usename = 'pgmux_test'") == "1");
  }
  // Gone: its connection was reset before anyone else got it.
  CHECK(proxy.logged("until it disconnects (listen)"));
  auto next = connect(proxy.conninfo());
  CHECK(scalar(next, "select count(*) from pg_listening_channels()") == "0");
  notify("it_jobs", "for nobody");
  CHECK(scalar(next, "select 'after'") == "after");
  CHECK(wait_notification(next, 300ms).empty());
}

TEST_CASE("a client whose set_config stays on its connection keeps it, SHOW CLIENTS says why, the next client finds it reset") {
  proxy_instance proxy(with_admin().pool("max_size", "1").pool("query_wait_timeout", "10s"));
  auto console = connect(proxy.conninfo("pgmux", "pgmux_test"));
  std::string backend;
  {
    auto setter = connect(proxy.conninfo());
    exec_ok(setter, "SELECT set_config('search_path', 'it_nowhere, public', false)");
    CHECK(scalar(setter, "show search_path") == "it_nowhere, public");  // its own, in the next transaction
    backend = scalar(setter, "select pg_backend_pid()");
    auto clients = console.exec("SHOW CLIENTS");
    REQUIRE(clients.ok());
    std::vector<std::string> pinned;
    for (int i = 0; i < clients.rows(); ++i)
      if (clients.value(i, PQfnumber(clients.get(), "database")) == "pgmux_test")
        pinned.push_back(clients.value(i, PQfnumber(clients.get(), "pinned")));
    CHECK(pinned == std::vector<std::string>{"set"});
  }
  CHECK(wait_until([&] { return proxy.log().find("until it disconnects (set)") != std::string::npos; }, 5s));
  auto next = connect(proxy.conninfo());
  CHECK(scalar(next, "show search_path") == "\"$user\", public");
  CHECK(scalar(next, "select pg_backend_pid()") == backend);  // reset and lent again, not closed
}

TEST_CASE("a LISTEN pgmux cannot see never delivers another client's notifications") {
  proxy_instance proxy(proxy_options().pool("max_size", "1").pool("query_wait_timeout", "10s"));
  auto admin = connect(pg().admin_conninfo());
  std::string backend;
  {
    auto hidden = connect(proxy.conninfo());
    exec_ok(hidden, "DO $$BEGIN EXECUTE 'LISTEN it_hidden'; END$$");
    CHECK(scalar(hidden, "select count(*) from pg_listening_channels()") == "1");
    backend = scalar(hidden, "select pg_backend_pid()");
  }
  auto notifier = setup_connection();  // NOTIFY reaches listeners of its own database only
  exec_ok(notifier, "select pg_notify('it_hidden', 'secret payload')");
  // The bystander is served, never sees the notification, and the connection that carried the
  // registration goes away once it gave itself away.
  auto bystander = connect(proxy.conninfo());
  const auto gone = [&] {
    CHECK(scalar(bystander, "select 'served'") == "served");
    CHECK(wait_notification(bystander, 50ms).empty());
    return scalar(admin, "select count(*) from pg_stat_activity where pid = " + backend) == "0";
  };
  CHECK(wait_until(gone, 10s));
  CHECK(scalar(bystander, "select count(*) from pg_listening_channels()") == "0");
  exec_ok(notifier, "select pg_notify('it_hidden', 'again')");
  CHECK(scalar(bystander, "select 'still served'") == "still served");
  CHECK(wait_notification(bystander, 300ms).empty());
}

TEST_CASE("a client cannot replace another client's shared prepared statement") {
  proxy_instance proxy(proxy_options().pool("max_size", "1").pool("query_wait_timeout", "10s"));
  auto victim = connect(proxy.conninfo());
  auto attacker = connect(proxy.conninfo());
  pg_result prepared(PQprepare(victim.get(), "s1", "select 'victim'::text", 0, nullptr));
  REQUIRE_MESSAGE(prepared.ok(), prepared.error());
  auto run_victim = [&] {
    pg_result r(PQexecPrepared(victim.get(), "s1", 0, nullptr, nullptr, nullptr, 0));
    REQUIRE_MESSAGE(r.ok(), r.error());
    return r.value();
  };
  CHECK(run_victim() == "victim");
  const auto name = scalar(attacker, "select name from pg_prepared_statements where name like 'pgmux%'");
  REQUIRE(name.rfind("pgmux_", 0) == 0);

  for (const std::string& sql : std::vector<std::string>{"DEALLOCATE " + name, "deallocate prepare \"" + name + "\"",
                                "PREPARE " + name + " AS select 'attacker'::text", "EXECUTE " + name,
                                "select 1; DEALLOCATE " + name}) {
    CAPTURE(sql);
    auto r = attacker.exec(sql);
    CHECK(r.sqlstate() == "42501");
    CHECK(r.error().find("reserved") != std::string::npos);
    CHECK(run_victim() == "victim");
  }
  // Through the extended protocol too.
  auto r = attacker.exec_params("DEALLOCATE " + name, {});
  CHECK(r.sqlstate() == "42501");
  // Inside a transaction the refusal fails the transaction, as an error from the server would.
  exec_ok(attacker, "begin");
  CHECK(attacker.exec("DEALLOCATE " + name).sqlstate() == "42501");
  CHECK(attacker.exec("select 1").sqlstate() == "25P02");
  exec_ok(attacker, "rollback");
  CHECK(run_victim() == "victim");

  // Dynamic SQL pgmux cannot read: the connection it ran on is not trusted again.
  auto dynamic = attacker.exec("DO $$BEGIN EXECUTE 'DEALLOCATE ' || quote_ident('" + name +
                               "'); EXECUTE 'PREPARE ' || quote_ident('" + name + "') || ' AS select ''attacker''::text'; END$$");
  MESSAGE("DO block replacing the statement: " << (dynamic.ok() ? std::string("ran") : dynamic.error()));
  CHECK(run_victim() == "victim");
  if (dynamic.ok()) CHECK(proxy.logged("may have changed its prepared statements"));
  // The attacker's own statements of the same name still work: they are its own.
  pg_result own(PQprepare(attacker.get(), "pgmux_mine", "select 'own'::text", 0, nullptr));
  REQUIRE_MESSAGE(own.ok(), own.error());
  pg_result ran(PQexecPrepared(attacker.get(), "pgmux_mine", 0, nullptr, nullptr, nullptr, 0));
  CHECK(ran.value() == "own");
}

TEST_CASE("clients that hang up while queued leave the queue within moments and nothing they sent runs") {
  {
    auto setup = setup_connection();
    exec_ok(setup, "drop table if exists it_departed; create table it_departed (x int)");
  }
  proxy_instance proxy(with_admin().pool("max_size", "1").pool("query_wait_timeout", "30s"));
  auto admin = connect(proxy.conninfo("pgmux", "pgmux_test"));
  auto holder = connect(proxy.conninfo());
  exec_ok(holder, "begin");
  CHECK(scalar(holder, "select 'holding'") == "holding");

  constexpr int departed = 40;
  {
    std::vector<std::unique_ptr<raw_socket>> clients;
    for (int i = 0; i < departed; ++i) {
      clients.push_back(std::make_unique<raw_socket>(proxy.port()));
      REQUIRE(clients.back()->startup());
      REQUIRE(clients.back()->send(wire::msg('Q', wire::cstr("insert into it_departed values (" + std::to_string(i) + ")"))));
    }
    CHECK(wait_until([&] { return pools_cell(admin, "pgmux_test", "cl_waiting") == std::to_string(departed); }, 10s));
  }  // all of them hang up, their INSERT sent
  CHECK(wait_until([&] { return pools_cell(admin, "pgmux_test", "cl_waiting") == "0"; }, 2s));
  // Waiters are served in order: had any departed client stayed queued, its INSERT would run
  // before the newcomer's query.
  exec_ok(holder, "commit");
  auto newcomer = connect(proxy.conninfo());
  CHECK(scalar(newcomer, "select count(*) from it_departed") == "0");
  CHECK(pools_cell(admin, "pgmux_test", "cl_waiting") == "0");
}

TEST_CASE("a COPY the server fails mid-message is finished before the connection serves the next client") {
  {
    auto setup = setup_connection();
    exec_ok(setup, "drop table if exists it_copy_fail; create table it_copy_fail (x int)");
  }
  // One server connection, so the bystander gets exactly the one the COPY used.
  proxy_instance proxy(proxy_options().pool("max_size", "1").pool("query_wait_timeout", "10s"));
  raw_socket copier(proxy.port());
  REQUIRE(copier.startup());
  REQUIRE(copier.send(wire::msg('Q', wire::cstr("copy it_copy_fail from stdin"))));
  auto started = copier.read_message(5s);
  REQUIRE(started);
  REQUIRE(started->first == 'G');

  // A whole CopyData the server rejects, then the first half of the next one: the server fails
  // the COPY (ErrorResponse, ReadyForQuery) while the client is inside a message.
  const std::string second_rows(4000, '7');
  const std::string second = wire::msg('d', second_rows + "\n");
  REQUIRE(copier.send(wire::msg('d', "not a number\n") + second.substr(0, second.size() / 2)));
  std::string sqlstate;
  CHECK(read_to_ready(copier, &sqlstate) == "EZ");
  CHECK(sqlstate == "22P02");

  // A bystander asks for the only server connection meanwhile.
  auto bystander = std::async(std::launch::async, [&] {
    auto c = connect(proxy.conninfo());
    return scalar(c, "select 'bystander ok'");
  });
  // It must not get the connection while half a message is on its way to the server...
  CHECK(bystander.wait_for(300ms) == std::future_status::timeout);
  // ...and gets it, clean, once the message is complete.
  REQUIRE(copier.send(second.substr(second.size() / 2)));
  REQUIRE(bystander.wait_for(10s) == std::future_status::ready);
  CHECK(bystander.get() == "bystander ok");
  // The copier goes on as on a direct connection.
  CHECK(raw_query(copier, "select 1") == "TDCZ");
  auto check = connect(proxy.conninfo());
  CHECK(scalar(check, "select count(*) from it_copy_fail") == "0");
}

TEST_CASE("messages whose answer cannot be foreseen end that client and leave the server connection usable") {
  {
    auto setup = setup_connection();
    exec_ok(setup, "drop table if exists it_unforeseen; create table it_unforeseen (x int)");
  }
  proxy_instance proxy(proxy_options().pool("max_size", "1").pool("query_wait_timeout", "10s"));
  auto admin = connect(pg().admin_conninfo());
  auto bystander = connect(proxy.conninfo());

  SUBCASE("a Query during COPY FROM STDIN") {
    raw_socket s(proxy.port());
    REQUIRE(s.startup());
    REQUIRE(s.send(wire::msg('Q', wire::cstr("copy it_unforeseen from stdin"))));
    auto started = s.read_message(5s);
    REQUIRE(started);
    REQUIRE(started->first == 'G');
    REQUIRE(s.send(wire::msg('d', "1\n") + wire::msg('Q', wire::cstr("select 1"))));
    auto out = s.read_until_closed(10s);
    CHECK(out.closed);
    REQUIRE_FALSE(out.data.empty());
    CHECK(out.data[0] == 'E');
  }
  SUBCASE("a Query before the Sync of an extended batch, after an error in that batch") {
    raw_socket s(proxy.port());
    REQUIRE(s.startup());
    // The Parse fails, so PostgreSQL would skip the Query and never answer it.
    REQUIRE(s.send(wire::msg('P', wire::cstr("") + wire::cstr("selec 1") + std::string(2, '\0')) +
                   wire::msg('Q', wire::cstr("select 1"))));
    auto out = s.read_until_closed(10s);
    CHECK(out.closed);
  }
  // The bystander is served by the same server connection at once, and nothing was left over.
  const auto t0 = clock::now();
  CHECK(scalar(bystander, "select 'ok'") == "ok");
  CHECK(seconds_since(t0) < 3.0);
  CHECK(scalar(bystander, "select count(*) from it_unforeseen") == "0");
  CHECK(wait_until(
      [&] {
        return scalar(admin, "select count(*) from pg_stat_activity where usename = 'pgmux_test' and state <> 'idle'") ==
               "0";
      },
      5s));
}

}  // TEST_SUITE

}  // namespace it
