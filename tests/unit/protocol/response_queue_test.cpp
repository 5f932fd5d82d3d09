// Matching backend messages to requests (protocol/response_queue). Each test sends requests,
// feeds backend message types, and checks what the client receives: forwarded types, with
// synthesized answers shown as "+1" (ParseComplete), "+2" (BindComplete), "+3" (CloseComplete).
// Cases:
//   a simple query forwards everything up to ReadyForQuery
//   an error inside a simple query is followed by ReadyForQuery, with no skipping
//   a pipelined Parse/Bind/Describe/Execute/Sync is answered in order
//   an error in each position of a batch skips the rest of the batch until Sync
//   two Syncs in a pipeline, an error in the first batch only
//   an error before the Sync is sent: requests sent afterwards are skipped until Sync
//   a hidden Parse: its ParseComplete is dropped
//   a hidden Parse that fails: the error reaches the client and the batch is skipped
//   a hidden Close before the client's batch
//   synthesized answers at the queue head are ready at once
//   synthesized answers behind other requests wait for their turn
//   synthesized answers after an earlier error are never sent
//   COPY FROM STDIN by Query: Syncs sent before and during the COPY are dropped
//   CopyDone sent before the server's CopyInResponse: the Sync after it is answered, the one before dropped
//   COPY FROM STDIN by Execute: the Sync sent with it is dropped, the one after CopyDone answered
//   an error during COPY FROM STDIN ends it
//   COPY TO STDOUT by Query and by Execute
//   asynchronous messages are forwarded anywhere, even during a hidden request
//   Describe statement: ParameterDescription then NoData or RowDescription
//   PortalSuspended ends an Execute
//   FunctionCall and an error at Sync end at ReadyForQuery
//   watch tokens: failed requests are reported, skipped ones listed
//   messages no request can have caused are flagged unexpected
//   the ring grows and wraps without losing order
//   clear forgets requests, skipping and COPY state
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "pgmux/protocol/response_queue.hpp"

using namespace pgmux::protocol;

namespace {

using rk = request_kind;
using ra = response_action;

// A relay in miniature: what the client receives from one server connection.
struct harness {
  response_queue q;
  std::string client;
  std::vector<std::uint32_t> failed;

  bool send(rk kind, ra action = ra::forward, std::uint32_t watch = 0) {
    const bool queued = q.push(kind, action, watch);
    drain();
    return queued;
  }
  // A batch by letters: P parse, B bind, D describe portal, d describe statement, E execute,
  // C close, S sync, Q query, F function call. All forwarded.
  void send_all(std::string_view kinds) {
    for (const char k : kinds) send(kind_of(k));
  }
  backend_decision recv(char tag) {
    drain();
    const auto d = q.on_backend(tag);
    if (d.forward) client += tag;
    if (d.failed != 0) failed.push_back(d.failed);
    drain();
    return d;
  }
  // Backend message types; none may be unexpected.
  void recv_all(std::string_view tags) {
    for (const char t : tags) {
      CAPTURE(t);
      CHECK_FALSE(recv(t).unexpected);
    }
  }
  void drain() {
    std::string out;
    const auto n = q.take_ready(out);
    REQUIRE(out.size() == n * 5);
    for (std::size_t i = 0; i < out.size(); i += 5) {
      REQUIRE(out.compare(i + 1, 4, std::string("\0\0\0\4", 4)) == 0);
      client += '+';
      client += out[i];
    }
  }
  std::vector<std::uint32_t> skipped() const { return {q.skipped().begin(), q.skipped().end()}; }

  static rk kind_of(char k) {
    switch (k) {
      case 'P': return rk::parse;
      case 'B': return rk::bind;
      case 'D': return rk::describe_portal;
      case 'd': return rk::describe_statement;
      case 'E': return rk::execute;
      case 'C': return rk::close;
      case 'S': return rk::sync;
      case 'Q': return rk::query;
      case 'F': return rk::function_call;
    }
    FAIL("unknown request letter");
    return rk::sync;
  }
};

using tokens = std::vector<std::uint32_t>;

}  // namespace

