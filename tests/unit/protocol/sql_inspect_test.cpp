// What pgmux reads in client SQL (protocol/sql_inspect):
// - LISTEN / UNLISTEN at the top level, in multi-statement strings, folded or quoted names
// - the same words in comments, strings, dollar quotes or later in a statement are not statements
// - PREPARE / EXECUTE / DEALLOCATE [PREPARE] of reserved names; DEALLOCATE ALL and other names pass
// - PREPARE or DEALLOCATE inside a DO body or a string marks the statements untrusted
// - the listen set: add, remove, UNLISTEN *, duplicates, bound
// - an empty or unterminated quoted channel name is no channel
// - skip_blanks_and_comments: blanks, -- and nested /* */ comments, unterminated ones
// - SET of an untracked parameter is carried by name (read back at the end of the transaction);
//   a name pgmux cannot read back, SET XML OPTION and SESSION CHARACTERISTICS are session state
// - session state: session-level set_config, role changes, temporary objects, SQL PREPARE,
//   WITH HOLD cursors, session advisory locks, LISTEN; and what leaves none (SET LOCAL, tracked
//   parameters, ON COMMIT DROP, transaction-level locks, words in strings or comments)
// - the prefilter (sql_may_matter) passes plain queries by and never a text the lexer finds
//   something in, also where the lexer splits words differently ($, digits, quotes)
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

namespace {
std::string state_of(std::string_view sql) { return session_state::describe(inspect_sql(sql).state); }
std::vector<std::string> carried_of(std::string_view sql) { return inspect_sql(sql).carried; }
}  // namespace

TEST_CASE("SET of an untracked parameter is carried by name, what cannot be read back is session state") {
  CHECK(carried_of("SET search_path = app, public") == std::vector<std::string>{"search_path"});
  CHECK(carried_of("set SESSION statement_timeout to '5s'") == std::vector<std::string>{"statement_timeout"});
  CHECK(carried_of("SET SCHEMA 'app'") == std::vector<std::string>{"search_path"});
  CHECK(carried_of("SET myapp.tenant = 42") == std::vector<std::string>{"myapp.tenant"});
  CHECK(carried_of("SET SESSION myapp . tenant TO 42") == std::vector<std::string>{"myapp.tenant"});
  CHECK(carried_of("SET \"work_mem\" = '64MB'") == std::vector<std::string>{"work_mem"});
  CHECK(carried_of("SET client_min_messages TO 'warning'; SET search_path = a") ==
        std::vector<std::string>{"client_min_messages", "search_path"});
  CHECK(carried_of("SET LOCAL search_path = a").empty());
  CHECK(carried_of("SET TimeZone = 'UTC'").empty());  // tracked: reported by the server
  CHECK(state_of("SET search_path = app, public") == "");
  CHECK(state_of("SET \"bad name!\" = 1") == "set");
  CHECK(state_of("SET XML OPTION DOCUMENT") == "set");
  CHECK(state_of("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE") == "set");
}

TEST_CASE("a client's carried parameters are noted once each, up to a bound past which SET is session state") {
  sql_watch watch;
  watch.note(inspect_sql("SET search_path = a; SET SEARCH_PATH = b"));
  CHECK(watch.to_read == std::vector<std::string>{"search_path"});
  CHECK(watch.state == session_state::none);
  for (std::size_t i = 0; i < sql_watch::max_carried; ++i) watch.note(inspect_sql("SET app.p" + std::to_string(i) + " = 1"));
  CHECK(watch.to_read.size() == sql_watch::max_carried);
  CHECK(watch.state == session_state::parameter);
}

TEST_CASE("SET leaves session state unless it is local to the transaction or a parameter pgmux carries") {
  CHECK(state_of("SET LOCAL search_path = app") == "");
  CHECK(state_of("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE") == "");
  CHECK(state_of("SET CONSTRAINTS ALL DEFERRED") == "");
  CHECK(state_of("SET TIME ZONE 'UTC'") == "");
  CHECK(state_of("SET SESSION TIME ZONE 'UTC'") == "");
  CHECK(state_of("SET NAMES 'UTF8'") == "");
  CHECK(state_of("SET DateStyle = 'ISO, DMY'") == "");
  CHECK(state_of("set application_name = 'x'") == "");
  CHECK(state_of("RESET search_path") == "");
  CHECK(state_of("SET") == "");
}

