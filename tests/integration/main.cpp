// doctest main of the integration tests. The PostgreSQL cluster is started lazily by the first test
// that needs it (so --list-test-cases, which ctest runs at build time, starts nothing) and stopped when
// the process exits; see fixtures.hpp.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <csignal>
#include <cstdio>
#include <string_view>

#include "integration/fixtures.hpp"

int main(int argc, char** argv) {
  // Writes to a socket pgmux has closed must fail with EPIPE, not kill the test process.
  std::signal(SIGPIPE, SIG_IGN);
  doctest::Context context(argc, argv);
  const int result = context.run();
  if (context.shouldExit()) return result;  // --help, --list-test-cases, ...

  // ctest runs one test case per process by name (doctest_discover_tests). A name that matches
  // nothing, say one CMake split at a ';', would run zero cases and pass: make that a failure.
  bool filtered = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    filtered = filtered || arg.rfind("--test-case=", 0) == 0 || arg.rfind("-tc=", 0) == 0;
  }
  if (filtered && it::test_cases_started() == 0) {
    std::fprintf(stderr, "integration_tests: no test case matches the --test-case filter\n");
    return 1;
  }
  return result;
}
