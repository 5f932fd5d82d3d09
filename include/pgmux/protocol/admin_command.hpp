// The admin console's commands as text: which command a client's simple Query names, and the
// database PAUSE or RESUME is about. Pure: the console (admin/admin_console.cpp) runs them.
#pragma once
#include <string>
#include <string_view>

namespace pgmux::protocol {

enum class admin_verb {
  empty,  // nothing but blanks (and what follows a ';'): EmptyQueryResponse
  show_pools,
  show_stats,
  show_clients,
  show_servers,
  show_databases,
  show_config,
  show_version,
  show_advice,
  show_queries,
  reload,
  shutdown,
  pause,
  resume,
  unknown,
};

struct admin_command {
  admin_verb verb = admin_verb::unknown;
  std::string database;  // PAUSE / RESUME: the database as written (quotes removed), "" for all
};

// "  show   Pools ; " -> "SHOW POOLS": up to the first ';', blanks collapsed, upper case.
std::string normalize_admin_command(std::string_view sql);

admin_command parse_admin_command(std::string_view sql);

// The command tag of a command that is not a SHOW: "RELOAD", "SHUTDOWN", "PAUSE", "RESUME";
// "SHOW" for the others.
const char* admin_command_tag(admin_verb verb) noexcept;

}  // namespace pgmux::protocol
