// The statement normaliser of per-query statistics (sql_normalize.hpp): the fingerprint is the
// hash of the normalised text, the text is stable under normalising again, no string's content
// survives, and the cut is a prefix of the whole on a UTF-8 character boundary.
// Input: SQL text.
#include <string>

#include "fuzz_support.hpp"
#include "pgmux/protocol/sql_normalize.hpp"

using namespace pgmux::protocol;

namespace {

bool blank(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

bool valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (len == 0 || i + len > s.size()) return false;
    for (std::size_t k = 1; k < len; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    i += len;
  }
  return true;
}

void check_cut(std::string_view sql, const std::string& full, std::size_t max_bytes, bool utf8) {
  const auto cut = normalize_statement(sql, max_bytes);
  FUZZ_CHECK(cut.size() <= max_bytes);
  FUZZ_CHECK(full.compare(0, cut.size(), cut) == 0);
  if (full.size() <= max_bytes) FUZZ_CHECK(cut == full);
  FUZZ_CHECK(cut.empty() || (!blank(cut.front()) && !blank(cut.back())));
  // A valid text stays valid: no character is split.
  if (utf8) FUZZ_CHECK(valid_utf8(cut));
  // Only blanks, or a character that did not fit, were dropped past what was asked.
  for (std::size_t k = cut.size(); k < max_bytes && k < full.size(); ++k)
    FUZZ_CHECK(blank(full[k]) || static_cast<unsigned char>(full[k]) >= 0x80);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view sql(reinterpret_cast<const char*>(data), size);
  const auto full = normalize_statement(sql, SIZE_MAX);
  const auto fingerprint = statement_fingerprint(sql);
  FUZZ_CHECK(fingerprint != 0);
  FUZZ_CHECK(fingerprint == fingerprint_of_normalized(full));
  FUZZ_CHECK(full.size() <= sql.size());
  FUZZ_CHECK(full.empty() || (!blank(full.front()) && !blank(full.back())));
  // Normalising again changes nothing.
  FUZZ_CHECK(normalize_statement(full, SIZE_MAX) == full);
  if (full.find('"') == std::string::npos) {
    // Outside quoted identifiers: no string, no comment, single spaces only.
    FUZZ_CHECK(full.find('\'') == std::string::npos);
    FUZZ_CHECK(full.find("--") == std::string::npos);
    FUZZ_CHECK(full.find("/*") == std::string::npos);
    FUZZ_CHECK(full.find("  ") == std::string::npos);
    for (const char c : full) FUZZ_CHECK(c == ' ' || !blank(c));
  }
  const bool utf8 = valid_utf8(sql);
  if (utf8) FUZZ_CHECK(valid_utf8(full));
  for (const std::size_t m : {std::size_t{0}, std::size_t{1}, full.size() / 2, full.size() - (full.empty() ? 0 : 1),
                              full.size(), size > 0 ? data[0] % (full.size() + 1) : std::size_t{3}})
    check_cut(sql, full, m, utf8);

  // The input as the content of a string of each quoting: nothing of it is left.
  std::string quoted = "select '";
  std::string escaped = "select E'";
  for (const char c : sql) {
    if (c == '\'') quoted += '\'';
    quoted += c;
    if (c == '\'' || c == '\\') escaped += '\\';
    escaped += c;
  }
  quoted += "' x";
  escaped += "' x";
  FUZZ_CHECK(normalize_statement(quoted, SIZE_MAX) == "select ? x");
  FUZZ_CHECK(normalize_statement(escaped, SIZE_MAX) == "select ? x");
  std::string body(sql);
  body += "$q$";
  if (body.find("$q$") == sql.size()) FUZZ_CHECK(normalize_statement("select $q$" + body + " x", SIZE_MAX) == "select ? x");
  return 0;
}
