// The relay's use of the stream scanners, without sockets: bytes arrive in reads of varying
// size into a buffer of fixed capacity, scans say what may pass, intercepted messages go
// through translate_frontend (gathered whole when longer than the buffer), dropped answers are
// consumed. Every step checks what the relay (src/session/relay.cpp) relies on.
#pragma once
#include <algorithm>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "fuzz_support.hpp"
#include "pgmux/protocol/frame.hpp"
#include "pgmux/protocol/prepared.hpp"
#include "pgmux/protocol/session_settings.hpp"
#include "pgmux/protocol/sql_inspect.hpp"
#include "pgmux/protocol/stream.hpp"

namespace pgmux::fuzz {

// One client on one server connection, with the features an option byte turns on.
struct session {
  explicit session(std::uint8_t options)
      : prepared(options & 1), watch_sql(options & 2), settings(options & 4), single_statement(options & 8) {
    // Small buffers reach the "longer than the buffer" paths with small inputs.
    static constexpr std::size_t limits[] = {64, 256, 1024, 16 * 1024};
    limit = limits[(options >> 4) & 3];
    max_len = (options & 0x40) ? 512 : 1 << 20;
    tx.single_statement = single_statement;
    client.max_statements = (options & 0x80) ? 3 : UINT32_MAX;
    client.max_bytes = (options & 0x80) ? 200 : UINT32_MAX;
  }

  bool prepared, watch_sql, settings, single_statement;
  std::size_t limit = 0;    // the relay's buffer (io_buffer::block_size in pgmux)
  std::size_t max_len = 0;  // max_message_size
  protocol::tx_tracker tx;
  protocol::stream_cursor client_cursor, server_cursor;
  protocol::client_prepared client{7};
  protocol::server_prepared server{4};  // few, so that evictions happen
  protocol::sql_watch sql;
  protocol::session_settings server_settings;
  std::shared_ptr<const protocol::session_settings> client_settings = std::make_shared<protocol::session_settings>();
  unsigned dropped_notifications = 0;
  std::string to_server;  // rewritten messages (translate_frontend's output), reused
};

// Reads from a byte stream in pieces whose sizes a seed byte varies.
class reader {
 public:
  reader(std::string_view stream, std::uint8_t seed) : stream_(stream), seed_(seed) {}
  // Appends one read's worth, at most `room` bytes; false when the stream is exhausted.
  bool read_into(std::string& buf, std::size_t room) {
    if (pos_ == stream_.size() || room == 0) return false;
    const std::size_t n = std::min({room, read_size(seed_, round_++), stream_.size() - pos_});
    buf.append(stream_.substr(pos_, n));
    pos_ += n;
    return true;
  }