TEST_CASE("set_config is session state unless its third argument is plainly true") {
  CHECK(state_of("SELECT set_config('role', 'reporting', false)") == "set");
  CHECK(state_of("select SET_CONFIG('search_path', current_setting('search_path') || ',x', FALSE)") == "set");
  CHECK(state_of("SELECT set_config('app.tenant', $1, $2)") == "set");
  CHECK(state_of("SELECT set_config('app.tenant', '7', 'true'::bool)") == "set");
  CHECK(state_of("SELECT set_config('app.tenant', '7')") == "set");
  CHECK(state_of("SELECT set_config('app.tenant', '7'") == "set");
  CHECK(state_of("SELECT set_config('app.tenant', format('%s', 7), true)") == "");
  CHECK(state_of("SELECT set_config('app.tenant', '7', true), 1") == "");
  CHECK(state_of("SELECT set_config FROM t") == "");
  CHECK(state_of("SELECT 'set_config(''role'', ''x'', false)'") == "");
}

TEST_CASE("role changes are flagged however they are spelt") {
  CHECK(state_of("SET ROLE reporting") == "role");
  CHECK(state_of("set session role reporting") == "role");
  CHECK(state_of("SET SESSION AUTHORIZATION 'alice'") == "role");
  CHECK(state_of("SET session_authorization = alice") == "role");
  CHECK(state_of("SET \"role\" TO reporting") == "role");
  CHECK(state_of("SET LOCAL ROLE reporting") == "");
}

TEST_CASE("temporary objects are flagged unless dropped at commit") {
  CHECK(state_of("CREATE TEMP TABLE t (id int)") == "temp_table");
  CHECK(state_of("create temporary table t as select 1") == "temp_table");
  CHECK(state_of("CREATE GLOBAL TEMPORARY TABLE t (id int)") == "temp_table");
  CHECK(state_of("CREATE OR REPLACE TEMP VIEW v AS SELECT 1") == "temp_table");
  CHECK(state_of("CREATE TEMP SEQUENCE s") == "temp_table");
  CHECK(state_of("CREATE TABLE pg_temp.t (id int)") == "temp_table");
  CHECK(state_of("CREATE TABLE IF NOT EXISTS pg_temp.t (id int)") == "temp_table");
  CHECK(state_of("SELECT * INTO TEMP t FROM generate_series(1, 3)") == "temp_table");
  CHECK(state_of("CREATE TEMP TABLE t (id int) ON COMMIT DROP") == "");
  CHECK(state_of("CREATE TABLE t (temp int)") == "");
  CHECK(state_of("CREATE TABLE temp (id int)") == "");
  CHECK(state_of("INSERT INTO temp VALUES (1)") == "");
}

TEST_CASE("SQL PREPARE, WITH HOLD cursors, session advisory locks and LISTEN are flagged") {
  CHECK(state_of("PREPARE q (int) AS SELECT $1") == "prepare");
  CHECK(state_of("PREPARE TRANSACTION 'tx1'") == "");
  CHECK(state_of("PREPARE pgmux_x AS SELECT 1") == "");  // refused as a reserved name instead
  CHECK(state_of("DECLARE c CURSOR WITH HOLD FOR SELECT 1") == "cursor");
  CHECK(state_of("DECLARE c NO SCROLL CURSOR WITHOUT HOLD FOR SELECT 1") == "");
  CHECK(state_of("DECLARE c CURSOR FOR SELECT 1") == "");
  CHECK(state_of("SELECT pg_advisory_lock(1)") == "advisory_lock");
  CHECK(state_of("select PG_TRY_ADVISORY_LOCK_SHARED(1, 2)") == "advisory_lock");
  CHECK(state_of("SELECT pg_advisory_xact_lock(1)") == "");
  CHECK(state_of("SELECT pg_advisory_unlock(1)") == "");
  CHECK(state_of("LISTEN jobs") == "listen");
}

TEST_CASE("session state in strings, comments and dollar quotes is not seen, every top-level statement is") {
  CHECK(state_of("SELECT 'SET ROLE x'") == "");
  CHECK(state_of("-- SET ROLE x\nSELECT 1") == "");
  CHECK(state_of("/* pg_advisory_lock(1) */ SELECT 1") == "");
  CHECK(state_of("DO $$BEGIN PERFORM pg_advisory_lock(1); END$$") == "");
  CHECK(state_of("SELECT 1; SET ROLE x; CREATE TEMP TABLE t (id int); SELECT pg_advisory_lock(2)") ==
        "role,temp_table,advisory_lock");
  CHECK(state_of("BEGIN; SET search_path = a; SET ROLE r; COMMIT") == "role");
}

