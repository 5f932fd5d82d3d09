// Messages of client authentication (pgmux as the server) and of auth_query:
// Cases:
//   authentication requests match hand-built bytes and decode back
//   PasswordMessage decodes its password, and nothing malformed
//   SASLInitialResponse decodes mechanism and data, absent data (-1), and nothing malformed
//   SASLResponse is its body
//   the client side's messages decode on the server side
//   a parameterized query is Parse, Bind, Execute and Sync, the value outside the SQL
//   DataRow decodes columns and NULLs, and nothing malformed
//   random bodies never crash the decoders
#include <doctest/doctest.h>

#include <random>
#include <string>

#include "pgmux/protocol/decode.hpp"
#include "pgmux/protocol/encode.hpp"
#include "pgmux/protocol/frame.hpp"
#include "support/wire.hpp"

using namespace pgmux::protocol;

namespace {

// The single tagged frame `bytes` starts with; `consumed` says where the next one starts.
frame first_frame(const std::string& bytes, char tag, std::size_t& consumed) {
  const auto r = parse_frame(bytes, 1 << 20);
  REQUIRE(r.status == parse_status::complete);
  REQUIRE(r.msg.tag == tag);
  consumed = r.consumed;
  return r.msg;
}

frame one_frame(const std::string& bytes, char tag) {
  std::size_t consumed = 0;
  const auto f = first_frame(bytes, tag, consumed);
  REQUIRE(consumed == bytes.size());
  return f;
}

}  // namespace

