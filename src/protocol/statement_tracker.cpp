// Statements of the requests in flight, for per-query statistics.
#include "pgmux/protocol/statement_tracker.hpp"

#include "pgmux/protocol/prepared.hpp"
#include "pgmux/protocol/sql_inspect.hpp"
#include "pgmux/protocol/sql_normalize.hpp"

namespace pgmux::protocol {
namespace {

// The text up to the first NUL (or the end of what is buffered), and what follows the NUL.
std::string_view cstring(std::string_view body, std::string_view* after = nullptr) noexcept {
  const auto end = body.find('\0');
  if (end == std::string_view::npos) {
    if (after) *after = {};
    return body;
  }
  if (after) *after = body.substr(end + 1);
  return body.substr(0, end);
}

bool starts_with_word(std::string_view tag, std::string_view word) noexcept {
  return tag.size() > word.size() && tag.substr(0, word.size()) == word && tag[word.size()] == ' ';
}

}  // namespace

std::uint64_t command_rows(std::string_view tag) noexcept {
  if (!tag.empty() && tag.back() == '\0') tag.remove_suffix(1);
  static constexpr std::string_view counted[] = {"SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "FETCH", "MOVE", "COPY"};
  bool known = false;
  for (const auto word : counted) known = known || starts_with_word(tag, word);
  if (!known) return 0;
  // The count is the last word: "INSERT 0 5" has the (always 0) oid before it.
  const auto space = tag.rfind(' ');
  std::uint64_t rows = 0;
  for (const char c : tag.substr(space + 1)) {
    if (c < '0' || c > '9') return 0;
    rows = rows * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return rows;
}

void statement_names::define(std::string_view name, std::uint64_t fingerprint) {
  name = name.substr(0, max_name);
  if (const auto found = named.find(name); found != named.end()) {
    found->second = fingerprint;
    return;
  }
  if (named.size() >= max_named) named.erase(named.begin());  // a bound, not a policy: rarely met
  named.emplace(name, fingerprint);
}

std::uint64_t statement_names::find(std::string_view name) const noexcept {
  const auto found = named.find(name.substr(0, max_name));
  return found == named.end() ? 0 : found->second;
}

void statement_names::note_query(std::string_view sql) {
  if (const auto name = deallocated_name(sql)) {
    forget(*name);
    return;
  }
  // DEALLOCATE [PREPARE] ALL and DISCARD ALL, which deallocated_name does not read: words after
  // blanks and comments, in any case.
  std::size_t at = 0;
  const auto word = [&](std::string_view w) {
    at = skip_blanks_and_comments(sql, at);
    if (sql.size() - at < w.size()) return false;
    for (std::size_t i = 0; i < w.size(); ++i)
      if ((sql[at + i] | 0x20) != w[i]) return false;
    const std::size_t end = at + w.size();
    if (end < sql.size() && ((sql[end] | 0x20) >= 'a' && (sql[end] | 0x20) <= 'z')) return false;  // a longer word
    at = end;
    return true;
  };
  if (word("discard")) {
    if (word("all")) {
      named.clear();
      unnamed_statement = 0;
    }
  } else if (word("deallocate")) {
    word("prepare");
    if (word("all")) named.clear();
  }
}

void statement_tracker::on_frontend(char tag, std::string_view body) {
  switch (tag) {
    case 'Q': {
      const auto sql = cstring(body);
      const auto fingerprint = statement_fingerprint(sql);
      if (sink) sink->seen(fingerprint, sql);
      push(fingerprint);
      if (names && *names) {
        (*names)->unnamed_statement = 0;  // a simple Query destroys the unnamed statement
        const auto start = skip_blanks_and_comments(sql, 0);
        if (start < sql.size() && (sql[start] == 'd' || sql[start] == 'D')) (*names)->note_query(sql);
      }
      break;
    }
    case 'P': {
      std::string_view rest;
      const auto name = cstring(body, &rest);
      const auto sql = cstring(rest);
      const auto fingerprint = statement_fingerprint(sql);
      if (sink) sink->seen(fingerprint, sql);
      auto& known = client_names();
      if (name.empty()) known.unnamed_statement = fingerprint;
      else known.define(name, fingerprint);
      break;
    }
    case 'B': {
      std::string_view rest;
      const auto portal = cstring(body, &rest);
      const auto statement = cstring(rest);
      auto& known = client_names();
      const auto fingerprint = statement.empty() ? known.unnamed_statement : known.find(statement);
      (portal.empty() ? known.unnamed_portal : known.named_portal) = fingerprint;
      break;
    }
    case 'C':
      // Close of a named statement: its name may come back with other SQL (a Parse says so).
      if (body.size() > 1 && body[0] == 'S' && names && *names) (*names)->forget(cstring(body.substr(1)));
      break;
    case 'E':
      if (names && *names) batch_ = cstring(body).empty() ? (*names)->unnamed_portal : (*names)->named_portal;
      break;
    case 'S':
      push(batch_);
      batch_ = 0;
      break;
    case 'F':
      push(0);
      break;
    default:
      break;
  }
}

statement_names& statement_tracker::client_names() {
  if (!names) return no_names_;
  if (!*names) *names = std::make_unique<statement_names>();
  return **names;
}

bool overload_sqlstate(std::string_view code) noexcept {
  return code == "53000" || code == "53200" || code == "53300";
}

bool overload_error(std::string_view body) noexcept {
  // Fields: a type byte and a NUL-terminated value each, then a NUL.
  std::size_t at = 0;
  while (at < body.size() && body[at] != '\0') {
    const char type = body[at++];
    const auto end = body.find('\0', at);
    if (end == std::string_view::npos) return false;
    if (type == 'C') return overload_sqlstate(body.substr(at, end - at));
    at = end + 1;
  }
  return false;
}

void statement_tracker::on_backend(char tag, std::string_view body) noexcept {
  switch (tag) {
    case 'E': {
      const bool overloaded = overload_error(body);
      if (auto* r = current()) {
        r->failed = true;
        r->overloaded = r->overloaded || overloaded;
      } else {
        batch_failed_ = true;
        batch_overloaded_ = batch_overloaded_ || overloaded;
      }
      break;
    }
    case 'C':
      if (auto* r = current()) r->rows += command_rows(body);
      else batch_rows_ += command_rows(body);
      break;
    case 'Z':
      if (answered_ < count_) {
        ++answered_;
      } else if (dropped_ > 0) {
        --dropped_;  // a request not known: nothing to take
      }
      break;
    default:
      break;
  }
}

bool statement_tracker::take_answered(answered_request& out) noexcept {
  if (answered_ == 0) return false;
  const auto& r = ring_[head_];
  out = {r.fingerprint, r.failed, r.overloaded, r.rows};
  head_ = (head_ + 1) & (ring_.size() - 1);
  --count_;
  --answered_;
  return true;
}

void statement_tracker::ignored_syncs(std::size_t count) noexcept {
  for (; count > 0; --count) {
    if (dropped_ > 0) {
      --dropped_;
      continue;
    }
    if (count_ == answered_) return;  // nothing unanswered left to take back
    const auto& newest = ring_[(head_ + count_ - 1) & (ring_.size() - 1)];
    if (batch_ == 0) batch_ = newest.fingerprint;
    batch_failed_ = batch_failed_ || newest.failed;
    batch_overloaded_ = batch_overloaded_ || newest.overloaded;
    batch_rows_ += newest.rows;
    --count_;
  }
}

void statement_tracker::forget_requests(std::size_t unknown) noexcept {
  head_ = count_ = answered_ = 0;
  dropped_ = unknown;
  batch_ = 0;
  batch_failed_ = false;
  batch_overloaded_ = false;
  batch_rows_ = 0;
}

void statement_tracker::forget_in_flight() noexcept {
  forget_requests(0);
  sink = nullptr;  // the relay sets both for the client it serves next
  names = nullptr;
}

void statement_tracker::push(std::uint64_t fingerprint) {
  // Once one is dropped, none is kept until those in flight are answered: answers stay in order.
  if (dropped_ > 0 || count_ == max_in_flight) {
    ++dropped_;
    return;
  }
  if (count_ == ring_.size()) {
    std::vector<request> bigger(ring_.empty() ? 4 : ring_.size() * 2);
    for (std::size_t i = 0; i < count_; ++i) bigger[i] = ring_[(head_ + i) & (ring_.size() - 1)];
    ring_ = std::move(bigger);
    head_ = 0;
  }
  ring_[(head_ + count_) & (ring_.size() - 1)] = {fingerprint, batch_failed_, batch_overloaded_, batch_rows_};
  ++count_;
  batch_failed_ = false;
  batch_overloaded_ = false;
  batch_rows_ = 0;
}

statement_tracker::request* statement_tracker::current() noexcept {
  if (answered_ == count_) return nullptr;
  return &ring_[(head_ + answered_) & (ring_.size() - 1)];
}

}  // namespace pgmux::protocol
