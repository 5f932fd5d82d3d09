// Liveness and readiness verdicts.
#include "pgmux/admin/health.hpp"

namespace pgmux::app::health {
namespace {

verdict from_reasons(std::string reasons) {
  if (reasons.empty()) return {200, "ok\n"};
  return {503, std::move(reasons)};
}

std::string stalled_workers(const inputs& in) {
  std::string out;
  for (std::size_t w = 0; w < in.last_probe.size(); ++w) {
    const auto silent = std::chrono::duration_cast<std::chrono::milliseconds>(in.now - in.last_probe[w]);
    if (silent >= stalled_after)
      out += "worker " + std::to_string(w) + ": event loop stalled for " + std::to_string(silent.count()) + " ms\n";
  }
  return out;
}

}  // namespace

verdict liveness(const inputs& in) { return from_reasons(stalled_workers(in)); }

verdict readiness(const inputs& in) {
  std::string reasons = stalled_workers(in);
  if (in.draining) reasons += "draining: shutting down\n";
  if (in.paused) reasons += "paused: PAUSE of every pool\n";
  for (const auto& p : in.pools)
    if (p.ever_connected && p.open == 0 && p.consecutive_connect_failures > 0)
      reasons += "pool " + p.name + ": its server cannot be reached (" + std::to_string(p.consecutive_connect_failures) +
                 " failed connects in a row)\n";
  return from_reasons(std::move(reasons));
}

}  // namespace pgmux::app::health
