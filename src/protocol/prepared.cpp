// Rewriting a client's extended-protocol messages for the server connection it holds.
#include "pgmux/protocol/prepared.hpp"

#include <algorithm>
#include <cctype>
#include <optional>

#include "pgmux/protocol/decode.hpp"
#include "pgmux/protocol/encode.hpp"
#include "pgmux/protocol/extended.hpp"
#include "pgmux/protocol/frame.hpp"
#include "pgmux/protocol/reset_restore.hpp"
#include "pgmux/protocol/sql_inspect.hpp"

namespace pgmux::protocol {
namespace {

// Server statements are "pgmux_" and 32 hex digits: this name is never one of them.
constexpr std::string_view never_prepared = "pgmux_closed";

// Watch tokens tell Parses (whose failure means the statement does not exist) from Binds and
// Describes (whose failure means so only for some errors) by their lowest bit.
std::uint32_t watch(server_prepared& server, std::string_view name, bool is_parse, std::string_view client_name = {}) {
  if (server.next_token >= (1u << 30)) server.next_token = 1;  // tokens live only while in flight
  const std::uint32_t token = (server.next_token++ << 1) | (is_parse ? 1u : 0u);
  server.watched.push_back({token, std::string(name), std::string(client_name)});
  return token;
}

const server_prepared::watched_request* find_watched(const server_prepared& server, std::uint32_t token) {
  for (const auto& w : server.watched)
    if (w.token == token) return &w;
  return nullptr;
}

}  // namespace

void note_skipped_requests(server_prepared& server, client_prepared* client) {
  for (auto token : server.responses.skipped()) note_request_skipped(server, client, token);
  server.responses.clear_skipped();
}

namespace {

// Prepares `def` on this connection ahead of what the client sent: Closes of evicted
// statements, then Close and Parse of this one, all hidden from the client unless `parse_action`
// forwards the Parse's answer (the client's own Parse).
void prepare_on_server(server_prepared& server, const statement_def& def, std::string& out,
                       response_action parse_action, std::string_view client_name = {}) {
  std::vector<std::string> evicted;
  server.statements.insert(def.server_name, evicted);
  server.statements.pin(def.server_name);
  server.statements.set_shape(def.server_name, 0);  // prepared afresh: its result type is today's
  for (const auto& name : evicted) {
    encode_close(out, target_statement, name);
    server.responses.push(request_kind::close, response_action::hide);
  }
  encode_close(out, target_statement, def.server_name);
  server.responses.push(request_kind::close, response_action::hide);
  encode_parse(out, def.server_name, def.query, def.param_types);
  ++server.prepares;
  if (!server.responses.push(request_kind::parse, parse_action, watch(server, def.server_name, true, client_name)))
    server.statements.erase(def.server_name);  // the server will skip it (an earlier error)
}

// Before a Bind or Describe of the unnamed statement: make the server's unnamed statement this
// client's latest, or none at all.
void ensure_unnamed(server_prepared& server, const client_prepared& client, std::string& out) {
  const auto& def = client.statements.unnamed();
  const auto generation = client.statements.unnamed_generation();
  if (def) {
    if (server.unnamed_client == client.id && server.unnamed_generation == generation) return;
    encode_parse(out, "", def->query, def->param_types);
    if (server.responses.push(request_kind::parse, response_action::hide)) {
      server.unnamed_client = client.id;
      server.unnamed_generation = generation;
    }
    return;
  }
  // This client has no unnamed statement: make sure it cannot use another client's.
  if (server.unnamed_client == client.id) return;
  encode_close(out, target_statement, "");
  server.responses.push(request_kind::close, response_action::hide);
  server.unnamed_client = 0;
}

// What a Bind or Describe of a client's named statement becomes on this connection.
enum class named_use {
  unknown,  // the client never prepared that name: the message goes unchanged, for the server to
            // answer (26000, or a statement the client made with SQL PREPARE)
  ready,    // prepared here (if need be): the message is renamed
  changed,  // its result type is not the one the client was shown: the message fails in place
  wait,     // a hidden Describe asks this connection's result type first
};

// The highest parameter number ($n) in `sql`, or the count of declared types if higher; $n
// inside strings counts too, which errs on the high side.
std::size_t parameter_count(const statement_def& def) {
  std::size_t highest = def.param_types.size() / 4;
  const std::string_view sql = def.query;
  for (std::size_t i = sql.find('$'); i != std::string_view::npos; i = sql.find('$', i + 1)) {
    std::size_t n = 0;
    for (std::size_t j = i + 1; j < sql.size() && sql[j] >= '0' && sql[j] <= '9' && n < 100000; ++j) n = n * 10 + (sql[j] - '0');
    highest = std::max(highest, n);
  }
  return highest;
}

// Whether pgmux can ask this connection for the statement's result type with a hidden Describe:
// the client was shown rows (a statement without rows keeps having none), nothing is being
// skipped, and the answer fits the relay's buffer, where pgmux's own answers are read whole
// (a ParameterDescription takes 4 bytes a parameter).
bool can_verify(const server_prepared& server, const client_statement& statement) {
  constexpr std::size_t max_parameters = 3000;
  return statement.shape > 1 && !server.responses.skipping() && parameter_count(*statement.def) <= max_parameters;
}

named_use prepare_named(server_prepared& server, client_prepared& client, std::string_view name, std::string& out,
                        bool may_wait, const statement_def*& def) {
  auto* statement = client.statements.named(name);
  if (!statement || !statement->def) return named_use::unknown;
  // The server is asked where its statement was not seen to have the client's type (prepared
  // afresh here, found with another type or none known), and again for a statement whose type
  // changed: PostgreSQL runs it again once the schema is back as it was.
  const bool ask = may_wait && can_verify(server, *statement) &&
                   (statement->result_changed || server.statements.shape(statement->def->server_name) != statement->shape);
  if (statement->result_changed && !ask) return named_use::changed;
  def = statement->def.get();
  if (ask) {
    // Close and Parse again even where it is held: a type other than the client's may be stale.
    prepare_on_server(server, *def, out, response_action::hide);
    const auto token = watch(server, def->server_name, false, name);
    encode_describe(out, target_statement, def->server_name);
    if (server.responses.push(request_kind::describe_statement, response_action::hide, token)) {
      encode_flush(out);  // the answer comes now, without ending the client's batch
      server.verifying = token;
      return named_use::wait;
    }
  }
  if (!server.statements.pin(def->server_name)) prepare_on_server(server, *def, out, response_action::hide);
  return named_use::ready;
}

// The error PostgreSQL gives every use of a prepared statement whose result type changed.
constexpr std::string_view result_changed_block =
    "DO $pgmux$BEGIN RAISE EXCEPTION USING ERRCODE = '0A000', MESSAGE = 'cached plan must not change result type'; "
    "END$pgmux$";

}  // namespace

std::optional<std::string> deallocated_name(std::string_view sql) {
  auto ident_char = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '$' || static_cast<unsigned char>(c) >= 0x80;
  };
  auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
  std::size_t pos = 0;
  // Between tokens, comments count as blanks (scan_frontend reads the keyword the same way).
  auto skip_spaces = [&] { pos = skip_blanks_and_comments(sql, pos); };
  auto word = [&](std::string_view w) {
    if (sql.size() - pos < w.size()) return false;
    for (std::size_t i = 0; i < w.size(); ++i)
      if (lower(sql[pos + i]) != w[i]) return false;
    if (pos + w.size() < sql.size() && ident_char(sql[pos + w.size()])) return false;
    pos += w.size();
    return true;
  };
  skip_spaces();
  if (!word("deallocate")) return std::nullopt;
  skip_spaces();
  const auto before_prepare = pos;
  if (!word("prepare")) pos = before_prepare;
  skip_spaces();
  std::string name;
  if (pos < sql.size() && sql[pos] == '"') {
    for (++pos;; ++pos) {
      if (pos >= sql.size()) return std::nullopt;
      if (sql[pos] == '"') {
        if (pos + 1 < sql.size() && sql[pos + 1] == '"') {
          name.push_back('"');
          ++pos;
          continue;
        }
        ++pos;
        break;
      }
      name.push_back(sql[pos]);
    }
  } else {
    while (pos < sql.size() && ident_char(sql[pos])) name.push_back(lower(sql[pos++]));
    if (name.empty() || name == "all" || std::isdigit(static_cast<unsigned char>(name[0]))) return std::nullopt;
  }
  skip_spaces();
  if (pos < sql.size() && sql[pos] == ';') ++pos;
  skip_spaces();
  if (pos != sql.size() || name.empty()) return std::nullopt;
  return name;
}

