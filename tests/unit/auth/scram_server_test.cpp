// SCRAM-SHA-256 server exchange.
// Cases:
//   RFC 7677 example exchange from the server side, exactly
//   SCRAM-SHA-256-PLUS is offered only with channel binding data
//   scram_client and scram_server agree on the right password
//   a wrong password fails with invalid_proof
//   a verifier made by PostgreSQL lets scram_client in
//   a verifier made by make_scram_verifier lets scram_client in
//   random server nonces are fresh, printable and extend the client nonce
//   the user name inside the SCRAM message is ignored
//   unknown users get a stable fake salt and fail exactly like a wrong password
//   for_unknown_user refuses an empty mock secret
//   channel binding: SCRAM-SHA-256-PLUS with matching data succeeds
//   channel binding: data that does not match fails
//   channel binding: "y" when PLUS was offered is a downgrade and fails
//   channel binding: "y" without TLS succeeds
//   channel binding: "p=" with plain SCRAM-SHA-256 fails
//   channel binding: other mismatches between mechanism, flag and c= fail
//   authzid and mandatory extensions are refused, optional extensions ignored
//   malformed client-first messages are refused
//   malformed client-final messages are refused
//   a nonce that is not the combined nonce is refused
//   messages out of order are refused, and nothing is accepted after a failure
//   client_key is the ClientKey, and only after success
//   scram_client with keys logs in like the password (passthrough)
//   scram_client with the keys of another password fails
#include <doctest/doctest.h>

#include <set>
#include <stdexcept>
#include <string>

#include "pgmux/auth/crypto.hpp"
#include "pgmux/auth/scram_client.hpp"
#include "pgmux/auth/scram_server.hpp"

using namespace pgmux::auth;

namespace {

// RFC 7677 section 3.
constexpr std::string_view rfc_salt_b64 = "W22ZaJ0SNY7soEsUEjb6gQ==";
constexpr std::string_view rfc_server_nonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
constexpr std::string_view rfc_client_first = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
constexpr std::string_view rfc_server_first =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
constexpr std::string_view rfc_client_final =
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
constexpr std::string_view rfc_server_final = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

// Made by PostgreSQL 15 for CREATE ROLE t LOGIN PASSWORD 'pencil' (see scram_verifier_test.cpp).
constexpr std::string_view pg_pencil_verifier =
    "SCRAM-SHA-256$4096:BzeQ16dY+zylb8yWjFmCbQ==$eLLOPrvlfUTRCZq+ZAvu3jyZq1B9FA3oAkOMAlLPBRg=:"
    "BqpDQA2RAyTOzx5hIV7un95a1lOIq+ReLYSpOqpNpY0=";

// A stand-in for the tls-server-end-point hash of a server certificate.
const std::string cb_data = sha256("server certificate");

std::string unbase64(std::string_view text) {
  auto raw = base64_decode(text);
  REQUIRE(raw);
  return *raw;
}

scram_verifier rfc_verifier() { return compute_scram_verifier("pencil", unbase64(rfc_salt_b64), 4096); }

scram_verifier verifier_of(std::string_view text) {
  std::string error;
  auto v = parse_scram_verifier(text, error);
  REQUIRE_MESSAGE(v, error);
  return *v;
}

std::string attr(std::string_view msg, char name) {
  for (std::size_t pos = 0; pos < msg.size();) {
    auto end = msg.find(',', pos);
    if (end == std::string_view::npos) end = msg.size();
    if (end - pos >= 2 && msg[pos] == name && msg[pos + 1] == '=') return std::string(msg.substr(pos + 2, end - pos - 2));
    pos = end + 1;
  }
  return {};
}

// A SCRAM client written out here for what scram_client does not send: other gs2 headers
// and channel binding.
struct manual_client {
  std::string password = "pencil";
  std::string gs2_header = "n,,";
  std::string cb_input;  // what follows the gs2 header inside c=
  std::string bare = "n=,r=fyko+d2lbbFgONRv9qkxdawL";

