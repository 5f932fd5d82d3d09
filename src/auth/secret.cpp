// Stored secrets: kind, validation, cleartext password check.
#include "pgmux/auth/secret.hpp"

#include "pgmux/auth/crypto.hpp"
#include "pgmux/auth/md5.hpp"
#include "pgmux/auth/scram_verifier.hpp"

namespace pgmux::auth {

const char* to_string(secret_kind k) noexcept {
  switch (k) {
    case secret_kind::md5: return "md5";
    case secret_kind::scram_sha_256: return "scram-sha-256";
    case secret_kind::none: break;
  }
  return "none";
}

secret_kind secret_kind_of(std::string_view stored) {
  std::string ignored;
  return secret_kind_of(stored, ignored);
}

secret_kind secret_kind_of(std::string_view stored, std::string& error) {
  if (is_md5_secret(stored)) return secret_kind::md5;
  if (stored.substr(0, scram_secret_prefix.size()) == scram_secret_prefix)
    return parse_scram_verifier(stored, error) ? secret_kind::scram_sha_256 : secret_kind::none;
  if (stored.substr(0, 3) == "md5")
    error = "malformed md5 secret: expected \"md5\" and 32 lowercase hex digits";
  else
    error = "expected a SCRAM-SHA-256 verifier (SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>) or an "
            "md5 secret (\"md5\" and 32 hex digits), as in pg_authid.rolpassword; plain passwords are not accepted";
  return secret_kind::none;
}

bool verify_cleartext_password(std::string_view stored_secret, std::string_view user, std::string_view password) {
  if (is_md5_secret(stored_secret)) return constant_time_equal(md5_secret(user, password), stored_secret);
  std::string error;
  const auto v = parse_scram_verifier(stored_secret, error);
  if (!v) return false;
  return constant_time_equal(compute_scram_verifier(password, v->salt, v->iterations).stored_key, v->stored_key);
}

}  // namespace pgmux::auth
