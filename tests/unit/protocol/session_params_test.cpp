// Session parameters (protocol/session_params): startup options, names, literals, SQL.
// Cases:
//   -c name=value, -cname=value and --name=value, several in one string
//   backslashes escape spaces and themselves, a trailing one is dropped
//   '-' in a name means '_' and the value keeps everything after the first '='
//   empty options set nothing, and -- ends them
//   other switches, stray words, missing values and bad names are refused
//   parameter names: letters, digits, '_' and dotted parts
//   parameter names compare case-insensitively
//   literals: plain when ASCII without backslashes, dollar-quoted otherwise
//   the dollar-quote tag never occurs in the value
//   tracked parameters are found whatever their case
//   set_config SQL: values, resets, several changes, nothing to do
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "pgmux/protocol/session_params.hpp"

using namespace pgmux::protocol;

namespace {

parameter_list parse_ok(std::string_view options) {
  std::string error;
  const auto r = parse_startup_options(options, error);
  REQUIRE_MESSAGE(r, error);
  CHECK(error.empty());
  return *r;
}

std::string parse_error(std::string_view options) {
  std::string error;
  const auto r = parse_startup_options(options, error);
  CHECK_FALSE(r);
  CHECK_FALSE(error.empty());
  return error;
}

}  // namespace