  std::string first() const { return gs2_header + bare; }

  std::string final_for(std::string_view server_first) const {
    const std::string salted = pbkdf2_sha256(password, unbase64(attr(server_first, 's')), std::stoi(attr(server_first, 'i')));
    const std::string client_key = hmac_sha256(salted, "Client Key");
    const std::string without_proof = "c=" + base64_encode(gs2_header + cb_input) + ",r=" + attr(server_first, 'r');
    const std::string auth_message = bare + "," + std::string(server_first) + "," + without_proof;
    return without_proof + ",p=" + base64_encode(xor_bytes(client_key, hmac_sha256(sha256(client_key), auth_message)));
  }
};

// Runs a manual client's exchange; the final reply.
scram_reply run(scram_server& server, std::string_view mechanism, const manual_client& client) {
  const auto first = server.handle_client_first(mechanism, client.first());
  if (!first) return first;
  return server.handle_client_final(client.final_for(first.message));
}

// Runs scram_client against scram_server; the server's final reply, checked by the client too.
scram_reply run(scram_server& server, scram_client& client) {
  const auto first = server.handle_client_first(scram_sha_256_mechanism, client.client_first_message());
  REQUIRE_MESSAGE(first, first.error);
  std::string error;
  const auto client_final = client.handle_server_first(first.message, error);
  REQUIRE_MESSAGE(client_final, error);
  auto final_reply = server.handle_client_final(*client_final);
  if (final_reply) CHECK_MESSAGE(client.verify_server_final(final_reply.message, error), error);
  return final_reply;
}

}  // namespace

