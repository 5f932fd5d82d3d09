// Session settings a client wants versus those a server connection has.
// Cases:
//   tracked startup values are kept, others become extras
//   options settings come first and explicit parameters override them
//   a client that sets nothing has no settings
//   bad options and bad names are refused
//   replication is read as PostgreSQL reads it
//   changes cover differing tracked values, missing extras and extras to reset
//   a ParameterStatus updates the server and copies the client's settings before changing them
//   the server's session user is noted from its login and every ParameterStatus, never for the client
//   a carried SET becomes an extra of the client and the server alike, and a missing one is dropped from both
//   a server's report keeps its list, its tracked values and each name's tracked index, in any case
//   a login's ParameterStatus messages are the report's, with the client's own tracked values
#include <doctest/doctest.h>

#include "pgmux/protocol/encode.hpp"
#include "pgmux/protocol/session_settings.hpp"

using namespace pgmux::protocol;

namespace {

session_settings defaults() {
  return settings_from_status({{"server_version", "15.5"},
                               {"TimeZone", "Etc/UTC"},
                               {"application_name", "pgmux"},
                               {"DateStyle", "ISO, MDY"},
                               {"client_encoding", "UTF8"}});
}

std::string tracked(const session_settings& s, std::string_view name) {
  const auto& v = s.tracked[*tracked_parameter_index(name)];
  return v ? *v : "<none>";
}

}  // namespace

