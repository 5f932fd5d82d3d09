// The config file (JSON with comments) and everything read from it: durations, sizes, rules,
// DSNs, secrets. Errors are collected, never thrown.
// Input: the config text.
#include "fuzz_support.hpp"
#include "pgmux/config/load.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  // Configs name files that are read when loaded: keep the fuzzer away from device and kernel
  // files, which can block or never end (a \u escape could spell such a path too).
  for (std::string_view risky : {"/dev", "/proc", "/sys", "/run", "\\u"})
    if (text.find(risky) != std::string_view::npos) return -1;  // not added to the corpus
  const auto r = pgmux::config::load_config_text(text);
  FUZZ_CHECK(r.cfg.has_value() == r.errors.empty());
  for (const auto& e : r.errors) FUZZ_CHECK(!e.path.empty() && e.path[0] == '/' && !e.message.empty());
  if (!r.errors.empty()) FUZZ_CHECK(!pgmux::config::format_errors(r.errors).empty());
  return 0;
}
