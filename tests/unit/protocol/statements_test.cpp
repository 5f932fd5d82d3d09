// Prepared-statement bookkeeping (protocol/statements).
// Cases:
//   server names are pgmux_ and 32 hex digits of SHA-256 (golden values)
//   the same definition gives the same name, any difference another
//   query and types cannot be traded for one another
//   a client's statements: add, replace, find, erase, clear
//   the unnamed statement is kept apart with a generation per unnamed Parse
//   server statements: insert, contains, erase, clear
//   the least recently used statement is evicted first, and touch or pin refreshes one
//   pinned statements are never evicted, even over capacity, until unpin_all
//   the statement just inserted is never its own eviction
//   a smaller capacity evicts at once
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "pgmux/protocol/statements.hpp"

using namespace pgmux::protocol;

namespace {

std::string int4_oid() { return std::string("\0\0\0\x17", 4); }

using names = std::vector<std::string>;

}  // namespace

TEST_SUITE("statements") {

TEST_CASE("server names are pgmux_ and 32 hex digits of SHA-256 (golden values)") {
  // sha256(be64(len(query)) || query || types)[:16], computed independently.
  CHECK(make_statement("select 1", "")->server_name == "pgmux_bbc23982a719406d3794d510238d1511");
  CHECK(make_statement("select $1", int4_oid())->server_name == "pgmux_494ab4b797a2881037e6e6a0a2550c18");
  CHECK(make_statement("", "")->server_name == "pgmux_af5570f5a1810b7af78caf4bc70a660f");
  const auto def = make_statement("select $1", int4_oid());
  CHECK(def->query == "select $1");
  CHECK(def->param_types == int4_oid());
  CHECK(def->server_name.size() == 38);
}

TEST_CASE("the same definition gives the same name, any difference another") {
  const auto a = make_statement("select $1", int4_oid());
  CHECK(make_statement("select $1", int4_oid())->server_name == a->server_name);
  CHECK(make_statement("select $1 ", int4_oid())->server_name != a->server_name);
  CHECK(make_statement("SELECT $1", int4_oid())->server_name != a->server_name);
  CHECK(make_statement("select $1", "")->server_name != a->server_name);
  CHECK(make_statement("select $1", std::string("\0\0\0\x19", 4))->server_name != a->server_name);
}

TEST_CASE("query and types cannot be traded for one another") {
  // Without the length prefix both would hash "ab".
  CHECK(make_statement("ab", "")->server_name != make_statement("a", "b")->server_name);
  CHECK(make_statement("", std::string(4, '\0'))->server_name != make_statement(std::string(4, '\0'), "")->server_name);
}

TEST_CASE("a client's statements: add, replace, find, erase, clear") {
  client_statements c;
  CHECK(c.size() == 0);
  CHECK(c.find("s1") == nullptr);
  const auto one = make_statement("select 1", "");
  const auto two = make_statement("select 2", "");
  c.add("s1", one);
  c.add("s2", two);
  CHECK(c.size() == 2);
  CHECK(c.find("s1") == one);
  CHECK(c.find(std::string_view("s2xyz").substr(0, 2)) == two);  // lookup by view, no copy
  c.add("s1", two);                                               // a Parse under the same name redefines it
  CHECK(c.find("s1") == two);
  CHECK(c.size() == 2);
  CHECK(c.erase("s1"));
  CHECK_FALSE(c.erase("s1"));
  CHECK(c.find("s1") == nullptr);
  CHECK(c.size() == 1);
  c.clear();
  CHECK(c.size() == 0);
  CHECK(c.find("s2") == nullptr);
}

TEST_CASE("the unnamed statement is kept apart with a generation per unnamed Parse") {
  client_statements c;
  CHECK(c.unnamed() == nullptr);
  CHECK(c.unnamed_generation() == 0);
  const auto one = make_statement("select 1", "");
  c.add("", one);
  CHECK(c.unnamed() == one);
  CHECK(c.find("") == one);
  CHECK(c.size() == 0);  // named ones only
  CHECK(c.unnamed_generation() == 1);
  c.add("", one);  // the same SQL again is still a new unnamed statement on the server
  CHECK(c.unnamed_generation() == 2);
  CHECK(c.erase(""));  // a simple Query drops it
  CHECK(c.unnamed() == nullptr);
  CHECK_FALSE(c.erase(""));
  c.add("", one);
  c.clear();
  CHECK(c.unnamed() == nullptr);
  CHECK(c.unnamed_generation() == 3);  // never reused: an old record cannot match a new statement
}

TEST_CASE("server statements: insert, contains, erase, clear") {
  server_statements s(10);
  names evicted;
  CHECK(s.insert("a", evicted));
  CHECK(s.insert("b", evicted));
  CHECK_FALSE(s.insert("a", evicted));  // already there
  CHECK(evicted.empty());
  CHECK(s.size() == 2);
  CHECK(s.contains("a"));
  CHECK_FALSE(s.contains("c"));
  CHECK(s.names() == names{"a", "b"});
  CHECK(s.erase("a"));
  CHECK_FALSE(s.erase("a"));
  CHECK_FALSE(s.contains("a"));
  CHECK_FALSE(s.touch("a"));
  CHECK_FALSE(s.pin("a"));
  s.clear();
  CHECK(s.size() == 0);
  CHECK_FALSE(s.contains("b"));
  CHECK(s.insert("b", evicted));
  CHECK(s.capacity() == 10);
}

TEST_CASE("the least recently used statement is evicted first, and touch or pin refreshes one") {
  server_statements s(3);
  names evicted;
  s.insert("a", evicted);
  s.insert("b", evicted);
  s.insert("c", evicted);
  SUBCASE("plain order") {
    s.insert("d", evicted);
    CHECK(evicted == names{"a"});
    CHECK(s.names() == names{"d", "c", "b"});
  }
  SUBCASE("touch") {
    CHECK(s.touch("a"));
    s.insert("d", evicted);
    CHECK(evicted == names{"b"});
    CHECK_FALSE(s.contains("b"));
    CHECK(s.contains("a"));
  }
  SUBCASE("re-inserting touches") {
    s.insert("a", evicted);
    s.insert("d", evicted);
    CHECK(evicted == names{"b"});
  }
  SUBCASE("pin") {
    CHECK(s.pin("a"));
    s.unpin_all();
    s.insert("d", evicted);
    CHECK(evicted == names{"b"});
  }
  CHECK(s.size() == 3);
}

TEST_CASE("pinned statements are never evicted, even over capacity, until unpin_all") {
  server_statements s(2);
  names evicted;
  s.insert("a", evicted);
  s.insert("b", evicted);
  s.pin("a");
  s.pin("b");
  CHECK(s.pinned("a"));
  s.touch("a");  // a batch using b then a: a is the more recent, both pinned
  s.insert("c", evicted);
  CHECK(evicted.empty());
  CHECK(s.size() == 3);
  s.pin("c");
  s.insert("d", evicted);  // unpinned d itself is kept: the caller is about to use it
  CHECK(evicted.empty());
  CHECK(s.size() == 4);

  s.unpin_all();
  CHECK_FALSE(s.pinned("a"));
  s.insert("e", evicted);
  CHECK(evicted == names{"b", "a", "c"});  // least recent first, down to capacity
  CHECK(s.names() == names{"e", "d"});

  SUBCASE("an unpinned name between pinned ones is found") {
    evicted.clear();
    s.insert("f", evicted);  // f e d -> evicts d
    CHECK(evicted == names{"d"});
    evicted.clear();
    s.pin("e");              // e f
    s.insert("g", evicted);  // g e f: f is the only unpinned one besides g
    CHECK(evicted == names{"f"});
    CHECK(s.names() == names{"g", "e"});
  }
}

TEST_CASE("the statement just inserted is never its own eviction") {
  server_statements s(0);
  names evicted;
  s.insert("a", evicted);
  CHECK(evicted.empty());
  CHECK(s.contains("a"));
  s.insert("b", evicted);
  CHECK(evicted == names{"a"});
  CHECK(s.names() == names{"b"});
}

TEST_CASE("a smaller capacity evicts at once") {
  server_statements s(5);
  names evicted;
  for (const char* n : {"a", "b", "c", "d", "e"}) s.insert(n, evicted);
  s.pin("b");
  s.set_capacity(2, evicted);
  CHECK(evicted == names{"a", "c", "d"});
  CHECK(s.names() == names{"b", "e"});
  CHECK(s.capacity() == 2);
  evicted.clear();
  s.set_capacity(100, evicted);
  CHECK(evicted.empty());
  CHECK(s.size() == 2);
}

TEST_CASE("client_statements counts the bytes its named statements keep") {
  client_statements c;
  c.add("s1", make_statement("select 1", ""));
  CHECK(c.bytes() == 2 + 8);
  c.add("s2", make_statement("select $1", std::string(4, '\0')));
  CHECK(c.bytes() == 10 + 2 + 9 + 4);
  c.add("s1", make_statement("select 10", ""));  // redefined: the old text no longer counts
  CHECK(c.bytes() == 11 + 15);
  c.add("", make_statement("select 'unnamed'", ""));  // the unnamed statement is not counted
  CHECK(c.bytes() == 26);
  CHECK(c.erase("s2"));
  CHECK(c.bytes() == 11);
  CHECK_FALSE(c.erase("s2"));
  CHECK(c.bytes() == 11);
  c.clear();
  CHECK(c.bytes() == 0);
  CHECK(c.size() == 0);
}

}  // TEST_SUITE
