// Relay scanning (protocol/stream): what may be forwarded and when a transaction ends.
// Cases:
// - a simple query ends the transaction at ReadyForQuery 'I', not at 'T'
// - pipelined queries end only at the last ReadyForQuery
// - an extended batch is open until Sync; bytes after the ending ReadyForQuery stay unforwarded
// - a message split across reads is forwarded as it arrives, its header counted once
// - ReadyForQuery split after its header waits for its status byte
// - Terminate stops the scan before it, and unknown types and oversized lengths are invalid
// - COPY FROM STDIN by Query and by Execute: Syncs sent during the COPY are not counted
// - COPY data and CopyDone sent before the server's CopyInResponse: a Sync after them is answered
// - stray COPY messages outside a COPY change nothing
// - a COPY the server fails after the client sent CopyData and a Sync: whether the server read
//   that Sync in the COPY (ignored) or after it (answered) is unknowable, so the scan is invalid
//   and the connection closes; a COPY that completes keeps the count
// - an error ends COPY FROM STDIN: Syncs sent after it are answered; after an extended COPY
//   the server skips to the next Sync
// - a CopyInResponse when COPY messages and then another request were sent before it cannot be
//   credited to a request: invalid
// - a ReadyForQuery with nothing outstanding is invalid; so is a Flush with a body
// - CopyData, CopyDone or CopyFail in an unsynced extended batch with no COPY running is invalid
//   (after a statement_timeout PostgreSQL answers it with a ReadyForQuery of its own); after an
//   Execute's COPY the server failed, the client's remaining COPY messages pass
// - COPY messages sent early for one COPY do not make the client's next COPY uncountable
// - messages whose answer cannot be foreseen are invalid: a Query during COPY FROM STDIN (the
//   server would fail the COPY and swallow it), a Query or FunctionCall after unsynced
//   extended-protocol messages (the server skips it after an error)
// - transaction pooling: notifications for channels the client does not LISTEN on are dropped
//   and counted; the client's LISTEN and UNLISTEN in Query text are noted as they pass
// - prepared statements: a Query longer than the buffer whose buffered part is all blanks or
//   comments is passed on, not waited for (the buffer could never hold more of it)
#include <doctest/doctest.h>

#include "pgmux/protocol/prepared.hpp"
#include "pgmux/protocol/sql_inspect.hpp"
#include "pgmux/protocol/stream.hpp"
#include "support/wire.hpp"

using namespace pgmux::protocol;

namespace {

constexpr std::size_t max_len = 1 << 20;

std::string query(std::string_view sql) { return wire::msg('Q').cstr(sql).str(); }
std::string rfq(char status) { return wire::msg('Z').bytes(std::string(1, status)).str(); }
std::string empty_msg(char tag) { return wire::msg(tag).str(); }
std::string command_complete(std::string_view tag) { return wire::msg('C').cstr(tag).str(); }

// Feeds a whole frontend stream; returns the scan of the last chunk.
scan_result feed_frontend(const std::string& bytes, stream_cursor& c, tx_tracker& tx) {
  return scan_frontend(bytes, c, tx, max_len);
}

}  // namespace