TEST_SUITE("codec") {

TEST_CASE("authentication requests match hand-built bytes and decode back") {
  std::string out;
  SUBCASE("AuthenticationCleartextPassword") {
    encode_authentication_cleartext_password(out);
    CHECK(out == wire::bin("R\0\0\0\x08\0\0\0\x03"));
  }
  SUBCASE("AuthenticationMD5Password") {
    encode_authentication_md5_password(out, wire::bin("\x01\0\xff\x7f"));
    CHECK(out == wire::msg('R').i32(5).bytes(wire::bin("\x01\0\xff\x7f")).str());
    const auto a = decode_authentication(one_frame(out, 'R').body);
    REQUIRE(a);
    CHECK(a->code == 5);
    CHECK(a->data == wire::bin("\x01\0\xff\x7f"));
  }
  SUBCASE("AuthenticationSASL lists the mechanisms and ends with an empty name") {
    encode_authentication_sasl(out, {"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"});
    CHECK(out == wire::msg('R').i32(10).cstr("SCRAM-SHA-256-PLUS").cstr("SCRAM-SHA-256").i8(0).str());
    const auto a = decode_authentication(one_frame(out, 'R').body);
    REQUIRE(a);
    CHECK(decode_sasl_mechanisms(a->data) == std::vector<std::string>{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"});
  }
  SUBCASE("AuthenticationSASLContinue and AuthenticationSASLFinal carry raw data") {
    encode_authentication_sasl_continue(out, "r=abc,s=c2FsdA==,i=4096");
    encode_authentication_sasl_final(out, "v=c2lnbmF0dXJl");
    CHECK(out == wire::msg('R').i32(11).bytes("r=abc,s=c2FsdA==,i=4096").str() +
                     wire::msg('R').i32(12).bytes("v=c2lnbmF0dXJl").str());
  }
}

TEST_CASE("PasswordMessage decodes its password, and nothing malformed") {
  const std::string body = wire::msg('p').cstr("secret").body();
  CHECK(decode_password_message(body) == "secret");
  CHECK(decode_password_message(wire::msg('p').cstr("").body()) == "");
  CHECK_FALSE(decode_password_message(""));
  CHECK_FALSE(decode_password_message("no terminator"));
  CHECK_FALSE(decode_password_message(wire::bin("two\0parts\0")));
}

TEST_CASE("SASLInitialResponse decodes mechanism and data, absent data (-1), and nothing malformed") {
  // Decoded views point into the body: keep it alive.
  const std::string full_body = wire::msg('p').cstr("SCRAM-SHA-256").i32(11).bytes("n,,n=,r=abc").body();
  const auto full = decode_sasl_initial_response(full_body);
  REQUIRE(full);
  CHECK(full->mechanism == "SCRAM-SHA-256");
  REQUIRE(full->data);
  CHECK(*full->data == "n,,n=,r=abc");

  const auto empty = decode_sasl_initial_response(wire::msg('p').cstr("SCRAM-SHA-256").i32(0).body());
  REQUIRE(empty);
  REQUIRE(empty->data);
  CHECK(empty->data->empty());

  const auto absent = decode_sasl_initial_response(wire::msg('p').cstr("SCRAM-SHA-256").i32(-1).body());
  REQUIRE(absent);
  CHECK_FALSE(absent->data);

  CHECK_FALSE(decode_sasl_initial_response(""));
  CHECK_FALSE(decode_sasl_initial_response("SCRAM-SHA-256"));                               // no terminator
  CHECK_FALSE(decode_sasl_initial_response(wire::msg('p').cstr("SCRAM-SHA-256").body()));   // no length
  CHECK_FALSE(decode_sasl_initial_response(wire::msg('p').cstr("M").i32(5).bytes("abc").body()));     // short
  CHECK_FALSE(decode_sasl_initial_response(wire::msg('p').cstr("M").i32(2).bytes("abc").body()));     // long
  CHECK_FALSE(decode_sasl_initial_response(wire::msg('p').cstr("M").i32(-2).body()));                 // negative
  CHECK_FALSE(decode_sasl_initial_response(wire::msg('p').cstr("M").i32(-1).bytes("x").body()));      // data after -1
}

TEST_CASE("SASLResponse is its body") {
  CHECK(decode_sasl_response("c=biws,r=x,p=y") == "c=biws,r=x,p=y");
  CHECK(decode_sasl_response("").empty());
}

TEST_CASE("the client side's messages decode on the server side") {
  std::string out;
  encode_sasl_initial_response(out, "SCRAM-SHA-256", "n,,n=,r=nonce");
  const auto initial = decode_sasl_initial_response(one_frame(out, 'p').body);
  REQUIRE(initial);
  CHECK(initial->mechanism == "SCRAM-SHA-256");
  CHECK(initial->data == "n,,n=,r=nonce");

  out.clear();
  encode_sasl_response(out, "c=biws,r=nonce,p=proof");
  CHECK(decode_sasl_response(one_frame(out, 'p').body) == "c=biws,r=nonce,p=proof");

  out.clear();
  encode_password_message(out, "md5d41d8cd98f00b204e9800998ecf8427e");
  CHECK(decode_password_message(one_frame(out, 'p').body) == "md5d41d8cd98f00b204e9800998ecf8427e");
}

TEST_CASE("a parameterized query is Parse, Bind, Execute and Sync, the value outside the SQL") {
  std::string out;
  encode_parameterized_query(out, "SELECT passwd FROM pg_shadow WHERE usename = $1", {std::string_view("o'brien"), std::nullopt});
  const std::string expected =
      wire::msg('P').cstr("").cstr("SELECT passwd FROM pg_shadow WHERE usename = $1").i16(0).str() +
      wire::msg('B').cstr("").cstr("").i16(0).i16(2).i32(7).bytes("o'brien").i32(-1).i16(0).str() +
      wire::msg('E').cstr("").i32(0).str() + wire::msg('S').str();
  CHECK(out == expected);
  std::size_t at = 0, consumed = 0;
  for (char tag : {'P', 'B', 'E', 'S'}) {
    first_frame(out.substr(at), tag, consumed);
    at += consumed;
  }
  CHECK(at == out.size());
}

TEST_CASE("DataRow decodes columns and NULLs, and nothing malformed") {
  std::string out;
  encode_data_row(out, {"alice", ""});
  const auto row = decode_data_row(one_frame(out, 'D').body);
  REQUIRE(row);
  REQUIRE(row->size() == 2);
  CHECK((*row)[0] == "alice");
  CHECK((*row)[1] == "");

  const std::string null_body = wire::msg('D').i16(2).i32(-1).i32(3).bytes("md5").body();
  const auto with_null = decode_data_row(null_body);
  REQUIRE(with_null);
  REQUIRE(with_null->size() == 2);
  CHECK_FALSE((*with_null)[0]);
  CHECK((*with_null)[1] == "md5");

  const auto none = decode_data_row(wire::msg('D').i16(0).body());
  REQUIRE(none);
  CHECK(none->empty());

  CHECK_FALSE(decode_data_row(""));
  CHECK_FALSE(decode_data_row(wire::msg('D').i16(1).body()));                         // column missing
  CHECK_FALSE(decode_data_row(wire::msg('D').i16(1).i32(5).bytes("abc").body()));     // short value
  CHECK_FALSE(decode_data_row(wire::msg('D').i16(1).i32(1).bytes("abc").body()));     // bytes left over
  CHECK_FALSE(decode_data_row(wire::msg('D').i16(1).i32(-2).body()));                 // negative length
}

TEST_CASE("random bodies never crash the auth decoders") {
  std::mt19937 rng(5802);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<int> len(0, 24);
  static const std::string tokens[] = {std::string(1, '\0'), "SCRAM-SHA-256", std::string("\0\0\0\3", 4),
                                       std::string("\xff\xff\xff\xff", 4), std::string("\0\1", 2), "abc",
                                       std::string(1, '\x7f')};
  for (int round = 0; round < 5000; ++round) {
    std::string body;
    const int n = len(rng) / 3;
    for (int i = 0; i < n; ++i) body += tokens[static_cast<std::size_t>(byte(rng)) % std::size(tokens)];
    if (auto p = decode_password_message(body)) CHECK(p->size() + 1 == body.size());
    if (auto s = decode_sasl_initial_response(body)) {
      CHECK(s->mechanism.size() < body.size());
      if (s->data) CHECK(s->mechanism.size() + 5 + s->data->size() == body.size());
    }
    if (auto row = decode_data_row(body)) {
      std::size_t total = 2;
      for (const auto& column : *row) total += 4 + (column ? column->size() : 0);
      CHECK(total == body.size());
    }
  }
}

}  // TEST_SUITE
