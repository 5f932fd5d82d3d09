// Statements told apart by their shape, not their values, for per-query statistics: the text
// with every constant (numbers, strings of any quoting, bit and hex strings, dollar-quoted
// bodies) and every parameter marker ($1) replaced by '?', comments dropped, runs of blanks
// folded to one space (none at either end), and keywords and unquoted identifiers folded to
// lower case as PostgreSQL folds them. "select 1" and "SELECT  2" are one statement;
// "\"T\"" and "t" stay two. Quoted identifiers are kept as written. No literal value survives:
// what is shown of a statement never holds a client's data.
// Pure: no allocation in statement_fingerprint.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace pgmux::protocol {

// The normalised text, cut at `max_bytes` (on a UTF-8 character boundary) when longer.
std::string normalize_statement(std::string_view sql, std::size_t max_bytes = 1024);

// A 64-bit hash of the whole normalised text (not cut), computed in one pass without building
// it: equal for texts whose normalised forms are equal. Never 0 (0 means "no statement").
// Keyed (SipHash-1-3) with a key drawn at the process's start: nobody can choose SQL that
// collides with another statement, and the values differ from one process to the next.
std::uint64_t statement_fingerprint(std::string_view sql) noexcept;

// The same hash of a text already normalised (uncut): statement_fingerprint(sql) ==
// fingerprint_of_normalized(normalize_statement(sql, SIZE_MAX)). For checks and tests.
std::uint64_t fingerprint_of_normalized(std::string_view normalized) noexcept;

}  // namespace pgmux::protocol
