// Stored secrets as pg_authid.rolpassword holds them (users_file, auth_query answers from the
// server): SCRAM-SHA-256 verifiers and md5 hashes. A verifier that parses formats back to text
// that parses to the same verifier.
// Input: the secret's text.
#include <string>

#include "fuzz_support.hpp"
#include "pgmux/auth/scram_verifier.hpp"
#include "pgmux/auth/secret.hpp"

using namespace pgmux::auth;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::string error;
  const auto v = parse_scram_verifier(text, error);
  if (v) {
    FUZZ_CHECK(v->iterations >= 1 && v->stored_key.size() == scram_key_size && v->server_key.size() == scram_key_size);
    const auto formatted = format_scram_verifier(*v);
    std::string error2;
    const auto again = parse_scram_verifier(formatted, error2);
    FUZZ_CHECK(again && *again == *v);
  } else {
    FUZZ_CHECK(!error.empty());
  }
  std::string why;
  const auto kind = secret_kind_of(text, why);
  FUZZ_CHECK(kind == secret_kind_of(text));
  FUZZ_CHECK(kind != secret_kind::none || !why.empty());
  if (kind == secret_kind::scram_sha_256) FUZZ_CHECK(v.has_value());
  // The password method recomputes the verifier: only for cheap iteration counts.
  if (kind == secret_kind::md5 || (v && v->iterations <= 16))
    (void)verify_cleartext_password(text, "alice", "pencil");
  return 0;
}
