// SCRAM-SHA-256 verifiers in pg_authid.rolpassword form.
// Cases:
//   verifiers made by PostgreSQL 15 parse and are recomputed exactly
//   a non-ASCII password SASLprep leaves alone matches PostgreSQL
//   PostgreSQL hashes a password SASLprep rewrites in its rewritten form
//   format_scram_verifier round trips
//   a random verifier has a fresh 16-byte salt and 4096 iterations
//   malformed verifiers are refused without quoting them
#include <doctest/doctest.h>

#include <string>

#include "pgmux/auth/crypto.hpp"
#include "pgmux/auth/scram_verifier.hpp"

using namespace pgmux::auth;

namespace {

// Made by PostgreSQL 15.x (initdb of a throwaway cluster):
//   SET password_encryption = 'scram-sha-256';
//   CREATE ROLE t LOGIN PASSWORD 'pencil';
//   SELECT rolpassword FROM pg_authid WHERE rolname = 't';
struct pg_vector {
  const char* password;
  const char* rolpassword;
};
constexpr pg_vector pg_verifiers[] = {
    {"pencil",
     "SCRAM-SHA-256$4096:BzeQ16dY+zylb8yWjFmCbQ==$eLLOPrvlfUTRCZq+ZAvu3jyZq1B9FA3oAkOMAlLPBRg=:"
     "BqpDQA2RAyTOzx5hIV7un95a1lOIq+ReLYSpOqpNpY0="},
    {"correct horse battery staple",
     "SCRAM-SHA-256$4096:crmIrdYo7a9L/gJKn/fo3A==$ZvMOMWk7BawHeQIthRze763E4QDuu3QsuYdGTCQWTY0=:"
     "ffyT7H38p4fqZJAwBzbqZK3rS30jFj2QoD2epjON4fA="},
};

// "pässwörd" in UTF-8 (NFC: 70 c3a4 73 73 77 c3b6 72 64), which SASLprep leaves unchanged.
constexpr const char* pg_umlaut_password = "p\xc3\xa4ssw\xc3\xb6rd";
constexpr const char* pg_umlaut_verifier =
    "SCRAM-SHA-256$4096:Jq7kR7jjCV5d1pjtY3wODQ==$bnFFh7eYieRs0+Q4+DIkgnq8iYPs5ky5S9KxI0LMXto=:"
    "VhCmfJe/iNLZ3YngFJJ+MLg//+CzPn9RqXG/Lm/hP98=";

// "ｐｅｎｃｉｌ" (full-width letters, U+FF50 ...), which SASLprep's NFKC turns into "pencil".
constexpr const char* pg_fullwidth_verifier =
    "SCRAM-SHA-256$4096:s9a/m8uOVy6eeSKw8hi7Hw==$tRZwqPkjmnOR1uQ7z3JKWS46e7NROby6y2FEIZsnnYs=:"
    "F+CkhDrjyiM8h02iIJI+UkMJ0FQLZuwqkIydbKXdgtM=";

}  // namespace

