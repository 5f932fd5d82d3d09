// A minimal SQL lexer: top-level statements, their first words, and what sits in literals.
#include "pgmux/protocol/sql_inspect.hpp"

#include <algorithm>

namespace pgmux::protocol {
namespace {

char fold(char c) noexcept { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }
bool is_space(char c) noexcept { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool ident_start(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || static_cast<unsigned char>(c) >= 0x80;
}
bool ident_char(char c) noexcept { return ident_start(c) || (c >= '0' && c <= '9') || c == '$'; }

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

bool mentions_statement_commands(std::string_view text) noexcept {
  return contains_folded(text, "prepare") || contains_folded(text, "deallocate");
}

struct token {
  enum class kind : unsigned char { word, quoted, symbol };
  kind type;
  std::string text;  // words folded to lower case, quoted identifiers as written
};

// The first tokens of one top-level statement: enough to tell what it is.
struct statement_head {
  static constexpr std::size_t kept = 3;
  token tokens[kept];
  std::size_t count = 0;
  void add(token::kind type, std::string text) {
    if (count < kept) tokens[count] = token{type, std::move(text)};
    ++count;
  }
  bool word_at(std::size_t i, std::string_view w) const {
    return count > i && i < kept && tokens[i].type == token::kind::word && tokens[i].text == w;
  }
  // A name (word or quoted identifier) at position i.
  const std::string* name_at(std::size_t i) const {
    if (count <= i || i >= kept || tokens[i].type == token::kind::symbol) return nullptr;
    return &tokens[i].text;
  }
};

bool reserved(const std::string* name) {
  return name && name->size() >= reserved_statement_prefix.size() &&
         std::string_view(*name).substr(0, reserved_statement_prefix.size()) == reserved_statement_prefix;
}

void finish_statement(const statement_head& head, sql_findings& out) {
  if (head.count == 0) return;
  // No channel has an empty name: PostgreSQL refuses `LISTEN ""` (and an unterminated quote).
  if (head.word_at(0, "listen")) {
    if (const auto* channel = head.name_at(1); channel && !channel->empty())
      out.listen.push_back({listen_change::kind::listen, *channel});
  } else if (head.word_at(0, "unlisten")) {
    if (head.count > 1 && head.tokens[1].type == token::kind::symbol && head.tokens[1].text == "*")
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

}  // namespace

sql_findings inspect_sql(std::string_view sql) {
  sql_findings out;
  statement_head head;
  std::size_t i = 0;
  const std::size_t n = sql.size();
  while (i < n) {
    const char c = sql[i];
    if (is_space(c) || (c == '-' && i + 1 < n && sql[i + 1] == '-') || (c == '/' && i + 1 < n && sql[i + 1] == '*')) {
      i = skip_blanks_and_comments(sql, i);
    } else if (c == ';') {
      finish_statement(head, out);
      head = statement_head{};
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
    } else if (ident_start(c)) {
      const std::size_t start = i;
      while (i < n && ident_char(sql[i])) ++i;
      const auto raw = sql.substr(start, i - start);
      const bool command_word = (raw.size() == 7 && contains_folded(raw, "prepare")) ||
                                (raw.size() == 10 && contains_folded(raw, "deallocate"));
      if (command_word && !command_position(head, head.count)) out.statement_commands_elsewhere = true;
      if (head.count < statement_head::kept) {
        std::string word(raw);
        std::transform(word.begin(), word.end(), word.begin(), fold);
        head.add(token::kind::word, std::move(word));
      } else {
        ++head.count;  // only the first words tell what a statement is
      }
    } else {
      head.add(token::kind::symbol, std::string(1, c));
      ++i;
    }
  }
  finish_statement(head, out);
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

void listen_set::apply(const std::vector<listen_change>& changes) {
  for (const auto& c : changes) {
    switch (c.what) {
      case listen_change::kind::listen:
        if (!contains(c.channel) && channels_.size() < max_channels) channels_.push_back(c.channel);
        break;
      case listen_change::kind::unlisten:
        channels_.erase(std::remove(channels_.begin(), channels_.end(), c.channel), channels_.end());
        break;
      case listen_change::kind::unlisten_all:
        channels_.clear();
        break;
    }
  }
}

bool listen_set::contains(std::string_view channel) const noexcept {
  return std::find(channels_.begin(), channels_.end(), channel) != channels_.end();
}

}  // namespace pgmux::protocol
