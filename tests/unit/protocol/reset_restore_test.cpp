// RESET through pooled server connections (protocol/reset_restore, sql_inspect's resets, and the
// stream scanners that intercept such a Query and drop the answers of what pgmux adds).
// Cases:
//   RESET, RESET ALL, RESET TIME ZONE and SET ... TO DEFAULT are found with their place
//   RESETs of the role, the session user, the transaction, SET LOCAL and other SETs are not resets
//   a client's restorable values: tracked ones that differ from the server's login, and every other
//   a restore follows each RESET of a restorable value, and RESET ALL restores them all
//   no restore when no RESET names a restorable value, or past the 64th statement
//   (each of these also checks that restores_any agrees)
//   may_reset looks for the words in any case
//   a Query that RESETs a restorable value is intercepted only while nothing else is outstanding
//   the answers of the statements pgmux added are dropped, up to ReadyForQuery
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "pgmux/protocol/reset_restore.hpp"
#include "pgmux/protocol/stream.hpp"
#include "support/wire.hpp"

using namespace pgmux::protocol;

namespace {

constexpr std::size_t max_len = 1 << 20;

struct found_reset {
  std::size_t ordinal;
  std::string text;  // the statement up to its end, as it lies in the SQL
  std::string name;
  friend bool operator==(const found_reset&, const found_reset&) = default;
};

std::vector<found_reset> resets_in(std::string_view sql) {
  std::vector<found_reset> out;
  std::size_t previous_end = 0;
  for (const auto& r : inspect_sql(sql).resets) {
    out.push_back({r.ordinal, std::string(sql.substr(previous_end, r.end - previous_end)), r.name});
    previous_end = r.end;
  }
  return out;
}

const std::vector<parameter_change> restorable{{"DateStyle", "Postgres, MDY"}, {"work_mem", "5MB"}};

std::string query(std::string_view sql) { return wire::msg('Q').cstr(sql).str(); }
std::string rfq(char status = 'I') { return wire::msg('Z').bytes(std::string(1, status)).str(); }
std::string command_complete(std::string_view tag) { return wire::msg('C').cstr(tag).str(); }
std::string row_description() {
  return wire::msg('T').i16(1).cstr("set_config").i32(0).i16(0).i32(25).i16(-1).i32(-1).i16(0).str();
}
std::string row_of(std::string_view value) {
  return wire::msg('D').i16(1).i32(static_cast<std::int32_t>(value.size())).bytes(value).str();
}

// restore_after_resets, checked against restores_any, which must foresee it without building it.
std::optional<restored_query> checked_restore(std::string_view sql, std::span<const parameter_change> values) {
  const auto resets = inspect_sql(sql).resets;
  auto restored = restore_after_resets(sql, resets, values);
  CHECK(restores_any(resets, values) == restored.has_value());
  return restored;
}

// Scans `bytes` from the server as the relay does; returns the message tags the client gets.
std::string relayed(std::string_view bytes, tx_tracker& tx) {
  stream_cursor cursor;
  backend_context context;
  context.inspect_limit = 16 * 1024;
  std::string tags;
  for (;;) {
    const auto r = scan_backend(bytes, cursor, tx, false, context);
    for (std::size_t at = 0; at < r.forward;) {
      tags += bytes[at];
      at += 1 + static_cast<std::size_t>(static_cast<unsigned char>(bytes[at + 4]));  // short messages only
    }
    bytes.remove_prefix(r.forward);
    if (r.stop == scan_stop::need_more) break;
    REQUIRE(r.stop == scan_stop::drop);
    const std::size_t total = 1 + static_cast<std::size_t>(static_cast<unsigned char>(bytes[4]));
    bytes.remove_prefix(total);
  }
  CHECK(bytes.empty());
  return tags;
}

}  // namespace

