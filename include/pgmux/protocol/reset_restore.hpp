// RESET through a pooled server connection. PostgreSQL takes a parameter back to its reset
// value, which is what the client's startup packet set (PGOPTIONS='-c datestyle=...',
// application_name, ...); a server connection pgmux logged in with the pool's own values goes
// back to those instead. So after each such RESET in a client's simple Query pgmux inserts a
// statement that sets the client's values again, and the relay hides that statement's answers.
// Pure: no sockets.
#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pgmux/protocol/session_params.hpp"
#include "pgmux/protocol/session_settings.hpp"
#include "pgmux/protocol/sql_inspect.hpp"

namespace pgmux::protocol {

// The startup values a client's RESETs must bring back: its tracked values that differ from
// what the server connection logged in with (`server_login`), and all its other startup settings.
std::vector<parameter_change> restorable_values(const session_settings& client_startup,
                                                const session_settings& server_login);

struct restored_query {
  std::string sql;
  std::uint64_t hidden = 0;  // bit i: statement i of `sql` (empty ones not counted) is pgmux's own
};

// `sql` with `SELECT pg_catalog.set_config(name, value, false), ...` inserted right after each of
// `resets` (found in `sql` by inspect_sql) that names a parameter of `restorable`, or after RESET
// ALL with all of them. nullopt when none does, or when such a statement would come past the
// 64th: the Query then goes as it is.
std::optional<restored_query> restore_after_resets(std::string_view sql, std::span<const reset_statement> resets,
                                                   std::span<const parameter_change> restorable);

// Whether restore_after_resets would rewrite the query: the same test, nothing built.
bool restores_any(std::span<const reset_statement> resets, std::span<const parameter_change> restorable) noexcept;

// Appends the Query message `query` (whose text is `sql`, inspected into `resets`) to `out`,
// rewritten by restore_after_resets where it applies, else as it is. Returns the rewrite's
// hidden statements (0 when it went unchanged). `restorable` null: unchanged.
std::uint64_t append_restored_query(std::string& out, std::string_view query, std::string_view sql,
                                    std::span<const reset_statement> resets,
                                    const std::vector<parameter_change>* restorable);

// Whether `sql` may hold a statement restore_after_resets acts on (the words RESET or DEFAULT,
// in any case): a cheap test before inspecting it.
bool may_reset(std::string_view sql) noexcept;

}  // namespace pgmux::protocol
