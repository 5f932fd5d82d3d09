// Encoders and decoders: golden bytes, round trips, malformed bodies.
// Cases:
//   golden bytes of fixed messages
//   encoders append to what is already in the buffer
//   frontend encoders match hand-built bytes
//   startup message round trip keeps parameters in order
//   database defaults to user
//   SSLRequest, GSSENCRequest and CancelRequest are recognised
//   error and notice responses round trip
//   error response: V wins over localized S, unknown fields ignored
//   parameter status round trip
//   backend key data round trip
//   ready for query round trip for every status
//   authentication requests decode code and data
//   query round trip
//   sasl mechanisms list
//   malformed startup packets are refused with a reason
//   malformed backend bodies give nullopt
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

constexpr std::size_t big = 1 << 20;

// The single tagged frame `bytes` holds; fails the test unless it is exactly one message.
frame one_frame(const std::string& bytes, char tag) {
  const auto r = parse_frame(bytes, big);
  REQUIRE(r.status == parse_status::complete);
  REQUIRE(r.consumed == bytes.size());
  REQUIRE(r.msg.tag == tag);
  return r.msg;
}

// The startup packet `bytes` holds, decoded.
std::optional<startup_packet> startup_of(const std::string& bytes, std::string& error) {
  const auto r = parse_startup_frame(bytes);
  REQUIRE(r.status == parse_status::complete);
  REQUIRE(r.consumed == bytes.size());
  return decode_startup_packet(r.msg.body, error);
}

}  // namespace

