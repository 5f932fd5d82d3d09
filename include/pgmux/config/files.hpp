// Reading the files a config names (the config itself, passfiles, users files, certificates),
// once, when the config is loaded.
#pragma once
#include <optional>
#include <string>

namespace pgmux::config {

// The whole file, or nullopt when it cannot be opened.
std::optional<std::string> read_whole_file(const std::string& path);
// The same, for a regular file only (certificates and keys: not a directory or a device).
std::optional<std::string> read_regular_file(const std::string& path);
bool file_exists(const std::string& path);

}  // namespace pgmux::config
