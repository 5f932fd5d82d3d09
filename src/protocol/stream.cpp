// Chunked relay scanning for both directions.
#include "pgmux/protocol/stream.hpp"

#include <algorithm>
#include <limits>

#include "pgmux/protocol/frame.hpp"
#include "pgmux/protocol/decode.hpp"
#include "pgmux/protocol/extended.hpp"
#include "pgmux/protocol/prepared.hpp"
#include "pgmux/protocol/reset_restore.hpp"
#include "pgmux/protocol/session_settings.hpp"
#include "pgmux/protocol/sql_inspect.hpp"
#include "pgmux/protocol/statement_tracker.hpp"

namespace pgmux::protocol {
namespace {

// The answers of a statement pgmux adds (set_config of a client's startup values) are read whole
// to be dropped: they are short, but held to this where the caller set no inspect_limit.
constexpr std::size_t hidden_answer_limit = 8 * 1024;

// Passes over the rest of a message already started. Returns false when the buffer ran out.
bool pass_remaining(std::string_view buffered, std::size_t& pos, stream_cursor& cursor) {
  const std::size_t take = std::min(cursor.remaining, buffered.size() - pos);
  pos += take;
  cursor.remaining -= take;
  return cursor.remaining == 0;
}

void note_request(tx_tracker& tx) noexcept {
  if (tx.copy_msg_while_busy) tx.request_after_copy_msg = true;
  tx.data_since_request = false;
  tx.syncs_after_data = false;
}

void count_query(tx_tracker& tx) noexcept {
  note_request(tx);
  ++tx.outstanding;
  tx.syncs_since_request = 0;
  tx.last_request_extended = false;
  tx.copy_ended_early = false;
}

// CopyData, CopyDone or CopyFail with no COPY running, after Parse, Bind, Describe, Close or
// Execute not yet followed by a Sync. Where the server's statement_timeout fired meanwhile (its
// timer runs until the Sync), reading one of these raises the error without skipping to the
// Sync, and PostgreSQL 15 answers it with a ReadyForQuery of its own: one more than pgmux could
// count. No driver sends them there (they wait for CopyInResponse), so the client is refused.
// (After an Execute's COPY that the server failed, the client's remaining COPY messages are
// expected: the server skips them up to the Sync.)
bool stray_copy(const tx_tracker& tx) noexcept { return !tx.copy_in && tx.unsynced_extended && !tx.copy_extended; }

scan_result stray_copy_message(std::size_t pos) {
  return {pos, scan_stop::invalid, "CopyData, CopyDone or CopyFail in an extended-protocol batch with no COPY running"};
}

enum class keyword_match { no, yes, unknown };

// Whether the SQL `text` (the start of it unless `whole`) begins, after blanks and comments,
// with the word DEALLOCATE in any case. unknown: the bytes so far cannot tell.
keyword_match starts_with_deallocate(std::string_view text, bool whole) noexcept {
  constexpr std::string_view word = "deallocate";
  std::size_t at = skip_blanks_and_comments(text, 0);
  for (std::size_t i = 0; i < word.size(); ++i, ++at) {
    if (at == text.size()) return whole ? keyword_match::no : keyword_match::unknown;
    const char c = text[at];
    if ((c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c) != word[i]) return keyword_match::no;
  }
  if (at == text.size()) return whole ? keyword_match::yes : keyword_match::unknown;
  const char next = text[at];
  const auto u = static_cast<unsigned char>(next);
  const bool ends_word = !((next >= 'a' && next <= 'z') || (next >= 'A' && next <= 'Z') || (next >= '0' && next <= '9') ||
                           next == '_' || next == '$' || u >= 0x80);
  return ends_word ? keyword_match::yes : keyword_match::no;
}

}  // namespace

bool is_frontend_message(char tag) noexcept {
  switch (tag) {
    case 'B': case 'C': case 'd': case 'c': case 'f': case 'D': case 'E':
    case 'H': case 'F': case 'P': case 'Q': case 'S': case 'X':
      return true;
    default:
      return false;
  }
}

scan_result scan_frontend(std::string_view buffered, stream_cursor& cursor, tx_tracker& tx, std::size_t max_len,
                          server_prepared* prepared, sql_watch* seen_sql, std::size_t inspect_limit,
                          const std::vector<parameter_change>* restorable, statement_tracker* statements) {
  std::size_t pos = 0;
  for (;;) {
    if (cursor.remaining > 0 && !pass_remaining(buffered, pos, cursor)) return {pos, scan_stop::need_more};
    const auto h = parse_header(buffered.substr(pos), max_len);
    if (h.status == parse_status::need_more) return {pos, scan_stop::need_more};
    if (h.status == parse_status::invalid) return {pos, scan_stop::invalid, h.error};
    const char tag = h.hdr.tag;
    if (!is_frontend_message(tag)) return {pos, scan_stop::invalid, "unknown message type"};
    if (tx.copy_in && tag != 'd' && tag != 'c' && tag != 'f' && tag != 'H' && tag != 'S')
      return {pos, scan_stop::invalid, "only CopyData, CopyDone, CopyFail, Flush and Sync are allowed during COPY FROM STDIN"};
    // A Flush with a body fails outside COPY, and the server then skips everything to a Sync.
    if (tag == 'H' && h.hdr.length != 4) return {pos, scan_stop::invalid, "malformed Flush"};
    if (tx.unsynced_extended && (tag == 'Q' || tag == 'F'))
      return {pos, scan_stop::invalid, "Query or FunctionCall before the Sync that ends an extended-protocol batch"};
    if (statements && (tag == 'Q' || tag == 'P' || tag == 'B' || tag == 'C')) {
      // Per-query statistics read the statement's text (or, for Bind and Close, the names): held
      // whole when it fits in the buffer, else its first statement_text_prefix bytes, so that the
      // same SQL always counts as the same statement however the reads cut it.
      const std::size_t wanted = h.hdr.total() <= inspect_limit
                                     ? h.hdr.total()
                                     : std::min(h.hdr.total(), header_size + statement_text_prefix);
      if (buffered.size() - pos < wanted && wanted <= inspect_limit) return {pos, scan_stop::need_more};
      const std::size_t available = std::min(buffered.size() - pos, wanted);
      statements->on_frontend(tag, buffered.substr(pos + header_size, available - header_size));
    }
    if (tag == 'Q' && (prepared || seen_sql || restorable)) {
      const std::size_t available = std::min(buffered.size() - pos, h.hdr.total());
      const bool whole = available == h.hdr.total();
      if ((seen_sql || restorable) && !whole && h.hdr.total() <= inspect_limit) return {pos, scan_stop::need_more};
      auto text = buffered.substr(pos + header_size, available - header_size);
      if (whole && !text.empty() && text.back() == '\0') text.remove_suffix(1);
      auto deallocate = prepared ? starts_with_deallocate(text, whole) : keyword_match::no;
      if (deallocate == keyword_match::unknown) {
        if (h.hdr.total() <= inspect_limit) return {pos, scan_stop::need_more};
        // Blanks and comments fill all the buffer can hold of it: waiting for more would stall
        // the relay. No DEALLOCATE of a client's name (translate_frontend) is that long.
        deallocate = keyword_match::no;
      }
      // A RESET of a startup value, in a Query the client waits for alone: its restore is added.
      // One pass tells most queries apart from SQL the lexer must read (sql_may_matter).
      const bool matters = sql_may_matter(text);
      const bool may_restore = matters && restorable && whole && tx.outstanding == 0 && !tx.open_batch && may_reset(text);
      // Checked once per message: the header is not scanned again after this.
      sql_findings found;
      if (matters && (seen_sql || may_restore || text.find('_') != std::string_view::npos)) found = inspect_sql_unfiltered(text);
      // Refused SQL never runs: nothing of it is noted (translate_frontend replaces it).
      const bool refused = seen_sql && prepared && seen_sql->refuses(found);
      if (seen_sql && !refused) seen_sql->note(found);
      // What passes unread could DEALLOCATE and PREPARE a shared statement's name again: the
      // connection's statements are not to be trusted after it.
      if (seen_sql && prepared && !whole) seen_sql->statements_untrusted = true;
      // DEALLOCATE of a statement name is the client's, and SQL naming pgmux's own statements
      // is refused: translate_frontend rewrites both. Other queries are not held up.
      const bool restore = may_restore && !refused && restores_any(found.resets, *restorable);
      if ((prepared && (deallocate == keyword_match::yes || found.reserved_statement_name || refused)) || restore) {
        count_query(tx);  // counted here: the relay never scans this header again
        return {pos, scan_stop::intercept};
      }
    }
    if (tag == 'P' && seen_sql && !prepared) {
      // Without statement rewriting (max_prepared_statements 0) a Parse goes through unchanged,
      // but its SQL may still LISTEN or leave session state. One too long to read whole leaves
      // the connection untrusted: it is closed when the transaction ends.
      const std::size_t available = std::min(buffered.size() - pos, h.hdr.total());
      if (available < h.hdr.total()) {
        if (h.hdr.total() <= inspect_limit) return {pos, scan_stop::need_more};
        seen_sql->statements_untrusted = true;
      } else if (const auto parse = decode_parse(buffered.substr(pos + header_size, h.hdr.body_size()))) {
        seen_sql->note(inspect_sql(parse->query));
      }
    }
    if (prepared) {
      auto& responses = prepared->responses;
      switch (tag) {
        case 'P': case 'B': case 'D': case 'C':
          tx.open_batch = true;
          tx.unsynced_extended = true;
          return {pos, scan_stop::intercept};
        case 'Q': {
          responses.push(request_kind::query);
          prepared->unnamed_client = 0;  // a simple Query destroys the unnamed statement
          break;
        }
        case 'E': responses.push(request_kind::execute); break;
        case 'S': responses.push(request_kind::sync); break;
        case 'F': responses.push(request_kind::function_call); break;
        case 'c': case 'f': responses.copy_ended(); break;
        default: break;
      }
    }
    switch (tag) {
      case 'X': return {pos, scan_stop::terminate};
      case 'Q': count_query(tx); break;
      case 'F':
        note_request(tx);
        ++tx.outstanding;
        if (statements) statements->on_frontend('F', {});
        break;
      case 'E':
        if (statements) {
          const std::size_t available = std::min(buffered.size() - pos, h.hdr.total());
          statements->on_frontend('E', buffered.substr(pos + header_size, available - header_size));
        }
        note_request(tx);
        tx.open_batch = true;
        tx.unsynced_extended = true;
        tx.syncs_since_request = 0;
        tx.last_request_extended = true;
        tx.copy_ended_early = false;
        break;
      case 'S':
        if (tx.copy_in) {  // ignored by the server during COPY FROM STDIN, unless it failed the COPY already
          if (tx.data_since_request) tx.copy_syncs_uncertain = true;
          break;
        }
        ++tx.outstanding;
        if (statements) statements->on_frontend('S', {});
        if (!tx.copy_ended_early) {
          ++tx.syncs_since_request;
          if (tx.data_since_request) tx.syncs_after_data = true;
        }
        tx.open_batch = false;
        tx.unsynced_extended = false;
        break;
      case 'H':
        if (!tx.copy_in) tx.open_batch = true;
        break;
      case 'c': case 'f':
        if (stray_copy(tx)) return stray_copy_message(pos);
        // Sent before the server said which request's COPY runs: see request_after_copy_msg.
        if (!tx.copy_in && (tx.outstanding > 0 || tx.open_batch)) tx.copy_msg_while_busy = true;
        if (tx.copy_in) {
          tx.copy_in = false;
          // the server now waits for a Sync, and skips to it after a failed COPY
          if (tx.copy_extended) tx.open_batch = tx.unsynced_extended = true;
        } else {
          tx.copy_ended_early = true;  // a COPY may yet start, and this would end it
        }
        break;
      case 'd':
        if (stray_copy(tx)) return stray_copy_message(pos);
        tx.data_since_request = true;
        if (!tx.copy_in && (tx.outstanding > 0 || tx.open_batch)) tx.copy_msg_while_busy = true;
        break;
      default:  // Parse, Bind, Describe, Close
        tx.open_batch = true;
        tx.unsynced_extended = true;
        break;
    }
    cursor.remaining = h.hdr.total();
  }
}

scan_result scan_backend(std::string_view buffered, stream_cursor& cursor, tx_tracker& tx, bool stop_when_idle,
                         const backend_context& prepared) {
  constexpr auto unlimited = std::numeric_limits<std::size_t>::max();
  std::size_t pos = 0;
  for (;;) {
    if (cursor.remaining > 0 && !pass_remaining(buffered, pos, cursor)) return {pos, scan_stop::need_more};
    const auto rest = buffered.substr(pos);
    const auto h = parse_header(rest, unlimited);
    if (h.status == parse_status::need_more) return {pos, scan_stop::need_more};
    if (h.status == parse_status::invalid) return {pos, scan_stop::invalid, h.error};
    if (prepared.listening && h.hdr.tag == 'A') {
      // A notification for a channel this client never LISTENed on came from a registration
      // another client left on the connection: the client must not see it.
      if (rest.size() < h.hdr.total()) {
        if (h.hdr.total() <= prepared.inspect_limit) return {pos, scan_stop::need_more};
        return {pos, scan_stop::invalid, "oversized NotificationResponse"};
      }
      const auto notification = decode_notification(rest.substr(header_size, h.hdr.body_size()));
      if (!notification) return {pos, scan_stop::invalid, "malformed NotificationResponse"};
      if (!prepared.listening->contains(notification->channel)) {
        if (prepared.dropped_notifications) ++*prepared.dropped_notifications;
        return {pos, scan_stop::drop};
      }
    }
    if (prepared.server_settings && h.hdr.tag == 'S') {
      // The client's own SET (or its revert): the server has the value now, and the client wants it.
      if (rest.size() < h.hdr.total() && h.hdr.total() <= prepared.inspect_limit) return {pos, scan_stop::need_more};
      if (rest.size() >= h.hdr.total()) {
        if (auto status = decode_parameter_status(rest.substr(header_size, h.hdr.body_size())))
          note_parameter_status(prepared.client_settings, *prepared.server_settings, status->first, status->second);
      }
    }
    // Per-query statistics count the rows a CommandComplete reports: read whole.
    if (prepared.statements && h.hdr.tag == 'C' && rest.size() < h.hdr.total() && h.hdr.total() <= prepared.inspect_limit)
      return {pos, scan_stop::need_more};
    // An answer of a statement pgmux added to the Query (reset_restore.hpp): dropped whole.
    const bool statement_answer = h.hdr.tag == 'T' || h.hdr.tag == 'D' || h.hdr.tag == 'C' || h.hdr.tag == 'I';
    const bool hidden_answer = statement_answer && tx.statements_answered < 64 &&
                               ((tx.hidden_statements >> tx.statements_answered) & 1u) != 0;
    if (hidden_answer && rest.size() < h.hdr.total()) {
      if (h.hdr.total() <= std::max(prepared.inspect_limit, hidden_answer_limit)) return {pos, scan_stop::need_more};
      return {pos, scan_stop::invalid, "oversized answer to a statement of pgmux's own"};
    }
    if (auto* server = prepared.server) {
      const char tag = h.hdr.tag;
      const std::size_t total = h.hdr.total();
      // Messages pgmux may drop or must read: wait until they are whole (unless they could
      // never fit, which only very long error texts could do).
      const bool read_whole = tag == '1' || tag == '3' || tag == 'E' || tag == 'C' || tag == 'Z' || tag == 'T' ||
                              server->responses.next_hidden();
      const bool whole = rest.size() >= total;
      if (read_whole && !whole && total <= prepared.inspect_limit) return {pos, scan_stop::need_more};
      const auto decision = server->responses.on_backend(tag);
      if (decision.unexpected) return {pos, scan_stop::invalid, "the server sent a message that answers no request"};
      // A dropped message leaves the buffer whole; pgmux's own requests get only short answers.
      if (!decision.forward && !whole) return {pos, scan_stop::invalid, "oversized answer to pgmux's own request"};
      const auto body = whole ? rest.substr(header_size, h.hdr.body_size()) : std::string_view{};
      // A failed Parse needs nothing from the error (odd tokens): even one too long to hold counts.
      if (decision.failed != 0 && (whole || (decision.failed & 1u)))
        note_request_failed(*server, prepared.client, decision.failed, body);
      if (decision.failed != 0 && tag == 'E' && whole && replaces_error(*server, decision.failed)) {
        if (!server->responses.skipped().empty()) note_skipped_requests(*server, prepared.client);
        return {pos, scan_stop::replace};
      }
      // One too long to hold (thousands of columns) counts as a type not known.
      if (decision.described != 0) note_statement_described(*server, prepared.client, decision.described, tag, body);
      if (!server->responses.skipped().empty()) note_skipped_requests(*server, prepared.client);
      if (tag == 'C' && whole && prepared.client) note_command_complete(*server, *prepared.client, body);
      if (!decision.forward) return {pos, scan_stop::drop};
      if (tag == 'Z' && server->responses.empty()) note_idle(*server);
    }
    if (tx.hidden_statements != 0 && (h.hdr.tag == 'C' || h.hdr.tag == 'I')) ++tx.statements_answered;
    if (hidden_answer) return {pos, scan_stop::drop};
    if (prepared.statements && (h.hdr.tag == 'E' || h.hdr.tag == 'C')) {
      const auto body = rest.size() >= h.hdr.total() ? rest.substr(header_size, h.hdr.body_size()) : std::string_view{};
      prepared.statements->on_backend(h.hdr.tag, body);
    }
    switch (h.hdr.tag) {
      case 'Z': {
        if (h.hdr.length != 5) return {pos, scan_stop::invalid, "malformed ReadyForQuery"};
        if (rest.size() < 6) return {pos, scan_stop::need_more};
        // Statement pooling: a statement that leaves a transaction open stops the relay before
        // its ReadyForQuery, which stays unread; the session answers the client with an error.
        if (stop_when_idle && tx.single_statement && rest[5] != 'I' && tx.outstanding <= 1 && !tx.open_batch)
          return {pos, scan_stop::end_of_transaction};
        // Every ReadyForQuery answers a Query, Sync or FunctionCall pgmux counted: one more
        // means the count went wrong, and the next answers would reach the wrong requests.
        if (tx.outstanding == 0) return {pos, scan_stop::invalid, "a ReadyForQuery that answers nothing pgmux sent"};
        --tx.outstanding;
        ++tx.answered;
        if (prepared.statements) prepared.statements->on_backend('Z', {});
        tx.status = rest[5];
        tx.copy_in = false;
        tx.copy_syncs_uncertain = false;
        if (tx.outstanding == 0 && !tx.open_batch) {
          tx.copy_msg_while_busy = tx.request_after_copy_msg = false;
          tx.copy_extended = false;  // the batch of the last COPY is over
        }
        tx.hidden_statements = 0;
        tx.statements_answered = 0;
        pos += 6;
        if (stop_when_idle && tx.idle()) return {pos, scan_stop::end_of_transaction};
        continue;
      }
      case 'E':
        if (tx.copy_syncs_uncertain)
          return {pos, scan_stop::invalid, "the server failed a COPY after Syncs it may or may not have ignored"};
        if (tx.copy_in) {  // an error ends COPY FROM STDIN: Syncs sent from now on are answered
          tx.copy_in = false;
          if (tx.copy_extended) tx.open_batch = tx.unsynced_extended = true;  // the server skips to the next Sync
        }
        if (rest.size() >= h.hdr.total()) {
          const auto fields = decode_error_response(rest.substr(header_size, h.hdr.body_size()));
          if (fields && (fields->severity == "FATAL" || fields->severity == "PANIC")) tx.server_fatal = true;
        }
        break;
      case 'C':
        tx.copy_syncs_uncertain = false;  // the COPY (or a statement before it) completed
        break;
      case 'G':
        if (tx.request_after_copy_msg)
          return {pos, scan_stop::invalid, "CopyInResponse with requests pipelined after COPY messages: its Syncs cannot be counted"};
        if (tx.syncs_after_data && tx.syncs_since_request > 0) tx.copy_syncs_uncertain = true;
        tx.copy_msg_while_busy = false;  // those COPY messages were this COPY's: settled
        // The client may have ended the COPY already: then the server reads no more of it.
        tx.copy_in = !tx.copy_ended_early;
        tx.copy_extended = tx.last_request_extended;
        tx.outstanding -= tx.syncs_since_request;  // those reach the server during the COPY: ignored
        if (tx.outstanding < 0) tx.outstanding = 0;
        if (prepared.statements) prepared.statements->ignored_syncs(static_cast<std::size_t>(tx.syncs_since_request));
        tx.syncs_since_request = 0;
        tx.copy_ended_early = false;
        break;
      default: break;
    }
    cursor.remaining = h.hdr.total();
  }
}

}  // namespace pgmux::protocol
