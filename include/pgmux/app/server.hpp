// The pgmux process: worker threads, listeners, pools and signal handling.
#pragma once
#include <memory>

#include "pgmux/config/config.hpp"

namespace pgmux::app {

// Serves until SIGINT or SIGTERM. Returns the process exit code.
int serve(std::shared_ptr<const config::config> cfg);

}  // namespace pgmux::app