namespace {

// A client's message that fails in place: ahead of it the server runs `raising_block`, an
// anonymous code block that raises the error, through the unnamed statement and portal. The
// client gets that error where the answer to its message would have been, and the server skips
// the rest of the batch up to Sync, all in order as after any failed Parse or Bind; nothing of
// the client's SQL runs.
void fail_in_place(server_prepared& server, std::string_view raising_block, std::string& out,
                   std::uint32_t execute_watch = 0) {
  encode_parse(out, "", raising_block, {});
  server.responses.push(request_kind::parse, response_action::hide);
  // Bind: unnamed portal and statement, no formats, no parameters, no result formats.
  static constexpr char bind[] = {'B', 0, 0, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0};
  out.append(bind, sizeof bind);
  server.responses.push(request_kind::bind, response_action::hide);
  // Execute: unnamed portal, no row limit. Its error is forwarded, as for any hidden request.
  static constexpr char execute[] = {'E', 0, 0, 0, 9, 0, 0, 0, 0, 0};
  out.append(execute, sizeof execute);
  server.responses.push(request_kind::execute, response_action::hide, execute_watch);
  server.unnamed_client = 0;  // the code block took the unnamed statement's place
}

// The raising block's Execute for a statement whose result type changed: its error is replaced.
std::uint32_t watch_result_changed(server_prepared& server) {
  const auto token = watch(server, {}, false);
  server.watched.back().result_changed = true;
  return token;
}

// A client's Parse past its bounds (max_client_statements, max_client_statement_bytes).
void refuse_parse(server_prepared& server, const client_prepared& client, bool by_count, std::string& out) {
  std::string message = "too many prepared statements for this client (limit ";
  if (by_count)
    message += std::to_string(client.max_statements) + " statements); close some or raise max_client_statements";
  else
    message += std::to_string(client.max_bytes) + " bytes of SQL text); close some or raise max_client_statement_bytes";
  fail_in_place(server,
                      "DO $pgmux$ BEGIN RAISE EXCEPTION USING ERRCODE = '54000', MESSAGE = '" + message + "'; END $pgmux$",
                      out);
}

bool is_error(std::string_view code, std::string_view message, std::string_view want_code, std::string_view want_text) {
  return code == want_code && (want_text.empty() || message.find(want_text) != std::string_view::npos);
}

}  // namespace

