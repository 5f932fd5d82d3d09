// Prepared statements across pooled server connections (transaction pooling): how a client's
// Parse, Bind, Describe and Close are rewritten for the server connection it holds right now,
// and what the server's answers teach about the statements that connection holds.
//
// - A named statement is prepared on the server under its definition's name (statements.hpp),
//   shared by every client that prepares the same SQL. A Bind or Describe of it on a connection
//   that lacks it is preceded by a hidden Parse; the connection keeps at most
//   max_prepared_statements, the least recently used are Closed.
// - Every Parse pgmux sends is preceded by a hidden Close of the same name, so that a statement
//   pgmux wrongly believed absent (or that went stale) can never make it fail.
// - A client's Close of its own name answers CloseComplete through a Close of a name that never
//   exists: the server answers in order, and the shared statement stays for others.
// - The unnamed statement: a Bind or Describe of it on a connection that does not hold this
//   client's latest unnamed Parse is preceded by a hidden re-Parse; without one, by a Close of
//   the unnamed statement, so that another client's unnamed statement is never used.
// - A client's named statements are bounded in count and bytes (client_prepared): pgmux keeps
//   their text for as long as the client stays.
// - Statements the server reports gone or stale (26000, or 0A000 "cached plan must not change
//   result type") are forgotten, so the next use prepares them afresh.
// - Result types: PostgreSQL fails every use of a prepared statement with 0A000 once a schema
//   change alters the rows it returns. A client that was shown a statement's rows (a Describe
//   of it, or of the unnamed portal bound from it) keeps that type; where pgmux prepares the statement
//   afresh for it (or finds it there with another or an unknown type), a hidden Describe asks
//   the server first and the client's message waits for the answer (translate_status::wait).
//   Once the types differ, every Bind and Describe of that name fails with 0A000 in place, on
//   any server connection, until the client prepares the name again or the server's type is
//   the client's again (asked at each use meanwhile). Not for statements without rows, nor for
//   those with thousands of parameters (their description would not fit the relay's buffer).
// Pure: no sockets. The relay calls these with the bytes it holds.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pgmux/protocol/response_queue.hpp"
#include "pgmux/protocol/statements.hpp"

namespace pgmux::protocol {

// One client's side: its statement names and an id no other client of this process has.
struct client_prepared {
  explicit client_prepared(std::uint64_t client_id) : id(client_id) {}
  std::uint64_t id;
  client_statements statements;
  // Bounds on the named statements (max_client_statements, max_client_statement_bytes): a
  // Parse that would pass either fails with 54000 in its place of the response stream, and the
  // rest of its batch is skipped up to Sync, as after any error.
  std::uint32_t max_statements = UINT32_MAX;
  std::uint32_t max_bytes = UINT32_MAX;
  // The named statement the client last bound to the unnamed portal (null or "" for none), so
  // that a Describe of that portal tells the statement's result type (drivers use the unnamed
  // portal). Made at the first such Bind and reused: a client that never binds a named
  // statement to it, as most idle ones, pays a pointer.
  std::unique_ptr<std::string> unnamed_portal_statement;
  std::string_view unnamed_portal_name() const noexcept {
    return unnamed_portal_statement ? std::string_view(*unnamed_portal_statement) : std::string_view{};
  }
};

// The statement name of `DEALLOCATE [PREPARE] name [;]` as PostgreSQL reads it (unquoted
// names fold to lower case), or nullopt for any other SQL, DEALLOCATE ALL included.
std::optional<std::string> deallocated_name(std::string_view sql);

// A result type as a RowDescription ('T', by column names, types and type modifiers, not by
// formats or source columns) or NoData ('n') gives it; 0 for a malformed RowDescription.
std::uint64_t row_shape(char tag, std::string_view body) noexcept;

// One server connection's side, as far as pgmux knows.
struct server_prepared {
  explicit server_prepared(std::size_t max_statements = 1000) : statements(max_statements) {}
  server_statements statements;
  response_queue responses;
  // Whose unnamed statement the server holds: a client id and that client's unnamed
  // generation. 0: none, or unknown (a simple Query destroys the unnamed statement).
  std::uint64_t unnamed_client = 0;
  std::uint64_t unnamed_generation = 0;
  // Parses, Binds and Describes whose failure or answer pgmux must hear of: the server name
  // they use, and the client's name of the statement (for its own Parse, which PostgreSQL would
  // not define either when it fails; for a Describe, whose answer is the type the client sees).
  // Cleared whenever nothing is in flight.
  struct watched_request {
    std::uint32_t token;
    std::string server_name;
    std::string client_name;
    // The raising block of a statement whose result type changed: its error is replaced by
    // PostgreSQL's own (drivers such as asyncpg and postgres.js tell it by its routine and
    // prepare the statement again).
    bool result_changed = false;
  };
  std::vector<watched_request> watched;
  std::uint32_t next_token = 1;
  // The watch token of the hidden Describe whose answer a client's message waits for
  // (translate_status::wait), 0 when none.
  std::uint32_t verifying = 0;
  // scan_stop::replace: what the client gets instead of the error at the front.
  std::string replacement;
  // Counts for the metrics, taken (and zeroed) when the lease ends.
  std::uint64_t stale_statements = 0;  // statements forgotten because the server said so
  std::uint64_t prepares = 0;          // Parses sent for named statements (the client's or pgmux's own)