TEST_CASE("the reset of session state undoes each kind and keeps pgmux's statements unless SQL PREPARE forces DISCARD ALL") {
  const auto role = session_state_reset(session_state::role);
  CHECK(role.sql == "SET SESSION AUTHORIZATION DEFAULT; RESET ROLE");
  CHECK_FALSE(role.discards_all);
  CHECK_FALSE(role.resets_parameters);
  const auto several = session_state_reset(session_state::parameter | session_state::temp_table |
                                           session_state::hold_cursor | session_state::advisory_lock);
  CHECK(several.sql == "SET SESSION AUTHORIZATION DEFAULT; RESET ROLE; RESET ALL; DISCARD TEMP; CLOSE ALL; "
                       "SELECT pg_catalog.pg_advisory_unlock_all()");  // set_config may have set the role
  CHECK(several.resets_parameters);
  CHECK_FALSE(several.discards_all);
  const auto prepared = session_state_reset(session_state::prepare | session_state::role);
  CHECK(prepared.sql == "DISCARD ALL");
  CHECK(prepared.discards_all);
  CHECK(prepared.resets_parameters);
  CHECK(session_state_reset(session_state::none).sql.empty());
}

TEST_CASE("the refusal of session state names what was refused and raises 0A000") {
  const auto sql = session_state_refusal_sql(session_state::role | session_state::parameter);
  CHECK(sql.find("'0A000'") != std::string::npos);
  CHECK(sql.find("session state (set,role)") != std::string::npos);
  CHECK(sql.rfind("DO $pgmux$", 0) == 0);
}

namespace {
bool findings_empty(const sql_findings& f) {
  return f.listen.empty() && !f.reserved_statement_name && !f.statement_commands_elsewhere &&
         f.state == session_state::none && f.carried.empty() && f.resets.empty();
}
}  // namespace

TEST_CASE("the prefilter passes plain queries by without the lexer") {
  for (const char* sql : {"SELECT abalance FROM pgbench_accounts WHERE aid = $1;", "select 1",
                          "UPDATE pgbench_tellers SET tbalance = tbalance + 1 WHERE tid = 3",
                          "insert into t values ('x', 2)", "BEGIN", "COMMIT", "select offset_x from t offset 5"}) {
    CAPTURE(std::string(sql));
    CHECK(findings_empty(inspect_sql_unfiltered(sql)));
  }
  CHECK_FALSE(sql_may_matter("SELECT abalance FROM pgbench_accounts WHERE aid = $1;"));
  CHECK_FALSE(sql_may_matter("select offset_x, dataset from t offset 5"));
  CHECK_FALSE(sql_may_matter("BEGIN; END"));
  // UPDATE ... SET is not session state, but SET is a word the prefilter stops at.
  CHECK(sql_may_matter("update t set x = 1"));
}

TEST_CASE("the prefilter never hides what the lexer finds") {
  // Texts where the lexer's words start or end where a plain word split would not.
  const char* texts[] = {
      "1set search_path = x",       "$1set work_mem = '1MB'",        "select $$x$$set_config('a.b', '1', false)",
      "select 1;LISTEN a",          "/*c*/set role x",               "'s'listen b",
      "\"q\"unlisten *",             "select 'xprepare'",             "do $$ begin deallocate x; end $$",
      "SELECT pg_advisory_lock(1)", "select PG_TRY_ADVISORY_LOCK_SHARED(2)", "select set_config('a.b','1',false)",
      "CREATE TEMP TABLE t (a int)", "select * into temporary t from u", "declare c cursor with hold for select 1",
      "prepare p as select 1",      "execute pgmux_1",               "RESET ALL",
      "set time zone default",      "e'x'set x.y = 1",               "select 1 -- x\nset x.y = 2",
  };
  for (const char* sql : texts) {
    CAPTURE(std::string(sql));
    const auto full = inspect_sql_unfiltered(sql);
    CHECK(sql_may_matter(sql));
    CHECK(findings_empty(full) == findings_empty(inspect_sql(sql)));
  }
  // Each of these finds something with the lexer alone, so the prefilter must stop at them.
  for (const char* sql : {"select 1set_config('a.b', '1', false)", "select $$x$$set_config('a.b', '1', false)",
                          "select 1;LISTEN a", "select 'xprepare'"}) {
    CAPTURE(std::string(sql));
    CHECK_FALSE(findings_empty(inspect_sql_unfiltered(sql)));
  }
}