TEST_SUITE("response_queue") {

TEST_CASE("a simple query forwards everything up to ReadyForQuery") {
  harness h;
  h.send(rk::query);
  CHECK(h.q.size() == 1);
  h.recv_all("TDDDC");
  CHECK(h.q.size() == 1);
  h.recv_all("Z");
  CHECK(h.client == "TDDDCZ");
  CHECK(h.q.empty());

  SUBCASE("several statements in one query, and an empty one") {
    h.send(rk::query);
    h.recv_all("CTDCIZ");
    CHECK(h.client == "TDDDCZCTDCIZ");
    CHECK(h.q.empty());
  }
}

TEST_CASE("an error inside a simple query is followed by ReadyForQuery, with no skipping") {
  harness h;
  h.send_all("QQ");
  h.recv_all("CE");
  CHECK_FALSE(h.q.skipping());
  CHECK(h.q.size() == 2);
  h.recv_all("Z");
  h.recv_all("TDCZ");
  CHECK(h.client == "CEZTDCZ");
  CHECK(h.q.empty());
}

TEST_CASE("a pipelined Parse/Bind/Describe/Execute/Sync is answered in order") {
  harness h;
  h.send_all("PBDES");
  CHECK(h.q.size() == 5);
  h.recv_all("12TDDC");
  CHECK(h.q.size() == 1);
  h.recv_all("Z");
  CHECK(h.client == "12TDDCZ");
  CHECK(h.q.empty());
}

TEST_CASE("an error in each position of a batch skips the rest of the batch until Sync") {
  harness h;
  h.send_all("PBDES");
  std::string before;
  SUBCASE("Parse") { before = ""; }
  SUBCASE("Bind") { before = "1"; }
  SUBCASE("Describe") { before = "12"; }
  SUBCASE("Execute, after rows") { before = "12TDD"; }
  h.recv_all(before);
  h.recv_all("E");
  CHECK(h.q.size() == 1);  // only the Sync is left
  CHECK_FALSE(h.q.skipping());
  CHECK(h.recv('C').unexpected);  // nothing skipped can answer any more
  h.client.pop_back();
  h.recv_all("Z");
  CHECK(h.client == before + "EZ");
  CHECK(h.q.empty());
}

TEST_CASE("two Syncs in a pipeline, an error in the first batch only") {
  harness h;
  h.send_all("PBES" "PBES");
  h.recv_all("1E");
  CHECK(h.q.size() == 5);
  h.recv_all("Z" "12CZ");
  CHECK(h.client == "1EZ12CZ");
  CHECK(h.q.empty());
}

TEST_CASE("an error before the Sync is sent: requests sent afterwards are skipped until Sync") {
  harness h;
  h.send_all("PBE");  // then Flush, which has no entry
  h.recv_all("12E");
  CHECK(h.q.empty());
  CHECK(h.q.skipping());
  CHECK_FALSE(h.send(rk::bind));
  CHECK_FALSE(h.send(rk::execute));
  CHECK_FALSE(h.send(rk::query));  // the server skips a simple Query too
  CHECK(h.q.empty());
  CHECK(h.send(rk::sync));
  CHECK_FALSE(h.q.skipping());
  h.recv_all("Z");
  CHECK(h.client == "12EZ");
  CHECK(h.q.empty());
}

TEST_CASE("a hidden Parse: its ParseComplete is dropped") {
  harness h;
  h.send(rk::parse, ra::hide);  // injected before the client's Bind of a statement this server lacks
  h.send_all("BES");
  h.recv_all("12CZ");
  CHECK(h.client == "2CZ");
  CHECK(h.q.empty());
}

TEST_CASE("a hidden Parse that fails: the error reaches the client and the batch is skipped") {
  harness h;
  h.send(rk::parse, ra::hide, 7);
  h.send(rk::bind, ra::forward, 8);
  h.send_all("ES");
  const auto d = h.recv('E');
  CHECK(d.forward);
  CHECK(d.failed == 7);
  CHECK(h.skipped() == tokens{8});
  h.recv_all("Z");
  CHECK(h.client == "EZ");
  CHECK(h.q.empty());
}

TEST_CASE("a hidden Close before the client's batch") {
  harness h;
  h.send(rk::close, ra::hide);  // evicting a statement over max_prepared_statements
  h.send(rk::parse, ra::hide);
  h.send_all("BES");
  h.recv_all("312CZ");
  CHECK(h.client == "2CZ");
}

TEST_CASE("synthesized answers at the queue head are ready at once") {
  harness h;
  SUBCASE("Parse the server already has") {
    CHECK(h.send(rk::parse, ra::synthesize));
    CHECK(h.client == "+1");
    CHECK(h.q.empty());
    h.send_all("BES");
    h.recv_all("2CZ");
    CHECK(h.client == "+12CZ");
  }
  SUBCASE("Close of a client statement, then Sync") {
    h.send(rk::close, ra::synthesize);
    h.send_all("S");
    h.recv_all("Z");
    CHECK(h.client == "+3Z");
  }
  SUBCASE("ready() says so before take_ready") {
    CHECK(h.q.push(rk::bind, ra::synthesize));
    CHECK(h.q.ready());
    std::string out;
    CHECK(h.q.take_ready(out) == 1);
    CHECK(out == std::string("2\0\0\0\4", 5));
    CHECK_FALSE(h.q.ready());
  }
}

TEST_CASE("synthesized answers behind other requests wait for their turn") {
  harness h;
  SUBCASE("behind a whole batch") {
    h.send_all("PBES");
    h.send(rk::parse, ra::synthesize);
    h.send_all("BES");
    CHECK(h.client.empty());
    h.recv_all("12C");
    CHECK(h.client == "12C");
    h.recv_all("Z");
    CHECK(h.client == "12CZ+1");  // emitted right after the ReadyForQuery
    h.recv_all("2CZ");
    CHECK(h.client == "12CZ+12CZ");
  }
  SUBCASE("in the middle of a batch, and several in a row") {
    h.send_all("BE");
    h.send(rk::parse, ra::synthesize);
    h.send(rk::close, ra::synthesize);
    h.send(rk::parse, ra::hide);
    h.send_all("BES");
    h.recv_all("2C");
    CHECK(h.client == "2C+1+3");
    h.recv_all("12CZ");
    CHECK(h.client == "2C+1+32CZ");
  }
  SUBCASE("behind a hidden Parse") {
    h.send(rk::parse, ra::hide);
    h.send(rk::parse, ra::synthesize);
    h.send_all("S");
    CHECK(h.client.empty());
    h.recv_all("1");
    CHECK(h.client == "+1");
    h.recv_all("Z");
    CHECK(h.client == "+1Z");
  }
  CHECK(h.q.empty());
}

TEST_CASE("synthesized answers after an earlier error are never sent") {
  harness h;
  h.send_all("BE");
  h.send(rk::parse, ra::synthesize, 5);
  h.send_all("BES");
  h.send(rk::parse, ra::synthesize);  // after the Sync: answered
  h.recv_all("E");
  CHECK(h.skipped() == tokens{5});  // the relay undoes what it assumed of that Parse
  h.recv_all("Z");
  CHECK(h.client == "EZ+1");
  CHECK(h.q.empty());

  SUBCASE("and when sent while the server skips") {
    h.send_all("BE");
    h.recv_all("E");
    CHECK(h.q.skipping());
    CHECK_FALSE(h.send(rk::parse, ra::synthesize, 6));
    CHECK(h.client == "EZ+1E");
    CHECK(h.skipped() == tokens{5, 6});
  }
}

TEST_CASE("COPY FROM STDIN by Query: Syncs sent before and during the COPY are dropped") {
  harness h;
  h.send_all("Q");
  h.send(rk::sync, ra::forward, 3);  // a stray Sync sent before the server entered the COPY
  CHECK(h.q.size() == 2);
  h.recv_all("G");
  CHECK(h.q.copy_in());
  CHECK(h.q.size() == 1);
  CHECK(h.skipped() == tokens{3});
  CHECK_FALSE(h.send(rk::sync));  // ignored by the server while it reads COPY data
  h.q.copy_ended();               // CopyDone
  CHECK_FALSE(h.q.copy_in());
  h.recv_all("CZ");
  CHECK(h.client == "GCZ");
  CHECK(h.q.empty());
}

TEST_CASE("CopyDone sent before the server's CopyInResponse: the Sync after it is answered, the one before dropped") {
  // A client that does not wait: its data and CopyDone end the COPY as it starts, and a Sync
  // sent after them reaches the server after the COPY. Dropping that one too would leave its
  // ReadyForQuery to answer the connection's next client.
  harness h;
  h.send_all("Q");
  h.send(rk::sync, ra::forward, 3);  // before the CopyDone: read during the COPY, ignored
  h.q.copy_ended();                  // CopyDone, the server not in COPY yet as far as pgmux knows
  h.send(rk::sync, ra::forward, 5);  // after it: answered
  CHECK(h.q.size() == 3);
  h.recv_all("G");
  CHECK_FALSE(h.q.copy_in());  // nothing more of the COPY is coming
  CHECK(h.skipped() == tokens{3});
  CHECK(h.q.size() == 2);
  h.recv_all("CZZ");
  CHECK(h.client == "GCZZ");
  CHECK(h.q.empty());
}

TEST_CASE("COPY FROM STDIN by Execute: the Sync sent with it is dropped, the one after CopyDone answered") {
  // libpq's PQexecParams sends Parse/Bind/Describe/Execute/Sync at once; PQputCopyEnd sends CopyDone and Sync.
  harness h;
  h.send_all("PBDES");
  h.recv_all("12nG");
  CHECK(h.q.copy_in());
  CHECK(h.q.size() == 1);  // the Execute
  h.q.copy_ended();
  CHECK(h.send(rk::sync));
  h.recv_all("CZ");
  CHECK(h.client == "12nGCZ");
  CHECK(h.q.empty());

  SUBCASE("after a wrap of the ring, with other requests queued behind") {
    for (int i = 0; i < 10; ++i) {  // move the head to the last slot of the 16-entry ring
      h.send(rk::query);
      h.recv_all("Z");
    }
    h.send_all("QSQSS");
    h.recv_all("G");
    CHECK(h.q.size() == 2);
    h.q.copy_ended();
    h.recv_all("CZ" "TDCZ");
    CHECK(h.q.empty());
  }
}

TEST_CASE("an error during COPY FROM STDIN ends it") {
  harness h;
  SUBCASE("by Execute: skip until the Sync sent after CopyFail") {
    h.send_all("PBES");
    h.recv_all("12GE");
    CHECK_FALSE(h.q.copy_in());
    CHECK(h.q.skipping());
    h.q.copy_ended();  // CopyFail
    CHECK(h.send(rk::sync));
    h.recv_all("Z");
    CHECK(h.client == "12GEZ");
  }
  SUBCASE("by Query") {
    h.send_all("Q");
    h.recv_all("GE");
    CHECK_FALSE(h.q.copy_in());
    CHECK_FALSE(h.q.skipping());
    h.recv_all("Z");
    CHECK(h.client == "GEZ");
  }
  CHECK(h.q.empty());
}

TEST_CASE("COPY TO STDOUT by Query and by Execute") {
  harness h;
  h.send_all("Q");
  h.recv_all("HdddcCZ");
  h.send_all("PBES");
  h.recv_all("12HddcCZ");
  CHECK(h.client == "HdddcCZ12HddcCZ");
  CHECK_FALSE(h.q.copy_in());
  CHECK(h.q.empty());
}

TEST_CASE("asynchronous messages are forwarded anywhere, even during a hidden request") {
  harness h;
  h.recv_all("SNA");  // nothing in flight
  h.send(rk::parse, ra::hide);
  h.send_all("BES");
  h.recv_all("N1S2NDACZA");
  CHECK(h.client == "SNAN" "S2NDACZA");
  CHECK(h.q.empty());
}

TEST_CASE("Describe statement: ParameterDescription then NoData or RowDescription") {
  harness h;
  h.send_all("PdS");
  h.recv_all("1tnZ");
  h.send_all("dS");
  h.recv_all("tTZ");
  CHECK(h.client == "1tnZtTZ");
  SUBCASE("a hidden Describe drops both") {
    h.send(rk::describe_statement, ra::hide);
    h.send_all("S");
    h.recv_all("tTZ");
    CHECK(h.client == "1tnZtTZZ");
  }
  SUBCASE("RowDescription is not an answer to Describe portal's ParameterDescription") {
    h.send_all("DS");
    CHECK(h.recv('t').unexpected);
  }
}

TEST_CASE("PortalSuspended ends an Execute") {
  harness h;
  h.send_all("BEE" "S");  // Execute with a row limit, twice
  h.recv_all("2DDs");
  CHECK(h.q.size() == 2);
  h.recv_all("DCZ");
  CHECK(h.client == "2DDsDCZ");
  CHECK(h.q.empty());
}

TEST_CASE("FunctionCall and an error at Sync end at ReadyForQuery") {
  harness h;
  h.send_all("F");
  h.recv_all("VZ");
  h.send_all("F");
  h.recv_all("EZ");
  h.send_all("BES");  // a deferred constraint fails at the commit Sync makes
  h.recv_all("2C" "E");
  CHECK_FALSE(h.q.skipping());
  CHECK(h.q.size() == 1);
  h.recv_all("Z");
  CHECK(h.client == "VZEZ2CEZ");
  CHECK(h.q.empty());
}

TEST_CASE("watch tokens: failed requests are reported, skipped ones listed") {
  harness h;
  SUBCASE("a Bind that fails (cached plan must not change result type) is reported") {
    h.send(rk::parse, ra::hide, 1);
    h.send(rk::bind, ra::forward, 2);
    h.send(rk::describe_portal, ra::forward, 3);
    h.send(rk::execute);
    h.send(rk::close, ra::hide, 4);
    h.send_all("S");
    h.recv_all("1E");
    CHECK(h.failed == tokens{2});
    CHECK(h.skipped() == tokens{3, 4});
    h.q.clear_skipped();
    CHECK(h.skipped().empty());
  }
  SUBCASE("a Describe that fails is reported") {
    h.send(rk::describe_statement, ra::forward, 9);
    h.send_all("S");
    h.recv_all("EZ");
    CHECK(h.failed == tokens{9});
  }
  SUBCASE("successes report nothing") {
    h.send(rk::parse, ra::forward, 1);
    h.send(rk::bind, ra::forward, 2);
    h.send_all("ES");
    h.recv_all("12CZ");
    CHECK(h.failed.empty());
    CHECK(h.skipped().empty());
  }
  SUBCASE("an error in a watched query is reported") {
    h.send(rk::query, ra::hide, 11);  // pgmux's own SET
    const auto d = h.recv('E');
    CHECK(d.forward);
    CHECK(d.failed == 11);
    CHECK_FALSE(h.recv('Z').forward);
  }
}

TEST_CASE("messages no request can have caused are flagged unexpected") {
  harness h;
  CHECK(h.recv('C').unexpected);
  CHECK(h.recv('Z').unexpected);
  CHECK_FALSE(h.recv('E').unexpected);  // a FATAL error can come unasked
  h.send_all("PS");
  CHECK(h.recv('2').unexpected);
  CHECK(h.recv('Z').unexpected);
  CHECK(h.q.size() == 2);  // nothing consumed
  h.send_all("B");
  h.recv_all("1Z");
  CHECK(h.recv('C').unexpected);  // the Bind is the head now
  h.recv_all("2");
  CHECK(h.q.empty());
  h.send_all("Q");
  CHECK(h.recv('1').unexpected);
  CHECK(h.recv('V').unexpected);
}

TEST_CASE("the ring grows and wraps without losing order") {
  harness h;
  std::string expected;
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 100; ++i) {
      h.send_all(i % 2 ? "Q" : "BES");
      if (i % 7 == 0) h.send(rk::close, ra::synthesize);
    }
    for (int i = 0; i < 100; ++i) {
      const std::string answers = i % 2 ? "CZ" : "2CZ";
      h.recv_all(answers);
      expected += answers;
      if (i % 7 == 0) expected += "+3";
    }
    CHECK(h.q.empty());
  }
  CHECK(h.client == expected);
}

TEST_CASE("clear forgets requests, skipping and COPY state") {
  harness h;
  h.send_all("PBE");
  h.recv_all("E");
  CHECK(h.q.skipping());
  h.q.clear();
  CHECK_FALSE(h.q.skipping());
  CHECK(h.q.empty());
  h.send_all("Q");
  h.recv_all("G");
  h.q.clear();
  CHECK_FALSE(h.q.copy_in());
  CHECK(h.send(rk::sync));
  h.recv_all("Z");
  CHECK(h.q.empty());
}

}  // TEST_SUITE
