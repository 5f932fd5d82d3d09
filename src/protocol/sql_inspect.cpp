// A minimal SQL lexer: top-level statements, their first words, and what sits in literals.
#include "pgmux/protocol/sql_inspect.hpp"

#include <algorithm>
#include <array>
#include <optional>

#include "pgmux/protocol/session_params.hpp"

namespace pgmux::protocol {
namespace {

char fold(char c) noexcept { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }
bool is_space(char c) noexcept { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
// Byte classes as a table: the prefilter (sql_may_matter) looks at every byte of every Query.
enum : unsigned char { start_bit = 1, digit_bit = 2, dollar_bit = 4 };
constexpr auto ident_classes = [] {
  std::array<unsigned char, 256> t{};
  for (int c = 0; c < 256; ++c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80) t[static_cast<std::size_t>(c)] |= start_bit;
    if (c >= '0' && c <= '9') t[static_cast<std::size_t>(c)] |= digit_bit;
    if (c == '$') t[static_cast<std::size_t>(c)] |= dollar_bit;
  }
  return t;
}();
constexpr bool ident_class(char c, unsigned char bits) noexcept {
  return (ident_classes[static_cast<unsigned char>(c)] & bits) != 0;
}
bool ident_start(char c) noexcept { return ident_class(c, start_bit); }
bool ident_char(char c) noexcept { return ident_class(c, start_bit | digit_bit | dollar_bit); }

// Whether `text` contains `word` (lower case) in any case.
bool contains_folded(std::string_view text, std::string_view word) noexcept {
  if (text.size() < word.size()) return false;
  for (std::size_t i = 0; i + word.size() <= text.size(); ++i) {
    if (fold(text[i]) != word[0]) continue;
    std::size_t j = 1;
    while (j < word.size() && fold(text[i + j]) == word[j]) ++j;
    if (j == word.size()) return true;
  }
  return false;
}

struct token {
  enum class kind : unsigned char { word, quoted, symbol };
  kind type;
  std::string text;  // words folded to lower case, quoted identifiers as written
};

// Whether the identifier `raw` is `word` (lower case) in any case.
bool word_is(std::string_view raw, std::string_view word) noexcept {
  return raw.size() == word.size() && contains_folded(raw, word);
}

// Whether `text` holds PREPARE or DEALLOCATE anywhere, in any case: one pass.
bool mentions_statement_commands(std::string_view text) noexcept {
  for (std::size_t i = 0; i + 7 <= text.size(); ++i) {
    const char c = fold(text[i]);
    if (c == 'p' && word_is(text.substr(i, 7), "prepare")) return true;
    if (c == 'd' && i + 10 <= text.size() && word_is(text.substr(i, 10), "deallocate")) return true;
  }
  return false;
}

// The first tokens of one top-level statement: enough to tell what it is.
struct statement_head {
  static constexpr std::size_t kept = 8;
  token tokens[kept];
  std::size_t stored = 0;  // tokens kept
  std::size_t count = 0;   // tokens seen
  // Most statements are told by their first three tokens; CREATE needs more to find TEMP or
  // pg_temp, SET a few for SET SESSION TIME ZONE. Keeping no more spares a copy per token.
  std::size_t limit() const noexcept {
    if (stored > 0 && tokens[0].type == token::kind::word) {
      if (tokens[0].text == "create") return kept;
      if (tokens[0].text == "set") return 6;
      if (tokens[0].text == "reset") return 4;
    }
    return 3;
  }
  bool keeps_next() const noexcept { return stored == count && stored < limit(); }
  void add(token::kind type, std::string text) {
    if (keeps_next()) tokens[stored++] = token{type, std::move(text)};
    ++count;
  }
  bool word_at(std::size_t i, std::string_view w) const {
    return i < stored && tokens[i].type == token::kind::word && tokens[i].text == w;
  }
  // A name (word or quoted identifier) at position i.
  const std::string* name_at(std::size_t i) const {
    if (i >= stored || tokens[i].type == token::kind::symbol) return nullptr;
    return &tokens[i].text;
  }
};

// What one top-level statement shows beyond its first words, for session state.
struct statement_scan {
  statement_head head;
  bool advisory_lock = false;   // calls a session-level advisory lock function
  bool with_hold = false;       // the words WITH HOLD
  bool into_temp = false;       // the words INTO TEMP or INTO TEMPORARY
  bool on_commit_drop = false;  // the words ON COMMIT DROP
  bool session_set_config = false;  // set_config(name, value, is_local) with is_local not plainly true
  std::string_view previous;    // the word before, as written
  std::string_view before_previous;

