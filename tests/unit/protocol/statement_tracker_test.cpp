// Which statement each request in flight runs (protocol/statement_tracker), alone and through
// the relay's scans (scan_frontend, scan_backend).
// Cases:
// - a Query runs its own text: told to the sink, answered with its rows
// - an extended batch runs its last Execute's statement: the unnamed statement's latest Parse,
//   or the SQL a named statement was prepared with, however many batches later; a batch with
//   no Execute runs none; a FunctionCall runs none
// - an ErrorResponse marks the request it answers failed, not the next one
// - pipelined requests are answered in order, each with its own rows
// - past max_in_flight the newer requests are not known, and the order still holds
// - a new lease forgets what was in flight; statement names stay with the client
// - Close of a named statement forgets its SQL; names are made only at the first Parse or Bind
// - COPY FROM STDIN by Execute: the Sync the server ignores during the COPY is taken back, and
//   the COPY counts once, with its rows, at the Sync that follows CopyDone
// - a Sync sent during a simple COPY FROM STDIN (ignored by the server) is not a request: the
//   statements after the COPY keep their own answers
// - an extended COPY the server fails on bad data counts as failed
// - should the tracker and the protocol's count disagree, realign forgets rather than misattributes
// - DEALLOCATE name, DEALLOCATE ALL and DISCARD ALL forget statement names; names are kept to
//   63 bytes; past max_named a new name takes another's place
// - a Query longer than the buffer has one fingerprint however the reads cut it
// - an ErrorResponse of 53000, 53200 or 53300 marks its request overloaded; others (53100 disk
//   full, 53400 configuration limit) do not
// - command_rows reads SELECT, INSERT, UPDATE, DELETE, MERGE, FETCH, MOVE and COPY tags
// - through the scans: a simple query and a prepared statement are recorded per request, the
//   CommandComplete of a second request split across reads counts for that request
#include <doctest/doctest.h>

#include <map>

#include "pgmux/protocol/sql_normalize.hpp"
#include "pgmux/protocol/statement_tracker.hpp"
#include "pgmux/protocol/stream.hpp"
#include "support/wire.hpp"

using namespace pgmux::protocol;

namespace {

struct recording_sink final : statement_sink {
  std::map<std::uint64_t, std::string> seen_texts;
  int calls = 0;
  void seen(std::uint64_t fingerprint, std::string_view sql) override {
    ++calls;
    seen_texts.emplace(fingerprint, std::string(sql));
  }
};

std::string body(std::initializer_list<std::string_view> cstrings) {
  std::string out;
  for (auto s : cstrings) {
    out += s;
    out += '\0';
  }
  return out;
}

answered_request take(statement_tracker& t) {
  answered_request r;
  REQUIRE(t.take_answered(r));
  return r;
}

}  // namespace