std::uint64_t row_shape(char tag, std::string_view body) noexcept {
  if (tag == 'n') return 1;
  if (tag != 'T' || body.size() < 2) return 0;
  // FNV-1a over the column count and, per column, its name, type, length and modifier.
  std::uint64_t hash = 14695981039346656037ull;
  auto mix = [&hash](std::string_view bytes) {
    for (const char c : bytes) hash = (hash ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  };
  mix(body.substr(0, 2));
  const std::size_t columns = (static_cast<unsigned char>(body[0]) << 8) | static_cast<unsigned char>(body[1]);
  std::size_t pos = 2;
  for (std::size_t i = 0; i < columns; ++i) {
    const auto name_end = body.find('\0', pos);
    // name, NUL, table oid (4), column number (2), type oid (4), length (2), modifier (4), format (2)
    if (name_end == std::string_view::npos || body.size() - name_end - 1 < 18) return 0;
    mix(body.substr(pos, name_end + 1 - pos));
    mix(body.substr(name_end + 1 + 6, 10));
    pos = name_end + 1 + 18;
  }
  if (pos != body.size()) return 0;
  return hash < 2 ? hash + 2 : hash;  // 1 is NoData's
}

void server_prepared::reset_after_cleanup() {
  verifying = 0;
  if (!responses.empty()) statements.clear();  // some of what was sent may not have happened
  responses.clear();
  watched.clear();
  statements.unpin_all();
  unnamed_client = 0;
}

translate_result translate_frontend(std::string_view buffered, std::size_t buffer_capacity, client_prepared& client,
                                    server_prepared& server, std::string& out, sql_watch* seen_sql, bool may_wait,
                                    const std::vector<parameter_change>* restorable) {
  const auto h = parse_header(buffered, SIZE_MAX);
  if (h.status != parse_status::complete) return {translate_status::need_more};
  const char tag = h.hdr.tag;
  const std::size_t total = h.hdr.total();
  const auto body_size = h.hdr.body_size();
  translate_result result{translate_status::done};

  if (tag == 'B') {
    const auto names = decode_bind_names(buffered.substr(header_size), body_size);
    if (names.status == parse_status::invalid) return {translate_status::invalid, 0, 0, "malformed Bind message"};
    if (names.status == parse_status::need_more) {
      if (buffered.size() >= buffer_capacity) return {translate_status::invalid, 0, 0, "Bind names too long"};
      return {translate_status::need_more};
    }
    if (server.verifying != 0) return {translate_status::wait};
    const std::size_t head = header_size + names.names_size;
    std::uint32_t token = 0;
    const statement_def* def = nullptr;
    const auto use = names.statement.empty()
                         ? named_use::unknown
                         : prepare_named(server, client, names.statement, out, may_wait, def);
    if (use == named_use::wait) return {translate_status::wait};
    if (names.statement.empty()) ensure_unnamed(server, client, out);
    if (use == named_use::changed) fail_in_place(server, result_changed_block, out, watch_result_changed(server));
    if (use == named_use::ready) {
      encode_bind_header(out, body_size, names.names_size, names.portal, def->server_name);
      token = watch(server, def->server_name, false, names.statement);
    } else {
      out.append(buffered.substr(0, head));
    }
    if (names.portal.empty()) {
      const auto bound = use == named_use::ready ? names.statement : std::string_view{};
      if (!bound.empty() && !client.unnamed_portal_statement) client.unnamed_portal_statement = std::make_unique<std::string>();
      if (client.unnamed_portal_statement) client.unnamed_portal_statement->assign(bound);
    }
    server.responses.push(request_kind::bind, response_action::forward, token);
    note_skipped_requests(server, &client);
    return {translate_status::done, head, body_size - names.names_size};
  }

  if (buffered.size() < total) {
    // Parse, Describe and Close are needed whole; the relay gathers one larger than its buffer.
    return {translate_status::need_more};
  }
  const auto message = buffered.substr(0, total);
  const auto body = message.substr(header_size);
  result.consumed = total;

  switch (tag) {
    case 'Q': {
      // DEALLOCATE of a name the client prepared through the protocol (psycopg evicts its
      // cache so): the shared server statement of this connection goes, the client's name with
      // it, and the server answers "DEALLOCATE" in order. Other SQL goes unchanged.
      const auto sql = body.substr(0, body.find('\0'));
      // While the server skips to the client's Sync (an earlier error), it skips this Query
      // too: then it goes unchanged, so that no Sync of pgmux's ends the skipping early.
      std::optional<std::string> name = deallocated_name(sql);
      const statement_ptr def = name && !server.responses.skipping() ? client.statements.find(*name) : nullptr;
      if (def) {
        if (!server.statements.pin(def->server_name)) {
          // Prepared first so that DEALLOCATE finds it, closed by a Sync of its own: a failure
          // there must not make the server skip the Query.
          prepare_on_server(server, *def, out, response_action::hide);
          encode_sync(out);
          server.responses.push(request_kind::sync, response_action::hide);
        }
        encode_query(out, "DEALLOCATE " + def->server_name);
        server.statements.erase(def->server_name);
        client.statements.erase(*name);
      } else if (const auto found = inspect_sql(sql); found.reserved_statement_name) {
        encode_query(out, reserved_statement_refusal_sql());  // noted already by scan_frontend
      } else if (seen_sql && seen_sql->refuses(found)) {
        encode_query(out, session_state_refusal_sql(found.state));
      } else {
        result.hidden_statements = append_restored_query(out, message, sql, found.resets, restorable);
      }
      server.responses.push(request_kind::query);
      server.unnamed_client = 0;
      break;
    }
    case 'P': {
      const auto parse = decode_parse(body);
      if (!parse) return {translate_status::invalid, 0, 0, "malformed Parse message"};
      const auto found = inspect_sql(parse->query);
      // What the session_state policy refuses is replaced, and never noted: it does not run.
      if (seen_sql && seen_sql->refuses(found)) {
        // The Parse itself fails, so that a driver that describes the statement before binding it
        // gets the error, not a stand-in statement with other parameters. The name stays
        // undefined, as after any failed Parse ("" drops the unnamed statement).
        fail_in_place(server, session_state_refusal_sql(found.state), out);
        client.statements.erase(parse->name);
        break;
      }
      if (seen_sql) seen_sql->note(found);
      const auto refusal = [&]() -> std::string {
        return found.reserved_statement_name ? std::string(reserved_statement_refusal_sql()) : std::string();
      };
      if (parse->name.empty()) {
        // DEALLOCATE of a client's name, sent through the extended protocol (psycopg does):
        // the Parse carries the server name instead, prepared first if need be (the client's
        // Sync follows, so a failure there cannot make the server skip more than PostgreSQL would).
        std::string rewritten;
        if (const auto name = server.responses.skipping() ? std::nullopt : deallocated_name(parse->query)) {
          if (const statement_ptr def = client.statements.find(*name)) {
            if (!server.statements.pin(def->server_name)) prepare_on_server(server, *def, out, response_action::hide);
            rewritten = "DEALLOCATE " + def->server_name;
            server.statements.erase(def->server_name);
            client.statements.erase(*name);
          }
        }
        if (rewritten.empty()) rewritten = refusal();
        const std::string_view query = rewritten.empty() ? parse->query : std::string_view(rewritten);
        // Kept for a re-Parse elsewhere; the unnamed statement needs no server name. Clients
        // often Parse the same text again and again: the definition is then reused.
        const auto& previous = client.statements.unnamed();
        if (previous && previous->query == query && previous->param_types == parse->param_types)
          client.statements.add("", statement_ptr(previous));
        else
          client.statements.add("", std::make_shared<const statement_def>(
                                         statement_def{{}, std::string(query), std::string(parse->param_types)}));
        if (rewritten.empty()) out.append(message);
        else encode_parse(out, "", query, parse->param_types);
        if (server.responses.push(request_kind::parse)) {
          server.unnamed_client = client.id;
          server.unnamed_generation = client.statements.unnamed_generation();
        }
      } else {
        const auto& existing = client.statements.find(parse->name);
        const std::size_t count = client.statements.size() + (existing ? 0 : 1);
        const std::size_t bytes = client.statements.bytes() -
                                  (existing ? client_statements::cost(parse->name, existing->query, existing->param_types) : 0) +
                                  client_statements::cost(parse->name, parse->query, parse->param_types);
        if (count > client.max_statements || bytes > client.max_bytes) {
          refuse_parse(server, client, count > client.max_statements, out);
          break;
        }
        const auto replaced = refusal();
        auto def = make_statement(replaced.empty() ? parse->query : std::string_view(replaced), parse->param_types);
        prepare_on_server(server, *def, out, response_action::forward, parse->name);
        client.statements.add(parse->name, std::move(def));
      }
      break;
    }
    case 'D': {
      const auto target = decode_describe(body);
      if (!target) return {translate_status::invalid, 0, 0, "malformed Describe message"};
      if (target->kind == target_portal) {
        // A portal bound from a named statement shows the client that statement's result type.
        std::uint32_t token = 0;
        if (target->name.empty() && !client.unnamed_portal_name().empty()) {
          if (const auto& def = client.statements.find(client.unnamed_portal_name()))
            token = watch(server, def->server_name, false, client.unnamed_portal_name());
        }
        out.append(message);
        server.responses.push(request_kind::describe_portal, response_action::forward, token);
        break;
      }
      if (server.verifying != 0) return {translate_status::wait};
      std::uint32_t token = 0;
      const statement_def* def = nullptr;
      const auto use =
          target->name.empty() ? named_use::unknown : prepare_named(server, client, target->name, out, may_wait, def);
      if (use == named_use::wait) return {translate_status::wait};
      if (target->name.empty()) ensure_unnamed(server, client, out);
      if (use == named_use::changed) fail_in_place(server, result_changed_block, out, watch_result_changed(server));
      if (use == named_use::ready) {
        encode_describe(out, target_statement, def->server_name);
        token = watch(server, def->server_name, false, target->name);
      } else {
        out.append(message);
      }
      server.responses.push(request_kind::describe_statement, response_action::forward, token);
      break;
    }
    case 'C': {
      const auto target = decode_close(body);
      if (!target) return {translate_status::invalid, 0, 0, "malformed Close message"};
      if (target->kind == target_statement && !target->name.empty() && client.statements.erase(target->name)) {
        // The shared server statement stays for other clients; the server still answers in order.
        encode_close(out, target_statement, never_prepared);
      } else {
        if (target->kind == target_statement && target->name.empty()) {
          client.statements.erase("");
          server.unnamed_client = 0;
        }
        out.append(message);
      }
      server.responses.push(request_kind::close);
      break;
    }
    default:
      return {translate_status::invalid, 0, 0, "not a Parse, Bind, Describe or Close message"};
  }
  note_skipped_requests(server, &client);
  return result;
}

void note_request_failed(server_prepared& server, client_prepared* client, std::uint32_t token,
                         std::string_view error_body) {
  if (token == server.verifying) server.verifying = 0;  // the client's message goes on, to be skipped
  if (token & 1u) {  // a Parse pgmux sent: the statement does not exist
    const auto* w = find_watched(server, token);
    if (!w) return;
    server.statements.erase(w->server_name);
    // The client's own Parse failed: the name stays undefined, as on PostgreSQL.
    if (client && !w->client_name.empty()) {
      const auto& def = client->statements.find(w->client_name);
      if (def && def->server_name == w->server_name) client->statements.erase(w->client_name);
    }
    return;
  }
  const auto fields = decode_error_response(error_body);
  if (!fields) return;
  // The statement pgmux believed present is missing, or its plan went stale after a schema
  // change: prepare it afresh on its next use.
  if (is_error(fields->code, fields->message, "26000", "") ||
      is_error(fields->code, fields->message, "0A000", "cached plan must not change result type")) {
    if (const auto* w = find_watched(server, token); w && server.statements.contains(w->server_name)) {
      server.statements.erase(w->server_name);
      ++server.stale_statements;
    }
  }
}

void note_request_skipped(server_prepared& server, client_prepared* client, std::uint32_t token) {
  if (token == server.verifying) server.verifying = 0;
  if (!(token & 1u)) return;
  // A Parse the server skipped: the statement does not exist, nor (for the client's own
  // Parse) the client's name, as on PostgreSQL.
  note_request_failed(server, client, token, {});
}

void note_statement_described(server_prepared& server, client_prepared* client, std::uint32_t token, char tag,
                              std::string_view body) {
  if (token == server.verifying) server.verifying = 0;
  const auto* w = find_watched(server, token);
  const auto shape = row_shape(tag, body);
  if (!w || shape == 0) return;
  server.statements.set_shape(w->server_name, shape);
  if (!client || w->client_name.empty()) return;
  auto* statement = client->statements.named(w->client_name);
  if (!statement || !statement->def || statement->def->server_name != w->server_name) return;
  if (statement->shape == 0) statement->shape = shape;
  else statement->result_changed = statement->shape != shape;
}

bool replaces_error(server_prepared& server, std::uint32_t token) {
  const auto* w = find_watched(server, token);
  if (!w || !w->result_changed) return false;
  // PostgreSQL's own error for it (plancache.c), routine included: drivers retry on that.
  server.replacement.clear();
  server.replacement.push_back('E');
  std::string body;
  auto field = [&body](char code, std::string_view value) {
    body.push_back(code);
    body.append(value);
    body.push_back('\0');
  };
  field('S', "ERROR");
  field('V', "ERROR");
  field('C', "0A000");
  field('M', "cached plan must not change result type");
  field('F', "plancache.c");
  field('R', "RevalidateCachedQuery");
  body.push_back('\0');
  const auto length = static_cast<std::uint32_t>(body.size() + 4);
  for (int shift = 24; shift >= 0; shift -= 8) server.replacement.push_back(static_cast<char>(length >> shift));
  server.replacement += body;
  return true;
}

void note_command_complete(server_prepared& server, client_prepared& client, std::string_view body) {
  if (body.empty() || body[0] != 'D') return;
  const auto tag = body.substr(0, body.find('\0'));
  if (tag == "DISCARD ALL" || tag == "DEALLOCATE ALL") {
    server.statements.clear();
    client.statements.clear();
    server.unnamed_client = 0;
  }
}

void note_idle(server_prepared& server) {
  server.watched.clear();
  server.verifying = 0;
  server.statements.unpin_all();
}

}  // namespace pgmux::protocol
