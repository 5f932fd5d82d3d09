// Config file -> validated config. Every error names its JSON pointer and what was expected.
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pgmux/config/config.hpp"

namespace pgmux::config {

struct config_error {
  std::string path;     // JSON pointer, e.g. "/databases/app/pool/max_size"
  std::string message;
};

struct load_result {
  std::optional<config> cfg;          // set when errors is empty
  std::vector<config_error> errors;
};

// JSON with // and /* */ comments.
load_result load_config_text(std::string_view text);
load_result load_config_file(const std::string& path);

std::string format_errors(const std::vector<config_error>& errors);  // one "path: message" per line

}  // namespace pgmux::config
