// The statement normaliser (protocol/sql_normalize):
// - select 1 and SELECT  2 are one statement, quoted and unquoted names two
// - every kind of constant becomes ?: numbers, strings, E, N, U&, B and X strings, dollar quotes
// - parameter markers become ?; words holding digits or $ stay words
// - a minus sign stays: -1 is -?
// - blanks and comments fold to one space, none at either end; trailing semicolons go
// - E strings take backslash escapes; dollar quotes end at their own tag; comments nest
// - unterminated strings, quotes and comments run to the end
// - the cut at max_bytes never splits a UTF-8 character and is a prefix of the whole text
// - the fingerprint is the hash of the whole normalised text, never 0, and tells shapes apart
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "pgmux/protocol/sql_normalize.hpp"

using namespace pgmux::protocol;

namespace {

std::string norm(std::string_view sql) { return normalize_statement(sql, SIZE_MAX); }

}  // namespace

TEST_CASE("select 1 and SELECT  2 are one statement") {
  CHECK(norm("select 1") == "select ?");
  CHECK(norm("SELECT  2") == "select ?");
  CHECK(norm("select\n\t3 -- c") == "select ?");
  CHECK(statement_fingerprint("select 1") == statement_fingerprint("SELECT  2"));
  CHECK(statement_fingerprint("select 1") == statement_fingerprint("select\n\t3 -- c"));
  CHECK(statement_fingerprint("select 1") != statement_fingerprint("select 1, 2"));
}

TEST_CASE("quoted identifiers stay as written and differ from unquoted ones") {
  CHECK(norm("SELECT \"Foo\" FROM \"My Table\"") == "select \"Foo\" from \"My Table\"");
  CHECK(norm("select \"a\"\"b\" from t") == "select \"a\"\"b\" from t");
  CHECK(norm("select \"T\"") != norm("select t"));
  CHECK(statement_fingerprint("select \"T\"") != statement_fingerprint("select t"));
  CHECK(norm("select T") == norm("select t"));
  CHECK(norm("select U&\"d\\0061t\" from x") == "select u&\"d\\0061t\" from x");
}

TEST_CASE("numbers of every form become a question mark") {
  CHECK(norm("select 42") == "select ?");
  CHECK(norm("select 1.5") == "select ?");
  CHECK(norm("select .5") == "select ?");
  CHECK(norm("select 5.") == "select ?");
  CHECK(norm("select 1.5e10, 1E-3, 2e+7") == "select ?, ?, ?");
  CHECK(norm("select 0x1F, 0o17, 0b101, 1_000") == "select ?, ?, ?, ?");
  CHECK(norm("select a[1:2], b[1..2]") == "select a[?:?], b[?.?]");
  CHECK(norm("select x.1") == "select x?");  // PostgreSQL reads .1 as a number here too
  CHECK(norm("select 1e") == "select ?e");   // no exponent without digits
}

TEST_CASE("strings of every quoting become a question mark") {
  CHECK(norm("select 'secret'") == "select ?");
  CHECK(norm("select 'it''s'") == "select ?");
  CHECK(norm("select E'a\\'b', e'\\\\'") == "select ?, ?");
  CHECK(norm("select N'x', n'y'") == "select ?, ?");
  CHECK(norm("select U&'d\\0061t', u&'x' uescape '!'") == "select ?, ? uescape ?");
  CHECK(norm("select B'1010', b'1', X'1F', x'ff'") == "select ?, ?, ?, ?");
  CHECK(norm("select 'a' 'b'") == "select ? ?");
  // Prefix letters are words when no quote follows them, or inside a longer word.
  CHECK(norm("select e, b, x, n, u") == "select e, b, x, n, u");
  CHECK(norm("select abe'x'") == "select abe?");
  // No literal content survives.
  const auto out = norm("insert into t values ('password123', E'tok\\'en', $$body$$, B'0110', X'DEAD')");
  CHECK(out == "insert into t values (?, ?, ?, ?, ?)");
  for (const auto* secret : {"password", "tok", "en", "body", "0110", "DEAD", "'"}) CHECK(out.find(secret) == std::string::npos);
}

TEST_CASE("E strings take backslash escapes, plain strings do not") {
  // E'\'' is one string: the escaped quote does not end it.
  CHECK(norm("select E'\\'' , 1") == "select ? , ?");
  CHECK(norm("select E'\\\\' x") == "select ? x");
  // In a plain string the backslash is a character: 'a\' ends at the second quote.
  CHECK(norm("select 'a\\' x") == "select ? x");
  // Only at the start of a token: xe'...' is the word xe and a plain string.
  CHECK(norm("select xe'\\' x") == "select xe? x");
}

