// The statement normaliser: one lexer pass that writes to a sink, so that the text
// (normalize_statement) and its hash (statement_fingerprint) come from the same code.
//
// Rules, as PostgreSQL's scanner reads the text (standard_conforming_strings on):
// - constants become '?': numbers (1, 1.5, .5, 1e10, 1.5E-3, 0x1F, 0o17, 0b101, 1_000),
//   strings '...' with '' inside, E'...' (backslash escapes), N'...', U&'...', bit and hex
//   strings B'...' and X'...', dollar-quoted bodies $$...$$ and $tag$...$tag$;
// - parameter markers $1 become '?';
// - words (keywords and unquoted identifiers: letters, digits, '_', '$', bytes >= 0x80, not
//   starting with a digit or '$') are folded to lower case (ASCII only);
// - quoted identifiers "..." (and u&"...") stay as written, quotes included;
// - any other byte (operators, punctuation, a minus sign) stays as written: -1 becomes -?;
// - blanks and comments (-- to the end of the line, nested /* */) between two tokens become one
//   space; none at the start or the end, none where the text had none;
// - semicolons at the end (with blanks and comments around them) are dropped.
// An unterminated string, quote or comment runs to the end of the text; an unterminated quoted
// identifier loses its trailing blanks.
#include "pgmux/protocol/sql_normalize.hpp"

#include "pgmux/protocol/sql_inspect.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <random>