TEST_SUITE("scram_server") {

TEST_CASE("RFC 7677 example exchange from the server side, exactly") {
  scram_server s(rfc_verifier(), {}, std::string(rfc_server_nonce));
  const auto first = s.handle_client_first(scram_sha_256_mechanism, rfc_client_first);
  REQUIRE_MESSAGE(first, first.error);
  CHECK(first.message == rfc_server_first);
  CHECK_FALSE(s.authenticated());
  const auto final_reply = s.handle_client_final(rfc_client_final);
  REQUIRE_MESSAGE(final_reply, final_reply.error);
  CHECK(final_reply.message == rfc_server_final);
  CHECK(final_reply.error.empty());
  CHECK(s.authenticated());
  CHECK_FALSE(s.channel_bound());
  CHECK_FALSE(s.is_mock());
}

TEST_CASE("SCRAM-SHA-256-PLUS is offered only with channel binding data") {
  CHECK(scram_server(rfc_verifier()).mechanisms() == std::vector<std::string_view>{"SCRAM-SHA-256"});
  CHECK(scram_server(rfc_verifier(), cb_data).mechanisms() ==
        std::vector<std::string_view>{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"});
}

TEST_CASE("scram_client and scram_server agree on the right password") {
  for (const char* password : {"pencil", "", "a much longer password, with commas, = signs and \xc3\xa9"}) {
    CAPTURE(password);
    scram_server s(compute_scram_verifier(password, random_bytes(16), 4096));
    scram_client c(password);
    const auto r = run(s, c);
    CHECK_MESSAGE(r, r.error);
    CHECK(s.authenticated());
  }
  SUBCASE("also when the server offers channel binding the client does not use") {
    scram_server s(rfc_verifier(), cb_data);
    scram_client c("pencil");
    CHECK(run(s, c));
    CHECK_FALSE(s.channel_bound());
  }
}

TEST_CASE("a wrong password fails with invalid_proof") {
  scram_server s(rfc_verifier());
  scram_client c("pencil2");
  const auto r = run(s, c);
  CHECK_FALSE(r);
  CHECK(r.failure == scram_failure::invalid_proof);
  CHECK(r.message.empty());
  CHECK_FALSE(r.error.empty());
  CHECK_FALSE(s.authenticated());
  CHECK(s.client_key().empty());
}

TEST_CASE("a verifier made by PostgreSQL lets scram_client in") {
  scram_server s(verifier_of(pg_pencil_verifier));
  scram_client c("pencil");
  CHECK(run(s, c));
  scram_server s2(verifier_of(pg_pencil_verifier));
  scram_client wrong("pencil ");
  CHECK(run(s2, wrong).failure == scram_failure::invalid_proof);
}

TEST_CASE("a verifier made by make_scram_verifier lets scram_client in") {
  const auto text = make_scram_verifier("s3cret!");
  scram_server s(verifier_of(text));
  scram_client c("s3cret!");
  CHECK(run(s, c));
}

TEST_CASE("random server nonces are fresh, printable and extend the client nonce") {
  std::set<std::string> seen;
  for (int i = 0; i < 20; ++i) {
    scram_server s(rfc_verifier());
    const auto first = s.handle_client_first(scram_sha_256_mechanism, "n,,n=,r=abc");
    REQUIRE(first);
    const auto nonce = attr(first.message, 'r');
    REQUIRE(nonce.rfind("abc", 0) == 0);
    CHECK(nonce.size() == 3 + 24);  // 18 random bytes in base64
    for (char ch : nonce) CHECK((ch > 0x20 && ch < 0x7f && ch != ','));
    seen.insert(nonce);
  }
  CHECK(seen.size() == 20);
}

TEST_CASE("the user name inside the SCRAM message is ignored") {
  for (const char* bare : {"n=,r=abc", "n=someone-else,r=abc", "n=a=2Cb=3D,r=abc"}) {
    CAPTURE(bare);
    scram_server s(rfc_verifier());
    manual_client c;
    c.bare = bare;
    CHECK(run(s, scram_sha_256_mechanism, c));
  }
}

TEST_CASE("unknown users get a stable fake salt and fail exactly like a wrong password") {
  const std::string secret = random_bytes(32);
  auto mock = scram_server::for_unknown_user("ghost", secret);
  CHECK(mock.is_mock());
  CHECK(mock.mechanisms() == std::vector<std::string_view>{"SCRAM-SHA-256"});
  scram_client c("pencil");
  const auto first = mock.handle_client_first(scram_sha_256_mechanism, c.client_first_message());
  REQUIRE(first);
  CHECK(attr(first.message, 'i') == "4096");
  const auto salt = unbase64(attr(first.message, 's'));
  CHECK(salt == sha256(secret + "ghost").substr(0, 16));

  std::string error;
  const auto client_final = c.handle_server_first(first.message, error);
  REQUIRE(client_final);
  const auto mock_reply = mock.handle_client_final(*client_final);
  CHECK_FALSE(mock.authenticated());
  CHECK(mock.client_key().empty());

  scram_server real(rfc_verifier());
  scram_client wrong("not pencil");
  const auto wrong_reply = run(real, wrong);
  CHECK(mock_reply.failure == scram_failure::invalid_proof);
  CHECK(mock_reply.failure == wrong_reply.failure);
  CHECK(mock_reply.error == wrong_reply.error);
  CHECK(mock_reply.message == wrong_reply.message);

  SUBCASE("the same salt on every attempt, another for another user or secret") {
    const auto salt_of = [](scram_server s) {
      return attr(s.handle_client_first(scram_sha_256_mechanism, "n,,n=,r=x").message, 's');
    };
    CHECK(salt_of(scram_server::for_unknown_user("ghost", secret)) == attr(first.message, 's'));
    CHECK(salt_of(scram_server::for_unknown_user("ghost2", secret)) != attr(first.message, 's'));
    CHECK(salt_of(scram_server::for_unknown_user("ghost", secret + "x")) != attr(first.message, 's'));
  }
  SUBCASE("with channel binding too") {
    auto plus = scram_server::for_unknown_user("ghost", secret, cb_data);
    manual_client m;
    m.gs2_header = "p=tls-server-end-point,,";
    m.cb_input = cb_data;
    const auto r = run(plus, scram_sha_256_plus_mechanism, m);
    CHECK(r.failure == scram_failure::invalid_proof);
    CHECK(r.error == wrong_reply.error);
  }
}

TEST_CASE("for_unknown_user refuses an empty mock secret") {
  CHECK_THROWS_AS(scram_server::for_unknown_user("ghost", ""), std::invalid_argument);
}

TEST_CASE("channel binding: SCRAM-SHA-256-PLUS with matching data succeeds") {
  scram_server s(rfc_verifier(), cb_data);
  manual_client c;
  c.gs2_header = "p=tls-server-end-point,,";
  c.cb_input = cb_data;
  const auto r = run(s, scram_sha_256_plus_mechanism, c);
  CHECK_MESSAGE(r, r.error);
  CHECK(s.channel_bound());
}

TEST_CASE("channel binding: data that does not match fails") {
  scram_server s(rfc_verifier(), cb_data);
  manual_client c;
  c.gs2_header = "p=tls-server-end-point,,";
  SUBCASE("another certificate") { c.cb_input = sha256("another certificate"); }
  SUBCASE("none") { c.cb_input = ""; }
  SUBCASE("truncated") { c.cb_input = cb_data.substr(0, 31); }
  const auto r = run(s, scram_sha_256_plus_mechanism, c);
  CHECK(r.failure == scram_failure::protocol_violation);
  CHECK(r.error.find("channel binding") != std::string::npos);
  CHECK_FALSE(s.authenticated());
}

TEST_CASE("channel binding: \"y\" when PLUS was offered is a downgrade and fails") {
  scram_server s(rfc_verifier(), cb_data);
  manual_client c;
  c.gs2_header = "y,,";
  const auto r = s.handle_client_first(scram_sha_256_mechanism, c.first());
  CHECK(r.failure == scram_failure::protocol_violation);
  CHECK(r.error.find("channel binding") != std::string::npos);
}

TEST_CASE("channel binding: \"y\" without TLS succeeds") {
  scram_server s(rfc_verifier());
  manual_client c;
  c.gs2_header = "y,,";
  const auto r = run(s, scram_sha_256_mechanism, c);
  CHECK_MESSAGE(r, r.error);
  CHECK_FALSE(s.channel_bound());
}

TEST_CASE("channel binding: \"p=\" with plain SCRAM-SHA-256 fails") {
  for (const std::string& server_cb : {std::string(), cb_data}) {
    CAPTURE(server_cb.size());
    scram_server s(rfc_verifier(), server_cb);
    const auto r = s.handle_client_first(scram_sha_256_mechanism, "p=tls-server-end-point,,n=,r=abc");
    CHECK(r.failure == scram_failure::protocol_violation);
    CHECK(r.error.find("channel binding") != std::string::npos);
  }
}

TEST_CASE("channel binding: other mismatches between mechanism, flag and c= fail") {
  SUBCASE("PLUS picked although not offered (no TLS)") {
    scram_server s(rfc_verifier());
    const auto r = s.handle_client_first(scram_sha_256_plus_mechanism, "p=tls-server-end-point,,n=,r=abc");
    CHECK(r.failure == scram_failure::protocol_violation);
    CHECK(r.error.find("mechanism") != std::string::npos);
  }
  SUBCASE("PLUS picked with an \"n\" flag") {
    scram_server s(rfc_verifier(), cb_data);
    CHECK(s.handle_client_first(scram_sha_256_plus_mechanism, "n,,n=,r=abc").failure == scram_failure::protocol_violation);
  }
  SUBCASE("PLUS picked with a \"y\" flag") {
    scram_server s(rfc_verifier(), cb_data);
    CHECK(s.handle_client_first(scram_sha_256_plus_mechanism, "y,,n=,r=abc").failure == scram_failure::protocol_violation);
  }
  SUBCASE("an unsupported channel binding type") {
    scram_server s(rfc_verifier(), cb_data);
    const auto r = s.handle_client_first(scram_sha_256_plus_mechanism, "p=tls-unique,,n=,r=abc");
    CHECK(r.failure == scram_failure::protocol_violation);
    CHECK(r.error.find("\"tls-unique\"") != std::string::npos);
  }
  SUBCASE("an unknown mechanism") {
    scram_server s(rfc_verifier(), cb_data);
    CHECK(s.handle_client_first("SCRAM-SHA-1", "n,,n=,r=abc").failure == scram_failure::protocol_violation);
  }
  SUBCASE("c= repeats another header than the one sent") {
    scram_server s(rfc_verifier());
    manual_client c;
    c.gs2_header = "y,,";
    const auto first = s.handle_client_first(scram_sha_256_mechanism, c.first());
    REQUIRE(first);
    manual_client lying = c;
    lying.gs2_header = "n,,";  // c=biws after "y,,"
    const auto r = s.handle_client_final(lying.final_for(first.message));
    CHECK(r.failure == scram_failure::protocol_violation);
  }
}

TEST_CASE("authzid and mandatory extensions are refused, optional extensions ignored") {
  SUBCASE("authzid") {
    scram_server s(rfc_verifier());
    const auto r = s.handle_client_first(scram_sha_256_mechanism, "n,a=admin,n=,r=abc");
    CHECK(r.failure == scram_failure::protocol_violation);
    CHECK(r.error.find("authorization identity") != std::string::npos);
  }
  SUBCASE("mandatory extension") {
    scram_server s(rfc_verifier());
    const auto r = s.handle_client_first(scram_sha_256_mechanism, "n,,m=ext,n=,r=abc");
    CHECK(r.failure == scram_failure::protocol_violation);
    CHECK(r.error.find("extension") != std::string::npos);
  }
  SUBCASE("optional extensions in both client messages") {
    scram_server s(rfc_verifier());
    manual_client c;
    c.bare = "n=,r=abc,x=first-extension";
    const auto first = s.handle_client_first(scram_sha_256_mechanism, c.first());
    REQUIRE_MESSAGE(first, first.error);
    // Insert an extension between r= and p=; the proof covers it.
    const std::string nonce = attr(first.message, 'r');
    const std::string without_proof = "c=biws,r=" + nonce + ",y=final-extension";
    const std::string salted = pbkdf2_sha256("pencil", unbase64(attr(first.message, 's')), 4096);
    const std::string client_key = hmac_sha256(salted, "Client Key");
    const std::string auth_message = c.bare + "," + first.message + "," + without_proof;
    const std::string proof = xor_bytes(client_key, hmac_sha256(sha256(client_key), auth_message));
    const auto r = s.handle_client_final(without_proof + ",p=" + base64_encode(proof));
    CHECK_MESSAGE(r, r.error);
  }
}

TEST_CASE("malformed client-first messages are refused") {
  const std::pair<const char*, std::string> cases[] = {
      {"empty", ""},
      {"NUL byte", std::string("n,,n=,r=ab\0c", 12)},
      {"no gs2 header", "n=,r=abc"},
      {"bad flag", "x,,n=,r=abc"},
      {"flag without comma", "nn=,r=abc"},
      {"flag only", "n"},
      {"one comma", "n,n=,r=abc"},
      {"p without =", "p,,n=,r=abc"},
      {"p without comma", "p=tls-server-end-point"},
      {"no bare message", "n,,"},
      {"no user", "n,,r=abc"},
      {"no nonce", "n,,n="},
      {"nonce first", "n,,r=abc,n="},
      {"empty nonce", "n,,n=,r="},
      {"nonce with a space", "n,,n=,r=a c"},
      {"nonce with a high byte", "n,,n=,r=a\xc3\xa9"},
      {"trailing comma", "n,,n=,r=abc,"},
      {"bad extension", "n,,n=,r=abc,1=x"},
      {"extension without =", "n,,n=,r=abc,x"},
  };
  for (const auto& [name, text] : cases) {
    CAPTURE(name);
    scram_server s(rfc_verifier());
    const auto r = s.handle_client_first(scram_sha_256_mechanism, text);
    CHECK(r.failure == scram_failure::protocol_violation);
    CHECK_FALSE(r.error.empty());
    CHECK(r.message.empty());
  }
}

TEST_CASE("malformed client-final messages are refused") {
  const std::string nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
  const std::string proof = "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
  const std::pair<const char*, std::string> cases[] = {
      {"empty", ""},
      {"NUL byte", std::string("c=biws,r=") + nonce + std::string(",p=\0", 4)},
      {"no proof", "c=biws,r=" + nonce},
      {"empty proof", "c=biws,r=" + nonce + ",p="},
      {"proof not base64", "c=biws,r=" + nonce + ",p=dHzb*ZapW"},
      {"short proof", "c=biws,r=" + nonce + ",p=" + base64_encode(std::string(31, 'p'))},
      {"long proof", "c=biws,r=" + nonce + ",p=" + base64_encode(std::string(33, 'p'))},
      {"no channel binding", "r=" + nonce + ",p=" + proof},
      {"channel binding not base64", "c=bi*s,r=" + nonce + ",p=" + proof},
      {"no nonce", "c=biws,p=" + proof},
      {"nonce before binding", "r=" + nonce + ",c=biws,p=" + proof},
      {"something after the proof", "c=biws,r=" + nonce + ",p=" + proof + ",x=1"},
      {"bad extension", "c=biws,r=" + nonce + ",1,p=" + proof},
  };
  for (const auto& [name, text] : cases) {
    CAPTURE(name);
    scram_server s(rfc_verifier(), {}, std::string(rfc_server_nonce));
    REQUIRE(s.handle_client_first(scram_sha_256_mechanism, rfc_client_first));
    const auto r = s.handle_client_final(text);
    CHECK(r.failure == scram_failure::protocol_violation);
    CHECK_FALSE(r.error.empty());
    CHECK_FALSE(s.authenticated());
  }
}

TEST_CASE("a nonce that is not the combined nonce is refused") {
  const std::string proof = ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
  for (const std::string nonce : {"rOprNGfwEbeRWgbNEkqO", "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k",
                                  "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0x", "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"}) {
    CAPTURE(nonce);
    scram_server s(rfc_verifier(), {}, std::string(rfc_server_nonce));
    REQUIRE(s.handle_client_first(scram_sha_256_mechanism, rfc_client_first));
    const auto r = s.handle_client_final("c=biws,r=" + nonce + proof);
    CHECK(r.failure == scram_failure::protocol_violation);
    CHECK(r.error.find("nonce") != std::string::npos);
  }
}

TEST_CASE("messages out of order are refused, and nothing is accepted after a failure") {
  SUBCASE("final before first") {
    scram_server s(rfc_verifier(), {}, std::string(rfc_server_nonce));
    CHECK(s.handle_client_final(rfc_client_final).failure == scram_failure::protocol_violation);
    // A failed exchange stays failed.
    CHECK(s.handle_client_first(scram_sha_256_mechanism, rfc_client_first).failure == scram_failure::protocol_violation);
  }
  SUBCASE("first twice") {
    scram_server s(rfc_verifier(), {}, std::string(rfc_server_nonce));
    REQUIRE(s.handle_client_first(scram_sha_256_mechanism, rfc_client_first));
    CHECK(s.handle_client_first(scram_sha_256_mechanism, rfc_client_first).failure == scram_failure::protocol_violation);
    CHECK(s.handle_client_final(rfc_client_final).failure == scram_failure::protocol_violation);
  }
  SUBCASE("final twice") {
    scram_server s(rfc_verifier(), {}, std::string(rfc_server_nonce));
    REQUIRE(s.handle_client_first(scram_sha_256_mechanism, rfc_client_first));
    REQUIRE(s.handle_client_final(rfc_client_final));
    CHECK(s.handle_client_final(rfc_client_final).failure == scram_failure::protocol_violation);
    // A stray message fails the exchange closed, success included.
    CHECK_FALSE(s.authenticated());
    CHECK(s.client_key().empty());
  }
  SUBCASE("a right proof after a wrong one") {
    scram_server s(rfc_verifier(), {}, std::string(rfc_server_nonce));
    REQUIRE(s.handle_client_first(scram_sha_256_mechanism, rfc_client_first));
    std::string bad(rfc_client_final);
    bad[bad.size() - 5] = bad[bad.size() - 5] == 'A' ? 'B' : 'A';
    CHECK(s.handle_client_final(bad).failure == scram_failure::invalid_proof);
    CHECK(s.handle_client_final(rfc_client_final).failure == scram_failure::protocol_violation);
    CHECK_FALSE(s.authenticated());
  }
}

TEST_CASE("client_key is the ClientKey, and only after success") {
  scram_server s(rfc_verifier(), {}, std::string(rfc_server_nonce));
  CHECK(s.client_key().empty());
  REQUIRE(s.handle_client_first(scram_sha_256_mechanism, rfc_client_first));
  CHECK(s.client_key().empty());
  REQUIRE(s.handle_client_final(rfc_client_final));
  const std::string salted = pbkdf2_sha256("pencil", unbase64(rfc_salt_b64), 4096);
  CHECK(s.client_key() == hmac_sha256(salted, "Client Key"));
  CHECK(s.client_key().size() == 32);
  CHECK(sha256(s.client_key()) == rfc_verifier().stored_key);
}

TEST_CASE("scram_client with keys logs in like the password (passthrough)") {
  // A client proves "pencil" to pgmux; pgmux then logs in to a server holding the same
  // verifier with the ClientKey it learnt and the verifier's ServerKey.
  const auto verifier = verifier_of(pg_pencil_verifier);
  scram_server front(verifier);
  scram_client app("pencil");
  REQUIRE(run(front, app));

  scram_server backend(verifier);
  auto pgmux_side = scram_client::from_keys(front.client_key(), verifier.server_key);
  const auto r = run(backend, pgmux_side);
  CHECK_MESSAGE(r, r.error);
  CHECK(backend.client_key() == front.client_key());
}

TEST_CASE("scram_client with the keys of another password fails") {
  const auto verifier = verifier_of(pg_pencil_verifier);
  const auto other = compute_scram_verifier("other", verifier.salt, verifier.iterations);
  const std::string other_client_key = hmac_sha256(pbkdf2_sha256("other", verifier.salt, 4096), "Client Key");
  scram_server backend(verifier);
  auto c = scram_client::from_keys(other_client_key, other.server_key);
  CHECK(run(backend, c).failure == scram_failure::invalid_proof);

  SUBCASE("and a server that does not know the ServerKey is caught") {
    // Right ClientKey, but the client expects another server signature.
    scram_server s(verifier);
    const std::string right_client_key = hmac_sha256(pbkdf2_sha256("pencil", verifier.salt, 4096), "Client Key");
    auto suspicious = scram_client::from_keys(right_client_key, other.server_key);
    const auto first = s.handle_client_first(scram_sha_256_mechanism, suspicious.client_first_message());
    std::string error;
    const auto client_final = suspicious.handle_server_first(first.message, error);
    REQUIRE(client_final);
    const auto final_reply = s.handle_client_final(*client_final);
    REQUIRE(final_reply);
    CHECK_FALSE(suspicious.verify_server_final(final_reply.message, error));
  }
}

}  // TEST_SUITE
