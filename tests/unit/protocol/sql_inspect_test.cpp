// What pgmux reads in client SQL (protocol/sql_inspect):
// - LISTEN / UNLISTEN at the top level, in multi-statement strings, folded or quoted names
// - the same words in comments, strings, dollar quotes or later in a statement are not statements
// - PREPARE / EXECUTE / DEALLOCATE [PREPARE] of reserved names; DEALLOCATE ALL and other names pass
// - PREPARE or DEALLOCATE inside a DO body or a string marks the statements untrusted
// - the listen set: add, remove, UNLISTEN *, duplicates, bound
// - an empty or unterminated quoted channel name is no channel
// - skip_blanks_and_comments: blanks, -- and nested /* */ comments, unterminated ones
#include <doctest/doctest.h>

#include "pgmux/protocol/sql_inspect.hpp"

using namespace pgmux::protocol;

namespace {

std::vector<std::string> listened(std::string_view sql) {
  std::vector<std::string> out;
  for (const auto& c : inspect_sql(sql).listen) {
    switch (c.what) {
      case listen_change::kind::listen: out.push_back("+" + c.channel); break;
      case listen_change::kind::unlisten: out.push_back("-" + c.channel); break;
      case listen_change::kind::unlisten_all: out.push_back("-*"); break;
    }
  }
  return out;
}

}  // namespace

