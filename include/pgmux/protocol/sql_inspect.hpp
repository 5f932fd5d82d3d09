// What pgmux must know about the SQL a client sends when clients share server connections
// (transaction pooling): LISTEN and UNLISTEN, which decide which notifications are the client's,
// and statements that reach pgmux's own prepared statements. The text is split into top-level
// statements as PostgreSQL's lexer would (quotes, dollar quotes, comments); nothing else of
// the SQL is understood. Pure: no sockets.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace pgmux::protocol {

// Prefix of the server-side names pgmux gives shared prepared statements (statements.hpp).
inline constexpr std::string_view reserved_statement_prefix = "pgmux_";

struct listen_change {
  enum class kind : unsigned char { listen, unlisten, unlisten_all };
  kind what;
  std::string channel;  // as PostgreSQL names it: unquoted names folded to lower case
};

struct sql_findings {
  std::vector<listen_change> listen;  // LISTEN / UNLISTEN at the top level, in order
  // PREPARE, EXECUTE or DEALLOCATE [PREPARE] of a name starting with reserved_statement_prefix:
  // a client could replace a statement another client binds. pgmux refuses such SQL.
  bool reserved_statement_name = false;
  // The words PREPARE or DEALLOCATE somewhere other than at the head of a top-level statement
  // (a DO body, a string run by EXECUTE): the server connection's prepared statements can no
  // longer be vouched for.
  bool statement_commands_elsewhere = false;
};

sql_findings inspect_sql(std::string_view sql);

// Where the next token of `sql` starts from `pos`: past blanks and comments (-- and nested
// /* */), as PostgreSQL's lexer skips them. sql.size() when no token starts before the end,
// which may lie inside a comment.
std::size_t skip_blanks_and_comments(std::string_view sql, std::size_t pos) noexcept;

// The SQL pgmux sends instead of a statement it refuses: the server answers it with this error
// (SQLSTATE 42501) in the client's place, so the transaction state stays PostgreSQL's own.
std::string_view reserved_statement_refusal_sql();

// The channels one client LISTENs on, as far as its SQL showed. Bounded: past max_channels,
// further channels are not recorded (their notifications are then not delivered).
class listen_set {
 public:
  static constexpr std::size_t max_channels = 1024;
  void apply(const std::vector<listen_change>& changes);
  bool contains(std::string_view channel) const noexcept;
  bool empty() const noexcept { return channels_.empty(); }
  std::size_t size() const noexcept { return channels_.size(); }

 private:
  std::vector<std::string> channels_;
};

// What the relay learns from one client's SQL in transaction pooling; owned by the client session.
struct sql_watch {
  listen_set listening;
  bool statements_untrusted = false;  // see sql_findings; the session clears it per transaction
  void note(const sql_findings& f) {
    if (!f.listen.empty()) listening.apply(f.listen);
    statements_untrusted = statements_untrusted || f.statement_commands_elsewhere;
  }
};

}  // namespace pgmux::protocol
