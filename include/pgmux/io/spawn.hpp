// Completion handler for co_spawn: a coroutine that ends by an exception is logged, never lost.
#pragma once
#include <exception>
#include <string>

#include "pgmux/log.hpp"

namespace pgmux::net {

inline auto log_failure(const char* what) {
  return [what](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      log::error(std::string(what) + ": " + ex.what());
    } catch (...) {
      log::error(std::string(what) + ": unknown exception");
    }
  };
}

}  // namespace pgmux::net
