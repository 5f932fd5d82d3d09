// doctest main of the unit tests. ctest runs one test case per process by name
// (doctest_discover_tests); a name that matches nothing (say one CMake split at a ';') would run
// zero cases and pass, so that is made a failure here.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <string_view>

namespace {

int started = 0;

struct start_counter : doctest::IReporter {
  explicit start_counter(const doctest::ContextOptions&) {}
  void report_query(const doctest::QueryData&) override {}
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats&) override {}
  void test_case_start(const doctest::TestCaseData&) override { ++started; }
  void test_case_reenter(const doctest::TestCaseData&) override {}
  void test_case_end(const doctest::CurrentTestCaseStats&) override {}
  void test_case_exception(const doctest::TestCaseException&) override {}
  void subcase_start(const doctest::SubcaseSignature&) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData&) override {}
  void log_message(const doctest::MessageData&) override {}
  void test_case_skipped(const doctest::TestCaseData&) override {}
};

REGISTER_LISTENER("pgmux_unit_start_counter", 1, start_counter);

}  // namespace

int main(int argc, char** argv) {
  doctest::Context context(argc, argv);
  const int result = context.run();
  if (context.shouldExit()) return result;
  bool filtered = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    filtered = filtered || arg.rfind("--test-case=", 0) == 0 || arg.rfind("-tc=", 0) == 0;
  }
  if (filtered && started == 0) {
    std::fprintf(stderr, "unit_tests: no test case matches the --test-case filter\n");
    return 1;
  }
  return result;
}
