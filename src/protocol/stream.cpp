// Chunked relay scanning for both directions.
#include "pgmux/protocol/stream.hpp"

#include <algorithm>
#include <limits>

#include "pgmux/protocol/frame.hpp"

namespace pgmux::protocol {
namespace {

// Passes over the rest of a message already started. Returns false when the buffer ran out.
bool pass_remaining(std::string_view buffered, std::size_t& pos, stream_cursor& cursor) {
  const std::size_t take = std::min(cursor.remaining, buffered.size() - pos);
  pos += take;
  cursor.remaining -= take;
  return cursor.remaining == 0;
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

scan_result scan_frontend(std::string_view buffered, stream_cursor& cursor, tx_tracker& tx, std::size_t max_len) {
  std::size_t pos = 0;
  for (;;) {
    if (cursor.remaining > 0 && !pass_remaining(buffered, pos, cursor)) return {pos, scan_stop::need_more};
    const auto h = parse_header(buffered.substr(pos), max_len);
    if (h.status == parse_status::need_more) return {pos, scan_stop::need_more};
    if (h.status == parse_status::invalid) return {pos, scan_stop::invalid, h.error};
    const char tag = h.hdr.tag;
    if (!is_frontend_message(tag)) return {pos, scan_stop::invalid, "unknown message type"};
    switch (tag) {
      case 'X': return {pos, scan_stop::terminate};
      case 'Q':
        ++tx.outstanding;
        tx.syncs_since_request = 0;
        tx.last_request_extended = false;
        break;
      case 'F': ++tx.outstanding; break;
      case 'E':
        tx.open_batch = true;
        tx.syncs_since_request = 0;
        tx.last_request_extended = true;
        break;
      case 'S':
        if (tx.copy_in) break;  // ignored by the server during COPY FROM STDIN
        ++tx.outstanding;
        ++tx.syncs_since_request;
        tx.open_batch = false;
        break;
      case 'H':
        if (!tx.copy_in) tx.open_batch = true;
        break;
      case 'c': case 'f':
        if (tx.copy_in) {
          tx.copy_in = false;
          if (tx.copy_extended) tx.open_batch = true;  // the server now waits for a Sync
        }
        break;
      case 'd': break;
      default: tx.open_batch = true; break;  // Parse, Bind, Describe, Close
    }
    cursor.remaining = h.hdr.total();
  }
}

scan_result scan_backend(std::string_view buffered, stream_cursor& cursor, tx_tracker& tx, bool stop_when_idle) {
  constexpr auto unlimited = std::numeric_limits<std::size_t>::max();
  std::size_t pos = 0;
  for (;;) {
    if (cursor.remaining > 0 && !pass_remaining(buffered, pos, cursor)) return {pos, scan_stop::need_more};
    const auto rest = buffered.substr(pos);
    const auto h = parse_header(rest, unlimited);
    if (h.status == parse_status::need_more) return {pos, scan_stop::need_more};
    if (h.status == parse_status::invalid) return {pos, scan_stop::invalid, h.error};
    switch (h.hdr.tag) {
      case 'Z': {
        if (h.hdr.length != 5) return {pos, scan_stop::invalid, "malformed ReadyForQuery"};
        if (rest.size() < 6) return {pos, scan_stop::need_more};
        if (tx.outstanding > 0) {
          --tx.outstanding;
          ++tx.answered;
        }
        tx.status = rest[5];
        tx.copy_in = false;
        pos += 6;
        if (stop_when_idle && tx.idle()) return {pos, scan_stop::end_of_transaction};
        continue;
      }
      case 'G':
        tx.copy_in = true;
        tx.copy_extended = tx.last_request_extended;
        tx.outstanding -= tx.syncs_since_request;  // those reach the server during the COPY: ignored
        if (tx.outstanding < 0) tx.outstanding = 0;
        tx.syncs_since_request = 0;
        break;
      default: break;
    }
    cursor.remaining = h.hdr.total();
  }
}

}  // namespace pgmux::protocol
