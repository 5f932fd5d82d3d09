// Relaying a byte stream in chunks: where messages end, what may be forwarded now, and the
// request/response bookkeeping that tells when a server connection is between transactions.
// Only headers are read, plus the one-byte body of ReadyForQuery; bodies are never copied.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

namespace pgmux::protocol {

// What the relay knows about one server connection's conversation.
struct tx_tracker {
  int outstanding = 0;      // Query / Sync / FunctionCall sent whose ReadyForQuery has not come back
  bool open_batch = false;  // extended-protocol messages sent since the last Sync
  // Parse, Bind, Describe, Close or Execute sent since the last Sync: after an error in one of
  // them the server skips everything up to the Sync, a Query or FunctionCall too, whose
  // ReadyForQuery would then never come. Such a Query is refused instead (see scan_frontend).
  bool unsynced_extended = false;
  bool copy_in = false;     // the server waits for CopyData from the client
  char status = 'I';        // transaction status of the last ReadyForQuery
  unsigned answered = 0;    // ReadyForQuery that answered a request, ever (wraps; for differences)

  // COPY FROM STDIN: the server ignores Sync and Flush while it waits for CopyData, so Syncs
  // sent after the request that started the COPY are uncounted when CopyInResponse comes.
  int syncs_since_request = 0;     // Syncs sent since the last Query or Execute
  bool last_request_extended = false;  // that request was an Execute
  bool copy_extended = false;      // the running COPY came from an Execute: it ends with a Sync
  // CopyDone or CopyFail sent since the last Query or Execute before the server said a COPY
  // started (a client that does not wait for CopyInResponse): the server reads them in that
  // COPY, so Syncs sent after them reach it after the COPY, and are answered.
  bool copy_ended_early = false;
  // Syncs pgmux does not count because of a COPY are only known to be ignored when nothing but
  // Flush/Sync separated them from the request that started it: after CopyData the server may
  // already have failed the COPY (bad data, cancel), and then it answers them.
  bool data_since_request = false;     // CopyData sent since the last Query/Execute/FunctionCall
  bool syncs_after_data = false;       // a Sync counted in syncs_since_request came after CopyData
  bool copy_syncs_uncertain = false;   // uncounted Syncs are right only if this COPY ends with CommandComplete
  bool copy_msg_while_busy = false;    // CopyData/Done/Fail sent with a request unanswered (since quiet)
  bool request_after_copy_msg = false; // ...and a request after it: a CopyInResponse may be an earlier request's
  // Statement pooling: a ReadyForQuery that would leave a transaction open ends the relay
  // before it is passed on (the session then refuses the transaction).
  bool single_statement = false;
  // The server sent an ErrorResponse of severity FATAL or PANIC, relayed to the client: the
  // server ends the connection, and the client has been told why.
  bool server_fatal = false;
  // A Query pgmux rewrote to restore the client's startup values after a RESET
  // (reset_restore.hpp): bit i set when the answers of its statement i are pgmux's, to be
  // dropped; statements_answered counts the statements answered so far. Both clear at its
  // ReadyForQuery.
  std::uint64_t hidden_statements = 0;
  unsigned statements_answered = 0;

  // Between transactions: nothing asked, nothing owed, no transaction open.
  bool idle() const noexcept { return outstanding == 0 && !open_batch && status == 'I'; }
};

// Position inside the message being relayed.
struct stream_cursor {
  std::size_t remaining = 0;  // bytes of the current message not yet passed on
};

enum class scan_stop {
  need_more,           // everything complete has been accounted; read more
  end_of_transaction,  // (backend) ReadyForQuery left the connection idle; stop after `forward`
  terminate,           // (frontend) a Terminate message starts at `forward`
  invalid,             // protocol violation at `forward`; see error
  intercept,           // (frontend, prepared statements) a Parse, Bind, Describe or Close starts at
                       // `forward`: translate_frontend rewrites it
  drop,                // (backend, prepared statements) the complete message at `forward` answers
                       // pgmux's own request: the client must not see it
  replace,             // (backend, prepared statements) the complete message at `forward` is an error
                       // pgmux had the server raise: the client gets server_prepared::replacement
                       // in its place
};

struct scan_result {
  std::size_t forward = 0;  // bytes from the start of the buffer that may be passed on now
  scan_stop stop = scan_stop::need_more;
  const char* error = nullptr;
};

struct server_prepared;
struct client_prepared;
struct parameter_change;

// Client -> server. Counts requests into `tx`; rejects unknown message types and lengths over
// max_len, and messages whose answer the tracker could not foresee: anything but CopyData,
// CopyDone, CopyFail, Flush and Sync during COPY FROM STDIN (the server fails the COPY and
// swallows the message), and a Query or FunctionCall after extended-protocol messages not yet
// closed by a Sync (after an error there, the server skips them). Stops before a Terminate. With `prepared` (transaction pooling), records every
// request in its response queue and stops before each Parse, Bind, Describe and Close.
// With `seen_sql` (transaction pooling), the text of every Query is inspected (sql_inspect.hpp)
// and noted there: a Query up to `inspect_limit` bytes is waited for whole, a longer one is
// inspected as far as it is buffered. With `prepared`, a Query naming pgmux's own statements is
// intercepted for translate_frontend to refuse. With `restorable` (the client's startup values,
// reset_restore.hpp), a Query sent while nothing is outstanding that RESETs one of them is
// waited for whole (up to `inspect_limit`) and intercepted, for the relay to add their restore.
// With `statements` (per-query statistics), every request is told to it as tx counts it; a
// Query, Parse, Bind or Close up to `inspect_limit` bytes is waited for whole first, a longer
// one for its first statement_text_prefix bytes.
inline constexpr std::size_t statement_text_prefix = 8 * 1024;
struct sql_watch;
class statement_tracker;
scan_result scan_frontend(std::string_view buffered, stream_cursor& cursor, tx_tracker& tx, std::size_t max_len,
                          server_prepared* prepared = nullptr, sql_watch* seen_sql = nullptr,
                          std::size_t inspect_limit = 0, const std::vector<parameter_change>* restorable = nullptr,
                          statement_tracker* statements = nullptr);

// Server -> client. Counts ReadyForQuery out of `tx`. With stop_when_idle, stops right after
// the ReadyForQuery that leaves the connection idle (transaction pooling). With `prepared`,
// matches every message to its request, stops before answers to pgmux's own requests, and
// learns from errors and CommandCompletes what statements the connection holds; messages it
// must read whole are waited for unless longer than `inspect_limit` (the buffer's size).
struct session_settings;
class listen_set;
struct backend_context {
  server_prepared* server = nullptr;
  client_prepared* client = nullptr;
  std::size_t inspect_limit = 0;
  // Transaction pooling: ParameterStatus updates what the server has and the client wants.
  session_settings* server_settings = nullptr;
  std::shared_ptr<const session_settings>* client_settings = nullptr;
  // Transaction pooling: a NotificationResponse reaches the client only for a channel in its
  // listen set; others (registrations another client left) are dropped and counted here.
  const listen_set* listening = nullptr;
  unsigned* dropped_notifications = nullptr;
  // Per-query statistics: the ErrorResponses, CommandCompletes (read whole, up to inspect_limit)
  // and ReadyForQuery the client gets are told to it.
  statement_tracker* statements = nullptr;
};
scan_result scan_backend(std::string_view buffered, stream_cursor& cursor, tx_tracker& tx, bool stop_when_idle,
                         const backend_context& prepared = {});

// True for the message types a client may send after startup.
bool is_frontend_message(char tag) noexcept;

}  // namespace pgmux::protocol