  // set_config(...): where its argument list stands. Its third argument decides: only the bare
  // word true keeps the setting local to the transaction.
  enum class call : unsigned char { none, name_seen, in_arguments };
  call set_config = call::none;
  int depth = 0;          // parentheses open inside the call
  int commas = 0;         // at depth 1
  bool third_seen = false;

  void third_argument(bool plainly_true) {
    if (set_config == call::in_arguments && depth == 1 && commas == 2 && !third_seen) {
      third_seen = true;
      if (!plainly_true) session_set_config = true;
    }
  }

  void word(std::string_view raw) {
    third_argument(word_is(raw, "true"));
    if (set_config == call::name_seen) set_config = call::none;
    if (word_is(raw, "set_config") && set_config == call::none) set_config = call::name_seen;
    if (word_is(raw, "pg_advisory_lock") || word_is(raw, "pg_advisory_lock_shared") ||
        word_is(raw, "pg_try_advisory_lock") || word_is(raw, "pg_try_advisory_lock_shared"))
      advisory_lock = true;
    if (word_is(raw, "hold") && word_is(previous, "with")) with_hold = true;
    if ((word_is(raw, "temp") || word_is(raw, "temporary")) && word_is(previous, "into")) into_temp = true;
    if (word_is(raw, "drop") && word_is(previous, "commit") && word_is(before_previous, "on")) on_commit_drop = true;
    before_previous = previous;
    previous = raw;
  }
  // A symbol, string or quoted name (`c` its first character).
  void other_token(char c) {
    previous = before_previous = {};
    if (set_config == call::name_seen) {
      set_config = c == '(' ? call::in_arguments : call::none;
      depth = 1;
      commas = 0;
      third_seen = false;
      return;
    }
    if (set_config != call::in_arguments) return;
    if (c == '(') {
      ++depth;
    } else if (c == ')') {
      if (--depth == 0) {
        if (!third_seen) session_set_config = true;  // fewer arguments than PostgreSQL takes: unclear
        set_config = call::none;
      }
    } else if (c == ',' && depth == 1) {
      ++commas;
    } else {
      third_argument(false);  // 'true'::bool, $1, ...: not plainly true
    }
  }
};

bool reserved(const std::string* name) {
  return name && name->size() >= reserved_statement_prefix.size() &&
         std::string_view(*name).substr(0, reserved_statement_prefix.size()) == reserved_statement_prefix;
}

// A parameter named at token `i`: a word or quoted name, or prefix.name of a custom parameter
// (three tokens). No tokens when the head does not hold one whole.
struct parameter_ref {
  std::string name;
  std::size_t tokens = 0;
};
parameter_ref parameter_at(const statement_head& head, std::size_t i) {
  const auto* name = head.name_at(i);
  if (!name) return {};
  if (i + 2 < head.stored && head.tokens[i + 1].type == token::kind::symbol && head.tokens[i + 1].text == ".") {
    const auto* rest = head.name_at(i + 2);
    if (!rest) return {};
    return {*name + "." + *rest, 3};
  }
  if (i + 1 >= head.stored && head.count > i + 1) return {};  // more than pgmux kept: maybe a prefix
  return {*name, 1};
}

// SET at the head of a statement: what it leaves on the connection. A parameter whose session
// value pgmux can read back and carry goes to `carried` instead.
session_state::set set_statement_state(const statement_head& head, std::vector<std::string>& carried) {
  // Transaction-scoped: gone when the transaction ends.
  if (head.word_at(1, "local") || head.word_at(1, "transaction") || head.word_at(1, "constraints"))
    return session_state::none;
  std::size_t i = 1;
  if (head.word_at(1, "session")) {
    if (head.word_at(2, "authorization")) return session_state::role;
    if (head.word_at(2, "characteristics")) return session_state::parameter;
    i = 2;
  }
  if (head.word_at(i, "role") || head.word_at(i, "session_authorization")) return session_state::role;
  // SET TIME ZONE and SET NAMES set TimeZone and client_encoding, which pgmux carries over.
  if ((head.word_at(i, "time") && head.word_at(i + 1, "zone")) || head.word_at(i, "names")) return session_state::none;
  if (head.word_at(i, "schema")) {
    carried.emplace_back("search_path");
    return session_state::none;
  }
  if (head.word_at(i, "xml")) return session_state::parameter;  // SET XML OPTION: no name to read back
  const auto* name = head.name_at(i);
  if (!name) return session_state::none;  // not a statement PostgreSQL accepts
  if (tracked_parameter_index(*name)) return session_state::none;
  if (parameter_name_equal(*name, "role") || parameter_name_equal(*name, "session_authorization"))
    return session_state::role;
  auto parameter = parameter_at(head, i);
  // Unless pgmux can tell the name (it kept too few tokens), the SET counts as session state.
  if (parameter.tokens == 0 || !valid_parameter_name(parameter.name)) return session_state::parameter;
  carried.push_back(std::move(parameter.name));
  return session_state::none;
}

// CREATE [OR REPLACE] [GLOBAL | LOCAL] TEMP | TEMPORARY ..., or a name in schema pg_temp.
bool creates_temp_object(const statement_head& head) {
  std::size_t i = 1;
  while (head.word_at(i, "or") || head.word_at(i, "replace") || head.word_at(i, "global") || head.word_at(i, "local")) ++i;
  if (head.word_at(i, "temp") || head.word_at(i, "temporary")) return true;
  for (std::size_t j = 1; j + 1 < head.stored; ++j)
    if (head.word_at(j, "pg_temp") && head.tokens[j + 1].type == token::kind::symbol && head.tokens[j + 1].text == ".")
      return true;
  return false;
}

// What a RESET, or a SET ... TO DEFAULT, takes back to its reset value: a name, "" for all;
// nullopt for any other statement (SET LOCAL and RESET of the role or session user included).
std::optional<std::string> reset_target(const statement_head& head) {
  if (head.word_at(0, "reset")) {
    if (head.word_at(1, "all") && head.count == 2) return std::string();
    if (head.word_at(1, "time") && head.word_at(2, "zone")) return std::string("timezone");
    if (head.word_at(1, "session") || head.word_at(1, "role") || head.word_at(1, "transaction")) return std::nullopt;
    auto parameter = parameter_at(head, 1);
    if (parameter.tokens == 0 || head.count != 1 + parameter.tokens) return std::nullopt;
    return std::move(parameter.name);
  }
  if (!head.word_at(0, "set")) return std::nullopt;
  std::size_t i = head.word_at(1, "session") ? 2 : 1;
  if (head.word_at(i, "time") && head.word_at(i + 1, "zone") && head.count == i + 3 &&
      (head.word_at(i + 2, "default") || head.word_at(i + 2, "local")))
    return std::string("timezone");
  if (head.word_at(1, "local") || head.word_at(i, "role") || head.word_at(i, "authorization")) return std::nullopt;
  auto parameter = parameter_at(head, i);
  if (parameter.tokens == 0) return std::nullopt;
  const std::size_t after = i + parameter.tokens;
  const bool to = head.word_at(after, "to") ||
                  (after < head.stored && head.tokens[after].type == token::kind::symbol && head.tokens[after].text == "=");
  if (!to || !head.word_at(after + 1, "default") || head.count != after + 2) return std::nullopt;
  return std::move(parameter.name);
}

void finish_statement(const statement_scan& scan, sql_findings& out, std::size_t end, std::size_t& ordinal) {
  const auto& head = scan.head;
  if (head.count == 0) return;
  if (auto target = reset_target(head)) {
    // An untracked parameter's value after it is read back at the end of the transaction, as
    // after a SET, so that it follows the client.
    if (!target->empty() && !tracked_parameter_index(*target) && valid_parameter_name(*target))
      out.carried.push_back(*target);
    out.resets.push_back({ordinal, end, std::move(*target)});
  }
  ++ordinal;
  if (scan.advisory_lock) out.state |= session_state::advisory_lock;
  // set_config('role', ...) changes the role as SET ROLE does, but the name may be any
  // expression: a session-level set_config counts as "set", which every policy covers.
  if (scan.session_set_config || scan.set_config == statement_scan::call::in_arguments) out.state |= session_state::parameter;
  if (head.word_at(0, "set")) {
    out.state |= set_statement_state(head, out.carried);
  } else if (head.word_at(0, "create")) {
    if (creates_temp_object(head) && !scan.on_commit_drop) out.state |= session_state::temp_table;
  } else if (head.word_at(0, "select") || head.word_at(0, "with")) {
    if (scan.into_temp) out.state |= session_state::temp_table;
  } else if (head.word_at(0, "declare")) {
    if (scan.with_hold) out.state |= session_state::hold_cursor;
  } else if (head.word_at(0, "prepare") && !head.word_at(1, "transaction")) {
    if (const auto* name = head.name_at(1); name && !reserved(name)) out.state |= session_state::prepare;
  }
  // No channel has an empty name: PostgreSQL refuses `LISTEN ""` (and an unterminated quote).
  if (head.word_at(0, "listen")) {
    out.state |= session_state::listen;
    if (const auto* channel = head.name_at(1); channel && !channel->empty())
      out.listen.push_back({listen_change::kind::listen, *channel});
  } else if (head.word_at(0, "unlisten")) {
    if (head.stored > 1 && head.tokens[1].type == token::kind::symbol && head.tokens[1].text == "*")
      out.listen.push_back({listen_change::kind::unlisten_all, {}});
    else if (const auto* channel = head.name_at(1); channel && !channel->empty())
      out.listen.push_back({listen_change::kind::unlisten, *channel});
  } else if (head.word_at(0, "prepare") || head.word_at(0, "execute")) {
    if (reserved(head.name_at(1))) out.reserved_statement_name = true;
  } else if (head.word_at(0, "deallocate")) {
    if (reserved(head.name_at(head.word_at(1, "prepare") ? 2 : 1))) out.reserved_statement_name = true;
  }
}

// Whether the word at index `index` of a statement is accounted for as its command.
bool command_position(const statement_head& head, std::size_t index) {
  if (index == 0) return true;
  return index == 1 && head.word_at(0, "deallocate");
}

// A word of the prefilter: a run of letters, digits, '_' and bytes >= 0x80 that starts with no
// digit. The lexer's words may also hold '$', which splits them here: every word the lexer
// finds in code is then one of these, or holds '$' and is none of the words that matter.
bool word_matters(std::string_view word) noexcept {
  switch (word.size()) {
    case 3: return word_is(word, "set");
    case 4: return word_is(word, "temp") || word_is(word, "hold");
    case 5: return word_is(word, "reset");
    case 6: return word_is(word, "create") || word_is(word, "listen");
    case 7: return word_is(word, "declare") || word_is(word, "execute");
    case 8: return word_is(word, "unlisten");
    case 9: return word_is(word, "temporary");
    case 10: return word_is(word, "set_config");
    // pg_advisory_lock, pg_try_advisory_lock and their _shared forms
    case 16: return word_is(word, "pg_advisory_lock");
    case 20: return word_is(word, "pg_try_advisory_lock");
    case 23: return word_is(word, "pg_advisory_lock_shared");
    case 27: return word_is(word, "pg_try_advisory_lock_shared");
    default: return false;
  }
}

}  // namespace

bool sql_may_matter(std::string_view sql) noexcept {
  const std::size_t n = sql.size();
  for (std::size_t i = 0; i < n;) {
    if (!ident_start(sql[i])) {
      ++i;
      continue;
    }
    const std::size_t start = i;
    while (i < n && ident_class(sql[i], start_bit | digit_bit)) ++i;
    const auto word = sql.substr(start, i - start);
    // PREPARE and DEALLOCATE count anywhere, inside strings and longer words too.
    if (word_matters(word) || mentions_statement_commands(word)) return true;
  }
  return false;
}

sql_findings inspect_sql(std::string_view sql) {
  if (!sql_may_matter(sql)) return {};
  return inspect_sql_unfiltered(sql);
}

sql_findings inspect_sql_unfiltered(std::string_view sql) {
  sql_findings out;
  statement_scan scan;
  auto& head = scan.head;
  std::size_t ordinal = 0;  // statements that are not empty, so far
  std::size_t i = 0;
  const std::size_t n = sql.size();
  while (i < n) {
    const char c = sql[i];
    if (is_space(c) || (c == '-' && i + 1 < n && sql[i + 1] == '-') || (c == '/' && i + 1 < n && sql[i + 1] == '*')) {
      i = skip_blanks_and_comments(sql, i);
    } else if (c == ';') {
      finish_statement(scan, out, i + 1, ordinal);
      scan = statement_scan{};
      ++i;
    } else if (c == '"') {
      std::string name;
      for (++i; i < n; ++i) {
        if (sql[i] == '"') {
          if (i + 1 < n && sql[i + 1] == '"') {
            name.push_back('"');
            ++i;
            continue;
          }
          ++i;
          break;
        }
        name.push_back(sql[i]);
      }
      head.add(token::kind::quoted, std::move(name));
      scan.other_token('"');
    } else if (c == '\'') {
      // A string; E'...' strings (the E was read as a word) also take backslash escapes.
      const bool escapes = i > 0 && (sql[i - 1] == 'e' || sql[i - 1] == 'E') && (i < 2 || !ident_char(sql[i - 2]));
      const std::size_t start = ++i;
      while (i < n) {
        if (escapes && sql[i] == '\\' && i + 1 < n) {
          i += 2;
        } else if (sql[i] == '\'') {
          if (i + 1 < n && sql[i + 1] == '\'') {
            i += 2;
          } else {
            break;
          }
        } else {
          ++i;
        }
      }
      if (mentions_statement_commands(sql.substr(start, i - start))) out.statement_commands_elsewhere = true;
      if (i < n) ++i;
      head.add(token::kind::symbol, "'");
      scan.other_token('\'');
    } else if (c == '$' && i + 1 < n && !(sql[i + 1] >= '0' && sql[i + 1] <= '9')) {
      // A dollar quote $tag$...$tag$ (a $ followed by a digit is a parameter).
      std::size_t j = i + 1;
      while (j < n && sql[j] != '$' && ident_char(sql[j])) ++j;
      if (j < n && sql[j] == '$') {
        const auto tag = sql.substr(i, j + 1 - i);
        const auto body_start = j + 1;
        const auto end = sql.find(tag, body_start);
        const auto body_end = end == std::string_view::npos ? n : end;
        if (mentions_statement_commands(sql.substr(body_start, body_end - body_start)))
          out.statement_commands_elsewhere = true;
        i = end == std::string_view::npos ? n : end + tag.size();
        head.add(token::kind::symbol, "$");
      } else {
        head.add(token::kind::symbol, "$");
        ++i;
      }
      scan.other_token('$');
    } else if (ident_start(c)) {
      const std::size_t start = i;
      while (i < n && ident_char(sql[i])) ++i;
      const auto raw = sql.substr(start, i - start);
      const bool command_word = (raw.size() == 7 && contains_folded(raw, "prepare")) ||
                                (raw.size() == 10 && contains_folded(raw, "deallocate"));
      if (command_word && !command_position(head, head.count)) out.statement_commands_elsewhere = true;
      scan.word(raw);
      if (head.keeps_next()) {
        std::string word(raw);
        std::transform(word.begin(), word.end(), word.begin(), fold);
        head.add(token::kind::word, std::move(word));
      } else {
        ++head.count;  // only the first words tell what a statement is
      }
    } else {
      head.add(token::kind::symbol, std::string(1, c));
      scan.other_token(c);
      ++i;
    }
  }
  finish_statement(scan, out, n, ordinal);
  return out;
}

std::size_t skip_blanks_and_comments(std::string_view sql, std::size_t i) noexcept {
  const std::size_t n = sql.size();
  while (i < n) {
    if (is_space(sql[i])) {
      ++i;
    } else if (sql[i] == '-' && i + 1 < n && sql[i + 1] == '-') {
      while (i < n && sql[i] != '\n') ++i;
    } else if (sql[i] == '/' && i + 1 < n && sql[i + 1] == '*') {
      int depth = 1;  // PostgreSQL's block comments nest
      i += 2;
      while (i < n && depth > 0) {
        if (sql[i] == '/' && i + 1 < n && sql[i + 1] == '*') {
          ++depth;
          i += 2;
        } else if (sql[i] == '*' && i + 1 < n && sql[i + 1] == '/') {
          --depth;
          i += 2;
        } else {
          ++i;
        }
      }
    } else {
      break;
    }
  }
  return std::min(i, n);
}

std::string_view reserved_statement_refusal_sql() {
  return "DO $pgmux$BEGIN RAISE EXCEPTION USING ERRCODE = '42501', MESSAGE = "
         "'prepared statement names starting with \"pgmux_\" are reserved by pgmux'; END$pgmux$";
}

void sql_watch::note_carried(const std::string& name) {
  for (const auto& n : to_read)
    if (parameter_name_equal(n, name)) return;
  if (to_read.size() < max_carried) to_read.push_back(name);
  else state |= session_state::parameter;
}

std::string session_state_refusal_sql(session_state::set state) {
  // The labels are plain words: nothing in them needs quoting.
  return "DO $pgmux$BEGIN RAISE EXCEPTION USING ERRCODE = '0A000', MESSAGE = 'session state (" +
         session_state::describe(state) +
         ") is not allowed in transaction pooling mode', HINT = 'This pool''s session_state policy is "
         "\"refuse\": use SET LOCAL, pg_advisory_xact_lock or ON COMMIT DROP inside a transaction, or a "
         "session-mode pool.'; END$pgmux$";
}

state_reset session_state_reset(session_state::set left) {
  if (left & session_state::prepare) return {"DISCARD ALL", true, true};
  state_reset r;
  auto add = [&](std::string_view statement) {
    if (!r.sql.empty()) r.sql += "; ";
    r.sql += statement;
  };
  // A set_config ("parameter") may have named role or session_authorization, which RESET ALL
  // leaves alone: they are reset on their own.
  if (left & (session_state::role | session_state::parameter)) add("SET SESSION AUTHORIZATION DEFAULT; RESET ROLE");
  if (left & session_state::parameter) {
    add("RESET ALL");
    r.resets_parameters = true;
  }
  if (left & session_state::temp_table) add("DISCARD TEMP");
  if (left & session_state::hold_cursor) add("CLOSE ALL");
  if (left & session_state::advisory_lock) add("SELECT pg_catalog.pg_advisory_unlock_all()");
  if (left & session_state::listen) add("UNLISTEN *");
  return r;
}

namespace session_state {

const char* label(std::size_t bit) noexcept {
  static constexpr const char* labels[kinds] = {"set", "role", "temp_table", "prepare", "cursor", "advisory_lock", "listen"};
  return bit < kinds ? labels[bit] : "?";
}

std::string describe(set s) {
  std::string out;
  for (std::size_t bit = 0; bit < kinds; ++bit) {
    if ((s & (1u << bit)) == 0) continue;
    if (!out.empty()) out += ',';
    out += label(bit);
  }
  return out;
}

}  // namespace session_state

void listen_set::apply(const std::vector<listen_change>& changes) {
  for (const auto& c : changes) {
    switch (c.what) {
      case listen_change::kind::listen:
        if (!channels_) channels_ = std::make_unique<std::vector<std::string>>();
        if (!contains(c.channel) && channels_->size() < max_channels) channels_->push_back(c.channel);
        break;
      case listen_change::kind::unlisten:
        if (channels_) channels_->erase(std::remove(channels_->begin(), channels_->end(), c.channel), channels_->end());
        break;
      case listen_change::kind::unlisten_all:
        channels_.reset();
        break;
    }
  }
}

bool listen_set::contains(std::string_view channel) const noexcept {
  return channels_ && std::find(channels_->begin(), channels_->end(), channel) != channels_->end();
}

}  // namespace pgmux::protocol