namespace pgmux::protocol {
namespace {

// What each byte can be, as bits: a table lookup instead of a chain of comparisons.
enum : unsigned char { blank_bit = 1, letter_bit = 2, digit_bit = 4, dollar_bit = 8, hex_bit = 16 };
constexpr auto byte_classes = [] {
  std::array<unsigned char, 256> t{};
  for (int c = 0; c < 256; ++c) {
    unsigned char k = 0;
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') k |= blank_bit;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80) k |= letter_bit;
    if (c >= '0' && c <= '9') k |= digit_bit | hex_bit;
    if ((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')) k |= hex_bit;
    if (c == '$') k |= dollar_bit;
    t[static_cast<std::size_t>(c)] = k;
  }
  return t;
}();
constexpr bool has(char c, unsigned char bits) noexcept { return (byte_classes[static_cast<unsigned char>(c)] & bits) != 0; }

constexpr char fold(char c) noexcept { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }
constexpr bool is_blank(char c) noexcept { return has(c, blank_bit); }
constexpr bool is_digit(char c) noexcept { return has(c, digit_bit); }
constexpr bool is_hex(char c) noexcept { return has(c, hex_bit); }
// A dollar quote's tag: like a word, without '$'.
constexpr bool tag_start(char c) noexcept { return has(c, letter_bit); }
constexpr bool tag_char(char c) noexcept { return has(c, letter_bit | digit_bit); }
constexpr bool word_char(char c) noexcept { return has(c, letter_bit | digit_bit | dollar_bit); }
constexpr bool utf8_continuation(char c) noexcept { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }
// The length of the character a lead byte starts; 1 for any other byte.
constexpr std::size_t utf8_length(char c) noexcept {
  const auto b = static_cast<unsigned char>(c);
  return b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1;
}

// The hash: SipHash-1-3 under a key drawn once per process, fed in pieces of any size (only the
// byte sequence counts, not how it was cut). Keyed, so that no client can craft SQL whose
// fingerprint is another statement's and have its calls, or its text, stand for that one.
struct sip_key {
  std::uint64_t k0, k1;
};
const sip_key& process_key() {
  static const sip_key key = [] {
    std::random_device random;  // getrandom(): once per process
    auto word = [&] { return (std::uint64_t{random()} << 32) | random(); };
    return sip_key{word(), word()};
  }();
  return key;
}

class hash_sink {
 public:
  hash_sink() noexcept {
    const auto& key = process_key();
    v0_ = key.k0 ^ 0x736f6d6570736575ull;
    v1_ = key.k1 ^ 0x646f72616e646f6dull;
    v2_ = key.k0 ^ 0x6c7967656e657261ull;
    v3_ = key.k1 ^ 0x7465646279746573ull;
  }
  static constexpr bool full() noexcept { return false; }
  // Bytes gather in a block and are hashed a block at a time: a byte costs a store, not a shift
  // and a test (every Query and Parse is hashed, a byte at a time as the lexer folds words).
  void put(char c) noexcept {
    block_[fill_++] = c;
    if (fill_ == block_size) flush();
  }
  void put(std::string_view s) noexcept {
    while (!s.empty()) {
      const std::size_t take = std::min(s.size(), block_size - fill_);
      std::memcpy(block_ + fill_, s.data(), take);
      fill_ += take;
      s.remove_prefix(take);
      if (fill_ == block_size) flush();
    }
  }
  void put_folded(std::string_view s) noexcept {
    for (const char c : s) put(fold(c));
  }
  std::uint64_t value() const noexcept {
    hash_sink h = *this;
    const std::size_t whole = h.fill_ / 8 * 8;
    h.compress_words(whole);
    std::uint64_t last = (h.length_ + h.fill_) << 56;
    for (std::size_t k = whole; k < h.fill_; ++k)
      last |= std::uint64_t{static_cast<unsigned char>(h.block_[k])} << (8 * (k - whole));
    h.compress(last);
    h.v2_ ^= 0xff;
    h.round();
    h.round();
    h.round();
    const std::uint64_t out = h.v0_ ^ h.v1_ ^ h.v2_ ^ h.v3_;
    return out != 0 ? out : 1;
  }

 private:
  static constexpr std::size_t block_size = 64;  // a multiple of SipHash's 8-byte word
  std::uint64_t v0_, v1_, v2_, v3_;
  std::uint64_t length_ = 0;  // bytes hashed before the block
  std::size_t fill_ = 0;      // bytes in the block
  char block_[block_size];

  void flush() noexcept {
    compress_words(block_size);
    length_ += block_size;
    fill_ = 0;
  }
  // SipHash reads the message as little-endian 64-bit words.
  void compress_words(std::size_t bytes) noexcept {
    for (std::size_t k = 0; k < bytes; k += 8) {
      std::uint64_t w;
      std::memcpy(&w, block_ + k, 8);
      if constexpr (std::endian::native == std::endian::big) w = byteswap(w);
      compress(w);
    }
  }
  static std::uint64_t byteswap(std::uint64_t w) noexcept {
    std::uint64_t r = 0;
    for (int b = 0; b < 8; ++b) r |= ((w >> (8 * b)) & 0xFF) << (8 * (7 - b));
    return r;
  }
  void round() noexcept {
    v0_ += v1_;
    v1_ = std::rotl(v1_, 13) ^ v0_;
    v0_ = std::rotl(v0_, 32);
    v2_ += v3_;
    v3_ = std::rotl(v3_, 16) ^ v2_;
    v0_ += v3_;
    v3_ = std::rotl(v3_, 21) ^ v0_;
    v2_ += v1_;
    v1_ = std::rotl(v1_, 17) ^ v2_;
    v2_ = std::rotl(v2_, 32);
  }
  void compress(std::uint64_t m) noexcept {
    v3_ ^= m;
    round();
    v0_ ^= m;
  }
};

// The text, up to `cap` bytes.
struct string_sink {
  std::string out;
  std::size_t cap;
  bool full() const noexcept { return out.size() >= cap; }
  void put(char c) {
    if (out.size() < cap) out.push_back(c);
  }
  void put(std::string_view s) {
    const std::size_t room = cap - out.size();  // never negative: nothing is written past cap
    out.append(s.substr(0, room));
  }
  void put_folded(std::string_view s) {
    const std::size_t from = out.size();
    put(s);
    for (std::size_t k = from; k < out.size(); ++k) out[k] = fold(out[k]);
  }
};

// Past the blanks and comments at `i`, as the lexer of sql_inspect skips them.
std::size_t skip_gap(const char* s, std::size_t n, std::size_t i) noexcept {
  return skip_blanks_and_comments(std::string_view(s, n), i);
}

// A comment starts at `i` (a '-' or '/' there).
bool comment_at(const char* s, std::size_t n, std::size_t i) noexcept {
  return i + 1 < n && s[i + 1] == (s[i] == '-' ? '-' : '*');
}

// The semicolons held back from `from` (with blanks and comments between them, `gap` before
// the first), written once a token follows them.
template <class Sink>
void write_held(Sink& out, const char* s, std::size_t n, std::size_t from, std::size_t to, bool gap, bool& written) {
  for (std::size_t j = from; j < to;) {
    if (s[j] == ';') {
      if (gap && written) out.put(' ');
      out.put(';');
      written = true;
      gap = false;
      ++j;
    } else {
      j = skip_gap(s, n, j);  // only blanks and comments lie between them
      gap = true;
    }
  }
}

// Past a string whose body starts at `i`: '' is a quote inside it (`doubled`), and with
// `escapes` a backslash takes the next byte with it.
std::size_t skip_string(const char* s, std::size_t n, std::size_t i, bool escapes, bool doubled) noexcept {
  while (i < n) {
    const char c = s[i];
    if (escapes && c == '\\') {
      i += 2;
    } else if (c == '\'') {
      if (doubled && i + 1 < n && s[i + 1] == '\'') {
        i += 2;
      } else {
        return i + 1;
      }
    } else {
      ++i;
    }
  }
  return n;
}

// Past a number that starts at `i` (a digit, or '.' and a digit). Loose where PostgreSQL would
// refuse the text anyway (1_, 0x without digits is 0 and a word).
std::size_t skip_number(const char* s, std::size_t n, std::size_t i) noexcept {
  if (s[i] == '0' && i + 2 < n && (s[i + 2] == '_' || is_hex(s[i + 2]))) {
    const char base = fold(s[i + 1]);
    if (base == 'x' || base == 'o' || base == 'b') {
      i += 2;
      while (i < n && (is_hex(s[i]) || s[i] == '_')) ++i;
      return i;
    }
  }
  while (i < n && (is_digit(s[i]) || s[i] == '_')) ++i;
  // 1..2 is 1 and ..2 (an array slice's bounds)
  if (i < n && s[i] == '.' && !(i + 1 < n && s[i + 1] == '.')) {
    ++i;
    while (i < n && (is_digit(s[i]) || s[i] == '_')) ++i;
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    std::size_t k = i + 1;
    if (k < n && (s[k] == '+' || s[k] == '-')) ++k;
    if (k < n && is_digit(s[k])) {
      while (k < n && (is_digit(s[k]) || s[k] == '_')) ++k;
      i = k;
    }
  }
  return i;
}

// Past a quoted identifier whose body starts at `i`; `closed` tells whether it ended.
std::size_t skip_quoted(const char* s, std::size_t n, std::size_t i, bool& closed) noexcept {
  while (i < n) {
    if (s[i] == '"') {
      if (i + 1 < n && s[i + 1] == '"') {
        i += 2;
        continue;
      }
      closed = true;
      return i + 1;
    }
    ++i;
  }
  closed = false;
  return n;
}

template <class Sink>
void normalize_into(std::string_view sql, Sink& out) {
  const char* s = sql.data();
  const std::size_t n = sql.size();
  bool written = false;  // a token is out
  bool gap = false;      // blanks or comments since the last token
  // Semicolons are held back until a token follows them: trailing ones are dropped.
  constexpr std::size_t none = static_cast<std::size_t>(-1);
  std::size_t held = none;  // where the first held semicolon is
  bool held_gap = false;    // blanks or comments before it

  // Before the token at `at`: the held semicolons, then a space if the text had a gap.
  auto begin_token = [&](std::size_t at) {
    if (held != none) [[unlikely]] {
      write_held(out, s, n, held, at, held_gap, written);
      held = none;
    }
    if (gap && written) out.put(' ');
    gap = false;
    written = true;
  };
  auto constant = [&](std::size_t at) {
    begin_token(at);
    out.put('?');
  };

  std::size_t i = 0;
  while (i < n && !out.full()) {
    const char c = s[i];
    if (is_blank(c)) {
      ++i;
      while (i < n && is_blank(s[i])) ++i;
      gap = true;
    } else if ((c == '-' || c == '/') && comment_at(s, n, i)) {
      i = skip_gap(s, n, i);
      gap = true;
    } else if (c == ';') {
      if (held == none) {
        held = i;
        held_gap = gap;
      }
      gap = false;
      ++i;
    } else if (c == '\'') {
      constant(i);
      i = skip_string(s, n, i + 1, false, true);
    } else if (c == '"') {
      begin_token(i);
      bool closed = false;
      const std::size_t end = skip_quoted(s, n, i + 1, closed);
      std::size_t shown = end;
      if (!closed)
        while (shown > i + 1 && is_blank(s[shown - 1])) --shown;
      out.put(sql.substr(i, shown - i));
      i = end;
    } else if (c == '$') {
      if (i + 1 < n && is_digit(s[i + 1])) {  // a parameter marker
        constant(i);
        i += 2;
        while (i < n && is_digit(s[i])) ++i;
        continue;
      }
      std::size_t j = i + 1;
      if (j < n && tag_start(s[j]))
        while (j < n && tag_char(s[j])) ++j;
      if (j < n && s[j] == '$') {  // a dollar quote: $$ or $tag$
        constant(i);
        const auto tag = sql.substr(i, j + 1 - i);
        const auto end = sql.find(tag, j + 1);
        i = end == std::string_view::npos ? n : end + tag.size();
      } else {
        begin_token(i);
        out.put('$');
        ++i;
      }
    } else if (is_digit(c) || (c == '.' && i + 1 < n && is_digit(s[i + 1]))) {
      constant(i);
      i = skip_number(s, n, i);
    } else if (word_char(c)) {  // not a digit or '$' here: a word, or a prefixed string
      const char f = fold(c);
      const char next = i + 1 < n ? s[i + 1] : '\0';
      if (next == '\'' && (f == 'e' || f == 'b' || f == 'x' || f == 'n')) {
        constant(i);
        i = skip_string(s, n, i + 2, f == 'e', f == 'e' || f == 'n');
      } else if (f == 'u' && next == '&' && i + 2 < n && s[i + 2] == '\'') {
        constant(i);
        i = skip_string(s, n, i + 3, false, true);
      } else if (f == 'u' && next == '&' && i + 2 < n && s[i + 2] == '"') {
        begin_token(i);
        bool closed = false;
        const std::size_t end = skip_quoted(s, n, i + 3, closed);
        std::size_t shown = end;
        if (!closed)
          while (shown > i + 3 && is_blank(s[shown - 1])) --shown;
        out.put_folded(sql.substr(i, 2));  // u&, then the identifier as written
        out.put(sql.substr(i + 2, shown - i - 2));
        i = end;
      } else {
        begin_token(i);
        const std::size_t start = i;
        while (i < n && word_char(s[i])) ++i;
        out.put_folded(sql.substr(start, i - start));
      }
    } else {
      begin_token(i);
      out.put(c);
      ++i;
    }
  }
}

}  // namespace

std::string normalize_statement(std::string_view sql, std::size_t max_bytes) {
  // One byte past the cut is kept to tell whether the cut splits a character.
  const std::size_t cap = max_bytes == static_cast<std::size_t>(-1) ? max_bytes : max_bytes + 1;
  string_sink sink{{}, cap};
  // Never longer than the text: each constant is at least one byte, each gap at least one.
  sink.out.reserve(sql.size() < cap ? sql.size() : cap);
  normalize_into(sql, sink);
  auto& out = sink.out;
  if (out.size() > max_bytes) {
    // Back to the lead byte of the character the cut falls in. Where the text is not UTF-8
    // (a continuation byte that no lead byte before it reaches), at max_bytes.
    std::size_t len = max_bytes;
    for (int k = 0; k < 3 && len > 0 && utf8_continuation(out[len]); ++k) --len;
    if (len < max_bytes && utf8_length(out[len]) <= max_bytes - len) len = max_bytes;
    out.resize(len);
    while (!out.empty() && is_blank(out.back())) out.pop_back();
  }
  return out;
}

std::uint64_t statement_fingerprint(std::string_view sql) noexcept {
  hash_sink sink;
  normalize_into(sql, sink);
  return sink.value();
}

std::uint64_t fingerprint_of_normalized(std::string_view normalized) noexcept {
  hash_sink sink;
  sink.put(normalized);
  return sink.value();
}

}  // namespace pgmux::protocol
