// Stored client secrets: the two kinds PostgreSQL keeps in pg_authid.rolpassword (an md5 hash
// or a SCRAM-SHA-256 verifier), told apart, validated, and checked against a cleartext password.
// Plain passwords are not accepted as stored secrets.
#pragma once
#include <string>
#include <string_view>

namespace pgmux::auth {

enum class secret_kind {
  none,           // no usable secret: unknown user, empty or malformed text
  md5,            // "md5" + md5(password + user)
  scram_sha_256,  // "SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>"
};

const char* to_string(secret_kind k) noexcept;

// The kind of `stored`; none unless it is a well-formed secret of one kind.
secret_kind secret_kind_of(std::string_view stored);
// The same, with `error` saying what is wrong when it returns none (the text is never quoted).
secret_kind secret_kind_of(std::string_view stored, std::string& error);

// The "password" method: true when cleartext `password` is the one `stored_secret` was made
// from. md5: compares md5(password + user); SCRAM: recomputes the StoredKey with the verifier's
// salt and iterations (as costly as the iteration count says). False for a malformed secret.
bool verify_cleartext_password(std::string_view stored_secret, std::string_view user, std::string_view password);

}  // namespace pgmux::auth
