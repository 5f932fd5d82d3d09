// SCRAM-SHA-256 client exchange.
// Cases:
//   RFC 7677 example exchange, exactly
//   PostgreSQL variant with an empty user name
//   user name is escaped as an RFC 5802 saslname
//   random nonces are fresh, printable and comma-free
//   bad server signature is rejected
//   server signature is not accepted before the exchange
//   nonce mismatch is rejected
//   server error attribute is reported
//   malformed server-first messages are rejected
//   wrong password yields a proof the server would refuse
//   with keys instead of a password: the RFC 7677 exchange, exactly
//   with keys: the server's salt and iterations are not used
//   with keys: keys of the wrong size are refused
#include <doctest/doctest.h>

#include <stdexcept>
#include <string>

#include "pgmux/auth/crypto.hpp"
#include "pgmux/auth/scram_client.hpp"

using pgmux::auth::scram_client;

namespace {
// RFC 7677 section 3.
constexpr std::string_view client_nonce = "rOprNGfwEbeRWgbNEkqO";
constexpr std::string_view server_first =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
constexpr std::string_view rfc_client_final =
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
constexpr std::string_view rfc_server_final = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

// The same exchange with client-first-bare "n=,r=rOprNGfwEbeRWgbNEkqO" (empty user, as
// PostgreSQL clients send it). Computed independently with Python's hashlib/hmac:
//   salted = pbkdf2_hmac('sha256', b'pencil', b64decode('W22ZaJ0SNY7soEsUEjb6gQ=='), 4096)
//   client_key = hmac(salted, 'Client Key'); stored_key = sha256(client_key)
//   auth_message = 'n=,r=rOprNGfwEbeRWgbNEkqO' + ',' + server_first + ',' + 'c=biws,r=<server nonce>'
//   proof = client_key XOR hmac(stored_key, auth_message)
//   server_signature = hmac(hmac(salted, 'Server Key'), auth_message)
// The same script reproduces the RFC 7677 values above for "n=user".
constexpr std::string_view pg_client_final =
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=qvT2SWdEH5Q06albL+hjSYuUhCG7VndFyzIb7CK4n9k=";
constexpr std::string_view pg_server_final = "v=3HO6Qt1M4MKJrmlKaoOqLAI0/0TV0HZe7J9H3MBtSOg=";
}  // namespace

