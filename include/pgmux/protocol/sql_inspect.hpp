// What pgmux must know about the SQL a client sends when clients share server connections
// (transaction pooling): LISTEN and UNLISTEN, which decide which notifications are the client's,
// and statements that reach pgmux's own prepared statements. The text is split into top-level
// statements as PostgreSQL's lexer would (quotes, dollar quotes, comments); nothing else of
// the SQL is understood. Pure: no sockets.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
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

// Session state: what a statement leaves on its server connection past the end of its
// transaction. In transaction pooling it would reach the next client of that connection; the
// pool's session_state policy decides (pin, reset or refuse). A set of bits.
namespace session_state {
using set = std::uint8_t;
inline constexpr set none = 0;
inline constexpr set parameter = 1 << 0;      // SET of a parameter pgmux does not carry over (search_path, ...)
inline constexpr set role = 1 << 1;           // SET ROLE, SET SESSION AUTHORIZATION
inline constexpr set temp_table = 1 << 2;     // CREATE TEMP TABLE / VIEW / SEQUENCE, SELECT INTO TEMP
inline constexpr set prepare = 1 << 3;        // SQL-level PREPARE
inline constexpr set hold_cursor = 1 << 4;    // DECLARE ... WITH HOLD
inline constexpr set advisory_lock = 1 << 5;  // pg_advisory_lock() and the other session-level locks
inline constexpr set listen = 1 << 6;         // LISTEN
inline constexpr std::size_t kinds = 7;
// "set", "role", "temp_table", "prepare", "cursor", "advisory_lock", "listen": the label of bit i.
const char* label(std::size_t bit) noexcept;
// The labels of the bits in `s`, comma-separated ("role,set"); "" for none.
std::string describe(set s);
}  // namespace session_state

// A top-level statement that takes a parameter back to its reset value: RESET name, RESET ALL,
// RESET TIME ZONE, SET [SESSION] name TO DEFAULT (or = DEFAULT), SET TIME ZONE DEFAULT or LOCAL.
// PostgreSQL's reset value is what the client's startup packet set; a pooled server connection's
// is the pool's own, so pgmux restores the client's after it (reset_restore.hpp).
struct reset_statement {
  std::size_t ordinal;  // among the statements of the text that are not empty, from 0
  std::size_t end;      // offset just past the statement, its ';' included when it has one
  std::string name;     // as PostgreSQL names it (TIME ZONE is timezone); "" for RESET ALL
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
  // Top-level statements that leave session state (see session_state). Only what the text
  // shows: a function that runs SET or takes an advisory lock is not seen.
  session_state::set state = session_state::none;
  // Parameters a top-level SET gives a session value that pgmux can carry: their names, as
  // written (SET SCHEMA is search_path). They are not session state: the session reads their
  // values back when the transaction ends and sets them on whichever connection serves it next.
  std::vector<std::string> carried;
  // Statements that reset parameters, in order (see reset_statement).
  std::vector<reset_statement> resets;
};

sql_findings inspect_sql(std::string_view sql);

// Whether `sql` holds a word that could make inspect_sql find anything (SET, CREATE, LISTEN,
// PREPARE, set_config, ...), as one pass with no allocation. False means the findings are
// empty: most queries are told apart from SQL that matters this way, without the lexer.
bool sql_may_matter(std::string_view sql) noexcept;
// inspect_sql without that pass: the lexer on every text (for tests and the fuzzer).
sql_findings inspect_sql_unfiltered(std::string_view sql);

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
  bool empty() const noexcept { return !channels_ || channels_->empty(); }
  std::size_t size() const noexcept { return channels_ ? channels_->size() : 0; }

 private:
  // Made at the first LISTEN: most clients never send one, and an idle client pays a pointer.
  std::unique_ptr<std::vector<std::string>> channels_;
};

// The SQL pgmux sends instead of a statement that would leave session state under the
// session_state policy "refuse": the server answers with SQLSTATE 0A000 in the client's place.
std::string session_state_refusal_sql(session_state::set state);

// The reset of what `left` put on a server connection (session_state "reset"), as one Query
// that runs between transactions: SET SESSION AUTHORIZATION DEFAULT and RESET ROLE for a role,
// RESET ALL for parameters, DISCARD TEMP, CLOSE ALL, pg_advisory_unlock_all(). Prepared
// statements pgmux keeps on the connection survive it. SQL-level PREPARE has names pgmux does
// not keep: then DISCARD ALL (`discards_all`), which drops pgmux's statements too.
struct state_reset {
  std::string sql;                 // "" when there is nothing to reset
  bool discards_all = false;       // DISCARD ALL: pgmux's prepared statements are gone too
  bool resets_parameters = false;  // RESET ALL (DISCARD ALL too): settings back to the login values
};
state_reset session_state_reset(session_state::set left);

// What the relay learns from one client's SQL in transaction pooling; owned by the client session.
struct sql_watch {
  listen_set listening;
  // Parameters SET in the current transaction, to read back at its end (sql_findings::carried);
  // past max_carried distinct names, a SET counts as session state instead.
  static constexpr std::size_t max_carried = 64;
  std::vector<std::string> to_read;
  bool statements_untrusted = false;  // see sql_findings; the session clears it per transaction
  // Session state the client's SQL created in the current transaction; the session clears it
  // when the transaction ends and it has acted on it.
  session_state::set state = session_state::none;
  // RESET ALL in the current transaction: every parameter the client carries is read back too.
  bool reset_all = false;
  // Policy "refuse": SQL that would create session state is replaced before it is sent.
  bool refuse_state = false;
  void note(const sql_findings& f) {
    if (!f.listen.empty()) listening.apply(f.listen);
    statements_untrusted = statements_untrusted || f.statement_commands_elsewhere;
    state |= f.state;
    for (const auto& name : f.carried) note_carried(name);
    for (const auto& reset : f.resets) reset_all = reset_all || reset.name.empty();
  }
  void note_carried(const std::string& name);
  // Whether `f` is to be refused rather than run (policy "refuse").
  bool refuses(const sql_findings& f) const noexcept { return refuse_state && f.state != session_state::none; }
};

}  // namespace pgmux::protocol