TEST_SUITE("session_params") {

TEST_CASE("-c name=value, -cname=value and --name=value, several in one string") {
  CHECK(parse_ok("-c search_path=app") == parameter_list{{"search_path", "app"}});
  CHECK(parse_ok("-csearch_path=app") == parameter_list{{"search_path", "app"}});
  CHECK(parse_ok("--search_path=app") == parameter_list{{"search_path", "app"}});
  CHECK(parse_ok("  -c a=1\t--b=2\n-cc=3 \r\f\v-c  d=4  ") ==
        parameter_list{{"a", "1"}, {"b", "2"}, {"c", "3"}, {"d", "4"}});
  CHECK(parse_ok("-c DateStyle=ISO,\\ MDY") == parameter_list{{"DateStyle", "ISO, MDY"}});
}

TEST_CASE("backslashes escape spaces and themselves, a trailing one is dropped") {
  CHECK(parse_ok("-c application_name=my\\ app") == parameter_list{{"application_name", "my app"}});
  CHECK(parse_ok("-c a=x\\\\y") == parameter_list{{"a", "x\\y"}});
  CHECK(parse_ok("-c a=x\\\\\\ y") == parameter_list{{"a", "x\\ y"}});
  CHECK(parse_ok("-c a=\\q") == parameter_list{{"a", "q"}});
  CHECK(parse_ok("-c a=x\\") == parameter_list{{"a", "x"}});
  CHECK(parse_error("-c\\ a=x").find("\" a\"") != std::string::npos);  // one word: the name is " a"
}

TEST_CASE("'-' in a name means '_' and the value keeps everything after the first '='") {
  CHECK(parse_ok("--statement-timeout=5s") == parameter_list{{"statement_timeout", "5s"}});
  CHECK(parse_ok("-c my-ext.some-setting=a-b") == parameter_list{{"my_ext.some_setting", "a-b"}});
  CHECK(parse_ok("-c a=b=c") == parameter_list{{"a", "b=c"}});
  CHECK(parse_ok("-c a=") == parameter_list{{"a", ""}});
  CHECK(parse_ok("-c a='quoted'") == parameter_list{{"a", "'quoted'"}});
}

TEST_CASE("empty options set nothing, and -- ends them") {
  CHECK(parse_ok("").empty());
  CHECK(parse_ok(" \t ").empty());
  CHECK(parse_ok("-c a=1 --") == parameter_list{{"a", "1"}});
  CHECK(parse_error("-- -c a=1").find("-c") != std::string::npos);
}

TEST_CASE("other switches, stray words, missing values and bad names are refused") {
  CHECK(parse_error("-B 100").find("-B") != std::string::npos);
  CHECK(parse_error("-c a=1 -e").find("-e") != std::string::npos);
  CHECK(parse_error("-ec a=1").find("-e") != std::string::npos);
  CHECK(parse_error("foo").find("foo") != std::string::npos);
  CHECK(parse_error("-").find('-') != std::string::npos);
  CHECK(parse_error("-c").find("-c") != std::string::npos);
  CHECK(parse_error("-c a").find("-c a requires a value") != std::string::npos);
  CHECK(parse_error("--a").find("--a requires a value") != std::string::npos);
  CHECK(parse_error("-c =x").find("name") != std::string::npos);
  CHECK(parse_error("-c 1a=x").find("\"1a\"") != std::string::npos);
  CHECK(parse_error("-c a..b=x").find("a..b") != std::string::npos);
  CHECK(parse_error("-c a;drop=x").find("name") != std::string::npos);
  CHECK(parse_error("-c a b=c").find('a') != std::string::npos);
}

TEST_CASE("parameter names: letters, digits, '_' and dotted parts") {
  for (std::string_view ok : {"a", "search_path", "DateStyle", "_x", "x1", "my_ext.setting", "a.b.c", "a._1"}) {
    CAPTURE(ok);
    CHECK(valid_parameter_name(ok));
  }
  for (std::string_view bad : {"", "1a", ".a", "a.", "a..b", "a.1b", "a-b", "a b", "a;b", "a'b", "a\"b", "é", "a$"}) {
    CAPTURE(bad);
    CHECK_FALSE(valid_parameter_name(bad));
  }
}

TEST_CASE("parameter names compare case-insensitively") {
  CHECK(parameter_name_equal("DateStyle", "datestyle"));
  CHECK(parameter_name_equal("TIMEZONE", "TimeZone"));
  CHECK_FALSE(parameter_name_equal("TimeZone", "TimeZon"));
  CHECK_FALSE(parameter_name_equal("a_b", "a.b"));
  CHECK(parameter_name_equal("", ""));
}

TEST_CASE("literals: plain when ASCII without backslashes, dollar-quoted otherwise") {
  CHECK(quote_literal("") == "''");
  CHECK(quote_literal("ISO, MDY") == "'ISO, MDY'");
  CHECK(quote_literal("it's") == "'it''s'");
  CHECK(quote_literal("''") == "''''''");
  CHECK(quote_literal("$1 \"x\"") == "'$1 \"x\"'");
  CHECK(quote_literal("a\\b") == "$q$a\\b$q$");
  CHECK(quote_literal("\\'; drop table t; --") == "$q$\\'; drop table t; --$q$");
  // SJIS 0x95 0x5c ("表") ends in a backslash byte: no escape may touch it.
  CHECK(quote_literal("\x95\x5c'") == "$q$\x95\x5c'$q$");
  CHECK(quote_literal("caf\xc3\xa9") == "$q$caf\xc3\xa9$q$");
}

TEST_CASE("the dollar-quote tag never occurs in the value") {
  CHECK(quote_literal("\\$q$") == "$q1$\\$q$$q1$");
  CHECK(quote_literal("\\$q") == "$q1$\\$q$q1$");    // "$q" at the end would close early with "$q$"
  CHECK(quote_literal("\\$q$q1") == "$q2$\\$q$q1$q2$");
  CHECK(quote_literal("\\$") == "$q$\\$$q$");        // "$$q$": the tag still starts at the last '$'
}

TEST_CASE("tracked parameters are found whatever their case") {
  CHECK(tracked_parameter_index("client_encoding") == 0u);
  CHECK(tracked_parameter_index("datestyle") == 1u);
  CHECK(tracked_parameter_index("TIMEZONE") == 2u);
  CHECK(tracked_parameter_index("intervalstyle") == 3u);
  CHECK(tracked_parameter_index("Standard_Conforming_Strings") == 4u);
  CHECK(tracked_parameter_index("application_name") == 5u);
  CHECK_FALSE(tracked_parameter_index("search_path"));
  CHECK_FALSE(tracked_parameter_index(""));
}

TEST_CASE("set_config SQL: values, resets, several changes, nothing to do") {
  CHECK(build_set_sql({}).empty());
  const std::vector<parameter_change> one{{"application_name", "it's me"}};
  CHECK(build_set_sql(one) == "SELECT pg_catalog.set_config('application_name', 'it''s me', false)");
  const std::vector<parameter_change> several{
      {"DateStyle", "ISO, MDY"}, {"TimeZone", std::nullopt}, {"search_path", "a\\b, public"}};
  CHECK(build_set_sql(several) ==
        "SELECT pg_catalog.set_config('DateStyle', 'ISO, MDY', false), "
        "pg_catalog.set_config('TimeZone', NULL, false), "
        "pg_catalog.set_config('search_path', $q$a\\b, public$q$, false)");
}

TEST_CASE("a startup value needs no asking when the server reports it so, or when it is a plain application_name") {
  const parameter_list reported{{"client_encoding", "UTF8"}, {"DateStyle", "ISO, MDY"}};
  const auto index = [](std::string_view name) { return *tracked_parameter_index(name); };
  CHECK(spelt_as_server_would(index("client_encoding"), "UTF8", &reported));
  CHECK_FALSE(spelt_as_server_would(index("client_encoding"), "utf8", &reported));
  CHECK_FALSE(spelt_as_server_would(index("DateStyle"), "iso", &reported));
  CHECK_FALSE(spelt_as_server_would(index("TimeZone"), "UTC", &reported));  // not reported: ask
  CHECK_FALSE(spelt_as_server_would(index("client_encoding"), "UTF8", nullptr));
  CHECK(spelt_as_server_would(index("application_name"), "worker-1234 (batch)", nullptr));
  CHECK(spelt_as_server_would(index("application_name"), "", nullptr));
  CHECK_FALSE(spelt_as_server_would(index("application_name"), "caf\xc3\xa9", nullptr));
  CHECK_FALSE(spelt_as_server_would(index("application_name"), "tab\there", nullptr));
}

TEST_CASE("set_config SQL local to its transaction, for reading the server's spelling") {
  const std::vector<parameter_change> asked{{"DateStyle", "iso"}, {"TimeZone", "utc"}};
  CHECK(build_set_sql(asked, /*local=*/true) ==
        "SELECT pg_catalog.set_config('DateStyle', 'iso', true), pg_catalog.set_config('TimeZone', 'utc', true)");
}

}  // TEST_SUITE