TEST_SUITE("scram") {

TEST_CASE("RFC 7677 example exchange, exactly") {
  scram_client c("pencil", std::string(client_nonce), "user");
  CHECK(c.client_first_message() == "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
  std::string error;
  const auto final_message = c.handle_server_first(server_first, error);
  REQUIRE_MESSAGE(final_message, error);
  CHECK(*final_message == rfc_client_final);
  CHECK(c.verify_server_final(rfc_server_final, error));
}

TEST_CASE("PostgreSQL variant with an empty user name") {
  scram_client c("pencil", std::string(client_nonce));
  CHECK(c.client_first_message() == "n,,n=,r=rOprNGfwEbeRWgbNEkqO");
  std::string error;
  const auto final_message = c.handle_server_first(server_first, error);
  REQUIRE_MESSAGE(final_message, error);
  CHECK(*final_message == pg_client_final);
  CHECK(c.verify_server_final(pg_server_final, error));
  // The RFC's signature belongs to another auth message.
  CHECK_FALSE(c.verify_server_final(rfc_server_final, error));
}

TEST_CASE("user name is escaped as an RFC 5802 saslname") {
  scram_client c("pw", "abc", "a=b,c");
  CHECK(c.client_first_message() == "n,,n=a=3Db=2Cc,r=abc");
}

TEST_CASE("random nonces are fresh, printable and comma-free") {
  scram_client a("pw"), b("pw");
  const std::string prefix = "n,,n=,r=";
  const auto fa = a.client_first_message(), fb = b.client_first_message();
  REQUIRE(fa.substr(0, prefix.size()) == prefix);
  REQUIRE(fb.substr(0, prefix.size()) == prefix);
  const auto na = fa.substr(prefix.size()), nb = fb.substr(prefix.size());
  CHECK(na.size() >= 18);
  CHECK(na != nb);
  for (char ch : na) {
    CHECK(ch > 0x20);
    CHECK(ch < 0x7f);
    CHECK(ch != ',');
  }
}

TEST_CASE("bad server signature is rejected") {
  scram_client c("pencil", std::string(client_nonce), "user");
  std::string error;
  REQUIRE(c.handle_server_first(server_first, error));
  SUBCASE("one character changed") {
    std::string bad(rfc_server_final);
    bad[2] = bad[2] == 'A' ? 'B' : 'A';
    CHECK_FALSE(c.verify_server_final(bad, error));
    CHECK_FALSE(error.empty());
  }
  SUBCASE("truncated") { CHECK_FALSE(c.verify_server_final(rfc_server_final.substr(0, 20), error)); }
  SUBCASE("not base64") { CHECK_FALSE(c.verify_server_final("v=not*base64", error)); }
  SUBCASE("no v attribute") { CHECK_FALSE(c.verify_server_final("x=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", error)); }
  SUBCASE("empty") { CHECK_FALSE(c.verify_server_final("", error)); }
}

TEST_CASE("server signature is not accepted before the exchange") {
  scram_client c("pencil", std::string(client_nonce), "user");
  std::string error;
  CHECK_FALSE(c.verify_server_final(rfc_server_final, error));
  CHECK_FALSE(c.verify_server_final("v=", error));
}

TEST_CASE("nonce mismatch is rejected") {
  scram_client c("pencil", std::string(client_nonce), "user");
  std::string error;
  SUBCASE("server nonce does not start with ours") {
    CHECK_FALSE(c.handle_server_first("r=XOprNGfwEbeRWgbNEkqO%hvYD,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", error));
    CHECK(error.find("nonce") != std::string::npos);
  }
  SUBCASE("server nonce does not extend ours") {
    CHECK_FALSE(c.handle_server_first("r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", error));
  }
  SUBCASE("server nonce is a prefix of ours") {
    CHECK_FALSE(c.handle_server_first("r=rOprNG,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", error));
  }
}

TEST_CASE("server error attribute is reported") {
  scram_client c("pencil", std::string(client_nonce), "user");
  std::string error;
  REQUIRE(c.handle_server_first(server_first, error));
  CHECK_FALSE(c.verify_server_final("e=invalid-proof", error));
  CHECK(error.find("invalid-proof") != std::string::npos);
}

TEST_CASE("malformed server-first messages are rejected") {
  scram_client c("pencil", std::string(client_nonce), "user");
  std::string error;
  const char* cases[][2] = {
      {"empty", ""},
      {"no nonce", "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"},
      {"no salt", "r=rOprNGfwEbeRWgbNEkqO%hvYD,i=4096"},
      {"no iterations", "r=rOprNGfwEbeRWgbNEkqO%hvYD,s=W22ZaJ0SNY7soEsUEjb6gQ=="},
      {"zero iterations", "r=rOprNGfwEbeRWgbNEkqO%hvYD,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0"},
      {"negative iterations", "r=rOprNGfwEbeRWgbNEkqO%hvYD,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=-1"},
      {"iterations not a number", "r=rOprNGfwEbeRWgbNEkqO%hvYD,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=abc"},
      {"iterations with junk", "r=rOprNGfwEbeRWgbNEkqO%hvYD,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096x"},
      {"absurd iterations", "r=rOprNGfwEbeRWgbNEkqO%hvYD,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=2000000000"},
      {"salt not base64", "r=rOprNGfwEbeRWgbNEkqO%hvYD,s=W22Z*J0SNY7soEsUEjb6gQ==,i=4096"},
      {"empty salt", "r=rOprNGfwEbeRWgbNEkqO%hvYD,s=,i=4096"},
  };
  for (const auto& [name, text] : cases) {
    CAPTURE(name);
    error.clear();
    CHECK_FALSE(c.handle_server_first(text, error));
    CHECK_FALSE(error.empty());
  }
}

TEST_CASE("wrong password yields a proof the server would refuse") {
  scram_client c("pencil2", std::string(client_nonce), "user");
  std::string error;
  const auto final_message = c.handle_server_first(server_first, error);
  REQUIRE(final_message);
  CHECK(*final_message != rfc_client_final);
  // Same nonce part, different proof.
  CHECK(final_message->substr(0, final_message->find(",p=")) == rfc_client_final.substr(0, rfc_client_final.find(",p=")));
  CHECK_FALSE(c.verify_server_final(rfc_server_final, error));
}

TEST_CASE("with keys instead of a password: the RFC 7677 exchange, exactly") {
  const std::string salted = pgmux::auth::pbkdf2_sha256("pencil", *pgmux::auth::base64_decode("W22ZaJ0SNY7soEsUEjb6gQ=="), 4096);
  auto c = scram_client::from_keys(pgmux::auth::hmac_sha256(salted, "Client Key"),
                                   pgmux::auth::hmac_sha256(salted, "Server Key"), std::string(client_nonce), "user");
  CHECK(c.client_first_message() == "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
  std::string error;
  const auto final_message = c.handle_server_first(server_first, error);
  REQUIRE_MESSAGE(final_message, error);
  CHECK(*final_message == rfc_client_final);
  CHECK(c.verify_server_final(rfc_server_final, error));
}

TEST_CASE("with keys: the server's salt and iterations are not used") {
  // Another salt and iteration count: a password client would compute other keys, a key
  // client sends the same proof (the nonce and auth message differ only in s= and i=).
  const std::string salted = pgmux::auth::pbkdf2_sha256("pencil", *pgmux::auth::base64_decode("W22ZaJ0SNY7soEsUEjb6gQ=="), 4096);
  auto c = scram_client::from_keys(pgmux::auth::hmac_sha256(salted, "Client Key"),
                                   pgmux::auth::hmac_sha256(salted, "Server Key"), std::string(client_nonce), "user");
  std::string error;
  const auto final_message =
      c.handle_server_first("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=c2FsdA==,i=1", error);
  REQUIRE_MESSAGE(final_message, error);
  scram_client p("pencil", std::string(client_nonce), "user");
  const auto password_final =
      p.handle_server_first("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=c2FsdA==,i=1", error);
  REQUIRE(password_final);
  CHECK(*final_message != *password_final);
}

TEST_CASE("with keys: keys of the wrong size are refused") {
  CHECK_THROWS_AS(scram_client::from_keys(std::string(31, 'k'), std::string(32, 'k')), std::invalid_argument);
  CHECK_THROWS_AS(scram_client::from_keys(std::string(32, 'k'), ""), std::invalid_argument);
  CHECK_NOTHROW(scram_client::from_keys(std::string(32, 'k'), std::string(32, 'k')));
}

}  // TEST_SUITE
