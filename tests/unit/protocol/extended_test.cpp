// Extended-query codec (protocol/extended): Parse, Bind names, Describe, Close and the answers
// pgmux synthesizes.
// Cases:
//   Parse decodes name, query and raw parameter types
//   Parse counts parameters as unsigned, as PostgreSQL does
//   malformed Parse bodies give nullopt
//   Parse round trip through the encoder
//   Bind names from the whole body and from a prefix
//   Bind names: need_more until the names end, invalid when the body ends first
//   a rewritten Bind header plus the original tail is the Bind the client would have sent
//   Describe and Close decode kind and name, and refuse malformed bodies
//   golden bytes of Describe, Close and the synthesized answers
//   random bodies never crash the decoders
#include <doctest/doctest.h>

#include <random>
#include <string>

#include "pgmux/protocol/extended.hpp"
#include "pgmux/protocol/frame.hpp"
#include "support/wire.hpp"

using namespace pgmux::protocol;

namespace {

constexpr std::size_t big = 1 << 20;

// Raw OIDs as Parse carries them.
std::string oids(std::initializer_list<std::int32_t> types) {
  wire::builder b(0);
  for (auto t : types) b.i32(t);
  return b.body();
}

// A Bind body: portal, statement, no format codes, the given text parameters, no result formats.
std::string bind_body(std::string_view portal, std::string_view statement, std::initializer_list<std::string_view> params) {
  wire::builder b('B');
  b.cstr(portal).cstr(statement).i16(0).i16(static_cast<std::int16_t>(params.size()));
  for (auto p : params) b.i32(static_cast<std::int32_t>(p.size())).bytes(p);
  b.i16(0);
  return b.body();
}

}  // namespace

