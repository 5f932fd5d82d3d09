// The pgmux process: worker threads, listeners, pools and signal handling.
#pragma once
#include <memory>
#include <string>

#include "pgmux/config/config.hpp"

namespace pgmux::app {

// Serves until SIGINT or SIGTERM; SIGHUP reloads `config_path`. Returns the exit code.
int serve(std::shared_ptr<const config::config> cfg, const std::string& config_path);

}  // namespace pgmux::app
