// SCRAM-SHA-256 verifiers: pg_authid.rolpassword text <-> parts, and making one from a password.
#include "pgmux/auth/scram_verifier.hpp"

#include <charconv>

#include "pgmux/auth/crypto.hpp"

namespace pgmux::auth {
namespace {

constexpr std::string_view expected_form = "SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>";

// Splits `text` at the first `sep`; nullopt when there is none.
std::optional<std::pair<std::string_view, std::string_view>> split(std::string_view text, char sep) {
  const auto at = text.find(sep);
  if (at == std::string_view::npos) return std::nullopt;
  return std::pair{text.substr(0, at), text.substr(at + 1)};
}

}  // namespace

// Error messages never quote the text: it is a secret, and they end up in logs.
std::optional<scram_verifier> parse_scram_verifier(std::string_view text, std::string& error) {
  if (text.substr(0, scram_secret_prefix.size()) != scram_secret_prefix) {
    error = "not a SCRAM-SHA-256 verifier: expected " + std::string(expected_form);
    return std::nullopt;
  }
  const auto halves = split(text.substr(scram_secret_prefix.size()), '$');
  const auto params = halves ? split(halves->first, ':') : std::nullopt;
  const auto keys = halves ? split(halves->second, ':') : std::nullopt;
  if (!params || !keys) {
    error = "malformed SCRAM-SHA-256 verifier: expected " + std::string(expected_form);
    return std::nullopt;
  }
  scram_verifier v;
  const auto& [iter_text, salt_text] = *params;
  const auto [end, ec] = std::from_chars(iter_text.data(), iter_text.data() + iter_text.size(), v.iterations);
  // from_chars takes a leading '-'; PostgreSQL's verifiers never have one.
  if (iter_text.empty() || iter_text[0] == '-' || ec != std::errc{} || end != iter_text.data() + iter_text.size() ||
      v.iterations < 1) {
    error = "malformed SCRAM-SHA-256 verifier: the iteration count must be a positive integer";
    return std::nullopt;
  }
  auto salt = base64_decode(salt_text);
  if (!salt || salt->empty()) {
    error = "malformed SCRAM-SHA-256 verifier: the salt must be non-empty base64";
    return std::nullopt;
  }
  auto stored_key = base64_decode(keys->first);
  auto server_key = base64_decode(keys->second);
  if (!stored_key || stored_key->size() != scram_key_size || !server_key || server_key->size() != scram_key_size) {
    error = "malformed SCRAM-SHA-256 verifier: StoredKey and ServerKey must each be 32 bytes in base64";
    return std::nullopt;
  }
  v.salt = std::move(*salt);
  v.stored_key = std::move(*stored_key);
  v.server_key = std::move(*server_key);
  return v;
}

std::string format_scram_verifier(const scram_verifier& v) {
  return std::string(scram_secret_prefix) + std::to_string(v.iterations) + ":" + base64_encode(v.salt) + "$" +
         base64_encode(v.stored_key) + ":" + base64_encode(v.server_key);
}

scram_verifier compute_scram_verifier(std::string_view password, std::string_view salt, int iterations) {
  const std::string salted = pbkdf2_sha256(password, salt, iterations);
  return {iterations, std::string(salt), sha256(hmac_sha256(salted, "Client Key")), hmac_sha256(salted, "Server Key")};
}

std::string make_scram_verifier(std::string_view password, std::string_view salt, int iterations) {
  return format_scram_verifier(compute_scram_verifier(password, salt, iterations));
}

std::string make_scram_verifier(std::string_view password) {
  return make_scram_verifier(password, random_bytes(scram_default_salt_size), scram_default_iterations);
}

}  // namespace pgmux::auth
