// The one place the build's version is compiled in.
#include "pgmux/version.hpp"

namespace pgmux {

const char* version() noexcept { return PGMUX_VERSION; }

}  // namespace pgmux