TEST_SUITE("session_settings") {

TEST_CASE("tracked startup values are kept, others become extras") {
  std::string error;
  auto s = settings_from_startup({{"user", "u"},
                                  {"database", "d"},
                                  {"timezone", "Asia/Tokyo"},
                                  {"application_name", "app"},
                                  {"extra_float_digits", "3"}},
                                 error);
  REQUIRE_MESSAGE(s, error);
  CHECK(tracked(*s, "TimeZone") == "Asia/Tokyo");
  CHECK(tracked(*s, "application_name") == "app");
  CHECK(tracked(*s, "DateStyle") == "<none>");  // not set: the server connection's own default
  CHECK(s->extra == parameter_list{{"extra_float_digits", "3"}});
}

TEST_CASE("options settings come first and explicit parameters override them") {
  std::string error;
  auto s = settings_from_startup({{"application_name", "explicit"},
                                  {"options", "-c application_name=from_options -c search_path=a,b --work_mem=64MB"}},
                                 error);
  REQUIRE_MESSAGE(s, error);
  CHECK(tracked(*s, "application_name") == "explicit");
  CHECK(s->extra == parameter_list{{"search_path", "a,b"}, {"work_mem", "64MB"}});
}

TEST_CASE("a client that sets nothing has no settings") {
  std::string error;
  auto s = settings_from_startup({{"user", "u"}, {"database", "d"}}, error);
  REQUIRE(s);
  CHECK(*s == session_settings{});
}

TEST_CASE("bad options and bad names are refused") {
  std::string error;
  CHECK_FALSE(settings_from_startup({{"options", "-x"}}, error));
  CHECK_FALSE(error.empty());
  CHECK_FALSE(settings_from_startup({{"bad name", "1"}}, error));
  CHECK(error.find("bad name") != std::string::npos);
  // replication is a kind of connection, not a setting.
  auto s = settings_from_startup({{"replication", "database"}, {"application_name", "sub"}}, error);
  REQUIRE(s);
  CHECK(s->extra.empty());
}

TEST_CASE("replication is read as PostgreSQL reads it") {
  std::string error;
  auto mode = [&](std::string_view value) {
    return replication_from_startup({{"user", "u"}, {"replication", std::string(value)}}, error);
  };
  CHECK(replication_from_startup({{"user", "u"}}, error) == replication_mode::none);
  CHECK(mode("database") == replication_mode::logical);
  for (const auto* yes : {"true", "TRUE", "t", "tr", "yes", "y", "on", "On", "1"}) {
    CAPTURE(yes);
    CHECK(mode(yes) == replication_mode::physical);
  }
  for (const auto* no : {"false", "f", "no", "n", "off", "of", "0"}) {
    CAPTURE(no);
    CHECK(mode(no) == replication_mode::none);
  }
  for (const auto* bad : {"o", "Database", "2", "", "truth"}) {
    CAPTURE(bad);
    error.clear();
    CHECK_FALSE(mode(bad));
    CHECK(error.find("invalid value for parameter \"replication\"") != std::string::npos);
  }
}

TEST_CASE("changes cover differing tracked values, missing extras and extras to reset") {
  const session_settings startup = defaults();
  session_settings server = defaults();
  server.tracked[*tracked_parameter_index("DateStyle")] = "German, DMY";  // left by an earlier client
  server.extra = {{"extra_float_digits", "3"}, {"work_mem", "4MB"}};
  session_settings client;
  client.tracked[*tracked_parameter_index("TimeZone")] = "Europe/Paris";
  client.extra = {{"extra_float_digits", "3"}, {"search_path", "app"}};
  const auto changes = settings_changes(client, server, startup);
  REQUIRE(changes.size() == 4);
  CHECK(changes[0].name == "DateStyle");  // the client set none: back to the connection's own
  CHECK(changes[0].value == "ISO, MDY");
  CHECK(changes[1].name == "TimeZone");
  CHECK(changes[1].value == "Europe/Paris");
  CHECK(changes[2].name == "search_path");
  CHECK(changes[2].value == "app");
  CHECK(changes[3].name == "work_mem");
  CHECK_FALSE(changes[3].value);  // reset
  // A connection as it was at login suits a client that set nothing.
  CHECK(settings_changes(session_settings{}, startup, startup).empty());
  // Nothing is forced where neither the client nor the connection's login has a value.
  session_settings unreported = startup;
  unreported.tracked[*tracked_parameter_index("IntervalStyle")].reset();
  CHECK(settings_changes(session_settings{}, unreported, unreported).empty());
}

TEST_CASE("a ParameterStatus updates the server and copies the client's settings before changing them") {
  auto shared = std::make_shared<const session_settings>(defaults());
  auto client = shared;
  session_settings server = defaults();
  note_parameter_status(&client, server, "TimeZone", "Etc/UTC");  // unchanged: no copy
  CHECK(client == shared);
  note_parameter_status(&client, server, "TimeZone", "America/Lima");
  CHECK(client != shared);
  CHECK(tracked(*client, "TimeZone") == "America/Lima");
  CHECK(tracked(*shared, "TimeZone") == "Etc/UTC");
  CHECK(tracked(server, "TimeZone") == "America/Lima");
  const auto before = client;
  note_parameter_status(&client, server, "server_version", "16");  // not tracked
  CHECK(client == before);
  note_parameter_status(nullptr, server, "DateStyle", "German, DMY");
  CHECK(tracked(server, "DateStyle") == "German, DMY");
}

TEST_CASE("settable untracked parameters the server reports are reset unless pgmux set them itself") {
  session_settings server;
  for (const auto* fixed : {"server_version", "server_encoding", "integer_datetimes", "in_hot_standby", "is_superuser"})
    note_parameter_status(nullptr, server, fixed, "x");
  CHECK(server.changed_untracked.empty());
  note_parameter_status(nullptr, server, "default_transaction_read_only", "on");
  note_parameter_status(nullptr, server, "default_transaction_read_only", "off");  // once each
  note_parameter_status(nullptr, server, "app.reported", "1");
  CHECK(server.changed_untracked == std::vector<std::string>{"default_transaction_read_only", "app.reported"});
  server.extra = {{"app.reported", "1"}};  // carried: pgmux set it, and knows it
  bool overflow = true;
  const auto changes = changed_behind_our_back(server, overflow);
  CHECK_FALSE(overflow);
  REQUIRE(changes.size() == 1);
  CHECK(changes[0].name == "default_transaction_read_only");
  CHECK_FALSE(changes[0].value);
  for (int i = 0; i < 20; ++i) note_parameter_status(nullptr, server, "app.p" + std::to_string(i), "1");
  CHECK(server.changed_untracked.size() == session_settings::max_changed + 1);
  changed_behind_our_back(server, overflow);
  CHECK(overflow);
}

TEST_CASE("the server's session user is noted from its login and every ParameterStatus, never for the client") {
  const auto login = settings_from_status({{"session_authorization", "app"}, {"TimeZone", "Etc/UTC"}});
  CHECK(login.session_authorization == "app");
  auto client = std::make_shared<const session_settings>(defaults());
  const auto before = client;
  session_settings server = login;
  note_parameter_status(&client, server, "session_authorization", "postgres");
  CHECK(server.session_authorization == "postgres");
  CHECK(server.session_authorization != login.session_authorization);  // the release check's question
  CHECK(client == before);
  CHECK_FALSE(client->session_authorization.has_value());
}

TEST_CASE("a carried SET becomes an extra of the client and the server alike, and a missing one is dropped from both") {
  session_settings client, server;
  note_carried_setting(client, server, "search_path", std::string("app, public"));
  note_carried_setting(client, server, "app.tenant", std::string("7"));
  note_carried_setting(client, server, "SEARCH_PATH", std::string("other"));  // one entry per parameter
  const parameter_list expected{{"search_path", "other"}, {"app.tenant", "7"}};
  CHECK(client.extra == expected);
  CHECK(server.extra == expected);
  note_carried_setting(client, server, "app.tenant", std::nullopt);
  CHECK(client.extra == parameter_list{{"search_path", "other"}});
  CHECK(server.extra == client.extra);
  const std::vector<std::string> names{"search_path", "it's"};
  CHECK(build_read_settings_sql(names) ==
        "SELECT pg_catalog.current_setting('search_path', true), pg_catalog.current_setting('it''s', true)");
}

TEST_CASE("a server's report keeps its list, its tracked values and each name's tracked index, in any case") {
  const parameter_list reported{{"server_version", "15.5"}, {"TimeZone", "Etc/UTC"},   {"session_authorization", "app"},
                                {"datestyle", "ISO, MDY"},  {"integer_datetimes", "on"}, {"APPLICATION_NAME", "psql"}};
  const auto report = make_server_report(reported);
  CHECK(report.parameters == reported);
  CHECK(report.settings == settings_from_status(reported));
  CHECK(report.settings.session_authorization == "app");
  CHECK(tracked(report.settings, "DateStyle") == "ISO, MDY");
  REQUIRE(report.tracked_index.size() == reported.size());
  for (std::size_t k = 0; k < reported.size(); ++k) {
    const auto index = tracked_parameter_index(reported[k].first);
    CHECK(report.tracked_index[k] == (index ? static_cast<int>(*index) : -1));
  }
  CHECK(report.tracked_index[0] == -1);  // server_version
  CHECK(tracked_parameters[static_cast<std::size_t>(report.tracked_index[5])] == "application_name");
  // Same length as a tracked name, other letters: not tracked.
  CHECK_FALSE(tracked_parameter_index("TimeZonf"));
  CHECK(tracked_parameter_index("TIMEZONE") == tracked_parameter_index("TimeZone"));
}

TEST_CASE("a login's ParameterStatus messages are the report's, with the client's own tracked values") {
  const parameter_list reported{{"application_name", ""}, {"server_version", "15.5"}, {"TimeZone", "Etc/UTC"},
                                {"integer_datetimes", "on"}, {"client_encoding", "UTF8"}, {"DateStyle", "ISO, MDY"}};
  const auto report = make_server_report(reported);
  // What a server would send: each reported parameter once, in its order, with the client's value
  // where the client set the tracked parameter.
  auto expected = [&](const session_settings& client) {
    std::string out;
    for (const auto& [name, value] : reported) {
      const auto i = tracked_parameter_index(name);
      const auto& own = i ? client.tracked[*i] : std::nullopt;
      encode_parameter_status(out, name, own ? *own : value);
    }
    return out;
  };
  auto with = [](std::initializer_list<std::pair<std::string_view, std::string>> values) {
    session_settings s;
    for (const auto& [name, value] : values) s.tracked[*tracked_parameter_index(name)] = value;
    return s;
  };
  for (const auto& client : {session_settings{}, with({{"application_name", "pgbench"}}), with({{"DateStyle", "SQL, DMY"}}),
                             with({{"application_name", "a"}, {"TimeZone", "UTC"}, {"DateStyle", "German"}}),
                             with({{"IntervalStyle", "iso_8601"}})}) {  // IntervalStyle: not reported, not sent
    std::string out = "prefix";
    encode_reported_parameters(out, report, client);
    CHECK(out == "prefix" + expected(client));
  }
  CHECK(report.encoded == expected(session_settings{}));
  std::string none;
  encode_reported_parameters(none, make_server_report({}), with({{"TimeZone", "UTC"}}));
  CHECK(none.empty());
}

}  // TEST_SUITE