TEST_SUITE("sql_inspect") {

TEST_CASE("LISTEN and UNLISTEN at the top level, in order, with names as PostgreSQL folds them") {
  CHECK(listened("LISTEN jobs") == std::vector<std::string>{"+jobs"});
  CHECK(listened("  listen Jobs ;") == std::vector<std::string>{"+jobs"});
  CHECK(listened("LISTEN \"Mixed Case\"") == std::vector<std::string>{"+Mixed Case"});
  CHECK(listened("begin; listen a; select 1; unlisten a; listen b; commit") ==
        std::vector<std::string>{"+a", "-a", "+b"});
  CHECK(listened("UNLISTEN *") == std::vector<std::string>{"-*"});
  CHECK(listened("/* leading */ -- comment\nLISTEN c") == std::vector<std::string>{"+c"});
}

TEST_CASE("the words inside comments, strings, dollar quotes or later in a statement are no statements") {
  CHECK(listened("select 'listen x; listen y'").empty());
  CHECK(listened("select $$; listen x; $$").empty());
  CHECK(listened("select $tag$ $$; listen x; $tag$").empty());
  CHECK(listened("select 1 -- ; listen x").empty());
  CHECK(listened("select /* nested /* ; listen x */ ; listen y */ 1").empty());
  CHECK(listened("select listen from t").empty());
  CHECK(listened("select E'it\\'s; listen x'").empty());
  CHECK(listened("select 'it''s; listen x'").empty());
  CHECK(listened("select \"a;b\"; listen z") == std::vector<std::string>{"+z"});
  CHECK(listened("select $1; listen p") == std::vector<std::string>{"+p"});
  CHECK(listened("notify listen_ch, 'x'").empty());
}

TEST_CASE("SQL naming reserved statement names is flagged, other names and DEALLOCATE ALL are not") {
  CHECK(inspect_sql("DEALLOCATE pgmux_0123abcd").reserved_statement_name);
  CHECK(inspect_sql("deallocate prepare PGMUX_abc").reserved_statement_name);  // folds to pgmux_abc
  CHECK(inspect_sql("deallocate \"pgmux_abc\"").reserved_statement_name);
  CHECK(inspect_sql("select 1; PREPARE pgmux_x AS select 2").reserved_statement_name);
  CHECK(inspect_sql("EXECUTE pgmux_x").reserved_statement_name);
  CHECK_FALSE(inspect_sql("deallocate \"PGMUX_abc\"").reserved_statement_name);  // quoted: another name
  CHECK_FALSE(inspect_sql("DEALLOCATE ALL").reserved_statement_name);
  CHECK_FALSE(inspect_sql("PREPARE mine AS select 1").reserved_statement_name);
  CHECK_FALSE(inspect_sql("select * from pg_prepared_statements where name like 'pgmux_%'").reserved_statement_name);
}

TEST_CASE("PREPARE or DEALLOCATE anywhere but at the head of a statement makes statements untrusted") {
  CHECK(inspect_sql("DO $$BEGIN EXECUTE 'DEALLOCATE ' || quote_ident(n); END$$").statement_commands_elsewhere);
  CHECK(inspect_sql("select f('prepare')").statement_commands_elsewhere);
  CHECK(inspect_sql("create function f() returns void language plpgsql as 'begin execute ''Deallocate x''; end'")
            .statement_commands_elsewhere);
  CHECK(inspect_sql("explain execute s; select prepare from t").statement_commands_elsewhere);
  CHECK_FALSE(inspect_sql("PREPARE s AS select 1; DEALLOCATE s; DEALLOCATE PREPARE t").statement_commands_elsewhere);
  CHECK_FALSE(inspect_sql("select 1 -- prepare").statement_commands_elsewhere);
  CHECK_FALSE(inspect_sql("select \"prepare\" from t").statement_commands_elsewhere);
  CHECK_FALSE(inspect_sql("select prepared from t").statement_commands_elsewhere);
}

TEST_CASE("unterminated quotes and comments end the text without harm") {
  CHECK(listened("listen a; select 'open").size() == 1);
  CHECK(listened("listen a; /* open").size() == 1);
  CHECK(listened("listen a; select $q$ open").size() == 1);
  CHECK(listened("listen \"open").size() == 1);
  CHECK(listened("").empty());
  CHECK(listened(";;;").empty());
  CHECK(listened("listen").empty());
}

TEST_CASE("an empty or unterminated quoted channel name is no channel") {
  // PostgreSQL refuses these statements: there is nothing to listen on.
  CHECK(listened("listen\"").empty());
  CHECK(listened("LISTEN \"\"").empty());
  CHECK(listened("UNLISTEN \"\"; listen a").size() == 1);
}

TEST_CASE("skip_blanks_and_comments passes blanks and comments, and stops at a token") {
  CHECK(skip_blanks_and_comments("select", 0) == 0);
  CHECK(skip_blanks_and_comments(" \t\n\r\f\vx", 0) == 6);
  CHECK(skip_blanks_and_comments("/**/x", 0) == 4);
  CHECK(skip_blanks_and_comments("/* a /* nested */ b */ -- line\n x", 0) == 32);
  CHECK(skip_blanks_and_comments("/* unterminated", 0) == 15);
  CHECK(skip_blanks_and_comments("-- to the end", 0) == 13);
  CHECK(skip_blanks_and_comments("a /", 1) == 2);  // a lone slash is a token
  CHECK(skip_blanks_and_comments("ab", 5) == 2);
}

TEST_CASE("the listen set follows LISTEN, UNLISTEN and UNLISTEN *, bounded") {
  listen_set s;
  s.apply(inspect_sql("listen a; listen b; listen a").listen);
  CHECK(s.size() == 2);
  CHECK(s.contains("a"));
  CHECK(s.contains("b"));
  CHECK_FALSE(s.contains("c"));
  s.apply(inspect_sql("unlisten a").listen);
  CHECK_FALSE(s.contains("a"));
  CHECK(s.contains("b"));
  s.apply(inspect_sql("unlisten *").listen);
  CHECK(s.empty());
  std::vector<listen_change> many;
  for (std::size_t i = 0; i < listen_set::max_channels + 10; ++i)
    many.push_back({listen_change::kind::listen, "c" + std::to_string(i)});
  s.apply(many);
  CHECK(s.size() == listen_set::max_channels);
}

}  // TEST_SUITE