TEST_CASE("dollar quotes end at their own tag") {
  CHECK(norm("select $$it's$$") == "select ?");
  CHECK(norm("do $body$ begin raise 'x'; end $body$ language plpgsql") == "do ? language plpgsql");
  CHECK(norm("select $a$ $b$ inner $b$ $a$, 1") == "select ?, ?");
  CHECK(norm("select $tag$ $$ not the end $tag$ x") == "select ? x");
  CHECK(norm("select $_1$x$_1$") == "select ?");
}

TEST_CASE("parameter markers become a question mark") {
  CHECK(norm("select * from t where id = $1 and x = $23") == "select * from t where id = ? and x = ?");
  CHECK(statement_fingerprint("select $1") == statement_fingerprint("select 7"));
}

TEST_CASE("identifiers with digits, underscores and dollar signs stay words") {
  CHECK(norm("select t1.col$2, _x9 from T2") == "select t1.col$2, _x9 from t2");
  CHECK(norm("select a$1") == "select a$1");
  CHECK(norm("SELECT Caf\xc3\x89") == "select caf\xc3\x89");  // only ASCII folds
}

TEST_CASE("a minus sign stays as written") {
  CHECK(norm("select -1") == "select -?");
  CHECK(norm("select - 1") == "select - ?");
  CHECK(norm("select 2-1") == "select ?-?");
  CHECK(norm("select a->>'k'") == "select a->>?");
}

TEST_CASE("blanks and comments fold to one space with none at either end") {
  CHECK(norm("  \t\n select\r\n\f\v1  \n") == "select ?");
  CHECK(norm("select/* c */1") == "select ?");
  CHECK(norm("select -- line\n 1") == "select ?");
  CHECK(norm("select a,b") == "select a,b");
  CHECK(norm("select a , b") == "select a , b");
  CHECK(norm("-- only a comment") == "");
  CHECK(norm("/* c */ select 1 /* d */") == "select ?");
  CHECK(norm("") == "");
  CHECK(norm(" \n ") == "");
}

TEST_CASE("block comments nest") {
  CHECK(norm("select /* a /* b */ c */ 1") == "select ?");
  CHECK(norm("select /* a /* b */ 'c' */ x") == "select x");
  CHECK(norm("select 1 /* /* */ x") == "select ?");  // still inside the outer comment
}

TEST_CASE("trailing semicolons go and the others stay") {
  CHECK(norm("select 1;") == "select ?");
  CHECK(norm("select 1 ; ; -- done\n ;  ") == "select ?");
  CHECK(norm("select 1; select 2") == "select ?; select ?");
  CHECK(norm("select 1 ;select 2") == "select ? ;select ?");
  CHECK(norm("select 1;; select 2;") == "select ?;; select ?");
  CHECK(norm(";") == "");
  CHECK(statement_fingerprint("select 1;") == statement_fingerprint("select 1"));
}

TEST_CASE("unterminated strings, quotes and comments run to the end") {
  CHECK(norm("select 'abc") == "select ?");
  CHECK(norm("select E'abc\\") == "select ?");
  CHECK(norm("select $$abc") == "select ?");
  CHECK(norm("select $t$abc $t") == "select ?");
  CHECK(norm("select /* abc /* d */") == "select");
  CHECK(norm("select x -- abc") == "select x");
  CHECK(norm("select \"abc  \n") == "select \"abc");
  CHECK(norm("select B'01") == "select ?");
  CHECK(norm("select $") == "select $");
  CHECK(norm("'") == "?");
  CHECK(norm("\"") == "\"");
  CHECK(norm("E'\\") == "?");
  // Each is also a fingerprint of the same text.
  for (const auto* sql : {"select 'abc", "select E'abc\\", "select $$abc", "select /* abc", "select \"abc  \n", "E'\\"})
    CHECK(statement_fingerprint(sql) == fingerprint_of_normalized(norm(sql)));
}

