// The version pgmux reports (--version, SHOW VERSION, pgmux_build_info), set by CMake.
#pragma once

namespace pgmux {

const char* version() noexcept;

}  // namespace pgmux