TEST_SUITE("reset_restore") {

TEST_CASE("RESET, RESET ALL, RESET TIME ZONE and SET ... TO DEFAULT are found with their place") {
  CHECK(resets_in("RESET datestyle") == std::vector<found_reset>{{0, "RESET datestyle", "datestyle"}});
  CHECK(resets_in("select 1; reset ALL; ; SHOW x") == std::vector<found_reset>{{1, "select 1; reset ALL;", ""}});
  CHECK(resets_in("RESET TIME ZONE;") == std::vector<found_reset>{{0, "RESET TIME ZONE;", "timezone"}});
  CHECK(resets_in("reset \"DateStyle\"") == std::vector<found_reset>{{0, "reset \"DateStyle\"", "DateStyle"}});
  CHECK(resets_in("RESET myapp.tenant") == std::vector<found_reset>{{0, "RESET myapp.tenant", "myapp.tenant"}});
  CHECK(resets_in("SET datestyle TO DEFAULT; set SESSION work_mem = default") ==
        std::vector<found_reset>{{0, "SET datestyle TO DEFAULT;", "datestyle"}, {1, " set SESSION work_mem = default", "work_mem"}});
  CHECK(resets_in("SET TIME ZONE LOCAL") == std::vector<found_reset>{{0, "SET TIME ZONE LOCAL", "timezone"}});
  CHECK(resets_in("/* c */ RESET datestyle -- c") ==
        std::vector<found_reset>{{0, "/* c */ RESET datestyle -- c", "datestyle"}});
  // An untracked parameter's value after a RESET is read back, as after a SET.
  CHECK(inspect_sql("RESET work_mem; RESET datestyle").carried == std::vector<std::string>{"work_mem"});
}

TEST_CASE("RESETs of the role, the session user, the transaction, SET LOCAL and other SETs are not resets") {
  for (const auto* sql : {"RESET ROLE", "RESET SESSION AUTHORIZATION", "RESET TRANSACTION ISOLATION LEVEL",
                          "SET LOCAL datestyle TO DEFAULT", "SET datestyle TO 'ISO'", "SET datestyle TO DEFAULT, x",
                          "SET ROLE DEFAULT", "select 'reset datestyle'", "RESET", "RESET ALL x",
                          "SET TIME ZONE 'UTC'"}) {
    CAPTURE(sql);
    CHECK(inspect_sql(sql).resets.empty());
  }
}

TEST_CASE("a client's restorable values: tracked ones that differ from the server's login, and every other") {
  session_settings client, server;
  client.tracked[*tracked_parameter_index("DateStyle")] = "Postgres, MDY";
  client.tracked[*tracked_parameter_index("client_encoding")] = "UTF8";
  client.extra = {{"work_mem", "5MB"}};
  server.tracked[*tracked_parameter_index("DateStyle")] = "ISO, MDY";
  server.tracked[*tracked_parameter_index("client_encoding")] = "UTF8";
  const auto values = restorable_values(client, server);
  REQUIRE(values.size() == 2);
  CHECK(values[0].name == "DateStyle");
  CHECK(values[0].value == "Postgres, MDY");
  CHECK(values[1].name == "work_mem");
  CHECK(restorable_values(session_settings{}, server).empty());
}

TEST_CASE("a restore follows each RESET of a restorable value, and RESET ALL restores them all") {
  const auto restore = [](std::string_view sql) { return checked_restore(sql, restorable); };
  auto one = restore("RESET datestyle");
  REQUIRE(one);
  CHECK(one->sql == "RESET datestyle\n;SELECT pg_catalog.set_config('DateStyle', 'Postgres, MDY', false);");
  CHECK(one->hidden == 0b10);

  auto middle = restore("select 1; reset DATESTYLE; show datestyle");
  REQUIRE(middle);
  CHECK(middle->sql ==
        "select 1; reset DATESTYLE;SELECT pg_catalog.set_config('DateStyle', 'Postgres, MDY', false); show datestyle");
  CHECK(middle->hidden == 0b100);

  auto all = restore("RESET ALL; RESET work_mem;");
  REQUIRE(all);
  CHECK(all->sql ==
        "RESET ALL;SELECT pg_catalog.set_config('DateStyle', 'Postgres, MDY', false), "
        "pg_catalog.set_config('work_mem', '5MB', false); RESET work_mem;"
        "SELECT pg_catalog.set_config('work_mem', '5MB', false);");
  CHECK(all->hidden == 0b1010);

  // A trailing -- comment does not swallow what is added.
  auto commented = restore("RESET work_mem -- why");
  REQUIRE(commented);
  CHECK(commented->sql == "RESET work_mem -- why\n;SELECT pg_catalog.set_config('work_mem', '5MB', false);");
}

TEST_CASE("no restore when no RESET names a restorable value, or past the 64th statement") {
  const auto restore = [](std::string_view sql) { return checked_restore(sql, restorable); };
  CHECK_FALSE(restore("RESET search_path"));
  CHECK_FALSE(restore("select 1"));
  CHECK_FALSE(checked_restore("RESET ALL", {}));
  std::string many;
  for (int i = 0; i < 62; ++i) many += "select 1;";
  CHECK(restore(many + "reset work_mem"));  // its restore is statement 64, bit 63
  CHECK_FALSE(restore(many + "select 1; reset work_mem"));
}

TEST_CASE("may_reset looks for the words in any case") {
  CHECK(may_reset("RESET x"));
  CHECK(may_reset("set x to DeFaUlT"));
  CHECK(may_reset("insert into t default values"));
  CHECK_FALSE(may_reset("select 1"));
  CHECK_FALSE(may_reset("rese"));
  CHECK_FALSE(may_reset("defaul"));
}

TEST_CASE("a Query that RESETs a restorable value is intercepted only while nothing else is outstanding") {
  tx_tracker tx;
  stream_cursor cursor;
  const auto reset = query("RESET datestyle");
  auto r = scan_frontend(reset, cursor, tx, max_len, nullptr, nullptr, 16 * 1024, &restorable);
  CHECK(r.stop == scan_stop::intercept);
  CHECK(r.forward == 0);
  CHECK(tx.outstanding == 1);  // counted at the interception

  SUBCASE("another RESET pipelined behind it goes as it is") {
    r = scan_frontend(reset, cursor, tx, max_len, nullptr, nullptr, 16 * 1024, &restorable);
    CHECK(r.stop == scan_stop::need_more);
    CHECK(r.forward == reset.size());
  }
  SUBCASE("other SQL, or no restorable values: as it is") {
    tx_tracker idle;
    stream_cursor c;
    const auto other = query("RESET search_path");
    CHECK(scan_frontend(other, c, idle, max_len, nullptr, nullptr, 16 * 1024, &restorable).forward == other.size());
    CHECK(scan_frontend(reset, c, idle, max_len, nullptr, nullptr, 16 * 1024, nullptr).forward == reset.size());
  }
  SUBCASE("a partial Query is waited for") {
    tx_tracker idle;
    stream_cursor c;
    r = scan_frontend(std::string_view(reset).substr(0, 9), c, idle, max_len, nullptr, nullptr, 16 * 1024, &restorable);
    CHECK(r.stop == scan_stop::need_more);
    CHECK(r.forward == 0);
  }
}

TEST_CASE("the answers of the statements pgmux added are dropped, up to ReadyForQuery") {
  tx_tracker tx;
  tx.outstanding = 1;
  tx.hidden_statements = 0b10;  // "RESET x; <restore>; SHOW x"
  const auto answers = command_complete("RESET") + row_description() + row_of("Postgres, MDY") +
                       command_complete("SELECT 1") + row_description() + row_of("Postgres, MDY") +
                       command_complete("SHOW") + rfq();
  CHECK(relayed(answers, tx) == "CTDCZ");
  CHECK(tx.hidden_statements == 0);
  CHECK(tx.statements_answered == 0);
  CHECK(tx.outstanding == 0);

  SUBCASE("after an error the Query ends, and so does the hiding") {
    tx.outstanding = 1;
    tx.hidden_statements = 0b10;
    const auto failed = wire::msg('E').i8('S').cstr("ERROR").i8('C').cstr("22023").i8(0).str() + rfq();
    CHECK(relayed(failed, tx) == "EZ");
    CHECK(tx.hidden_statements == 0);
  }
}

}  // TEST_SUITE
