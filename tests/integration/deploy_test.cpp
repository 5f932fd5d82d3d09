// deploy/kubernetes/ and deploy/Dockerfile, without a cluster or an image builder: the static
// checks of tests/deploy/kubernetes_check.py (ports, probe paths, mounts, selectors, the drain
// timeline, security), then pgmux run with the mounted config's settings, answering the probe
// and scrape paths the manifests name on its metrics port. promtool on deploy/'s Prometheus files
// and on a live scrape. And bench/compare, in a short run.
#include <doctest/doctest.h>

#include <signal.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "integration/fixtures.hpp"

namespace it {

TEST_SUITE("deploy") {

TEST_CASE("the Kubernetes manifests agree with each other, with the image and with what pgmux serves") {
  const std::string source = PGMUX_SOURCE_DIR;
  const auto checked = run("/usr/bin/python3 " + shell_quote(source + "/tests/deploy/kubernetes_check.py") + " " +
                           shell_quote(source));
  INFO("kubernetes_check.py:\n" << checked.output);
  REQUIRE(checked.code == 0);

  std::vector<std::string> probes, scrapes;
  const int mport = free_port();
  proxy_options options;
  options.top_level(metrics_member(mport));
  std::istringstream lines(checked.output);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("probe ", 0) == 0) probes.push_back(line.substr(6));
    if (line.rfind("scrape ", 0) == 0) scrapes.push_back(line.substr(7));
    if (line.rfind("member ", 0) == 0) options.top_level(line.substr(7));
  }
  REQUIRE(probes.size() == 2);
  REQUIRE(scrapes.size() == 1);

  // The mounted config's own settings (workers, drain, reload, log format) load and run.
  proxy_instance proxy(options);
  auto c = connect(proxy.conninfo());
  CHECK(scalar(c, "select 1") == "1");
  for (const auto& path : probes) {
    CAPTURE(path);
    const auto a = http_get(mport, path);
    CHECK(a.status == 200);
    CHECK(a.body == "ok\n");
  }
  const auto metrics = http_get(mport, scrapes.front());
  CHECK(metrics.status == 200);
  CHECK(metrics.body.find("# TYPE pgmux_pool_size gauge") != std::string::npos);
  // The config's drain_delay would hold the fixture's SIGTERM for seconds: stop at once.
  proxy.send_signal(SIGINT);
  CHECK(proxy.wait_exit(5s));
}

TEST_CASE("promtool accepts the Prometheus config and alert rules in deploy, and a live scrape") {
  // deploy/test provides one (deploy/install-deps --promtool); run by hand, the one on PATH.
  const char* env_tool = std::getenv("PGMUX_PROMTOOL");
  std::string promtool = env_tool && *env_tool ? env_tool : "";
  if (promtool.empty() && run("command -v promtool").code == 0) promtool = "promtool";
  REQUIRE_MESSAGE(!promtool.empty(), "no promtool: run deploy/install-deps --promtool and set PGMUX_PROMTOOL to what it prints");
  const std::string deploy = std::string(PGMUX_SOURCE_DIR) + "/deploy";
  auto rules = run(shell_quote(promtool) + " check rules " + shell_quote(deploy + "/pgmux-alerts.yml"));
  CHECK_MESSAGE(rules.code == 0, rules.output);
  auto config = run(shell_quote(promtool) + " check config " + shell_quote(deploy + "/prometheus.yml"));
  CHECK_MESSAGE(config.code == 0, config.output);

  const int mport = free_port();
  proxy_instance proxy(proxy_options().top_level(metrics_member(mport)));
  auto c = connect(proxy.conninfo());
  CHECK(scalar(c, "select 1") == "1");  // a pool, so that its families have samples
  const std::string scraped = proxy.dir() + "/scrape.txt";
  std::ofstream(scraped) << scrape_metrics(mport);
  auto lint = run(shell_quote(promtool) + " check metrics < " + shell_quote(scraped));
  CHECK_MESSAGE(lint.code == 0, lint.output);
  CHECK_MESSAGE(lint.output.empty(), lint.output);
}

TEST_CASE("bench/compare runs pgbench through pgmux and reports CPU per transaction and idle memory") {
  const std::string source = PGMUX_SOURCE_DIR;
  const char* env_bin = std::getenv("PGMUX_IT_BINARY");
  const std::string bin = env_bin && *env_bin ? env_bin : PGMUX_BINARY;
  const auto r = run(shell_quote(source + "/bench/compare") + " -w select-few -T 1 -r 1 --workers 1 --idle 50"
                     " --no-pgbouncer --binary " + shell_quote(bin), 120);
  INFO(r.output);
  REQUIRE(r.code == 0);
  CHECK(r.output.find("| select-few | postgres |") != std::string::npos);
  const auto row = r.output.find("| select-few | pgmux-w1 |");
  REQUIRE(row != std::string::npos);
  // TPS, ratio, latency and a CPU figure: five cells after the target.
  const auto line = r.output.substr(row, r.output.find('\n', row) - row);
  CHECK(std::count(line.begin(), line.end(), '|') == 7);
  CHECK(line.find(" - |") == std::string::npos);
  CHECK(r.output.find("| pgmux-w1 | ") != std::string::npos);
  CHECK(r.output.find(" B per client |") != std::string::npos);
}

}

}  // namespace it