 private:
  std::string_view stream_;
  std::uint8_t seed_;
  std::size_t pos_ = 0, round_ = 0;
};

// Rewrites the intercepted message at the front of `buf`. False when the relay would end.
inline bool translate(session& s, std::string& buf, reader& in) {
  std::string gathered;  // a message longer than the buffer, gathered whole
  bool may_wait = true;
  for (;;) {
    const bool gathering = !gathered.empty();
    const std::string_view view = gathering ? std::string_view(gathered) : std::string_view(buf);
    s.to_server.clear();
    const auto t = protocol::translate_frontend(view, gathering ? SIZE_MAX : s.limit, s.client, s.server,
                                                s.to_server, s.watch_sql ? &s.sql : nullptr, may_wait && !gathering);
    if (t.status == protocol::translate_status::invalid) {
      FUZZ_CHECK(t.error != nullptr);
      return false;
    }
    if (t.status == protocol::translate_status::wait) {
      // A hidden Describe went out, whole messages ending with a Flush; nothing was consumed. The
      // relay waits for its answer, then translates again without waiting: here the answer is
      // NoData, which the client may or may not have been shown.
      FUZZ_CHECK(may_wait && !gathering && s.server.verifying != 0);
      FUZZ_CHECK(s.to_server.size() >= protocol::header_size && s.to_server[s.to_server.size() - 5] == 'H');
      protocol::note_statement_described(s.server, &s.client, s.server.verifying, 'n', {});
      FUZZ_CHECK(s.server.verifying == 0);
      may_wait = false;
      continue;
    }
    if (t.status == protocol::translate_status::done) {
      FUZZ_CHECK(t.consumed > 0 && t.consumed <= view.size());
      // What goes to the server is whole messages (the Bind rest follows through the cursor).
      for (std::string_view out = s.to_server; !out.empty();) {
        const auto f = protocol::parse_frame(out, SIZE_MAX);
        if (f.status != protocol::parse_status::complete) {
          const auto h = protocol::parse_header(out, SIZE_MAX);
          FUZZ_CHECK(h.status == protocol::parse_status::complete && h.hdr.tag == 'B' &&
                     out.size() + t.rest == h.hdr.total());
          break;
        }
        out.remove_prefix(f.consumed);
      }
      if (gathering) buf.assign(gathered, t.consumed);
      else buf.erase(0, t.consumed);
      s.client_cursor.remaining = t.rest;
      return true;
    }
    if (buf.size() >= s.limit) {
      gathered.append(buf);
      buf.clear();
    }
    if (!in.read_into(buf, s.limit - buf.size())) return false;  // the client went quiet
    if (!gathered.empty()) {
      gathered.append(buf);
      buf.clear();
    }
  }
}

// Client -> server until the stream ends or the relay would stop.
inline void run_frontend(session& s, std::string_view stream, std::uint8_t read_seed) {
  reader in(stream, read_seed);
  std::string buf;
  bool more = in.read_into(buf, s.limit);
  for (;;) {
    const auto r = protocol::scan_frontend(buf, s.client_cursor, s.tx, s.max_len, s.prepared ? &s.server : nullptr,
                                           s.watch_sql ? &s.sql : nullptr, s.limit);
    FUZZ_CHECK(r.forward <= buf.size());
    buf.erase(0, r.forward);
    switch (r.stop) {
      case protocol::scan_stop::need_more:
        // A full buffer the scan cannot pass on would never be read into again: the relay stalls.
        FUZZ_CHECK(r.forward > 0 || buf.size() < s.limit);
        break;
      case protocol::scan_stop::intercept:
        FUZZ_CHECK(s.prepared && buf.size() >= protocol::header_size);
        if (!translate(s, buf, in)) return;
        continue;
      case protocol::scan_stop::terminate:
        FUZZ_CHECK(!buf.empty() && buf[0] == 'X');
        return;
      case protocol::scan_stop::invalid:
        FUZZ_CHECK(r.error != nullptr);
        return;
      default:
        FUZZ_CHECK(!"a frontend scan stops only for need_more, intercept, terminate or invalid");
    }
    if (r.forward > 0) continue;
    more = in.read_into(buf, s.limit - buf.size());
    if (!more) return;
  }
}

// Server -> client until the stream ends or the relay would stop.
inline void run_backend(session& s, std::string_view stream, std::uint8_t read_seed) {
  reader in(stream, read_seed);
  std::string buf;
  in.read_into(buf, s.limit);
  protocol::backend_context context;
  if (s.prepared) context = {&s.server, &s.client, s.limit};
  if (s.settings) {
    context.server_settings = &s.server_settings;
    context.client_settings = &s.client_settings;
    context.inspect_limit = s.limit;
  }
  if (s.watch_sql) {
    context.listening = &s.sql.listening;
    context.dropped_notifications = &s.dropped_notifications;
    context.inspect_limit = s.limit;
  }
  for (;;) {
    const auto r = protocol::scan_backend(buf, s.server_cursor, s.tx, true, context);
    FUZZ_CHECK(r.forward <= buf.size());
    buf.erase(0, r.forward);
    FUZZ_CHECK(s.tx.outstanding >= 0);
    switch (r.stop) {
      case protocol::scan_stop::need_more:
        FUZZ_CHECK(r.forward > 0 || buf.size() < s.limit);
        break;
      case protocol::scan_stop::replace:
        FUZZ_CHECK(s.server.replacement.size() > protocol::header_size && s.server.replacement[0] == 'E');
        [[fallthrough]];
      case protocol::scan_stop::drop: {
        // The relay consumes the whole message from its buffer: it must all be there.
        const auto h = protocol::parse_header(buf, SIZE_MAX);
        FUZZ_CHECK(h.status == protocol::parse_status::complete && buf.size() >= h.hdr.total());
        buf.erase(0, h.hdr.total());
        continue;
      }
      case protocol::scan_stop::end_of_transaction:
        // The next lease starts at a message boundary: go on as another transaction would.
        FUZZ_CHECK(s.server_cursor.remaining == 0);
        if (r.forward == 0) return;  // statement pooling stopped before a ReadyForQuery: the session ends
        continue;
      case protocol::scan_stop::invalid:
        FUZZ_CHECK(r.error != nullptr);
        return;
      default:
        FUZZ_CHECK(!"a backend scan stops only for need_more, drop, replace, end_of_transaction or invalid");
    }
    if (r.forward > 0) continue;
    if (!in.read_into(buf, s.limit - buf.size())) return;
  }
}

}  // namespace pgmux::fuzz
