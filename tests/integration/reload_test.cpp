// SIGHUP reload with clients connected throughout:
// - a larger max_size lets more transactions run at once; a smaller one closes idle server
//   connections first and never a busy one
// - a database added to the file becomes reachable; a removed one refuses new requests
// - an invalid file changes nothing and is logged with its JSON path; pgmux keeps serving
// - watch_config: a changed file (renamed into place, or written in place) is applied without a
//   signal; an invalid one changes nothing
#include <doctest/doctest.h>

#include <signal.h>

#include <fstream>
#include <thread>
#include <vector>

#include "integration/fixtures.hpp"

namespace it {
namespace {

// Opens n clients through pgmux, each inside a transaction holding a server connection.
std::vector<pg_conn> hold_transactions(proxy_instance& proxy, int n) {
  std::vector<pg_conn> held;
  for (int i = 0; i < n; ++i) {
    held.push_back(connect(proxy.conninfo()));
    exec_ok(held.back(), "begin");
    CHECK(scalar(held.back(), "select 1") == "1");
  }
  return held;
}

}  // namespace

TEST_SUITE("reload") {

TEST_CASE("SIGHUP applies a larger and a smaller max_size with clients connected") {
  proxy_instance proxy(proxy_options().pool("min_size", "0").pool("max_size", "2").pool("query_wait_timeout", "1s"));
  auto admin = connect(pg().admin_conninfo());
  auto bystander = connect(proxy.conninfo());  // connected throughout
  CHECK(scalar(bystander, "select 'before'") == "before");

  {
    auto held = hold_transactions(proxy, 2);
    auto third = connect(proxy.conninfo());
    auto r = third.exec("select 1");
    CHECK_MESSAGE(r.status() != PGRES_TUPLES_OK, "a third transaction ran with max_size 2");
  }
  CHECK(wait_until([&] { return server_connections(admin) <= 2; }, 3s));

  proxy.edit_and_reload("\"max_size\": 2", "\"max_size\": 4");
  CHECK(wait_until([&] { return proxy.log().find("reload: applied") != std::string::npos; }, 3s));
  {
    auto held = hold_transactions(proxy, 4);
    CHECK(server_connections(admin) == 4);
  }
  CHECK(scalar(bystander, "select 'after grow'") == "after grow");

  // Shrink while two transactions are busy: only idle connections may go.
  auto held = hold_transactions(proxy, 2);
  proxy.edit_and_reload("\"max_size\": 4", "\"max_size\": 1");
  CHECK(wait_until([&] { return server_connections(admin) <= 2; }, 3s));
  for (auto& c : held) {
    CHECK_MESSAGE(scalar(c, "select 'still mine'") == "still mine", "a busy server connection was closed");
    exec_ok(c, "commit");
  }
  CHECK(wait_until([&] { return server_connections(admin) <= 1; }, 3s));
  CHECK(scalar(bystander, "select 'after shrink'") == "after shrink");
}

TEST_CASE("SIGHUP adds and removes databases") {
  proxy_instance proxy(proxy_options().pool("min_size", "0"));
  auto before = connect(proxy.conninfo());
  CHECK(scalar(before, "select 1") == "1");
  pg_conn missing(proxy.conninfo("it_alias"));
  CHECK_FALSE(missing.ok());

  // The same server database under a second name (the "*" entry sends "it_alias" to a
  // server database of that name, which does not exist).
  const std::string marker = "\"databases\": {\n";
  auto text = proxy.config_text();
  const auto at = text.find(marker);
  REQUIRE(at != std::string::npos);
  const std::string alias_entry = "    \"it_alias\": {\"dsn\": \"" + pg().server_dsn("pgmux_test") + "\"},\n";
  text.insert(at + marker.size(), alias_entry);
  proxy.rewrite_config(text);
  proxy.send_signal(SIGHUP);
  CHECK(wait_until([&] { return pg_conn(proxy.conninfo("it_alias")).ok(); }, 3s));
  auto alias = connect(proxy.conninfo("it_alias"));
  CHECK(scalar(alias, "select current_database()") == "pgmux_test");

  // Remove it again: its clients are refused from their next transaction on.
  auto without = text;
  without.erase(without.find(alias_entry), alias_entry.size());
  proxy.rewrite_config(without);
  proxy.send_signal(SIGHUP);
  CHECK(wait_until([&] { return !pg_conn(proxy.conninfo("it_alias")).ok(); }, 3s));
  auto r = alias.exec("select 1");
  CHECK(r.status() != PGRES_TUPLES_OK);
  CHECK(scalar(before, "select 'unaffected'") == "unaffected");
}

TEST_CASE("SIGHUP with an invalid file changes nothing and names the JSON path") {
  proxy_instance proxy(proxy_options().pool("max_size", "2"));
  auto c = connect(proxy.conninfo());
  const auto good = proxy.config_text();
  proxy.edit_and_reload("\"max_size\": 2", "\"max_size\": \"lots\"");
  CHECK(wait_until([&] { return proxy.log().find("/pool_defaults/max_size") != std::string::npos; }, 3s));
  CHECK(proxy.logged("was not applied"));
  CHECK(proxy.alive());
  CHECK(scalar(c, "select 'still serving'") == "still serving");
  auto fresh = connect(proxy.conninfo());
  CHECK(scalar(fresh, "select 2") == "2");
  // The old max_size still holds: a third transaction cannot start.
  auto held = hold_transactions(proxy, 1);  // c is idle; fresh and held take the two connections
  exec_ok(fresh, "begin");
  CHECK(scalar(fresh, "select 3") == "3");
  auto third = connect(proxy.conninfo());
  auto r = third.exec("select 1");
  CHECK_MESSAGE(r.status() != PGRES_TUPLES_OK, "a third transaction ran: the invalid max_size changed something");
  CHECK(proxy.config_text() != good);
}

TEST_CASE("watch_config applies a changed file without a signal, and an invalid one changes nothing") {
  const std::string admin_member = R"("admin": {"users": ["pgmux_test"]}, "watch_config": true)";
  proxy_instance proxy(proxy_options().pool("max_size", "2").top_level(admin_member));
  auto console = connect(proxy.conninfo("pgmux", "pgmux_test"));
  auto max_size = [&] {
    auto r = console.exec("SHOW CONFIG");
    for (int row = 0; row < r.rows(); ++row)
      if (r.value(row, 0) == "pool_defaults.max_size") return r.value(row, 1);
    return std::string();
  };
  auto applied = [&] {
    std::size_t n = 0;
    const auto log = proxy.log();
    for (auto at = log.find("reload: applied"); at != std::string::npos; at = log.find("reload: applied", at + 1)) ++n;
    return n;
  };
  REQUIRE(max_size() == "2");

  // Renamed into place, as the tests' rewrite_config and most tools do.
  auto text = proxy.config_text();
  text.replace(text.find("\"max_size\": 2"), 13, "\"max_size\": 5");
  proxy.rewrite_config(text);
  CHECK_MESSAGE(wait_until([&] { return applied() == 1; }, 5s), proxy.log_tail());
  CHECK(max_size() == "5");

  // Written in place.
  text.replace(text.find("\"max_size\": 5"), 13, "\"max_size\": 7");
  {
    std::ofstream(proxy.dir() + "/pgmux.json", std::ios::trunc) << text;
  }
  CHECK_MESSAGE(wait_until([&] { return max_size() == "7"; }, 5s), proxy.log_tail());

  // Invalid: logged with its path, nothing changes, pgmux serves on.
  auto invalid = text;
  invalid.replace(invalid.find("\"max_size\": 7"), 13, "\"max_size\": \"lots\"");
  proxy.rewrite_config(invalid);
  CHECK_MESSAGE(wait_until([&] { return proxy.log().find("/pool_defaults/max_size") != std::string::npos; }, 5s),
                proxy.log_tail());
  CHECK(max_size() == "7");
  auto c = connect(proxy.conninfo());
  CHECK(scalar(c, "select 'still serving'") == "still serving");
  // Valid again: applied.
  proxy.rewrite_config(text);
  CHECK_MESSAGE(wait_until([&] { return applied() == 3; }, 5s), proxy.log_tail());
}

}  // TEST_SUITE
}  // namespace it
