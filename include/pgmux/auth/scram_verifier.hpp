// SCRAM-SHA-256 verifiers as PostgreSQL stores them in pg_authid.rolpassword:
//   SCRAM-SHA-256$<iterations>:<base64 salt>$<base64 StoredKey>:<base64 ServerKey>
// Parsing, formatting, and making one from a password.
//
// Passwords: PostgreSQL normalizes a password with SASLprep (RFC 4013) before hashing it, and
// falls back to the raw bytes when the password is not valid UTF-8 or SASLprep refuses it.
// pgmux hashes the raw bytes. That is exactly what PostgreSQL does for ASCII passwords (it
// skips SASLprep for them) and for non-ASCII passwords that SASLprep leaves unchanged (most
// text already in NFC, such as "pässwörd"). It differs for passwords SASLprep rewrites: width
// variants ("ｐｅｎｃｉｌ" becomes "pencil"), non-ASCII spaces, soft hyphens and the like.
#pragma once
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace pgmux::auth {

inline constexpr std::string_view scram_secret_prefix = "SCRAM-SHA-256$";
inline constexpr int scram_default_iterations = 4096;     // PostgreSQL 15's default
inline constexpr std::size_t scram_default_salt_size = 16;  // bytes, as PostgreSQL makes them
inline constexpr std::size_t scram_key_size = 32;           // SHA-256 output

struct scram_verifier {
  int iterations = 0;
  std::string salt;        // raw bytes
  std::string stored_key;  // raw, scram_key_size bytes: H(ClientKey)
  std::string server_key;  // raw, scram_key_size bytes: HMAC(SaltedPassword, "Server Key")
  friend bool operator==(const scram_verifier&, const scram_verifier&) = default;
};

// The verifier in `text`, or nullopt and `error` saying what is wrong with it.
std::optional<scram_verifier> parse_scram_verifier(std::string_view text, std::string& error);

// The pg_authid.rolpassword form of `v`.
std::string format_scram_verifier(const scram_verifier& v);

// The verifier of `password` (raw bytes, see above) with the given salt (raw) and iterations (>= 1).
scram_verifier compute_scram_verifier(std::string_view password, std::string_view salt, int iterations);

// The same in pg_authid.rolpassword form: what ALTER ROLE ... PASSWORD stores.
std::string make_scram_verifier(std::string_view password, std::string_view salt, int iterations);

// With a fresh random 16-byte salt and 4096 iterations, as PostgreSQL 15 makes them.
std::string make_scram_verifier(std::string_view password);

}  // namespace pgmux::auth