TEST_SUITE("extended") {

TEST_CASE("Parse decodes name, query and raw parameter types") {
  SUBCASE("named, two types") {
    const auto body = wire::msg('P').cstr("s1").cstr("select $1, $2").i16(2).i32(23).i32(25).body();
    const auto p = decode_parse(body);
    REQUIRE(p);
    CHECK(p->name == "s1");
    CHECK(p->query == "select $1, $2");
    CHECK(p->param_count == 2);
    CHECK(p->param_types == oids({23, 25}));
  }
  SUBCASE("unnamed, no types, empty query") {
    const auto body = wire::msg('P').cstr("").cstr("").i16(0).body();
    const auto p = decode_parse(body);
    REQUIRE(p);
    CHECK(p->name.empty());
    CHECK(p->query.empty());
    CHECK(p->param_count == 0);
    CHECK(p->param_types.empty());
  }
  SUBCASE("views point into the body") {
    const auto body = wire::msg('P').cstr("n").cstr("q").i16(1).i32(0).body();
    const auto p = decode_parse(body);
    REQUIRE(p);
    CHECK(p->name.data() == body.data());
    CHECK(p->param_types.data() == body.data() + body.size() - 4);
  }
}

TEST_CASE("Parse counts parameters as unsigned, as PostgreSQL does") {
  wire::builder b('P');
  b.cstr("").cstr("select").i16(-1);  // 0xffff: 65535 parameters
  for (int i = 0; i < 65535; ++i) b.i32(0);
  const auto p = decode_parse(b.body());
  REQUIRE(p);
  CHECK(p->param_count == 65535);
  CHECK(p->param_types.size() == 65535u * 4);
}

TEST_CASE("malformed Parse bodies give nullopt") {
  CHECK_FALSE(decode_parse(""));
  CHECK_FALSE(decode_parse(wire::bin("s1")));                              // name unterminated
  CHECK_FALSE(decode_parse(wire::bin("s1\0select 1")));                    // query unterminated
  CHECK_FALSE(decode_parse(wire::bin("s1\0select 1\0")));                  // no count
  CHECK_FALSE(decode_parse(wire::bin("s1\0select 1\0\0")));                // half a count
  CHECK_FALSE(decode_parse(wire::msg('P').cstr("s").cstr("q").i16(2).i32(23).body()));         // types short
  CHECK_FALSE(decode_parse(wire::msg('P').cstr("s").cstr("q").i16(1).i32(23).i8(0).body()));   // trailing byte
  CHECK_FALSE(decode_parse(wire::msg('P').cstr("s").cstr("q").i16(0).i32(23).body()));         // types not counted
  CHECK_FALSE(decode_parse(wire::msg('P').cstr("s").cstr("q").i16(-2).body()));                // 65534 announced
}

TEST_CASE("Parse round trip through the encoder") {
  std::string out = "x";  // encoders append
  encode_parse(out, "stmt", "select $1::int", oids({23}));
  CHECK(out == "x" + wire::msg('P').cstr("stmt").cstr("select $1::int").i16(1).i32(23).str());
  const auto f = parse_frame(std::string_view(out).substr(1), big);
  REQUIRE(f.status == parse_status::complete);
  CHECK(f.msg.tag == 'P');
  const auto p = decode_parse(f.msg.body);
  REQUIRE(p);
  CHECK(p->name == "stmt");
  CHECK(p->query == "select $1::int");
  CHECK(p->param_types == oids({23}));
}

TEST_CASE("Bind names from the whole body and from a prefix") {
  const auto body = bind_body("portal", "stmt", {"42", std::string(1000, 'v')});
  SUBCASE("whole body") {
    const auto r = decode_bind_names(body, body.size());
    REQUIRE(r.status == parse_status::complete);
    CHECK(r.portal == "portal");
    CHECK(r.statement == "stmt");
    CHECK(r.names_size == 12);
  }
  SUBCASE("just the names") {
    const auto r = decode_bind_names(std::string_view(body).substr(0, 12), body.size());
    REQUIRE(r.status == parse_status::complete);
    CHECK(r.statement == "stmt");
    CHECK(r.names_size == 12);
  }
  SUBCASE("unnamed portal and statement") {
    const auto b = bind_body("", "", {});
    const auto r = decode_bind_names(b, b.size());
    REQUIRE(r.status == parse_status::complete);
    CHECK(r.portal.empty());
    CHECK(r.statement.empty());
    CHECK(r.names_size == 2);
  }
  SUBCASE("bytes past the body are not read") {
    const std::string two = wire::bin("p\0s\0") + "next message";
    const auto r = decode_bind_names(two, 4);
    REQUIRE(r.status == parse_status::complete);
    CHECK(r.statement == "s");
  }
}

TEST_CASE("Bind names: need_more until the names end, invalid when the body ends first") {
  const auto body = bind_body("p", "statement", {"1"});
  for (std::size_t n = 0; n < 12; ++n) {
    CAPTURE(n);
    CHECK(decode_bind_names(std::string_view(body).substr(0, n), body.size()).status == parse_status::need_more);
  }
  CHECK(decode_bind_names(std::string_view(body).substr(0, 12), body.size()).status == parse_status::complete);

  CHECK(decode_bind_names("", 0).status == parse_status::invalid);
  CHECK(decode_bind_names(wire::bin("portal"), 6).status == parse_status::invalid);
  CHECK(decode_bind_names(wire::bin("portal\0stmt"), 11).status == parse_status::invalid);
  // The body's length bounds the search even when more bytes are buffered.
  CHECK(decode_bind_names(wire::bin("p\0s\0"), 3).status == parse_status::invalid);
}

TEST_CASE("a rewritten Bind header plus the original tail is the Bind the client would have sent") {
  const auto original = bind_body("", "client_s1", {"42", "hello"});
  const auto names = decode_bind_names(original, original.size());
  REQUIRE(names.status == parse_status::complete);

  std::string out = "before";
  encode_bind_header(out, original.size(), names.names_size, names.portal, "pgmux_0123456789abcdef0123456789abcdef");
  out.append(original, names.names_size);  // the relay streams the rest unchanged
  const auto expected = wire::msg('B').bytes(bind_body("", "pgmux_0123456789abcdef0123456789abcdef", {"42", "hello"})).str();
  CHECK(out == "before" + expected);

  SUBCASE("a shorter name shrinks the length") {
    std::string shorter;
    encode_bind_header(shorter, original.size(), names.names_size, "", "s");
    shorter.append(original, names.names_size);
    CHECK(shorter == wire::msg('B').bytes(bind_body("", "s", {"42", "hello"})).str());
  }
}

TEST_CASE("Describe and Close decode kind and name, and refuse malformed bodies") {
  for (auto decode : {&decode_describe, &decode_close}) {
    const auto body = wire::bin("Sstmt\0");  // the views point into it
    const auto s = decode(body);
    REQUIRE(s);
    CHECK(s->kind == target_statement);
    CHECK(s->name == "stmt");
    const auto p = decode(wire::bin("P\0"));
    REQUIRE(p);
    CHECK(p->kind == target_portal);
    CHECK(p->name.empty());

    CHECK_FALSE(decode(""));
    CHECK_FALSE(decode("S"));                    // no name
    CHECK_FALSE(decode("Sstmt"));                // unterminated
    CHECK_FALSE(decode(wire::bin("Xstmt\0")));   // unknown kind
    CHECK_FALSE(decode(wire::bin("Sa\0b")));     // trailing bytes
    CHECK_FALSE(decode(wire::bin("sstmt\0")));   // kinds are upper case
  }
}

TEST_CASE("golden bytes of Describe, Close and the synthesized answers") {
  std::string out;
  SUBCASE("Describe") {
    encode_describe(out, target_statement, "s1");
    CHECK(out == wire::bin("D\0\0\0\x08Ss1\0"));
    CHECK(out == wire::msg('D').i8('S').cstr("s1").str());
  }
  SUBCASE("Close") {
    encode_close(out, target_portal, "");
    CHECK(out == wire::bin("C\0\0\0\x06P\0"));
  }
  SUBCASE("ParseComplete, BindComplete, CloseComplete") {
    encode_parse_complete(out);
    encode_bind_complete(out);
    encode_close_complete(out);
    CHECK(out == wire::bin("1\0\0\0\x04" "2\0\0\0\x04" "3\0\0\0\x04"));
  }
}

TEST_CASE("random bodies never crash the decoders") {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> len(0, 40), byte(0, 255), small(0, 3);
  for (int i = 0; i < 20000; ++i) {
    std::string body(static_cast<std::size_t>(len(rng)), '\0');
    for (auto& c : body) c = small(rng) == 0 ? '\0' : static_cast<char>(byte(rng));
    (void)decode_parse(body);
    (void)decode_describe(body);
    (void)decode_close(body);
    const auto r = decode_bind_names(body, body.size() + static_cast<std::size_t>(small(rng)));
    if (r.status == parse_status::complete) CHECK(r.names_size <= body.size());
  }
}

}  // TEST_SUITE