  // Everything sent may or may not have taken effect (a client vanished mid-batch and the
  // connection was cleaned up): forget what cannot be vouched for.
  void reset_after_cleanup();
};

// wait: nothing of the message is consumed; what `out` holds (a hidden Describe and a Flush)
// goes to the server, and the message is translated again once server_prepared::verifying is 0.
enum class translate_status { done, need_more, invalid, wait };

struct translate_result {
  translate_status status = translate_status::need_more;
  std::size_t consumed = 0;  // bytes of `buffered` used up
  std::size_t rest = 0;      // Bind: body bytes after the names, to be relayed unchanged
  const char* error = nullptr;
  std::uint64_t hidden_statements = 0;  // Query: statements pgmux added (tx_tracker::hidden_statements)
};

// `buffered` starts with a Parse, Bind, Describe or Close of the client (the whole message; for
// Bind at least its names). Appends what the server must receive instead to `out` and records
// every request in server.responses. need_more: the message (or the Bind names) is not all
// there yet; `buffer_capacity` tells a message too large to ever be there (Bind names).
// With `seen_sql`, the SQL of a Parse is inspected (sql_inspect.hpp) and noted there; a Query or
// Parse that names pgmux's own statements (SQL PREPARE, EXECUTE or DEALLOCATE of a reserved
// name that is not the client's own) is replaced by reserved_statement_refusal_sql().
struct sql_watch;
// `may_wait` false: translate without asking the server first (a relay that cannot wait).
// With `restorable` (the client's startup values; only while this Query is all that is
// outstanding), a Query that RESETs them gets their restore added (reset_restore.hpp).
struct parameter_change;
translate_result translate_frontend(std::string_view buffered, std::size_t buffer_capacity, client_prepared& client,
                                    server_prepared& server, std::string& out, sql_watch* seen_sql = nullptr,
                                    bool may_wait = true, const std::vector<parameter_change>* restorable = nullptr);

// A backend message whose answer pgmux watched failed with this ErrorResponse body, or was
// skipped by the server: forget the statement it assumed.
void note_request_failed(server_prepared& server, client_prepared* client, std::uint32_t token,
                         std::string_view error_body);
void note_request_skipped(server_prepared& server, client_prepared* client, std::uint32_t token);
// The RowDescription or NoData (`tag`, `body`) answering the Describe watched with `token`: the
// statement's result type on this connection and, the first time, the type its client saw.
void note_statement_described(server_prepared& server, client_prepared* client, std::uint32_t token, char tag,
                              std::string_view body);
// Whether the ErrorResponse answering the request watched with `token` is to be replaced (see
// watched_request::result_changed); if so, the replacement is in server.replacement.
bool replaces_error(server_prepared& server, std::uint32_t token);
// Every request the response queue reports skipped since it was last asked.
void note_skipped_requests(server_prepared& server, client_prepared* client);
// CommandComplete of the client's own SQL: DISCARD ALL and DEALLOCATE ALL drop every prepared
// statement of the connection (and the client's names with them).
void note_command_complete(server_prepared& server, client_prepared& client, std::string_view body);
// Nothing is in flight any more: watch tokens can be forgotten.
void note_idle(server_prepared& server);

}  // namespace pgmux::protocol