TEST_SUITE("stream") {

TEST_CASE("a simple query ends the transaction at ReadyForQuery I, not at T") {
  tx_tracker tx;
  stream_cursor fc, bc;
  const auto q = query("begin");
  auto f = feed_frontend(q, fc, tx);
  CHECK(f.forward == q.size());
  CHECK(f.stop == scan_stop::need_more);
  CHECK(tx.outstanding == 1);

  const auto in_tx = command_complete("BEGIN") + rfq('T');
  auto b = scan_backend(in_tx, bc, tx, true);
  CHECK(b.stop == scan_stop::need_more);
  CHECK(b.forward == in_tx.size());
  CHECK(tx.outstanding == 0);
  CHECK(tx.status == 'T');
  CHECK_FALSE(tx.idle());

  feed_frontend(query("commit"), fc, tx);
  const auto done = command_complete("COMMIT") + rfq('I');
  b = scan_backend(done, bc, tx, true);
  CHECK(b.stop == scan_stop::end_of_transaction);
  CHECK(b.forward == done.size());
  CHECK(tx.idle());
}

TEST_CASE("pipelined queries end only at the last ReadyForQuery") {
  tx_tracker tx;
  stream_cursor fc, bc;
  feed_frontend(query("select 1") + query("select 2"), fc, tx);
  CHECK(tx.outstanding == 2);
  const auto first = command_complete("SELECT 1") + rfq('I');
  auto b = scan_backend(first, bc, tx, true);
  CHECK(b.stop == scan_stop::need_more);
  CHECK(tx.outstanding == 1);
  b = scan_backend(first, bc, tx, true);
  CHECK(b.stop == scan_stop::end_of_transaction);
}

TEST_CASE("an extended batch is open until Sync and bytes after the ending ReadyForQuery stay") {
  tx_tracker tx;
  stream_cursor fc, bc;
  const auto batch = wire::msg('P').cstr("").cstr("select 1").i16(0).str() + wire::msg('B').cstr("").cstr("").i16(0).i16(0).i16(0).str() +
                     wire::msg('E').cstr("").i32(0).str();
  feed_frontend(batch, fc, tx);
  CHECK(tx.open_batch);
  CHECK(tx.outstanding == 0);
  CHECK_FALSE(tx.idle());
  feed_frontend(empty_msg('S'), fc, tx);
  CHECK_FALSE(tx.open_batch);
  CHECK(tx.outstanding == 1);

  const auto answer = empty_msg('1') + empty_msg('2') + command_complete("SELECT 1") + rfq('I');
  const auto notice_after = wire::msg('N').bytes("SNOTICE").i8(0).i8(0).str();
  auto b = scan_backend(answer + notice_after, bc, tx, true);
  CHECK(b.stop == scan_stop::end_of_transaction);
  CHECK(b.forward == answer.size());
}

TEST_CASE("a message split across reads is forwarded as it arrives and counted once") {
  tx_tracker tx;
  stream_cursor fc;
  const auto q = query(std::string(1000, 'x'));
  auto f = feed_frontend(q.substr(0, 3), fc, tx);  // not even a header
  CHECK(f.forward == 0);
  CHECK(tx.outstanding == 0);
  f = feed_frontend(q.substr(0, 100), fc, tx);
  CHECK(f.forward == 100);
  CHECK(tx.outstanding == 1);
  CHECK(fc.remaining == q.size() - 100);
  f = feed_frontend(q.substr(100, 500), fc, tx);
  CHECK(f.forward == 500);
  f = feed_frontend(q.substr(600) + query("select 2"), fc, tx);
  CHECK(f.forward == q.size() - 600 + query("select 2").size());
  CHECK(tx.outstanding == 2);
  CHECK(fc.remaining == 0);
}

TEST_CASE("ReadyForQuery split after its header waits for its status byte") {
  tx_tracker tx;
  stream_cursor bc;
  tx.outstanding = 1;
  const auto z = rfq('I');
  auto b = scan_backend(z.substr(0, 5), bc, tx, true);
  CHECK(b.forward == 0);
  CHECK(b.stop == scan_stop::need_more);
  CHECK(tx.outstanding == 1);
  b = scan_backend(z, bc, tx, true);
  CHECK(b.stop == scan_stop::end_of_transaction);
  CHECK(b.forward == z.size());
}

TEST_CASE("Terminate stops the scan before it, and unknown types and oversized lengths are invalid") {
  tx_tracker tx;
  stream_cursor fc;
  const auto q = query("select 1");
  auto f = feed_frontend(q + empty_msg('X'), fc, tx);
  CHECK(f.stop == scan_stop::terminate);
  CHECK(f.forward == q.size());

  SUBCASE("unknown type") {
    stream_cursor c;
    tx_tracker t;
    f = scan_frontend(q + empty_msg('!'), c, t, max_len);
    CHECK(f.stop == scan_stop::invalid);
    CHECK(f.forward == q.size());
  }
  SUBCASE("oversized") {
    stream_cursor c;
    tx_tracker t;
    f = scan_frontend(wire::msg('Q').cstr("x").with_length(2000), c, t, 1000);
    CHECK(f.stop == scan_stop::invalid);
    CHECK(f.forward == 0);
  }
  SUBCASE("length below 4") {
    stream_cursor c;
    tx_tracker t;
    f = scan_frontend(wire::msg('Q').with_length(3), c, t, max_len);
    CHECK(f.stop == scan_stop::invalid);
  }
}

TEST_CASE("COPY FROM STDIN: Syncs sent during the COPY are not counted") {
  tx_tracker tx;
  stream_cursor fc, bc;
  const auto copy_in_response = wire::msg('G').i8(0).i16(0).str();
  const auto data = wire::msg('d').bytes("1\n2\n").str();

  SUBCASE("started by Query") {
    feed_frontend(query("copy t from stdin"), fc, tx);
    scan_backend(copy_in_response, bc, tx, true);
    CHECK(tx.copy_in);
    CHECK_FALSE(tx.copy_extended);
    feed_frontend(data + empty_msg('S') + empty_msg('c'), fc, tx);  // the stray Sync is ignored by PostgreSQL
    CHECK_FALSE(tx.copy_in);
    CHECK(tx.outstanding == 1);
    auto b = scan_backend(command_complete("COPY 2") + rfq('I'), bc, tx, true);
    CHECK(b.stop == scan_stop::end_of_transaction);
  }
  SUBCASE("started by Execute, its Sync sent before the server entered the COPY") {
    // libpq's PQexecParams: Parse/Bind/Describe/Execute/Sync in one go; PQputCopyEnd: CopyDone, Sync.
    feed_frontend(wire::msg('P').cstr("").cstr("copy t from stdin").i16(0).str() + wire::msg('E').cstr("").i32(0).str() +
                      empty_msg('S'),
                  fc, tx);
    CHECK(tx.outstanding == 1);
    scan_backend(empty_msg('1') + copy_in_response, bc, tx, true);
    CHECK(tx.copy_in);
    CHECK(tx.copy_extended);
    CHECK(tx.outstanding == 0);  // that Sync reached the server during the COPY
    feed_frontend(data + empty_msg('c'), fc, tx);
    CHECK(tx.open_batch);  // the server waits for a Sync now
    CHECK_FALSE(tx.idle());
    feed_frontend(empty_msg('S'), fc, tx);
    CHECK(tx.outstanding == 1);
    auto b = scan_backend(command_complete("COPY 2") + rfq('I'), bc, tx, true);
    CHECK(b.stop == scan_stop::end_of_transaction);
    CHECK(tx.idle());
  }
}

TEST_CASE("COPY data and CopyDone sent before the server's CopyInResponse: a Sync after them is answered") {
  // A client that does not wait for CopyInResponse: PostgreSQL reads the data and CopyDone in
  // the COPY, ignores a Sync sent before the CopyDone, and answers one sent after it. Counting
  // that one as ignored would leave its ReadyForQuery to reach the connection's next client.
  tx_tracker tx;
  stream_cursor fc, bc;
  const auto copy_in_response = wire::msg('G').i8(0).i16(0).str();
  feed_frontend(query("copy t from stdin") + empty_msg('S') + wire::msg('d').bytes("1\n").str() + empty_msg('c') +
                    empty_msg('S'),
                fc, tx);
  CHECK(tx.outstanding == 3);
  auto b = scan_backend(copy_in_response + command_complete("COPY 1") + rfq('I'), bc, tx, true);
  CHECK(b.stop == scan_stop::need_more);  // not idle yet: the second Sync's ReadyForQuery is due
  CHECK_FALSE(tx.copy_in);                // the client ended the COPY already
  CHECK(tx.outstanding == 1);
  b = scan_backend(rfq('I'), bc, tx, true);
  CHECK(b.stop == scan_stop::end_of_transaction);
  CHECK(tx.idle());
}

TEST_CASE("a COPY the server fails after CopyData and a Sync leaves the count unknowable") {
  tx_tracker tx;
  stream_cursor fc, bc;
  const auto copy_in_response = wire::msg('G').i8(0).i16(0).str();
  const auto bad_row = wire::msg('d').bytes("not a number\n").str();
  const auto failed = wire::msg('E').bytes("SERROR").i8(0).bytes("C22P02").i8(0).bytes("Mbad").i8(0).i8(0).str();

  SUBCASE("the Sync sent before the server said the COPY started") {
    // PostgreSQL 15 answers Q(copy) d(bad) S with G E Z Z: it failed the COPY before reading the Sync.
    feed_frontend(query("copy t from stdin") + bad_row + empty_msg('S'), fc, tx);
    CHECK(scan_backend(copy_in_response, bc, tx, true).stop == scan_stop::need_more);
    CHECK(scan_backend(failed, bc, tx, true).stop == scan_stop::invalid);
  }
  SUBCASE("the Sync sent during the COPY") {
    feed_frontend(query("copy t from stdin"), fc, tx);
    scan_backend(copy_in_response, bc, tx, true);
    feed_frontend(bad_row + empty_msg('S') + empty_msg('S'), fc, tx);
    CHECK(scan_backend(failed, bc, tx, true).stop == scan_stop::invalid);
  }
  SUBCASE("the same COPY completing keeps the count") {
    feed_frontend(query("copy t from stdin") + wire::msg('d').bytes("7\n").str() + empty_msg('S'), fc, tx);
    scan_backend(copy_in_response, bc, tx, true);
    feed_frontend(empty_msg('c'), fc, tx);
    CHECK(scan_backend(command_complete("COPY 1") + rfq('I'), bc, tx, true).stop == scan_stop::end_of_transaction);
    CHECK(tx.idle());
  }
}

TEST_CASE("an error ends COPY FROM STDIN: Syncs after it are answered") {
  tx_tracker tx;
  stream_cursor fc, bc;
  const auto copy_in_response = wire::msg('G').i8(0).i16(0).str();
  const auto failed = wire::msg('E').bytes("SERROR").i8(0).bytes("C57014").i8(0).bytes("Mcanceled").i8(0).i8(0).str();
  SUBCASE("started by Query") {
    feed_frontend(query("copy t from stdin"), fc, tx);
    scan_backend(copy_in_response, bc, tx, true);
    CHECK(scan_backend(failed, bc, tx, true).stop == scan_stop::need_more);
    CHECK_FALSE(tx.copy_in);
    feed_frontend(empty_msg('S'), fc, tx);  // no longer in the COPY: answered
    CHECK(tx.outstanding == 2);
    CHECK(scan_backend(rfq('I'), bc, tx, true).stop == scan_stop::need_more);
    CHECK(scan_backend(rfq('I'), bc, tx, true).stop == scan_stop::end_of_transaction);
  }
  SUBCASE("started by Execute: the server skips to the next Sync") {
    feed_frontend(wire::msg('P').cstr("").cstr("copy t from stdin").i16(0).str() + wire::msg('E').cstr("").i32(0).str() +
                      empty_msg('S'),
                  fc, tx);
    scan_backend(empty_msg('1') + copy_in_response, bc, tx, true);
    CHECK(tx.outstanding == 0);
    scan_backend(failed, bc, tx, true);
    CHECK_FALSE(tx.copy_in);
    CHECK(tx.open_batch);
    CHECK(feed_frontend(query("select 1"), fc, tx).stop == scan_stop::invalid);  // it would be skipped
  }
}

TEST_CASE("a CopyInResponse after COPY messages and a later request cannot be credited") {
  // Q(copy) d c, then Q(select 1) and three Syncs, all before the server's first answer:
  // PostgreSQL sends five ReadyForQuery. Which request the CopyInResponse answers decides how
  // many Syncs it ignored; pgmux cannot tell, so the connection closes.
  tx_tracker tx;
  stream_cursor fc, bc;
  feed_frontend(query("copy t from stdin") + wire::msg('d').bytes("1\n").str() + empty_msg('c') + query("select 1") +
                    empty_msg('S') + empty_msg('S') + empty_msg('S'),
                fc, tx);
  CHECK(scan_backend(wire::msg('G').i8(0).i16(0).str(), bc, tx, true).stop == scan_stop::invalid);
}

TEST_CASE("a ReadyForQuery with nothing outstanding and a Flush with a body are invalid") {
  tx_tracker tx;
  stream_cursor fc, bc;
  CHECK(scan_backend(rfq('I'), bc, tx, true).stop == scan_stop::invalid);
  stream_cursor fc2;
  tx_tracker tx2;
  CHECK(feed_frontend(wire::msg('H').bytes("x").str(), fc2, tx2).stop == scan_stop::invalid);
  CHECK(feed_frontend(empty_msg('H'), fc, tx).stop == scan_stop::need_more);
}

TEST_CASE("COPY messages in an extended batch with no COPY running are invalid, after a failed extended COPY they pass") {
  const auto parse_select = wire::msg('P').cstr("").cstr("select 1").i16(0).str();
  for (const char tag : {'d', 'c', 'f'}) {
    CAPTURE(tag);
    // PostgreSQL 15, statement_timeout fired after the Parse: "1 E Z Z" for Parse, CopyDone, Sync.
    tx_tracker tx;
    stream_cursor fc;
    const auto stray = tag == 'f' ? wire::msg('f').cstr("x").str() : tag == 'd' ? wire::msg('d').bytes("1\n").str() : empty_msg('c');
    CHECK(feed_frontend(parse_select + stray + empty_msg('S'), fc, tx).stop == scan_stop::invalid);
  }
  // An Execute's COPY that the server fails: the client, not yet aware, goes on with its data,
  // CopyDone and Sync, which the server skips up to the Sync.
  tx_tracker tx;
  stream_cursor fc, bc;
  feed_frontend(wire::msg('P').cstr("").cstr("copy t from stdin").i16(0).str() + wire::msg('E').cstr("").i32(0).str() +
                    empty_msg('S'),
                fc, tx);
  scan_backend(empty_msg('1') + wire::msg('G').i8(0).i16(0).str(), bc, tx, true);
  scan_backend(wire::msg('E').bytes("SERROR").i8(0).bytes("C22P02").i8(0).bytes("Mbad").i8(0).i8(0).str(), bc, tx, true);
  const auto more = wire::msg('d').bytes("2\n").str() + empty_msg('c') + empty_msg('S');
  CHECK(feed_frontend(more, fc, tx).stop == scan_stop::need_more);
  CHECK(tx.outstanding == 1);
  CHECK(scan_backend(rfq('I'), bc, tx, true).stop == scan_stop::end_of_transaction);
  // The batch is over: a stray COPY message in the next one is refused again.
  CHECK(feed_frontend(wire::msg('P').cstr("").cstr("select 1").i16(0).str() + empty_msg('c'), fc, tx).stop ==
        scan_stop::invalid);
}

TEST_CASE("COPY messages sent early for one COPY leave the next COPY countable") {
  tx_tracker tx;
  stream_cursor fc, bc;
  const auto copy_in_response = wire::msg('G').i8(0).i16(0).str();
  feed_frontend(query("copy t from stdin") + wire::msg('d').bytes("1\n").str() + empty_msg('c'), fc, tx);
  CHECK(scan_backend(copy_in_response + command_complete("COPY 1"), bc, tx, true).stop == scan_stop::need_more);
  // Not yet quiet (the ReadyForQuery is to come) when the client starts its next COPY.
  feed_frontend(query("copy t from stdin"), fc, tx);
  CHECK(scan_backend(rfq('I'), bc, tx, true).stop == scan_stop::need_more);
  CHECK(scan_backend(copy_in_response, bc, tx, true).stop == scan_stop::need_more);
  CHECK(tx.copy_in);
  feed_frontend(wire::msg('d').bytes("2\n").str() + empty_msg('c'), fc, tx);
  CHECK(scan_backend(command_complete("COPY 1") + rfq('I'), bc, tx, true).stop == scan_stop::end_of_transaction);
}

TEST_CASE("stray COPY messages outside a COPY change nothing") {
  tx_tracker tx;
  stream_cursor fc;
  auto f = feed_frontend(wire::msg('d').bytes("x").str() + empty_msg('c'), fc, tx);
  CHECK(f.stop == scan_stop::need_more);
  CHECK(tx.idle());
}

TEST_CASE("a Query during COPY FROM STDIN is invalid, CopyData, CopyDone, CopyFail, Flush and Sync are not") {
  tx_tracker tx;
  stream_cursor fc, bc;
  feed_frontend(query("copy t from stdin"), fc, tx);
  scan_backend(wire::msg('G').i8(0).i16(0).str(), bc, tx, true);
  REQUIRE(tx.copy_in);
  const auto fine = wire::msg('d').bytes("1\n").str() + empty_msg('H') + empty_msg('S');
  auto f = feed_frontend(fine, fc, tx);
  CHECK(f.stop == scan_stop::need_more);
  CHECK(f.forward == fine.size());
  for (const char tag : {'Q', 'P', 'B', 'E', 'F', 'D', 'C'}) {
    CAPTURE(tag);
    stream_cursor c;
    tx_tracker t = tx;
    f = scan_frontend(wire::msg(tag).cstr("select 1").str(), c, t, max_len);
    CHECK(f.stop == scan_stop::invalid);
    CHECK(f.forward == 0);
  }
  f = feed_frontend(empty_msg('c'), fc, tx);
  CHECK_FALSE(tx.copy_in);
  f = feed_frontend(query("select 1"), fc, tx);  // after CopyDone, queries are fine again
  CHECK(f.stop == scan_stop::need_more);
}

TEST_CASE("a Query or FunctionCall before the Sync of an extended batch is invalid") {
  const auto parse = wire::msg('P').cstr("").cstr("select 1").i16(0).str();
  for (const char tag : {'Q', 'F'}) {
    CAPTURE(tag);
    tx_tracker tx;
    stream_cursor fc;
    auto f = feed_frontend(parse + wire::msg(tag).cstr("select 2").str(), fc, tx);
    CHECK(f.stop == scan_stop::invalid);
    CHECK(f.forward == parse.size());
    // After the Sync it is an ordinary request again; a Flush alone opens no batch of that kind.
    tx_tracker tx2;
    stream_cursor fc2;
    f = feed_frontend(parse + empty_msg('S') + empty_msg('H') + query("select 2"), fc2, tx2);
    CHECK(f.stop == scan_stop::need_more);
    CHECK(tx2.outstanding == 2);
  }
}

TEST_CASE("notifications for channels the client never LISTENed on are dropped and counted") {
  auto notification = [](std::string_view channel) {
    return wire::msg('A').i32(4242).cstr(channel).cstr("payload").str();
  };
  tx_tracker tx;
  stream_cursor fc, bc;
  sql_watch seen;
  unsigned dropped = 0;
  backend_context context;
  context.listening = &seen.listening;
  context.dropped_notifications = &dropped;
  context.inspect_limit = 1 << 14;

  auto b = scan_backend(notification("theirs"), bc, tx, true, context);
  CHECK(b.stop == scan_stop::drop);
  CHECK(b.forward == 0);
  CHECK(dropped == 1);

  // The client's own LISTEN, seen in its Query, makes that channel its own.
  const auto q = query("select 1; LISTEN Mine");
  auto f = scan_frontend(q, fc, tx, max_len, nullptr, &seen, 1 << 14);
  CHECK(f.forward == q.size());
  CHECK(seen.listening.contains("mine"));
  const auto own = notification("mine");
  b = scan_backend(own + notification("theirs"), bc, tx, true, context);
  CHECK(b.stop == scan_stop::drop);
  CHECK(b.forward == own.size());
  CHECK(dropped == 2);

  // A notification split across reads is waited for whole; a malformed one is invalid.
  stream_cursor bc2;
  const auto split = notification("theirs");
  b = scan_backend(std::string_view(split).substr(0, 9), bc2, tx, true, context);
  CHECK(b.stop == scan_stop::need_more);
  b = scan_backend(wire::msg('A').i32(1).str(), bc2, tx, true, context);
  CHECK(b.stop == scan_stop::invalid);
}

TEST_CASE("a Query is inspected whole when it fits, as far as it is buffered when it does not") {
  tx_tracker tx;
  stream_cursor fc;
  sql_watch seen;
  const auto q = query("select 1; listen late");
  auto f = scan_frontend(std::string_view(q).substr(0, 12), fc, tx, max_len, nullptr, &seen, 1 << 14);
  CHECK(f.stop == scan_stop::need_more);
  CHECK(f.forward == 0);  // held back until the whole text is there
  CHECK(tx.outstanding == 0);
  f = scan_frontend(q, fc, tx, max_len, nullptr, &seen, 1 << 14);
  CHECK(f.forward == q.size());
  CHECK(seen.listening.contains("late"));
  CHECK(tx.outstanding == 1);

  // Longer than the limit: what is there is inspected, the rest passes unread.
  stream_cursor fc2;
  sql_watch seen2;
  const auto big = query("listen early; select '" + std::string(100, 'x') + "'");
  f = scan_frontend(std::string_view(big).substr(0, 40), fc2, tx, max_len, nullptr, &seen2, 32);
  CHECK(f.forward == 40);
  CHECK(seen2.listening.contains("early"));
}

TEST_CASE("with shared prepared statements, a Query too long to inspect whole makes the connection's statements untrusted") {
  // Padding could push "DEALLOCATE pgmux_...; PREPARE pgmux_... AS ..." past what is inspected.
  const auto big = query("select '" + std::string(100, 'x') + "'; deallocate pgmux_0123; prepare pgmux_0123 as select 2");
  {
    tx_tracker tx;
    stream_cursor fc;
    sql_watch seen;
    server_prepared prepared;
    const auto f = scan_frontend(std::string_view(big).substr(0, 40), fc, tx, max_len, &prepared, &seen, 32);
    CHECK(f.forward == 40);
    CHECK(seen.statements_untrusted);
  }
  {  // one inspected whole is judged by what it says
    tx_tracker tx;
    stream_cursor fc;
    sql_watch seen;
    server_prepared prepared;
    const auto q = query("select '" + std::string(100, 'x') + "'");
    const auto f = scan_frontend(q, fc, tx, max_len, &prepared, &seen, 1 << 14);
    CHECK(f.forward == q.size());
    CHECK_FALSE(seen.statements_untrusted);
  }
  {  // without shared statements there is nothing to protect
    tx_tracker tx;
    stream_cursor fc;
    sql_watch seen;
    scan_frontend(std::string_view(big).substr(0, 40), fc, tx, max_len, nullptr, &seen, 32);
    CHECK_FALSE(seen.statements_untrusted);
  }
}

TEST_CASE("a Query longer than the buffer that starts with blanks or comments is passed on, not waited for") {
  // With prepared statements a Query is read up to its first word (DEALLOCATE is rewritten).
  // When blanks fill all the buffer holds, waiting for more would stall the relay for good.
  constexpr std::size_t buffer = 32;
  for (const std::string& lead : {std::string(100, ' '), "/*" + std::string(100, 'x') + "*/", std::string(100, '\n')}) {
    CAPTURE(lead);
    tx_tracker tx;
    stream_cursor fc;
    server_prepared prepared;
    const auto q = query(lead + "DEALLOCATE s1");
    const auto f = scan_frontend(std::string_view(q).substr(0, buffer), fc, tx, max_len, &prepared, nullptr, buffer);
    CHECK(f.stop == scan_stop::need_more);
    CHECK(f.forward == buffer);
    CHECK(tx.outstanding == 1);
  }
  // One that fits is still waited for.
  tx_tracker tx;
  stream_cursor fc;
  server_prepared prepared;
  const auto q = query("     DEALLOCATE s1");
  const auto f = scan_frontend(std::string_view(q).substr(0, 12), fc, tx, max_len, &prepared, nullptr, buffer);
  CHECK(f.stop == scan_stop::need_more);
  CHECK(f.forward == 0);
}

}  // TEST_SUITE