TEST_SUITE("statement tracker") {

TEST_CASE("a Query runs its own text and is answered with its rows") {
  recording_sink sink;
  statement_tracker t;
  t.sink = &sink;
  t.on_frontend('Q', body({"SELECT  2"}));
  CHECK(sink.calls == 1);
  CHECK(sink.seen_texts.count(statement_fingerprint("select 1")) == 1);
  answered_request r;
  CHECK_FALSE(t.take_answered(r));
  t.on_backend('C', body({"SELECT 3"}));
  t.on_backend('Z', {});
  r = take(t);
  CHECK(r.fingerprint == statement_fingerprint("select 1"));
  CHECK(r.rows == 3);
  CHECK_FALSE(r.failed);
  CHECK_FALSE(t.take_answered(r));
  CHECK(t.in_flight() == 0);
}

TEST_CASE("an extended batch runs the statement of its last Execute") {
  recording_sink sink;
  std::unique_ptr<statement_names> names;
  statement_tracker t;
  t.sink = &sink;
  t.names = &names;
  // Prepared once, executed in a later batch under its SQL text.
  t.on_frontend('P', body({"s1", "update t set x = $1 where id = 7", ""}) + std::string(2, '\0'));
  t.on_frontend('S', {});
  REQUIRE(names != nullptr);
  t.on_frontend('B', body({"", "s1"}) + std::string(6, '\0'));
  t.on_frontend('E', body({""}) + std::string(4, '\0'));
  t.on_frontend('S', {});
  // The unnamed statement, then a FunctionCall.
  t.on_frontend('P', body({"", "select * from t where id = $1"}) + std::string(2, '\0'));
  t.on_frontend('B', body({"", ""}) + std::string(6, '\0'));
  t.on_frontend('E', body({""}) + std::string(4, '\0'));
  t.on_frontend('S', {});
  t.on_frontend('F', std::string(10, '\0'));
  CHECK(t.in_flight() == 4);
  for (int i = 0; i < 4; ++i) t.on_backend('Z', {});
  CHECK(take(t).fingerprint == 0);  // Parse and Sync: no statement ran
  CHECK(take(t).fingerprint == statement_fingerprint("update t set x = ? where id = ?"));
  CHECK(take(t).fingerprint == statement_fingerprint("select * from t where id = 5"));
  CHECK(take(t).fingerprint == 0);  // FunctionCall
  CHECK(sink.calls == 2);
}

TEST_CASE("an ErrorResponse marks the request it answers, not the next one") {
  statement_tracker t;
  t.on_frontend('Q', body({"select 1/0"}));
  t.on_frontend('Q', body({"select 1"}));
  t.on_backend('E', body({"SERROR", "C22012"}));
  t.on_backend('Z', {});
  t.on_backend('C', body({"SELECT 1"}));
  t.on_backend('Z', {});
  const auto first = take(t);
  const auto second = take(t);
  CHECK(first.failed);
  CHECK(first.rows == 0);
  CHECK_FALSE(second.failed);
  CHECK(second.rows == 1);
}

TEST_CASE("pipelined requests past max_in_flight keep their order and the newer ones are not known") {
  statement_tracker t;
  const std::size_t sent = statement_tracker::max_in_flight + 5;
  for (std::size_t i = 0; i < sent; ++i) t.on_frontend('Q', body({"select " + std::to_string(i)}));
  CHECK(t.in_flight() == sent);
  std::size_t known = 0;
  for (std::size_t i = 0; i < sent; ++i) {
    t.on_backend('C', body({"SELECT " + std::to_string(i)}));
    t.on_backend('Z', {});
    answered_request r;
    if (t.take_answered(r)) {
      CHECK(r.rows == i);
      ++known;
    }
  }
  CHECK(known == statement_tracker::max_in_flight);
  CHECK(t.in_flight() == 0);
  // Known again once everything in flight was answered.
  t.on_frontend('Q', body({"select 1"}));
  t.on_backend('Z', {});
  CHECK(take(t).fingerprint == statement_fingerprint("select 1"));
}

TEST_CASE("a new lease forgets what was in flight but the client keeps its statement names") {
  std::unique_ptr<statement_names> names;
  statement_tracker first;
  first.names = &names;
  first.on_frontend('P', body({"s", "select 42", ""}) + std::string(2, '\0'));
  first.on_frontend('Q', body({"select 1"}));
  first.forget_in_flight();
  CHECK(first.in_flight() == 0);
  first.on_backend('Z', {});
  answered_request r;
  CHECK_FALSE(first.take_answered(r));
  statement_tracker second;  // another server connection
  second.names = &names;
  second.on_frontend('B', body({"", "s"}) + std::string(6, '\0'));
  second.on_frontend('E', body({""}) + std::string(4, '\0'));
  second.on_frontend('S', {});
  second.on_backend('Z', {});
  CHECK(take(second).fingerprint == statement_fingerprint("select 42"));
}

TEST_CASE("Close forgets a named statement and names are made only when needed") {
  std::unique_ptr<statement_names> names;
  statement_tracker t;
  t.names = &names;
  t.on_frontend('Q', body({"select 1"}));
  t.on_frontend('C', body({"Ss"}));
  CHECK(names == nullptr);  // the simple protocol costs the client nothing
  t.on_frontend('P', body({"s", "select 42", ""}) + std::string(2, '\0'));
  REQUIRE(names != nullptr);
  CHECK(names->named.size() == 1);
  std::string close = "S";
  close += body({"s"});
  t.on_frontend('C', close);
  CHECK(names->named.empty());
}

TEST_CASE("an overload error marks its request overloaded and others do not") {
  CHECK(overload_error(body({"SERROR", "VERROR", "C53200", "Mout of memory", ""})));
  CHECK(overload_error(body({"SFATAL", "C53300", ""})));
  CHECK_FALSE(overload_error(body({"SERROR", "C22012", ""})));
  CHECK_FALSE(overload_error(body({"SERROR", "C5320", ""})));
  CHECK(overload_error(body({"SERROR", "C53000", ""})));
  CHECK_FALSE(overload_error(body({"SERROR", "C53100", ""})));  // disk full: not load
  CHECK_FALSE(overload_error(body({"SERROR", "C53400", ""})));  // temp_file_limit: not load
  CHECK_FALSE(overload_error(body({"SERROR", "M53200", ""})));
  CHECK_FALSE(overload_error(std::string("SERROR\0C53", 11)));  // cut short
  statement_tracker t;
  t.on_frontend('Q', body({"select a"}));
  t.on_frontend('Q', body({"select b"}));
  t.on_backend('E', body({"SERROR", "C53200", ""}));
  t.on_backend('Z', {});
  t.on_backend('E', body({"SERROR", "C42P01", ""}));
  t.on_backend('Z', {});
  const auto first = take(t);
  const auto second = take(t);
  CHECK(first.overloaded);
  CHECK(first.failed);
  CHECK_FALSE(second.overloaded);
  CHECK(second.failed);
}

TEST_CASE("command_rows reads the row count of the tags that have one") {
  CHECK(command_rows(body({"SELECT 10"})) == 10);
  CHECK(command_rows("INSERT 0 5") == 5);
  CHECK(command_rows("UPDATE 3") == 3);
  CHECK(command_rows("DELETE 0") == 0);
  CHECK(command_rows("MERGE 4") == 4);
  CHECK(command_rows("FETCH 100") == 100);
  CHECK(command_rows("MOVE 2") == 2);
  CHECK(command_rows("COPY 7") == 7);
  CHECK(command_rows("CREATE TABLE") == 0);
  CHECK(command_rows("BEGIN") == 0);
  CHECK(command_rows("SELECTED 5") == 0);
  CHECK(command_rows("SELECT x") == 0);
}

TEST_CASE("through the scans each request is recorded with its own rows") {
  recording_sink sink;
  std::unique_ptr<statement_names> names;
  statement_tracker t;
  t.sink = &sink;
  t.names = &names;
  tx_tracker tx;
  stream_cursor fc, bc;
  const std::string client = wire::msg('Q').cstr("SELECT a FROM t WHERE id = 1").str() +
                             wire::msg('P').cstr("").cstr("select $1::int").i16(0).str() +
                             wire::msg('B').cstr("").cstr("").i16(0).i16(1).i32(1).bytes("7").i16(0).str() +
                             wire::msg('E').cstr("").i32(0).str() + wire::msg('S').str();
  const auto f = scan_frontend(client, fc, tx, 1 << 20, nullptr, nullptr, 16 * 1024, nullptr, &t);
  CHECK(f.forward == client.size());
  CHECK(tx.outstanding == 2);
  CHECK(sink.calls == 2);
  backend_context context;
  context.statements = &t;
  context.inspect_limit = 16 * 1024;
  const std::string server = wire::msg('C').cstr("SELECT 4").str() + wire::msg('Z').bytes("I").str() +
                             wire::msg('1').str() + wire::msg('2').str() + wire::msg('C').cstr("SELECT 1").str() +
                             wire::msg('Z').bytes("I").str();
  // The second CommandComplete arrives in two reads: it is waited for whole.
  const auto split = server.size() - 6 - 4;
  const auto b1 = scan_backend(std::string_view(server).substr(0, split), bc, tx, false, context);
  CHECK(b1.stop == scan_stop::need_more);
  CHECK(b1.forward < split);
  const auto rest = server.substr(b1.forward);
  const auto b2 = scan_backend(rest, bc, tx, false, context);
  CHECK(b2.forward == rest.size());
  const auto first = take(t);
  const auto second = take(t);
  CHECK(first.fingerprint == statement_fingerprint("select a from t where id = ?"));
  CHECK(first.rows == 4);
  CHECK(second.fingerprint == statement_fingerprint("select ?::int"));
  CHECK(second.rows == 1);
}

TEST_CASE("an extended COPY FROM STDIN counts once at the Sync after CopyDone") {
  recording_sink sink;
  std::unique_ptr<statement_names> names;
  statement_tracker t;
  t.sink = &sink;
  t.names = &names;
  tx_tracker tx;
  stream_cursor fc, bc;
  const std::string start = wire::msg('P').cstr("").cstr("copy t from stdin").i16(0).str() +
                            wire::msg('B').cstr("").cstr("").i16(0).i16(0).i16(0).str() +
                            wire::msg('E').cstr("").i32(0).str() + wire::msg('S').str();
  REQUIRE(scan_frontend(start, fc, tx, 1 << 20, nullptr, nullptr, 16 * 1024, nullptr, &t).forward == start.size());
  CHECK(t.in_flight() == 1);
  backend_context context;
  context.statements = &t;
  context.inspect_limit = 16 * 1024;
  const std::string copy_in = wire::msg('1').str() + wire::msg('2').str() +
                              wire::msg('G').i8(0).i16(0).str();
  REQUIRE(scan_backend(copy_in, bc, tx, false, context).forward == copy_in.size());
  CHECK(tx.outstanding == 0);
  CHECK(t.in_flight() == 0);  // that Sync reached the server during the COPY: no answer comes
  const std::string data = wire::msg('d').bytes("1\n").str() + wire::msg('c').str() + wire::msg('S').str();
  REQUIRE(scan_frontend(data, fc, tx, 1 << 20, nullptr, nullptr, 16 * 1024, nullptr, &t).forward == data.size());
  const std::string done = wire::msg('C').cstr("COPY 1").str() + wire::msg('Z').bytes("I").str();
  REQUIRE(scan_backend(done, bc, tx, false, context).forward == done.size());
  const auto r = take(t);
  CHECK(r.fingerprint == statement_fingerprint("copy t from stdin"));
  CHECK(r.rows == 1);
  answered_request none;
  CHECK_FALSE(t.take_answered(none));
}

TEST_CASE("a Sync during a simple COPY FROM STDIN is not a request and later statements keep their answers") {
  statement_tracker t;
  tx_tracker tx;
  stream_cursor fc, bc;
  backend_context context;
  context.statements = &t;
  context.inspect_limit = 16 * 1024;
  const std::string copy = wire::msg('Q').cstr("copy t from stdin").str();
  REQUIRE(scan_frontend(copy, fc, tx, 1 << 20, nullptr, nullptr, 16 * 1024, nullptr, &t).forward == copy.size());
  const std::string copy_in = wire::msg('G').i8(0).i16(0).str();
  REQUIRE(scan_backend(copy_in, bc, tx, false, context).forward == copy_in.size());
  const std::string data = wire::msg('d').bytes("1\n").str() + wire::msg('S').str() + wire::msg('c').str() +
                           wire::msg('Q').cstr("select pg_sleep(5)").str();
  REQUIRE(scan_frontend(data, fc, tx, 1 << 20, nullptr, nullptr, 16 * 1024, nullptr, &t).forward == data.size());
  CHECK(t.in_flight() == static_cast<std::size_t>(tx.outstanding));
  const std::string answers = wire::msg('C').cstr("COPY 1").str() + wire::msg('Z').bytes("I").str() +
                              wire::msg('C').cstr("SELECT 1").str() + wire::msg('Z').bytes("I").str();
  REQUIRE(scan_backend(answers, bc, tx, false, context).forward == answers.size());
  const auto first = take(t);
  const auto second = take(t);
  CHECK(first.fingerprint == statement_fingerprint("copy t from stdin"));
  CHECK(first.rows == 1);
  CHECK(second.fingerprint == statement_fingerprint("select pg_sleep(?)"));
  CHECK(t.in_flight() == 0);
}

TEST_CASE("an extended COPY the server fails on bad data counts as failed") {
  std::unique_ptr<statement_names> names;
  statement_tracker t;
  t.names = &names;
  t.on_frontend('P', body({"", "copy t from stdin"}) + std::string(2, '\0'));
  t.on_frontend('B', body({"", ""}) + std::string(6, '\0'));
  t.on_frontend('E', body({""}) + std::string(4, '\0'));
  t.on_frontend('S', {});
  t.ignored_syncs(1);  // CopyInResponse: that Sync came during the COPY
  CHECK(t.in_flight() == 0);
  t.on_backend('E', body({"SERROR", "C22P02"}));  // bad data: the COPY fails
  t.on_frontend('S', {});                          // the client's Sync after CopyDone
  t.on_backend('Z', {});
  const auto r = take(t);
  CHECK(r.fingerprint == statement_fingerprint("copy t from stdin"));
  CHECK(r.failed);
}

TEST_CASE("realign forgets what is in flight when the protocol count disagrees") {
  statement_tracker t;
  t.on_frontend('Q', body({"select 1"}));
  t.on_frontend('Q', body({"select 2"}));
  t.realign(2);
  CHECK(t.in_flight() == 2);
  t.realign(1);  // the protocol knows of one request only: which one is not known
  CHECK(t.in_flight() == 1);
  t.on_backend('Z', {});
  answered_request r;
  CHECK_FALSE(t.take_answered(r));
  CHECK(t.in_flight() == 0);
}

TEST_CASE("DEALLOCATE and DISCARD ALL forget statement names and names are bounded") {
  std::unique_ptr<statement_names> names;
  statement_tracker t;
  t.names = &names;
  auto parse = [&](const std::string& name, const std::string& sql) {
    t.on_frontend('P', body({name, sql}) + std::string(2, '\0'));
  };
  parse("_pg3_0", "select 1");
  parse("_pg3_1", "select 2");
  parse("Mixed", "select 3");
  parse("keep", "select 4");
  REQUIRE(names->named.size() == 4);
  t.on_frontend('Q', body({"  /* c */ DEALLOCATE _pg3_0"}));
  CHECK(names->find("_pg3_0") == 0);
  t.on_frontend('Q', body({"deallocate prepare _pg3_1;"}));
  CHECK(names->find("_pg3_1") == 0);
  t.on_frontend('Q', body({"DEALLOCATE \"Mixed\""}));
  CHECK(names->find("Mixed") == 0);
  CHECK(names->find("keep") != 0);
  t.on_frontend('Q', body({"discard all"}));
  CHECK(names->named.empty());
  parse("a", "select 5");
  t.on_frontend('Q', body({"DEALLOCATE ALL"}));
  CHECK(names->named.empty());
  // Truncated to 63 bytes, as PostgreSQL does: both spellings are one statement.
  parse(std::string(70, 'x'), "select 6");
  CHECK(names->find(std::string(63, 'x') + "yyy") == statement_fingerprint("select 6"));
  for (std::size_t i = 0; i < statement_names::max_named + 10; ++i) parse("n" + std::to_string(i), "select 7");
  CHECK(names->named.size() == statement_names::max_named);
  CHECK(names->find("n" + std::to_string(statement_names::max_named + 9)) != 0);  // the newest always fits
}

TEST_CASE("a Query longer than the buffer has one fingerprint however the reads cut it") {
  const std::size_t limit = 16 * 1024;
  std::string sql = "insert into t values ";
  while (sql.size() < 3 * limit) sql += "(1, 'abc'), ";
  sql += "(2, 'x')";
  const std::string message = wire::msg('Q').cstr(sql).str();
  std::vector<std::uint64_t> seen;
  for (const std::size_t lead : {0, 5, 1000, 9000}) {
    recording_sink sink;
    statement_tracker t;
    t.sink = &sink;
    tx_tracker tx;
    stream_cursor fc;
    // `lead` bytes of an earlier Query's end sit before it in a buffer of `limit` bytes.
    std::string buffer = std::string(lead, 'z');
    stream_cursor earlier;
    earlier.remaining = lead;
    buffer += message.substr(0, limit - lead);
    auto r = scan_frontend(buffer, earlier, tx, 1 << 20, nullptr, nullptr, limit, nullptr, &t);
    if (r.stop == scan_stop::need_more && r.forward == lead && lead > 0) {
      // Waited for more of it: the relay passes the bytes before it on and reads on.
      buffer = message.substr(0, limit);
      r = scan_frontend(buffer, earlier, tx, 1 << 20, nullptr, nullptr, limit, nullptr, &t);
    }
    REQUIRE(sink.calls == 1);
    seen.push_back(sink.seen_texts.begin()->first);
  }
  for (const auto fp : seen) CHECK(fp == seen.front());
  CHECK(seen.front() != statement_fingerprint(sql));  // only its first statement_text_prefix bytes count
}

}  // TEST_SUITE