TEST_SUITE("codec") {

TEST_CASE("golden bytes of fixed messages") {
  std::string out;
  SUBCASE("ReadyForQuery idle") {
    encode_ready_for_query(out, 'I');
    CHECK(out == wire::bin("Z\0\0\0\5I"));
  }
  SUBCASE("AuthenticationOk") {
    encode_authentication_ok(out);
    CHECK(out == wire::bin("R\0\0\0\x08\0\0\0\0"));
  }
  SUBCASE("SSLRequest") {
    encode_ssl_request(out);
    CHECK(out == wire::bin("\0\0\0\x08\x04\xd2\x16\x2f"));
  }
  SUBCASE("CancelRequest") {
    encode_cancel_request(out, cancel_key{0x01020304, -1});
    CHECK(out == wire::bin("\0\0\0\x10\x04\xd2\x16\x2e\x01\x02\x03\x04\xff\xff\xff\xff"));
  }
  SUBCASE("BackendKeyData") {
    encode_backend_key_data(out, cancel_key{42, 0x7f000001});
    CHECK(out == wire::bin("K\0\0\0\x0c\0\0\0\x2a\x7f\0\0\x01"));
  }
  SUBCASE("Query") {
    encode_query(out, "select 1");
    CHECK(out == wire::bin("Q\0\0\0\x0dselect 1\0"));
  }
  SUBCASE("Sync and Terminate") {
    encode_sync(out);
    encode_terminate(out);
    CHECK(out == wire::bin("S\0\0\0\4X\0\0\0\4"));
  }
  SUBCASE("ParameterStatus") {
    encode_parameter_status(out, "TimeZone", "UTC");
    CHECK(out == wire::bin("S\0\0\0\x11TimeZone\0UTC\0"));
  }
  SUBCASE("StartupMessage") {
    encode_startup_message(out, {{"user", "u"}});
    CHECK(out == wire::bin("\0\0\0\x10\0\x03\0\0user\0u\0\0"));
  }
  SUBCASE("negotiation answer is one byte") {
    encode_negotiation_answer(out, 'N');
    CHECK(out == "N");
  }
}

TEST_CASE("encoders append to what is already in the buffer") {
  std::string out = "prefix";
  encode_ready_for_query(out, 'T');
  encode_parameter_status(out, "a", "b");
  const std::string expected = "prefix" + wire::msg('Z').bytes("T").str() + wire::msg('S').cstr("a").cstr("b").str();
  CHECK(out == expected);
}

TEST_CASE("frontend encoders match hand-built bytes") {
  std::string out;
  SUBCASE("PasswordMessage") {
    encode_password_message(out, "md5abc");
    CHECK(out == wire::msg('p').cstr("md5abc").str());
  }
  SUBCASE("SASLInitialResponse") {
    encode_sasl_initial_response(out, "SCRAM-SHA-256", "n,,n=,r=abc");
    CHECK(out == wire::msg('p').cstr("SCRAM-SHA-256").i32(11).bytes("n,,n=,r=abc").str());
  }
  SUBCASE("SASLResponse carries raw data, no terminator") {
    encode_sasl_response(out, "c=biws,r=x,p=y");
    CHECK(out == wire::msg('p').bytes("c=biws,r=x,p=y").str());
  }
  SUBCASE("CopyFail") {
    encode_copy_fail(out, "cancelled");
    CHECK(out == wire::msg('f').cstr("cancelled").str());
  }
  SUBCASE("StartupMessage with several parameters") {
    encode_startup_message(out, {{"user", "alice"}, {"database", "app"}, {"application_name", "psql"}});
    CHECK(out == wire::startup({{"user", "alice"}, {"database", "app"}, {"application_name", "psql"}}).str());
  }
  SUBCASE("ErrorResponse with and without detail") {
    encode_error_response(out, "FATAL", "28P01", "password authentication failed", "for user x");
    CHECK(out == wire::msg('E')
                     .i8('S').cstr("FATAL").i8('V').cstr("FATAL").i8('C').cstr("28P01")
                     .i8('M').cstr("password authentication failed").i8('D').cstr("for user x").i8(0)
                     .str());
    out.clear();
    encode_error_response(out, "ERROR", "57014", "canceling statement due to statement timeout");
    CHECK(out == wire::msg('E')
                     .i8('S').cstr("ERROR").i8('V').cstr("ERROR").i8('C').cstr("57014")
                     .i8('M').cstr("canceling statement due to statement timeout").i8(0)
                     .str());
  }
}

TEST_CASE("startup message round trip keeps parameters in order") {
  const parameter_list params{{"user", "alice"}, {"database", "app"}, {"options", "-c x=1"}, {"application_name", ""}};
  std::string out;
  encode_startup_message(out, params);
  std::string error;
  const auto p = startup_of(out, error);
  REQUIRE_MESSAGE(p, error);
  CHECK(p->kind == startup_kind::startup);
  CHECK(p->startup.protocol == 196608);
  CHECK(p->startup.parameters == params);
  CHECK(p->startup.user() == "alice");
  CHECK(p->startup.database() == "app");
  REQUIRE(p->startup.find("options") != nullptr);
  CHECK(*p->startup.find("options") == "-c x=1");
  REQUIRE(p->startup.find("application_name") != nullptr);
  CHECK(p->startup.find("application_name")->empty());
  CHECK(p->startup.find("missing") == nullptr);
}

TEST_CASE("database defaults to user") {
  std::string error;
  SUBCASE("absent") {
    const auto p = startup_of(wire::startup({{"user", "bob"}}).str(), error);
    REQUIRE_MESSAGE(p, error);
    CHECK(p->startup.database() == "bob");
  }
  SUBCASE("empty") {
    const auto p = startup_of(wire::startup({{"database", ""}, {"user", "bob"}}).str(), error);
    REQUIRE_MESSAGE(p, error);
    CHECK(p->startup.database() == "bob");
  }
}

TEST_CASE("SSLRequest, GSSENCRequest and CancelRequest are recognised") {
  std::string out, error;
  SUBCASE("SSLRequest from the encoder") {
    encode_ssl_request(out);
    const auto p = startup_of(out, error);
    REQUIRE_MESSAGE(p, error);
    CHECK(p->kind == startup_kind::ssl_request);
  }
  SUBCASE("GSSENCRequest") {
    const auto p = startup_of(wire::untagged().i32(wire::gssenc_code).str(), error);
    REQUIRE_MESSAGE(p, error);
    CHECK(p->kind == startup_kind::gssenc_request);
  }
  SUBCASE("CancelRequest round trip, negative values included") {
    for (cancel_key key : {cancel_key{1234, 5678}, cancel_key{-1, INT32_MIN}, cancel_key{INT32_MAX, 0}}) {
      out.clear();
      encode_cancel_request(out, key);
      const auto p = startup_of(out, error);
      REQUIRE_MESSAGE(p, error);
      CHECK(p->kind == startup_kind::cancel_request);
      CHECK(p->cancel == key);
    }
  }
  SUBCASE("CancelRequest built by hand") {
    const auto p = startup_of(wire::untagged().i32(wire::cancel_code).i32(7).i32(-7).str(), error);
    REQUIRE_MESSAGE(p, error);
    CHECK(p->kind == startup_kind::cancel_request);
    CHECK(p->cancel == cancel_key{7, -7});
  }
}

TEST_CASE("error and notice responses round trip") {
  std::string out;
  SUBCASE("error with detail") {
    encode_error_response(out, "FATAL", "53300", "too many clients", "max_client_conn is 10");
    const auto f = decode_error_response(one_frame(out, 'E').body);
    REQUIRE(f);
    CHECK(f->severity == "FATAL");
    CHECK(f->code == "53300");
    CHECK(f->message == "too many clients");
    CHECK(f->detail == "max_client_conn is 10");
    CHECK(f->hint.empty());
  }
  SUBCASE("error without detail") {
    encode_error_response(out, "ERROR", "57014", "canceled");
    const auto f = decode_error_response(one_frame(out, 'E').body);
    REQUIRE(f);
    CHECK(f->severity == "ERROR");
    CHECK(f->code == "57014");
    CHECK(f->message == "canceled");
    CHECK(f->detail.empty());
  }
  SUBCASE("notice") {
    encode_notice_response(out, "01000", "heads up");
    const auto f = decode_error_response(one_frame(out, 'N').body);
    REQUIRE(f);
    CHECK(f->severity == "NOTICE");
    CHECK(f->code == "01000");
    CHECK(f->message == "heads up");
  }
}

TEST_CASE("error response: V wins over localized S, unknown fields ignored") {
  SUBCASE("S before V") {
    const auto body = wire::msg('E').i8('S').cstr("ERREUR").i8('V').cstr("ERROR").i8('C').cstr("42P01")
                          .i8('M').cstr("m").i8('P').cstr("15").i8('H').cstr("try again").i8(0).body();
    const auto f = decode_error_response(body);
    REQUIRE(f);
    CHECK(f->severity == "ERROR");
    CHECK(f->code == "42P01");
    CHECK(f->hint == "try again");
  }
  SUBCASE("V before S") {
    const auto body = wire::msg('E').i8('V').cstr("FATAL").i8('S').cstr("FATAL-localized").i8(0).body();
    const auto f = decode_error_response(body);
    REQUIRE(f);
    CHECK(f->severity == "FATAL");
  }
  SUBCASE("only S (servers before 9.6)") {
    const auto f = decode_error_response(wire::msg('E').i8('S').cstr("ERROR").i8(0).body());
    REQUIRE(f);
    CHECK(f->severity == "ERROR");
  }
}

TEST_CASE("parameter status round trip") {
  std::string out;
  encode_parameter_status(out, "server_version", "15.4 (pgmux)");
  const auto ps = decode_parameter_status(one_frame(out, 'S').body);
  REQUIRE(ps);
  CHECK(ps->first == "server_version");
  CHECK(ps->second == "15.4 (pgmux)");
  out.clear();
  encode_parameter_status(out, "application_name", "");
  const auto empty = decode_parameter_status(one_frame(out, 'S').body);
  REQUIRE(empty);
  CHECK(empty->first == "application_name");
  CHECK(empty->second.empty());
}

TEST_CASE("backend key data round trip") {
  for (cancel_key key : {cancel_key{4242, 987654321}, cancel_key{-5, -6}}) {
    std::string out;
    encode_backend_key_data(out, key);
    const auto k = decode_backend_key_data(one_frame(out, 'K').body);
    REQUIRE(k);
    CHECK(*k == key);
  }
}

TEST_CASE("ready for query round trip for every status") {
  for (char status : {'I', 'T', 'E'}) {
    CAPTURE(status);
    std::string out;
    encode_ready_for_query(out, status);
    const auto s = decode_ready_for_query(one_frame(out, 'Z').body);
    REQUIRE(s);
    CHECK(*s == status);
  }
}

TEST_CASE("authentication requests decode code and data") {
  SUBCASE("ok from the encoder") {
    std::string out;
    encode_authentication_ok(out);
    const auto a = decode_authentication(one_frame(out, 'R').body);
    REQUIRE(a);
    CHECK(a->code == 0);
    CHECK(a->data.empty());
  }
  SUBCASE("md5 with its salt") {
    const auto msg = wire::msg('R').i32(5).bytes(wire::bin("\x01\0\xff\x7f")).str();
    const auto a = decode_authentication(one_frame(msg, 'R').body);
    REQUIRE(a);
    CHECK(a->code == 5);
    CHECK(a->data == wire::bin("\x01\0\xff\x7f"));
  }
  SUBCASE("sasl continue carries the server message") {
    const auto msg = wire::msg('R').i32(11).bytes("r=abc,s=c2FsdA==,i=4096").str();
    const auto a = decode_authentication(one_frame(msg, 'R').body);
    REQUIRE(a);
    CHECK(a->code == 11);
    CHECK(a->data == "r=abc,s=c2FsdA==,i=4096");
  }
}

TEST_CASE("query round trip") {
  for (std::string_view sql : {"select 1", "", "select 'a;b'; select 2"}) {
    std::string out;
    encode_query(out, sql);
    const auto q = decode_query(one_frame(out, 'Q').body);
    REQUIRE(q);
    CHECK(*q == sql);
  }
}

TEST_CASE("sasl mechanisms list") {
  const auto msg = wire::msg('R').i32(10).cstr("SCRAM-SHA-256-PLUS").cstr("SCRAM-SHA-256").i8(0).str();
  const auto a = decode_authentication(one_frame(msg, 'R').body);
  REQUIRE(a);
  CHECK(a->code == 10);
  const auto mechanisms = decode_sasl_mechanisms(a->data);
  REQUIRE(mechanisms.size() == 2);
  CHECK(mechanisms[0] == "SCRAM-SHA-256-PLUS");
  CHECK(mechanisms[1] == "SCRAM-SHA-256");
  CHECK(decode_sasl_mechanisms(wire::bin("\0")).empty());
  CHECK(decode_sasl_mechanisms("").empty());
}

TEST_CASE("malformed startup packets are refused with a reason") {
  std::string error;
  auto refused = [&](const std::string& body) {
    error.clear();
    const bool r = !decode_startup_packet(body, error).has_value();
    CHECK_MESSAGE(!error.empty(), "no reason given");
    return r;
  };
  SUBCASE("shorter than a code") { CHECK(refused(wire::bin("\0\x03\0"))); }
  SUBCASE("unterminated parameter name") {
    CHECK(refused(wire::untagged().i32(wire::protocol_3_0).bytes("user").body()));
  }
  SUBCASE("parameter without value") {
    CHECK(refused(wire::untagged().i32(wire::protocol_3_0).cstr("user").body()));
  }
  SUBCASE("unterminated value") {
    CHECK(refused(wire::untagged().i32(wire::protocol_3_0).cstr("user").bytes("alice").body()));
  }
  SUBCASE("missing final terminator") {
    CHECK(refused(wire::untagged().i32(wire::protocol_3_0).cstr("user").cstr("alice").body()));
  }
  SUBCASE("trailing bytes after the terminator") {
    CHECK(refused(wire::startup({{"user", "alice"}}).bytes("x").body()));
  }
  SUBCASE("unsupported protocol version") {
    CHECK(refused(wire::startup({{"user", "alice"}}, 2 << 16).body()));
    CHECK(error.find("2.0") != std::string::npos);
    CHECK(refused(wire::startup({{"user", "alice"}}, 4 << 16).body()));
    CHECK(refused(wire::startup({{"user", "alice"}}, (1234 << 16) | 5681).body()));
  }
  SUBCASE("missing user") {
    CHECK(refused(wire::startup({{"database", "app"}}).body()));
    CHECK(error.find("user") != std::string::npos);
  }
  SUBCASE("empty user") { CHECK(refused(wire::startup({{"user", ""}}).body())); }
  SUBCASE("SSLRequest with extra bytes") { CHECK(refused(wire::untagged().i32(wire::ssl_code).i32(0).body())); }
  SUBCASE("GSSENCRequest with extra bytes") { CHECK(refused(wire::untagged().i32(wire::gssenc_code).i8(0).body())); }
  SUBCASE("CancelRequest too short and too long") {
    CHECK(refused(wire::untagged().i32(wire::cancel_code).i32(1).body()));
    CHECK(refused(wire::untagged().i32(wire::cancel_code).i32(1).i32(2).i8(0).body()));
  }
}

TEST_CASE("malformed backend bodies give nullopt") {
  SUBCASE("error response") {
    CHECK_FALSE(decode_error_response(""));
    CHECK_FALSE(decode_error_response(wire::msg('E').i8('M').cstr("no terminator").body()));
    CHECK_FALSE(decode_error_response(wire::msg('E').i8('M').bytes("unterminated").body()));
    CHECK_FALSE(decode_error_response("M"));
  }
  SUBCASE("parameter status") {
    CHECK_FALSE(decode_parameter_status(""));
    CHECK_FALSE(decode_parameter_status(wire::msg('S').cstr("name").body()));
    CHECK_FALSE(decode_parameter_status(wire::msg('S').cstr("name").bytes("value").body()));
    CHECK_FALSE(decode_parameter_status(wire::msg('S').cstr("name").cstr("value").bytes("x").body()));
  }
  SUBCASE("backend key data") {
    CHECK_FALSE(decode_backend_key_data(wire::msg('K').i32(1).body()));
    CHECK_FALSE(decode_backend_key_data(wire::msg('K').i32(1).i32(2).i8(0).body()));
  }
  SUBCASE("ready for query") {
    CHECK_FALSE(decode_ready_for_query(""));
    CHECK_FALSE(decode_ready_for_query("IT"));
    CHECK_FALSE(decode_ready_for_query("X"));
    CHECK_FALSE(decode_ready_for_query("i"));
  }
  SUBCASE("authentication") {
    CHECK_FALSE(decode_authentication(""));
    CHECK_FALSE(decode_authentication(wire::bin("\0\0\0")));
  }
  SUBCASE("query") {
    CHECK_FALSE(decode_query(""));
    CHECK_FALSE(decode_query("select 1"));
    CHECK_FALSE(decode_query(wire::bin("select 1\0select 2\0")));
  }
}

TEST_CASE("random bodies never crash the decoders") {
  std::mt19937 rng(7677);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<int> len(0, 40);
  std::size_t accepted = 0;
  for (int round = 0; round < 5000; ++round) {
    // Glue tokens that the decoders care about, so that strings terminate and "user" occurs.
    static const std::string tokens[] = {std::string(1, '\0'), "user", "database", "S", "x", std::string("\0\3\0\0", 4),
                                         std::string(1, '\xff'), std::string(2, '\0')};
    std::string body;
    int n = len(rng) / 4;
    if (round % 3 == 0) {
      body.assign("\0\3\0\0user\0", 9);  // protocol 3.0, then the user name is due
      n = n % 4;
    }
    for (int i = 0; i < n; ++i) body += tokens[static_cast<std::size_t>(byte(rng)) % std::size(tokens)];
    std::string error;
    const auto p = decode_startup_packet(body, error);
    if (p) {
      ++accepted;
      CHECK(p->kind == startup_kind::startup);
      CHECK_FALSE(p->startup.user().empty());
    } else {
      CHECK_FALSE(error.empty());
    }
    if (auto f = decode_error_response(body)) CHECK(f->message.size() < body.size());
    if (auto ps = decode_parameter_status(body)) CHECK(ps->first.size() + ps->second.size() + 2 == body.size());
    if (auto q = decode_query(body)) CHECK(q->size() + 1 == body.size());
    if (auto a = decode_authentication(body)) CHECK(a->data.size() + 4 == body.size());
    for (const auto& m : decode_sasl_mechanisms(body)) CHECK(m.size() < body.size());
    (void)decode_backend_key_data(body);
    (void)decode_ready_for_query(body);
  }
  CHECK(accepted > 0);
}

}  // TEST_SUITE

