// The "log" settings, read off pgmux's stderr:
// - format "json" writes one JSON object per line; client logins and disconnects are logged
//   with their reason; statements slower than slow_query are logged with duration and pool,
//   faster ones are not
// - connections false and level "warn" keep routine events out; a reload switches the format
#include <doctest/doctest.h>

#include <signal.h>

#include <sstream>
#include <thread>

#include "integration/fixtures.hpp"

namespace it {
namespace {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(line);
  return out;
}

bool looks_like_json_line(const std::string& line) {
  return line.rfind("{\"time\":\"", 0) == 0 && line.find("\",\"level\":\"") != std::string::npos &&
         line.find("\",\"message\":\"") != std::string::npos && line.size() > 2 && line.substr(line.size() - 2) == "\"}";
}

std::size_t count_of(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

}  // namespace

TEST_SUITE("logging") {

TEST_CASE("json lines carry connections and slow queries") {
  proxy_options opts;
  opts.top_level(R"("log": {"format": "json", "slow_query": "200ms"})");
  proxy_instance proxy(opts);
  {
    auto c = connect(proxy.conninfo());
    CHECK(scalar(c, "select 'fast'") == "fast");
    exec_ok(c, "select pg_sleep(0.3) /* the slow one */");
  }
  CHECK(wait_until([&] { return proxy.log().find("disconnected: client terminate") != std::string::npos; }, 3s));
  const auto log = proxy.log();
  for (const auto& line : lines_of(log)) CHECK_MESSAGE(looks_like_json_line(line), line);
  CHECK(count_of(log, "logged in") == 1);
  CHECK(count_of(log, "slow query: ") == 1);
  const auto slow = log.find("slow query: ");
  REQUIRE(slow != std::string::npos);
  const auto line = log.substr(slow, log.find('\n', slow) - slow);
  CHECK(line.find("select pg_sleep(0.3) /* the slow one */") != std::string::npos);
  CHECK(line.find("pool pgmux_test/pgmux_test") != std::string::npos);
  CHECK(line.find("\"level\":\"warn\"") == std::string::npos);  // the level is before the message
  CHECK(log.find("\"level\":\"warn\",\"message\":\"slow query: 0.3") != std::string::npos);
  CHECK(log.find("select 'fast'") == std::string::npos);
}

TEST_CASE("quiet settings keep routine lines out and a reload switches the format") {
  proxy_options opts;
  opts.top_level(R"("log": {"level": "warn", "connections": false})");
  proxy_instance proxy(opts);
  {
    auto c = connect(proxy.conninfo());
    CHECK(scalar(c, "select 1") == "1");
  }
  pg_conn unknown(proxy.conninfo("no_such_database"));
  CHECK_FALSE(unknown.ok());
  std::this_thread::sleep_for(200ms);
  auto log = proxy.log();
  CHECK(log.find("logged in") == std::string::npos);
  CHECK(log.find("disconnected") == std::string::npos);
  CHECK(log.find(" INFO ") == std::string::npos);

  auto text = proxy.config_text();
  const std::string from = R"("level": "warn", "connections": false)";
  const auto at = text.find(from);
  REQUIRE(at != std::string::npos);
  text.replace(at, from.size(), R"("level": "info", "format": "json")");
  proxy.rewrite_config(text);
  proxy.send_signal(SIGHUP);
  CHECK(wait_until([&] { return proxy.log().find("reload: applied") != std::string::npos; }, 3s));
  {
    auto c = connect(proxy.conninfo());
    CHECK(scalar(c, "select 1") == "1");
  }
  CHECK(wait_until([&] { return proxy.log().find("disconnected: client terminate") != std::string::npos; }, 3s));
  log = proxy.log();
  const auto reloaded = log.find("reload: applied");
  for (const auto& line : lines_of(log.substr(log.rfind('\n', reloaded) + 1))) CHECK_MESSAGE(looks_like_json_line(line), line);
}

}  // TEST_SUITE
}  // namespace it