TEST_CASE("the cut at max_bytes never splits a UTF-8 character") {
  CHECK(normalize_statement("select 1", 3) == "sel");
  CHECK(normalize_statement("select 1", 0) == "");
  CHECK(normalize_statement("select 1", 7) == "select");  // no blank at the end
  CHECK(normalize_statement("select 1", 8) == "select ?");
  // "é" is two bytes (c3 a9), "€" three (e2 82 ac), "😀" four (f0 9f 98 80).
  const std::string sql = "select caf\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
  const std::string full = norm(sql);
  REQUIRE(full == sql);
  CHECK(normalize_statement(sql, 10) == "select caf");
  CHECK(normalize_statement(sql, 11) == "select caf");
  CHECK(normalize_statement(sql, 12) == "select caf\xc3\xa9");
  CHECK(normalize_statement(sql, 13) == "select caf\xc3\xa9");
  CHECK(normalize_statement(sql, 14) == "select caf\xc3\xa9");
  CHECK(normalize_statement(sql, 15) == "select caf\xc3\xa9\xe2\x82\xac");
  for (std::size_t m = 15; m < 19; ++m) CHECK(normalize_statement(sql, m) == "select caf\xc3\xa9\xe2\x82\xac");
  CHECK(normalize_statement(sql, 19) == full);
  // Every cut is a prefix of the whole text, never longer than asked, never ending in a lead byte.
  for (std::size_t m = 0; m <= full.size() + 2; ++m) {
    const auto cut = normalize_statement(sql, m);
    CHECK(cut.size() <= m);
    CHECK(full.compare(0, cut.size(), cut) == 0);
    if (!cut.empty()) CHECK((static_cast<unsigned char>(cut.back()) & 0xC0) != 0xC0);
  }
  // The default cut is 1024 bytes.
  const std::string wide = "select " + std::string(5000, 'a');
  CHECK(normalize_statement(wide).size() == 1024);
}

TEST_CASE("the fingerprint is the hash of the whole normalised text and never 0") {
  const std::vector<std::string> texts = {
      "",
      ";",
      "select 1",
      "SELECT * FROM \"T\" WHERE a = $1 AND b = 'x' -- c",
      "insert into t values (1, 2.5, E'\\n', $q$x$q$, B'1', X'F')",
      "select /* a /* b */ */ x ;; ;",
      "update t set a = a - 1 where id in (1,2,3);",
      "select '" + std::string(3000, 'z'),  // longer than the default cut
      "select " + std::string(4000, 'w'),
      "select caf\xc3\xa9, \"\xe2\x82\xac\"",
      std::string("select \0 1", 10),
  };
  for (const auto& sql : texts) {
    CAPTURE(sql);
    const auto f = statement_fingerprint(sql);
    CHECK(f != 0);
    CHECK(f == fingerprint_of_normalized(norm(sql)));
    // Normalising the normalised text changes nothing.
    CHECK(norm(norm(sql)) == norm(sql));
  }
  CHECK(fingerprint_of_normalized("") != 0);
  CHECK(statement_fingerprint("select 1") != statement_fingerprint("select a"));
  CHECK(statement_fingerprint("select a") != statement_fingerprint("select b"));
}

TEST_CASE("a cut in a text that is not UTF-8 keeps max_bytes") {
  // A stray continuation byte after ASCII: no character to keep whole, nothing more is dropped.
  CHECK(normalize_statement("selec\xac, 1", 5) == "selec");
  CHECK(normalize_statement("selec\xac\xac\xac\xac", 8) == "selec\xac\xac\xac");
  CHECK(normalize_statement("sel\xc3\xa9\xa9", 5) == "sel\xc3\xa9");
}

TEST_CASE("the hash depends on the bytes only, not on how the lexer hands them over") {
  // Quoted identifiers go to the hash in bulk, words byte by byte: at every alignment the
  // fingerprint is still the hash of the text.
  for (std::size_t k = 0; k < 20; ++k) {
    const std::string sql = "SELECT " + std::string(k, 'X') + ", \"" + std::string(k + 9, 'q') + "\" FROM \"T\"";
    CAPTURE(sql);
    CHECK(statement_fingerprint(sql) == fingerprint_of_normalized(norm(sql)));
  }
  // Texts that differ only in length (zero bytes at the end) or in one byte hash apart.
  std::vector<std::uint64_t> seen;
  for (std::size_t len = 0; len < 24; ++len) {
    seen.push_back(fingerprint_of_normalized(std::string(len, '\0')));
    seen.push_back(fingerprint_of_normalized("a" + std::string(len, '\0')));
    seen.push_back(fingerprint_of_normalized("b" + std::string(len, '\0')));
  }
  for (std::size_t x = 0; x < seen.size(); ++x)
    for (std::size_t y = x + 1; y < seen.size(); ++y) CHECK(seen[x] != seen[y]);
}
