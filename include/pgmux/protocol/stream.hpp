// Relaying a byte stream in chunks: where messages end, what may be forwarded now, and the
// request/response bookkeeping that tells when a server connection is between transactions.
// Only headers are read, plus the one-byte body of ReadyForQuery; bodies are never copied.
#pragma once
#include <cstddef>
#include <string_view>

namespace pgmux::protocol {

// What the relay knows about one server connection's conversation.
struct tx_tracker {
  int outstanding = 0;      // Query / Sync / FunctionCall sent whose ReadyForQuery has not come back
  bool open_batch = false;  // extended-protocol messages sent since the last Sync
  bool copy_in = false;     // the server waits for CopyData from the client
  char status = 'I';        // transaction status of the last ReadyForQuery
  unsigned answered = 0;    // ReadyForQuery that answered a request, ever (wraps; for differences)

  // COPY FROM STDIN: the server ignores Sync and Flush while it waits for CopyData, so Syncs
  // sent after the request that started the COPY are uncounted when CopyInResponse comes.
  int syncs_since_request = 0;     // Syncs sent since the last Query or Execute
  bool last_request_extended = false;  // that request was an Execute
  bool copy_extended = false;      // the running COPY came from an Execute: it ends with a Sync

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
};

struct scan_result {
  std::size_t forward = 0;  // bytes from the start of the buffer that may be passed on now
  scan_stop stop = scan_stop::need_more;
  const char* error = nullptr;
};

// Client -> server. Counts requests into `tx`; rejects unknown message types and lengths over
// max_len. Stops before a Terminate.
scan_result scan_frontend(std::string_view buffered, stream_cursor& cursor, tx_tracker& tx, std::size_t max_len);

// Server -> client. Counts ReadyForQuery out of `tx`. With stop_when_idle, stops right after
// the ReadyForQuery that leaves the connection idle (transaction pooling).
scan_result scan_backend(std::string_view buffered, stream_cursor& cursor, tx_tracker& tx, bool stop_when_idle);

// True for the message types a client may send after startup.
bool is_frontend_message(char tag) noexcept;

}  // namespace pgmux::protocol
