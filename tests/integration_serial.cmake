# Read by ctest after the discovered integration tests: those that load both cores (pgbench runs,
# throughput and CPU comparisons, fuzzing) or time a deadline against a load run alone, so that a
# second test beside them cannot slow their pgmux down. The rest run -j (nproc) at once: each
# has its own cluster, pgmux and ports, and most of their time is waiting on events.
foreach(test IN LISTS integration_tests_TESTS)
  if(test MATCHES "pgbench|CPU-bound|SHOW ADVICE|fuzzed protocol sessions|without spinning|slow-loris")
    set_tests_properties("${test}" PROPERTIES RUN_SERIAL TRUE)
  endif()
endforeach()
