#include "pgmux/protocol/admin_command.hpp"

#include <doctest/doctest.h>

using namespace pgmux::protocol;

TEST_CASE("admin commands: blanks, case and a trailing semicolon do not matter") {
  CHECK(normalize_admin_command("  show \t Pools ; ") == "SHOW POOLS");
  CHECK(parse_admin_command("show pools").verb == admin_verb::show_pools);
  CHECK(parse_admin_command("SHOW\nSTATS;").verb == admin_verb::show_stats);
  CHECK(parse_admin_command(" Show Clients").verb == admin_verb::show_clients);
  CHECK(parse_admin_command("show servers").verb == admin_verb::show_servers);
  CHECK(parse_admin_command("show databases").verb == admin_verb::show_databases);
  CHECK(parse_admin_command("show config").verb == admin_verb::show_config);
  CHECK(parse_admin_command("show version").verb == admin_verb::show_version);
  CHECK(parse_admin_command(" Show  Advice ;").verb == admin_verb::show_advice);
  CHECK(parse_admin_command("reload").verb == admin_verb::reload);
  CHECK(parse_admin_command("ShutDown;").verb == admin_verb::shutdown);
}

TEST_CASE("admin commands: nothing but blanks is empty, anything else unknown") {
  CHECK(parse_admin_command("").verb == admin_verb::empty);
  CHECK(parse_admin_command(" \n ; show pools").verb == admin_verb::empty);
  CHECK(parse_admin_command("show").verb == admin_verb::unknown);
  CHECK(parse_admin_command("show poolsx").verb == admin_verb::unknown);
  CHECK(parse_admin_command("SHOWPOOLS").verb == admin_verb::unknown);
  CHECK(parse_admin_command("pauses").verb == admin_verb::unknown);
  CHECK(parse_admin_command("select 1").verb == admin_verb::unknown);
}

TEST_CASE("admin commands: PAUSE and RESUME name a database, or all") {
  auto c = parse_admin_command("PAUSE");
  CHECK(c.verb == admin_verb::pause);
  CHECK(c.database.empty());
  c = parse_admin_command("  pause   app  ;");
  CHECK(c.verb == admin_verb::pause);
  CHECK(c.database == "app");
  c = parse_admin_command("resume \"App Db\"");
  CHECK(c.verb == admin_verb::resume);
  CHECK(c.database == "App Db");
  c = parse_admin_command("RESUME;app");
  CHECK(c.verb == admin_verb::resume);
  CHECK(c.database.empty());
  // The name keeps its case: databases are matched exactly.
  CHECK(parse_admin_command("pause MixedCase").database == "MixedCase");
}

TEST_CASE("admin commands: tags") {
  CHECK(std::string(admin_command_tag(admin_verb::reload)) == "RELOAD");
  CHECK(std::string(admin_command_tag(admin_verb::shutdown)) == "SHUTDOWN");
  CHECK(std::string(admin_command_tag(admin_verb::pause)) == "PAUSE");
  CHECK(std::string(admin_command_tag(admin_verb::resume)) == "RESUME");
  CHECK(std::string(admin_command_tag(admin_verb::show_pools)) == "SHOW");
}