TEST_CASE("admin result sets: RowDescription, DataRow and CommandComplete golden bytes") {
  std::string out;
  pgmux::protocol::encode_row_description(out, {"a"});
  // 'T', length 4+2+(2 + 4+2+4+2+4+2) = 26, one text column "a"
  CHECK(out == wire::bin("T\0\0\0\x1a\0\x01" "a\0" "\0\0\0\0" "\0\0" "\0\0\0\x19" "\xff\xff" "\xff\xff\xff\xff" "\0\0"));
  out.clear();
  pgmux::protocol::encode_data_row(out, {"xy", ""});
  CHECK(out == wire::bin("D\0\0\0\x10\0\x02" "\0\0\0\x02xy" "\0\0\0\0"));
  out.clear();
  // Typed: an int8 column has size 8, and its empty value is NULL; text stays text.
  pgmux::protocol::encode_row_description(out, {"n", "t"}, {pgmux::protocol::int8_oid, pgmux::protocol::text_oid});
  CHECK(out == wire::msg('T').i16(2).cstr("n").i32(0).i16(0).i32(20).i16(8).i32(-1).i16(0)
                    .cstr("t").i32(0).i16(0).i32(25).i16(-1).i32(-1).i16(0).str());
  out.clear();
  pgmux::protocol::encode_data_row(out, {"", "", "7"}, {pgmux::protocol::int8_oid, pgmux::protocol::text_oid, pgmux::protocol::int8_oid});
  CHECK(out == wire::msg('D').i16(3).i32(-1).i32(0).i32(1).bytes("7").str());
  out.clear();
  pgmux::protocol::encode_command_complete(out, "SHOW");
  CHECK(out == wire::msg('C').cstr("SHOW").str());
}