TEST_SUITE("scram_verifier") {

TEST_CASE("verifiers made by PostgreSQL 15 parse and are recomputed exactly") {
  for (const auto& [password, rolpassword] : pg_verifiers) {
    CAPTURE(password);
    std::string error;
    const auto v = parse_scram_verifier(rolpassword, error);
    REQUIRE_MESSAGE(v, error);
    CHECK(v->iterations == 4096);
    CHECK(v->salt.size() == 16);
    CHECK(v->stored_key.size() == scram_key_size);
    CHECK(v->server_key.size() == scram_key_size);
    CHECK(make_scram_verifier(password, v->salt, v->iterations) == rolpassword);
    CHECK(compute_scram_verifier(password, v->salt, v->iterations) == *v);
    CHECK(make_scram_verifier("Pencil", v->salt, v->iterations) != rolpassword);
  }
}

TEST_CASE("a non-ASCII password SASLprep leaves alone matches PostgreSQL") {
  std::string error;
  const auto v = parse_scram_verifier(pg_umlaut_verifier, error);
  REQUIRE_MESSAGE(v, error);
  CHECK(make_scram_verifier(pg_umlaut_password, v->salt, v->iterations) == pg_umlaut_verifier);
}

TEST_CASE("PostgreSQL hashes a password SASLprep rewrites in its rewritten form") {
  // pgmux hashes raw bytes (see scram_verifier.hpp), so the full-width form does not match;
  // what PostgreSQL hashed is the NFKC form.
  const std::string fullwidth = "\xef\xbd\x90\xef\xbd\x85\xef\xbd\x8e\xef\xbd\x83\xef\xbd\x89\xef\xbd\x8c";
  std::string error;
  const auto v = parse_scram_verifier(pg_fullwidth_verifier, error);
  REQUIRE_MESSAGE(v, error);
  CHECK(make_scram_verifier("pencil", v->salt, v->iterations) == pg_fullwidth_verifier);
  CHECK(make_scram_verifier(fullwidth, v->salt, v->iterations) != pg_fullwidth_verifier);
}

TEST_CASE("format_scram_verifier round trips") {
  const auto v = compute_scram_verifier("pw", std::string("\x00\x01\xff salt", 8), 1);
  const auto text = format_scram_verifier(v);
  CHECK(text.rfind("SCRAM-SHA-256$1:", 0) == 0);
  std::string error;
  const auto back = parse_scram_verifier(text, error);
  REQUIRE_MESSAGE(back, error);
  CHECK(*back == v);
}

TEST_CASE("a random verifier has a fresh 16-byte salt and 4096 iterations") {
  const auto a = make_scram_verifier("pencil"), b = make_scram_verifier("pencil");
  CHECK(a != b);
  std::string error;
  const auto va = parse_scram_verifier(a, error);
  REQUIRE_MESSAGE(va, error);
  CHECK(va->iterations == 4096);
  CHECK(va->salt.size() == 16);
  CHECK(make_scram_verifier("pencil", va->salt, va->iterations) == a);
}

TEST_CASE("malformed verifiers are refused without quoting them") {
  const std::string salt = "BzeQ16dY+zylb8yWjFmCbQ==";
  const std::string key = "eLLOPrvlfUTRCZq+ZAvu3jyZq1B9FA3oAkOMAlLPBRg=";
  const std::string key31 = base64_encode(std::string(31, 'k'));
  const std::pair<const char*, std::string> cases[] = {
      {"empty", ""},
      {"prefix only", "SCRAM-SHA-256$"},
      {"other mechanism", "SCRAM-SHA-1$4096:" + salt + "$" + key + ":" + key},
      {"lower case", "scram-sha-256$4096:" + salt + "$" + key + ":" + key},
      {"md5 secret", "md58bbf3f45673bf67d02e4214911f3417f"},
      {"plain password", "pencil"},
      {"no second $", "SCRAM-SHA-256$4096:" + salt + ":" + key + ":" + key},
      {"no iterations", "SCRAM-SHA-256$" + salt + "$" + key + ":" + key},
      {"no server key", "SCRAM-SHA-256$4096:" + salt + "$" + key},
      {"zero iterations", "SCRAM-SHA-256$0:" + salt + "$" + key + ":" + key},
      {"negative iterations", "SCRAM-SHA-256$-1:" + salt + "$" + key + ":" + key},
      {"iterations with a sign", "SCRAM-SHA-256$+4096:" + salt + "$" + key + ":" + key},
      {"iterations not a number", "SCRAM-SHA-256$many:" + salt + "$" + key + ":" + key},
      {"iterations with junk", "SCRAM-SHA-256$4096x:" + salt + "$" + key + ":" + key},
      {"iterations overflow", "SCRAM-SHA-256$99999999999:" + salt + "$" + key + ":" + key},
      {"empty salt", "SCRAM-SHA-256$4096:$" + key + ":" + key},
      {"salt not base64", "SCRAM-SHA-256$4096:Bz*Q16dY$" + key + ":" + key},
      {"short stored key", "SCRAM-SHA-256$4096:" + salt + "$" + key31 + ":" + key},
      {"short server key", "SCRAM-SHA-256$4096:" + salt + "$" + key + ":" + key31},
      {"server key not base64", "SCRAM-SHA-256$4096:" + salt + "$" + key + ":" + key + "$"},
      {"trailing space", "SCRAM-SHA-256$4096:" + salt + "$" + key + ":" + key + " "},
  };
  for (const auto& [name, text] : cases) {
    CAPTURE(name);
    std::string error;
    CHECK_FALSE(parse_scram_verifier(text, error));
    CHECK_FALSE(error.empty());
    CHECK(error.find(key) == std::string::npos);
    CHECK(error.find(salt) == std::string::npos);
  }
  // And the well-formed one they are all variations of.
  std::string error;
  CHECK(parse_scram_verifier("SCRAM-SHA-256$4096:" + salt + "$" + key + ":" + key, error));
}

}  // TEST_SUITE
