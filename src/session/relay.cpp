// Full-duplex relay of one transaction, and returning a server connection to a clean state.
#include "pgmux/session/relay.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <cstring>
#include <functional>
#include <stdexcept>

#include "pgmux/log.hpp"
#include "pgmux/io/timeout.hpp"
#include "pgmux/protocol/decode.hpp"
#include "pgmux/protocol/encode.hpp"
#include "pgmux/protocol/frame.hpp"
#include "pgmux/protocol/reset_restore.hpp"
#include "pgmux/protocol/statement_tracker.hpp"
#include "pgmux/pool/query_stats.hpp"

namespace pgmux::net {
namespace {

using namespace asio::experimental::awaitable_operators;

// Shared by the two pumps of one relay; both run on the session's strand.
struct relay_state {
  bool done = false;            // the server side saw the end of the transaction
  bool server_finished = false;  // ...and passed its last bytes on; the client pump ends the relay
  bool client_writing = false;   // the client pump is writing to the server: never cut that short
  // The client pump waits for the answer to a hidden Describe (server_prepared::verifying);
  // the server pump cancels this timer once it has read it.
  asio::steady_timer* verified = nullptr;
};

// Suspends until cancelled: a pump that must not finish before its partner does.
asio::awaitable<void> park() {
  asio::steady_timer forever(co_await asio::this_coro::executor, clock::time_point::max());
  co_await forever.async_wait(nothrow);
}

// Slow-query logging: keeps the start of the SQL of the last Query or Parse in `sent`, whose
// messages begin at `pos`. Bind alone names its statement instead. Never parameters.
void remember_statement(server_connection& server, std::string_view sent, std::size_t pos) {
  constexpr std::size_t max_text = 200;
  while (pos + protocol::header_size <= sent.size()) {
    const auto h = protocol::parse_header(sent.substr(pos), SIZE_MAX);
    if (h.status != protocol::parse_status::complete) break;
    const auto body = sent.substr(pos + protocol::header_size, std::min(h.hdr.body_size(), sent.size() - pos - protocol::header_size));
    if (h.hdr.tag == 'Q') {
      server.last_statement.assign(body.substr(0, std::min(max_text, body.find('\0'))));
    } else if (h.hdr.tag == 'P') {
      const auto name_end = body.find('\0');
      if (name_end != std::string_view::npos) {
        const auto text = body.substr(name_end + 1);
        server.last_statement.assign(text.substr(0, std::min(max_text, text.find('\0'))));
      }
    } else if (h.hdr.tag == 'B') {
      const auto portal_end = body.find('\0');
      if (portal_end != std::string_view::npos) {
        const auto statement = body.substr(portal_end + 1);
        const auto name = statement.substr(0, std::min<std::size_t>(64, statement.find('\0')));
        if (!name.empty()) server.last_statement = "(prepared statement \"" + std::string(name) + "\")";
      }
    }
    pos += h.hdr.total();
  }
}

// Keeps the counters the pool's maintenance task reads in step with the tracker.
void note_requests(server_connection& server, int outstanding_before) {
  const auto& tx = server.tx();
  if (outstanding_before == 0 && tx.outstanding > 0) {
    server.cancel_sent.store(false, std::memory_order_relaxed);
    server.busy_since_ns.store(now_ns(), std::memory_order_relaxed);
  }
}

// One request (a Query, or an extended-protocol batch up to its Sync) got its ReadyForQuery:
// how long it took (0 when not timed).
std::int64_t note_statement_done(server_connection& server, std::int64_t now) {
  const auto since = server.busy_since_ns.load(std::memory_order_relaxed);
  if (since == 0) return 0;
  const auto took = now - since;
  server.figures.statements.observe(static_cast<double>(took) / 1e9);
  const auto slow = log::slow_query_ns();
  if (slow > 0 && took >= slow && log::enabled(log::level::warn)) {
    char seconds[32];
    std::snprintf(seconds, sizeof seconds, "%.3f", static_cast<double>(took) / 1e9);
    log::warn(std::string("slow query: ") + seconds + "s on pool " + server.pool_name + ", " + server.describe() +
              ": " + (server.last_statement.empty() ? std::string("(statement text not seen)") : server.last_statement));
  }
  return took;
}

// Per-query statistics: the statement of each answered request goes to the pool's table.
void record_statement(const client_side& client, server_connection& server, std::int64_t took) {
  protocol::answered_request answered;
  if (!server.statements.take_answered(answered)) return;
  if (answered.overloaded && server.counters) server.counters->overload_errors.fetch_add(1, std::memory_order_relaxed);
  if (answered.fingerprint == 0) return;
  client.queries->record(answered.fingerprint, {took, answered.failed, answered.rows}, coarse_wall_now());
}

void note_responses(const client_side& client, server_connection& server, int outstanding_before,
                    unsigned answered_before) {
  const auto& tx = server.tx();
  if (tx.outstanding == outstanding_before) return;
  const auto now = now_ns();
  for (unsigned i = answered_before; i != tx.answered; ++i) {
    const auto took = note_statement_done(server, now);
    if (client.queries) record_statement(client, server, took);
  }
  if (tx.outstanding == 0) {
    server.busy_since_ns.store(0, std::memory_order_relaxed);
  } else {
    // The next pipelined statement starts its own clock and may be cancelled in turn.
    server.cancel_sent.store(false, std::memory_order_relaxed);
    server.busy_since_ns.store(now, std::memory_order_relaxed);
  }
}

// The client is about to be waited for while it holds the connection with something open
// (a transaction, an unfinished batch or message, a COPY): idle_transaction_timeout runs.
void mark_client_turn(server_connection& server, const protocol::stream_cursor& client_cursor) {
  if ((server.tx().idle() && client_cursor.remaining == 0) ||
      server.idle_in_tx_since_ns.load(std::memory_order_relaxed) != 0)
    return;
  server.idle_in_tx_since_ns.store(now_ns(), std::memory_order_relaxed);
}

// Scans what the client sent; the first `forward` bytes may go to the server now.
protocol::scan_result scan_client_bytes(const client_side& client, server_connection& server) {
  const int before = server.tx().outstanding;
  const std::size_t first_header = client.cursor.remaining;  // bytes that finish a message already begun
  protocol::statement_tracker* statements = nullptr;
  if (client.queries) {
    statements = &server.statements;
    statements->sink = client.statement_sink;
    statements->names = client.statement_names;
  }
  const auto r = protocol::scan_frontend(client.buffer.view(), client.cursor, server.tx(), client.max_message_size,
                                         client.prepared ? &server.prepared : nullptr, client.seen_sql,
                                         io_buffer::block_size, client.restorable, statements);
  if (r.forward > 0) {
    server.figures.bytes_to_server += r.forward;
    server.idle_in_tx_since_ns.store(0, std::memory_order_relaxed);
    if (log::slow_query_ns() > 0 && first_header < r.forward)
      remember_statement(server, client.buffer.view().substr(0, r.forward), first_header);
  }
  if (r.forward > 0 || r.stop == protocol::scan_stop::intercept) note_requests(server, before);
  if (statements) statements->realign(static_cast<std::size_t>(std::max(server.tx().outstanding, 0)));
  return r;
}

// How a client scan ends the relay, if it does.
std::optional<relay_result> client_scan_end(const protocol::scan_result& r) {
  if (r.stop == protocol::scan_stop::terminate) return relay_result{relay_end::client_terminate};
  if (r.stop == protocol::scan_stop::invalid) return relay_result{relay_end::client_protocol_error, r.error};
  return std::nullopt;
}

// Scans what the server sent; the first `forward` bytes may go to the client now.
protocol::scan_result scan_server_bytes(const client_side& client, server_connection& server, bool stop_when_idle) {
  const int before = server.tx().outstanding;
  const unsigned answered_before = server.tx().answered;
  protocol::backend_context context;
  context.inspect_limit = io_buffer::block_size;
  if (client.prepared) context = {&server.prepared, client.prepared, io_buffer::block_size};
  if (client.settings) {
    context.server_settings = &server.settings;
    context.client_settings = client.settings;
    context.inspect_limit = io_buffer::block_size;
  }
  if (client.seen_sql) {
    context.listening = &client.seen_sql->listening;
    context.dropped_notifications = &server.dropped_notifications;
    context.inspect_limit = io_buffer::block_size;
  }
  if (client.queries) {
    context.statements = &server.statements;
    context.inspect_limit = io_buffer::block_size;
  }
  const auto r = protocol::scan_backend(server.buffer().view(), server.cursor(), server.tx(), stop_when_idle, context);
  if (r.stop == protocol::scan_stop::invalid) server.mark_broken();
  server.figures.bytes_to_client += r.forward;
  note_responses(client, server, before, answered_before);
  if (client.queries) server.statements.realign(static_cast<std::size_t>(std::max(server.tx().outstanding, 0)));
  // Session mode keeps the connection for long: its figures go out at every idle moment.
  if (!stop_when_idle && server.tx().answered != answered_before && server.tx().idle()) server.flush_figures();
  return r;
}

const relay_result server_write_failed{relay_end::server_error, "write to server failed"};
const relay_result server_closed{relay_end::server_error, "the server closed the connection"};
const relay_result server_lost{relay_end::server_lost, "the server connection was dead before it answered"};

// The server's first bytes on a lease whose request may be replayed: true when they say the
// connection is gone (an ErrorResponse of severity FATAL or PANIC from an operator or crash,
// 57P01-57P03) before anything else. Then nothing of the request was answered, and the server
// ends without having run it to completion.
bool dead_on_arrival(std::string_view bytes) {
  const auto h = protocol::parse_header(bytes, io_buffer::block_size);
  if (h.status != protocol::parse_status::complete || h.hdr.tag != 'E' || bytes.size() < h.hdr.total()) return false;
  const auto fields = protocol::decode_error_response(bytes.substr(protocol::header_size, h.hdr.body_size()));
  if (!fields || (fields->severity != "FATAL" && fields->severity != "PANIC")) return false;
  return fields->code == "57P01" || fields->code == "57P02" || fields->code == "57P03";
}

// Rewrites the client's Parse, Bind, Describe or Close (or DEALLOCATE) at the front of its
// buffer for this server connection, reading the rest of it first if need be. Appends what the
// server gets to `out`; for Bind only the head is rewritten and the cursor then passes the
// rest of the body on unchanged.
// Session mode: the Query at the front of the client's buffer, which scan_frontend intercepted
// because it RESETs a startup value of the client's, goes out with their restore added.
std::optional<relay_result> restore_in_query(const client_side& client, server_connection& server,
                                             const std::vector<protocol::parameter_change>* restorable, std::string& out) {
  auto& buf = client.buffer;
  const auto f = protocol::parse_frame(buf.view(), io_buffer::block_size);
  if (f.status != protocol::parse_status::complete || f.msg.tag != 'Q')
    throw std::logic_error("a session-mode relay intercepted something other than a whole Query");
  const auto sql = f.msg.body.substr(0, f.msg.body.find('\0'));
  const auto hidden = protocol::append_restored_query(out, buf.view().substr(0, f.consumed), sql,
                                                     protocol::inspect_sql(sql).resets, restorable);
  if (hidden != 0) server.tx().hidden_statements = hidden;
  buf.consume(f.consumed);
  return std::nullopt;
}

// `wait`: set when the message must wait for the answer to a hidden Describe (nothing of it
// consumed; a message gathered whole is then put back into the buffer, which only a Parse
// could need and a Parse never waits).
asio::awaitable<std::optional<relay_result>> translate_one(const client_side& client, server_connection& server,
                                                           std::string& out, bool may_wait, bool& wait) {
  auto& buf = client.buffer;
  // A Query's RESETs get the client's startup values restored after them only while it is all
  // that is outstanding: the answers its added statements give are then the next ones to come.
  const auto& tx = server.tx();
  const auto* restorable = tx.outstanding == 1 && !tx.open_batch ? client.restorable : nullptr;
  if (!client.prepared) {
    // Session mode intercepts a Query only for that, whole (scan_frontend waited for it).
    co_return restore_in_query(client, server, restorable, out);
  }
  std::string gathered;  // a message longer than the buffer, gathered whole
  for (;;) {
    const bool gathering = !gathered.empty();
    const auto t = protocol::translate_frontend(gathering ? std::string_view(gathered) : buf.view(),
                                                gathering ? SIZE_MAX : io_buffer::block_size, *client.prepared,
                                                server.prepared, out, client.seen_sql, may_wait && !gathering,
                                                restorable);
    if (t.hidden_statements != 0) server.tx().hidden_statements = t.hidden_statements;
    if (t.status == protocol::translate_status::invalid) co_return relay_result{relay_end::client_protocol_error, t.error};
    if (t.status == protocol::translate_status::wait) {
      wait = true;
      co_return std::nullopt;
    }
    if (t.status == protocol::translate_status::done) {
      if (gathering) {
        // What followed the message goes back to the (empty) buffer: at most one read's worth.
        const auto after = std::string_view(gathered).substr(t.consumed);
        std::memcpy(buf.free_begin(), after.data(), after.size());
        buf.commit(after.size());
      } else {
        buf.consume(t.consumed);
      }
      client.cursor.remaining = t.rest;
      co_return std::nullopt;
    }
    if (buf.full()) {
      gathered.append(buf.view());
      buf.clear();
    }
    auto [ec, n] = co_await client.socket.async_read_some(asio::buffer(buf.free_begin(), buf.free_size()), nothrow);
    buf.commit(n);
    if (client.killed) co_return relay_result{relay_end::killed};
    if (ec) co_return relay_result{relay_end::client_eof};
    if (!gathered.empty()) {
      gathered.append(buf.view());
      buf.clear();
    }
  }
}

// Until the server pump has read the answer to the hidden Describe a client's message waits
// for. The server is busy meanwhile, so command_timeout applies as to any statement. False when
// the relay is to end first: cancelled, the session killed (a kill cancels what waits on the
// client's socket), or that socket failed.
asio::awaitable<bool> wait_for_verification(const client_side& client, server_connection& server, relay_state& state) {
  using namespace asio::experimental::awaitable_operators;
  asio::steady_timer timer(co_await asio::this_coro::executor, clock::time_point::max());
  state.verified = &timer;
  const bool marked_busy = server.busy_since_ns.load(std::memory_order_relaxed) == 0;
  if (marked_busy) {
    server.cancel_sent.store(false, std::memory_order_relaxed);
    server.busy_since_ns.store(now_ns(), std::memory_order_relaxed);
  }
  bool answered = true;
  while (server.prepared.verifying != 0) {
    auto woke = co_await (timer.async_wait(nothrow) ||
                          client.socket.lowest_layer().async_wait(socket_t::wait_error, nothrow));
    if ((co_await asio::this_coro::cancellation_state).cancelled() != asio::cancellation_type::none ||
        client.killed || woke.index() == 1) {
      answered = false;
      break;
    }
  }
  state.verified = nullptr;
  if (marked_busy && server.tx().outstanding == 0) server.busy_since_ns.store(0, std::memory_order_relaxed);
  co_return answered;
}

// The client's bytes from a scan that stopped at a message pgmux rewrites: the `forward` bytes
// before it, the rewritten message, and everything complete after it (rewriting on), sent to
// the server in one write. A message that must wait for a hidden Describe's answer stays in
// the buffer: with `state` (both pumps running) this waits for it; without, it returns, and
// the caller relays both directions (the batch is open) to get there.
asio::awaitable<std::optional<relay_result>> send_translated(const client_side& client, server_connection& server,
                                                             std::size_t forward, relay_state* state = nullptr) {
  // A pipeline of rewritten messages is sent in pieces of about this size, so the output stays
  // bounded whatever the client streams.
  constexpr std::size_t flush_at = 4 * io_buffer::block_size;
  server.replay.armed = false;  // rewritten messages change statement books: not replayable
  auto& buf = client.buffer;
  auto& out = server.translated;
  out.assign(buf.data(), forward);
  buf.consume(forward);
  std::size_t plain = forward;  // bytes the scans already counted
  auto write_out = [&]() -> asio::awaitable<bool> {
    server.figures.bytes_to_server += out.size() - plain;
    server.idle_in_tx_since_ns.store(0, std::memory_order_relaxed);
    auto [ec, n] = co_await write_all(server.socket(), asio::buffer(out));
    out.clear();
    plain = 0;
    if (ec) server.mark_broken();
    co_return !ec;
  };
  bool may_wait = true;
  for (;;) {
    bool wait = false;
    if (auto failed = co_await translate_one(client, server, out, may_wait, wait)) co_return failed;
    if (wait) {
      if (!co_await write_out()) co_return server_write_failed;
      if (!state) co_return std::nullopt;
      if (!co_await wait_for_verification(client, server, *state))
        co_return relay_result{client.killed ? relay_end::killed : relay_end::client_eof};
      may_wait = false;  // once per message: the answer is in
      continue;
    }
    may_wait = true;
    const auto r = scan_client_bytes(client, server);
    out.append(buf.data(), r.forward);
    plain += r.forward;
    buf.consume(r.forward);
    if (r.stop == protocol::scan_stop::intercept) {
      if (out.size() >= flush_at && !co_await write_out()) co_return server_write_failed;
      continue;
    }
    if (!co_await write_out()) co_return server_write_failed;
    co_return client_scan_end(r);
  }
}

// The answer to pgmux's own request at the front of the server buffer (whole, the scan made
// sure): never relayed.
void drop_answer(server_connection& server) {
  const auto h = protocol::parse_header(server.buffer().view(), SIZE_MAX);
  server.buffer().consume(h.hdr.total());
}

// scan_stop::replace: the client gets pgmux's version of the error at the front of the server
// buffer (the caller then drops the server's). False when writing to the client failed.
asio::awaitable<bool> send_replacement(const client_side& client, server_connection& server) {
  auto [ec, n] = co_await write_all(client.socket, asio::buffer(server.prepared.replacement));
  server.figures.bytes_to_client += server.prepared.replacement.size();
  co_return !ec;
}

// The server ended the transaction while the client was in the middle of a message (COPY
// data after the server failed the COPY): the rest of that message goes to the server, which
// ignores it, so that both directions stop at a message boundary. Nothing after it is sent.
asio::awaitable<std::optional<relay_result>> finish_client_message(client_side client, server_connection& server,
                                                                   relay_state& state) {
  auto& buf = client.buffer;
  while (client.cursor.remaining > 0) {
    if (buf.empty()) {
      mark_client_turn(server, client.cursor);
      auto [ec, n] = co_await client.socket.async_read_some(asio::buffer(buf.free_begin(), buf.free_size()), nothrow);
      buf.commit(n);
      if (client.killed) co_return relay_result{relay_end::killed};
      if (ec) co_return relay_result{relay_end::client_eof};
      continue;
    }
    const auto take = std::min(buf.size(), client.cursor.remaining);
    state.client_writing = true;
    auto [ec, n] = co_await write_all(server.socket(), asio::buffer(buf.data(), take));
    state.client_writing = false;
    buf.consume(take);
    client.cursor.remaining -= take;
    server.figures.bytes_to_server += take;
    if (ec) {
      server.mark_broken();
      co_return server_write_failed;
    }
  }
  server.idle_in_tx_since_ns.store(0, std::memory_order_relaxed);
  co_return std::nullopt;
}

asio::awaitable<relay_result> client_to_server(client_side client, server_connection& server, relay_state& state) {
  auto& buf = client.buffer;
  for (;;) {
    if (state.done) {
      if (client.cursor.remaining > 0)
        if (auto end = co_await finish_client_message(client, server, state)) co_return *end;
      // The server pump returns itself unless it already passed its last bytes on and left
      // the end of the relay to this pump.
      if (!state.server_finished) co_await park();
      co_return relay_result{relay_end::transaction_done};
    }
    if (!buf.empty()) {
      const auto r = scan_client_bytes(client, server);
      if (r.stop == protocol::scan_stop::intercept) {
        state.client_writing = true;
        auto end = co_await send_translated(client, server, r.forward, &state);
        state.client_writing = false;
        if (end) co_return *end;
        continue;
      }
      if (r.forward > 0) {
        state.client_writing = true;
        auto [ec, n] = co_await write_all(server.socket(), asio::buffer(buf.data(), r.forward));
        state.client_writing = false;
        buf.consume(r.forward);
        if (ec) {
          server.mark_broken();
          co_return server_write_failed;
        }
      }
      if (auto end = client_scan_end(r)) co_return *end;
      if (state.done) continue;
    }
    mark_client_turn(server, client.cursor);
    auto [ec, n] = co_await client.socket.async_read_some(asio::buffer(buf.free_begin(), buf.free_size()), nothrow);
    buf.commit(n);  // bytes read after the transaction ended stay for the next one
    if (client.killed) co_return relay_result{relay_end::killed};
    if (ec == asio::error::operation_aborted) co_return relay_result{relay_end::transaction_done};
    if (ec) co_return relay_result{relay_end::client_eof};
  }
}

asio::awaitable<relay_result> server_to_client(client_side client, server_connection& server, relay_state& state,
                                               bool stop_when_idle) {
  auto& buf = server.buffer();
  for (;;) {
    if (!buf.empty()) {
      const auto r = scan_server_bytes(client, server, stop_when_idle || client.draining);
      if (r.stop == protocol::scan_stop::invalid) co_return relay_result{relay_end::server_error, r.error};
      if (state.verified && server.prepared.verifying == 0) state.verified->cancel();
      // Set before writing, so the client pump holds back what the client sends next.
      if (r.stop == protocol::scan_stop::end_of_transaction) state.done = true;
      if (r.forward > 0) {
        auto [ec, n] = co_await write_all(client.socket, asio::buffer(buf.data(), r.forward));
        buf.consume(r.forward);
        if (ec) co_return relay_result{client.killed ? relay_end::killed : relay_end::client_eof};
      }
      if (r.stop == protocol::scan_stop::drop || r.stop == protocol::scan_stop::replace) {
        if (r.stop == protocol::scan_stop::replace && !co_await send_replacement(client, server))
          co_return relay_result{client.killed ? relay_end::killed : relay_end::client_eof};
        drop_answer(server);
        continue;
      }
      if (state.done) {
        // Ending here cancels the client pump: only safe while it waits for the client at a
        // message boundary. Otherwise it finishes its message and ends the relay itself.
        if (client.cursor.remaining == 0 && !state.client_writing) co_return relay_result{relay_end::transaction_done};
        state.server_finished = true;
        co_await park();
        co_return relay_result{relay_end::transaction_done};
      }
    }
    auto [ec, n] = co_await server.socket().async_read_some(asio::buffer(buf.free_begin(), buf.free_size()), nothrow);
    buf.commit(n);
    if (ec == asio::error::operation_aborted) co_return relay_result{client.killed ? relay_end::killed : relay_end::client_eof};
    if (ec) {
      server.mark_broken();
      co_return server_closed;
    }
  }
}

// Reads and drops server output until every outstanding request is answered.
asio::awaitable<bool> drain(server_connection& server) {
  auto& buf = server.buffer();
  // A rollback reverts the settings a SET in the transaction made: the server says so.
  protocol::backend_context context;
  context.server_settings = &server.settings;
  context.inspect_limit = io_buffer::block_size;
  for (;;) {
    if (!buf.empty()) {
      const auto r = protocol::scan_backend(buf.view(), server.cursor(), server.tx(), false, context);
      buf.consume(r.forward);
      if (r.stop == protocol::scan_stop::invalid) co_return false;
    }
    if (server.tx().outstanding == 0 && server.cursor().remaining == 0) co_return buf.empty();
    auto [ec, n] = co_await server.socket().async_read_some(asio::buffer(buf.free_begin(), buf.free_size()), nothrow);
    if (ec) co_return false;
    buf.commit(n);
  }
}

asio::awaitable<bool> send(server_connection& server, const std::string& out) {
  auto [ec, n] = co_await write_all(server.socket(), asio::buffer(out));
  co_return !ec;
}

asio::awaitable<bool> clean_up(std::shared_ptr<server_connection> server, std::chrono::milliseconds timeout,
                               bool let_finish) {
  auto& tx = server->tx();
  std::string out;
  if (tx.copy_in) {
    protocol::encode_copy_fail(out, "client disconnected");
    tx.copy_in = false;
    if (tx.copy_extended) tx.open_batch = true;  // the server discards input until a Sync
  }
  if (tx.open_batch) {
    protocol::encode_sync(out);
    ++tx.outstanding;
    tx.open_batch = false;
    tx.unsynced_extended = false;
  }
  if (!out.empty() && !co_await send(*server, out)) co_return false;
  if (tx.outstanding > 0) {
    if (!let_finish) {
      // Something may still be running: stop it rather than wait for it.
      server->cancels_in_flight.fetch_add(1);
      co_await cancel_running_query(server, timeout);
    }
    if (!co_await drain(*server)) co_return false;
  }
  if (tx.status != 'I') {
    out.clear();
    protocol::encode_query(out, "ROLLBACK");
    ++tx.outstanding;
    if (!co_await send(*server, out) || !co_await drain(*server)) co_return false;
  }
  co_return tx.idle();
}

// Whose turn it is, as the protocol decides: the server's while requests are unanswered and
// no COPY data is due, the client's while it is mid-message, copying in, or owes the next
// request. Unknown (a Parse/Bind/Execute batch not yet closed by Sync): both at once.
enum class turn { client, server, both };

turn whose_turn(server_connection& server, const protocol::stream_cursor& client_cursor) {
  const auto& tx = server.tx();
  // COPY IN and unfinished batches may need both directions at once (the server can answer
  // while the client still sends), else one side could block the other for good.
  if (tx.open_batch || tx.copy_in) return turn::both;
  if (tx.outstanding == 0) return turn::client;  // the server waits for the client
  return client_cursor.remaining > 0 ? turn::both : turn::server;
}

// Both directions at once: for the whole session in session mode; in transaction mode through
// COPY IN and unfinished extended-protocol batches, up to the idle ReadyForQuery.
asio::awaitable<relay_result> relay_both(client_side client, server_connection& server, bool stop_when_idle) {
  relay_state state;
  auto result = co_await (client_to_server(client, server, state) ||
                          server_to_client(client, server, state, stop_when_idle));
  co_return std::visit([](const relay_result& r) { return r; }, result);
}

// Transaction pooling without a second coroutine: one side at a time, which is all the
// protocol needs outside an unfinished extended-protocol batch.
// `client` by reference: the caller's outlives the relay (see relay()), and the frame stays small
// enough for Asio to recycle (about 1 KB): a frame per transaction without malloc.
asio::awaitable<relay_result> relay_turns(const client_side& client, server_connection& server) {
  auto& cbuf = client.buffer;
  auto& sbuf = server.buffer();
  // The whole request went out in the previous pass and nothing has suspended since: the
  // server's answer can only come as a new epoll edge (stream::async_read_answer).
  bool request_just_sent = false;
  for (;;) {
    const bool answer_due = std::exchange(request_just_sent, false);
    switch (whose_turn(server, client.cursor)) {
      case turn::both:
        server.replay.armed = false;  // both directions at once: not replayable
        co_return co_await relay_both(client, server, true);
      case turn::client: {
        if (!cbuf.empty()) {
          const auto r = scan_client_bytes(client, server);
          if (r.stop == protocol::scan_stop::intercept) {
            if (auto end = co_await send_translated(client, server, r.forward)) co_return *end;
            continue;
          }
          if (r.forward > 0) {
            server.replay.keep(cbuf.data(), r.forward);
            // The first send inline: no coroutine frame when the socket takes it all.
            const auto bytes = asio::buffer(cbuf.data(), r.forward);
            const auto sent = server.socket().try_write(bytes);
            error_code ec;
            if (sent < bytes.size()) std::tie(ec, std::ignore) = co_await asio::async_write(server.socket(), bytes + sent, nothrow);
            else request_just_sent = true;
            cbuf.consume(r.forward);
            if (ec) {
              server.mark_broken();
              co_return server.replay.armed && client.cursor.remaining == 0 ? server_lost : server_write_failed;
            }
          }
          if (auto end = client_scan_end(r)) co_return *end;
          // Only stray COPY messages leave the server idle: nothing is owed either way.
          if (r.forward > 0 && server.tx().idle() && client.cursor.remaining == 0 && sbuf.empty())
            co_return relay_result{relay_end::transaction_done};
          if (r.forward > 0) continue;  // the turn may have passed to the server
        }
        mark_client_turn(server, client.cursor);
        auto [ec, n] = co_await client.socket.async_read_some(asio::buffer(cbuf.free_begin(), cbuf.free_size()), nothrow);
        cbuf.commit(n);
        if (client.killed) co_return relay_result{relay_end::killed};
        if (ec) co_return relay_result{relay_end::client_eof};
        break;
      }
      case turn::server: {
        if (!sbuf.empty()) {
          const auto r = scan_server_bytes(client, server, true);
          if (r.stop == protocol::scan_stop::invalid) co_return relay_result{relay_end::server_error, r.error};
          if (r.forward > 0) {
            const auto bytes = asio::buffer(sbuf.data(), r.forward);
            const auto sent = client.socket.try_write(bytes);
            error_code ec;
            if (sent < bytes.size()) std::tie(ec, std::ignore) = co_await asio::async_write(client.socket, bytes + sent, nothrow);
            sbuf.consume(r.forward);
            if (ec) co_return relay_result{client.killed ? relay_end::killed : relay_end::client_eof};
          }
          if (r.stop == protocol::scan_stop::end_of_transaction) co_return relay_result{relay_end::transaction_done};
          if (r.stop == protocol::scan_stop::drop || r.stop == protocol::scan_stop::replace) {
            if (r.stop == protocol::scan_stop::replace && !co_await send_replacement(client, server))
              co_return relay_result{client.killed ? relay_end::killed : relay_end::client_eof};
            drop_answer(server);
            continue;
          }
          if (r.forward > 0) continue;
        }
        const auto into = asio::buffer(sbuf.free_begin(), sbuf.free_size());
        // Not a conditional expression around co_await: GCC 12 mishandles those.
        std::tuple<error_code, std::size_t> got;
        if (answer_due) got = co_await server.socket().async_read_answer(into, nothrow);
        else got = co_await server.socket().async_read_some(into, nothrow);
        auto [ec, n] = got;
        sbuf.commit(n);
        if (client.killed) co_return relay_result{relay_end::killed};
        if (server.replay.armed) {
          server.replay.armed = false;  // the server's first word: from here on it has the request
          if (client.cursor.remaining == 0 && sbuf.size() == n && (ec || dead_on_arrival(sbuf.view()))) {
            server.mark_broken();
            co_return server_lost;
          }
        }
        if (ec) {
          server.mark_broken();
          co_return server_closed;
        }
        break;
      }
    }
  }
}

}  // namespace

asio::awaitable<relay_result> relay(const client_side& client, server_connection& server, bool stop_when_idle) {
  return stop_when_idle ? relay_turns(client, server) : relay_both(client, server, false);
}

namespace {

// One direction of relay_unread: what `from` sends goes to `to` until either fails.
asio::awaitable<relay_end> pass_unread(stream& from, io_buffer& buffer, stream& to, relay_end read_failed,
                                       relay_end write_failed, const bool& killed) {
  for (;;) {
    if (killed) co_return relay_end::killed;
    if (!buffer.empty()) {
      auto [ec, n] = co_await write_all(to, asio::buffer(buffer.data(), buffer.size()));
      buffer.clear();
      if (ec) co_return killed ? relay_end::killed : write_failed;
    }
    auto [ec, n] = co_await from.async_read_some(asio::buffer(buffer.free_begin(), buffer.free_size()), nothrow);
    buffer.commit(n);
    if (killed) co_return relay_end::killed;
    if (ec && n == 0) co_return read_failed;
  }
}

}  // namespace

asio::awaitable<relay_end> relay_unread(stream& client, io_buffer& client_buffer, const bool& killed,
                                        server_connection& server) {
  auto result = co_await (pass_unread(client, client_buffer, server.socket(), relay_end::client_eof,
                                      relay_end::server_error, killed) ||
                          pass_unread(server.socket(), server.buffer(), client, relay_end::server_error,
                                      relay_end::client_eof, killed));
  co_return std::visit([](relay_end end) { return end; }, result);
}

namespace {

// FATAL: the connection is broken (the caller closes it); ERROR: the server refused the query.
protocol::error_fields connection_failure(const char* code, std::string message) {
  return protocol::error_fields{"FATAL", code, std::move(message), {}, {}};
}

// One query of pgmux's own on a connection between transactions, its answers hidden from every
// client: ParameterStatus is noted for the connection, each DataRow goes to `on_row`. nullopt
// when it succeeded; else the server's error (the connection stays clean) or a FATAL
// description of what failed (the connection is then marked broken).
asio::awaitable<std::optional<protocol::error_fields>> run_hidden_query(
    server_connection& server, const std::string& sql, std::chrono::milliseconds timeout,
    const std::function<void(const protocol::data_row&)>& on_row) {
  auto run = [&]() -> asio::awaitable<std::optional<protocol::error_fields>> {
    // A Sync follows the query: its ReadyForQuery must come right after the query's. An answer
    // still owed to an earlier client (a count gone wrong) would otherwise pass for this query's
    // and leave this query's answer for the next client; with the Sync it shows as messages
    // between the two ReadyForQuery, and the connection is closed.
    std::string out;
    protocol::encode_query(out, sql);
    protocol::encode_sync(out);
    if (!co_await send(server, out)) co_return connection_failure("08006", "write to server failed");
    std::optional<protocol::error_fields> refused;
    auto& buf = server.buffer();
    bool own_answer = false;  // CommandComplete, EmptyQueryResponse or ErrorResponse came
    bool answered = false;    // the query's ReadyForQuery came: only the Sync's may follow
    for (;;) {
      const auto read = co_await server.read_message();
      if (!read.complete()) co_return connection_failure(read.lost ? "08006" : "08P01", read.error);
      const auto& f = read.frame;
      const char tag = f.msg.tag;
      // Notices, notifications and parameter reports may come at any time; anything else
      // between the two ReadyForQuery answers a request pgmux did not count.
      if (answered && tag != 'Z' && tag != 'N' && tag != 'A' && tag != 'S')
        co_return connection_failure("08P01", "the server answered more than pgmux asked: the connection is out of step");
      if (tag == 'S') {
        if (auto status = protocol::decode_parameter_status(f.msg.body))
          protocol::note_parameter_status(nullptr, server.settings, status->first, status->second);
      } else if (tag == 'D' && on_row) {
        const auto row = protocol::decode_data_row(f.msg.body);
        if (!row) co_return connection_failure("08P01", "malformed DataRow from the server");
        on_row(*row);
      }
      if (tag == 'C' || tag == 'I' || tag == 'E') own_answer = true;
      if (tag == 'E' && !refused) {
        refused = protocol::decode_error_response(f.msg.body);
        if (!refused) refused = protocol::error_fields{"ERROR", "XX000", "malformed error", {}, {}};
      } else if (tag == 'Z') {
        const auto status = protocol::decode_ready_for_query(f.msg.body);
        buf.consume(f.consumed);
        // Two stale ReadyForQuery would pass for the query's and the Sync's: the query's own
        // answer must come before the first.
        if (!answered && !own_answer)
          co_return connection_failure("08P01", "a ReadyForQuery before the answer to a query of pgmux's own: the connection is out of step");
        if (!status || *status != 'I')
          co_return connection_failure("08P01", "unexpected state after a query of pgmux's own");
        if (answered) {
          if (!buf.empty()) co_return connection_failure("08P01", "unexpected state after a query of pgmux's own");
          break;
        }
        answered = true;
        continue;
      }
      buf.consume(f.consumed);
    }
    co_return refused;
  };
  server.buffer().ensure();
  server.prepared.unnamed_client = 0;  // a simple query destroys the unnamed statement
  auto result = co_await with_timeout(run(), timeout);
  if (!result) {
    server.mark_broken();
    co_return connection_failure("08006", "a query of pgmux's own timed out");
  }
  if (*result && (*result)->severity == "FATAL") server.mark_broken();
  co_return std::move(*result);
}

}  // namespace

asio::awaitable<bool> make_clean(std::shared_ptr<server_connection> server, std::chrono::milliseconds timeout,
                                 bool let_finish) {
  if (server->broken()) co_return false;
  if (server->clean()) co_return true;
  // Answers are drained without matching them to requests: what was in flight is unknown.
  server->prepared.reset_after_cleanup();
  server->tx().hidden_statements = 0;
  server->tx().statements_answered = 0;
  auto ok = co_await with_timeout(clean_up(server, timeout, let_finish), timeout);
  if (!ok || !*ok) {
    server->mark_broken();
    co_return false;
  }
  if (!server->clean()) co_return false;
  // Drained by counting what the client left in flight: the count is proven by an empty query
  // and a Sync, answered in turn with nothing else (run_hidden_query), or the connection closes.
  if (co_await run_hidden_query(*server, "", timeout, nullptr)) {
    server->mark_broken();
    co_return false;
  }
  co_return server->clean();
}

bool settings_differ(const server_connection& server, const protocol::session_settings& wanted) {
  return !protocol::settings_changes(wanted, server.settings, server.startup_settings).empty();
}

asio::awaitable<std::optional<protocol::error_fields>> apply_settings(server_connection& server,
                                                                      const protocol::session_settings& wanted,
                                                                      std::chrono::milliseconds timeout) {
  const auto changes = protocol::settings_changes(wanted, server.settings, server.startup_settings);
  if (changes.empty()) co_return std::nullopt;
  auto failed = co_await run_hidden_query(server, protocol::build_set_sql(changes), timeout, nullptr);
  if (!failed) server.settings.extra = wanted.extra;
  co_return failed;
}

namespace {

using row_or_error = std::variant<std::vector<std::optional<std::string>>, protocol::error_fields>;

// A hidden query that answers one row of `columns` values (NULL as nullopt).
asio::awaitable<row_or_error> hidden_row(server_connection& server, const std::string& sql, std::size_t columns,
                                         std::chrono::milliseconds timeout) {
  std::optional<std::vector<std::optional<std::string>>> values;
  auto failed = co_await run_hidden_query(server, sql, timeout, [&](const protocol::data_row& row) {
    if (row.size() != columns || values) return;
    values.emplace();
    for (const auto& v : row) values->push_back(v ? std::optional<std::string>(*v) : std::nullopt);
  });
  if (failed) co_return std::move(*failed);
  if (!values) co_return connection_failure("08P01", "no row in the answer to a query of pgmux's own");
  co_return std::move(*values);
}

}  // namespace

asio::awaitable<std::variant<std::vector<std::string>, protocol::error_fields>> canonical_values(
    server_connection& server, std::span<const protocol::parameter_change> values, std::chrono::milliseconds timeout) {
  auto answer = co_await hidden_row(server, protocol::build_set_sql(values, /*local=*/true), values.size(), timeout);
  if (auto* failed = std::get_if<protocol::error_fields>(&answer)) co_return std::move(*failed);
  std::vector<std::string> canonical;
  for (auto& v : std::get<0>(answer)) canonical.push_back(v.value_or(""));
  co_return canonical;
}

asio::awaitable<std::variant<std::vector<std::optional<std::string>>, protocol::error_fields>> read_settings(
    server_connection& server, std::span<const std::string> names, std::chrono::milliseconds timeout) {
  co_return co_await hidden_row(server, protocol::build_read_settings_sql(names), names.size(), timeout);
}

asio::awaitable<bool> run_reset_query(server_connection& server, std::string_view sql, std::chrono::milliseconds timeout) {
  // Checked as every query of pgmux's own is: an answer owed to the last client shows.
  if (auto failed = co_await run_hidden_query(server, std::string(sql), timeout, nullptr)) {
    // Refused, the reset did not happen: the connection is not fit to lend.
    log::info(server.describe() + ": reset query failed: " + failed->message);
    co_return false;
  }
  co_return server.clean();
}

}  // namespace pgmux::net
